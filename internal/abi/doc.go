// Package abi is the contract between ringwatch's BPF programs and its Go
// code, and nothing else: the types bpf2go generates from bpf/ringwatch.h and
// bpf/control.h (the generated files come from `make generate`; do not edit
// them), the embedded BPF objects and the names of their maps and programs,
// the decoding of records from ring bytes, and the vocabulary both sides
// share (transport names, record types, sources, sleep states, control
// messages); and, because every package imports it, how every package
// refuses a value ([ErrInvalidOption], [OptionError], which names an option
// as its library does, never as a flag: reading flags is internal/cli's).
//
// It is a leaf: it imports no other ringwatch package, so every package may
// import it. Go code takes every offset, size and enum value of a shared
// layout from the generated types here (unsafe.Sizeof, unsafe.Offsetof, the
// generated constants); a test checks them against the BTF the compiler
// wrote, and pins what cannot be derived.
package abi
