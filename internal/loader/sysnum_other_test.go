//go:build !amd64

package loader

// sysEpollWait: no such system call here (see sysnum_amd64_test.go).
const sysEpollWait = -1
