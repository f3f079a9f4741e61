// Package ringwatch holds the go:generate lines that rebuild ringwatch's BPF
// objects; the code lives under cmd/ and pkg/.
//
// `make generate` runs them with the toolchain the Makefile chooses
// (CLANG=clang-19 by default, passed to bpf2go as BPF2GO_CC, with
// BPF2GO_CFLAGS). bpf2go is pinned in go.mod's tool block. Its outputs,
// pkg/loader/ringwatch_bpfel.{go,o}, are committed so that building and
// testing need no clang; `make check-generate` proves they are current.
package ringwatch

//go:generate go tool bpf2go -target bpfel -output-dir pkg/loader -go-package loader -type record_type -type record_header -type exec_record -type exec_flags -type syscall_record -type source_counters ringwatch bpf/ringwatch.c
