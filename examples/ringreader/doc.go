// Ringreader shows how few lines a Go program needs to read a BPF ring
// buffer with [github.com/ringwatch/ringwatch/pkg/consumer] when it loads
// its own BPF objects with cilium/ebpf, without ringwatch's loader.
//
// It loads bpf/counter.c through the loader that bpf2go generated
// (counter_bpfel.go, from the go:generate line in the repository's gen.go),
// opens a [consumer.Consumer] over the program's BPF_MAP_TYPE_RINGBUF, runs
// the BPF_PROG_TYPE_SYSCALL program write_records once with
// BPF_PROG_TEST_RUN to write -n records, reads them back, and prints how
// many it read and the sum of their values:
//
//	sudo go run ./examples/ringreader -n 1000
//
// It needs root, or CAP_BPF, and Linux 5.14 or later for
// BPF_PROG_TYPE_SYSCALL. The record layout is defined once, in
// bpf/counter.h; counterRecord is generated from it.
package main
