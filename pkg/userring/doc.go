// Package userring writes user-to-kernel BPF rings from Go: a [Writer] maps
// a BPF_MAP_TYPE_USER_RINGBUF (Linux 6.1) and reserves, submits and
// discards samples in it, in the kernel's format, for a BPF program to read
// with bpf_user_ringbuf_drain. It is the reverse of package consumer: there
// the kernel produces and Go consumes. cilium/ebpf defines the map type
// but has no writer for it.
//
// Nothing is dropped silently: a sample is either in the ring or the caller
// has an error. A Writer only fills the ring; something on the kernel side
// must run bpf_user_ringbuf_drain for samples to move (ringwatch runs a
// BPF_PROG_TYPE_SYSCALL program on demand).
//
// Stable (the API promised): everything exported. Stats may gain fields,
// and the text of ErrFull and ErrTooLarge's messages may change: match
// errors with errors.Is.
package userring
