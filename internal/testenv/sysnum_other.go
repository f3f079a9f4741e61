//go:build !amd64

package testenv

// sysEpollWait: no such system call here (see sysnum_amd64.go).
const sysEpollWait = -1
