// Package ringwatch holds the go:generate lines that rebuild ringwatch's BPF
// objects; the code lives under cmd/ and pkg/.
//
// bpf2go takes the compiler from BPF2GO_CC: `make generate` sets it from
// the Makefile's CLANG variable (clang-19 by default); plain `go generate`
// needs it in the environment. The compiler flags are fixed here, so every
// way of generating produces the same objects. bpf2go is pinned in go.mod's
// tool block. Its outputs, internal/abi/ringwatch_bpfel.{go,o} (the
// producers) and internal/abi/control_bpfel.{go,o} (the user ring's control
// program), internal/testbpf/testfill_bpfel.{go,o} (the test fillers, which
// only tests load), and examples/ringreader/counter_bpfel.{go,o} (the
// example of pkg/consumer as a library), are committed so that building and testing
// need no clang; `make check-generate` proves they are current.
//
// A -type flag must not name a struct that shares its name with a map:
// bpf2go's lookup by name then finds both and fails. So the maps are named
// apart from their value types (source_configs holds struct source_config).
package ringwatch

//go:generate go tool bpf2go -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3" -output-dir internal/abi -go-package abi -type record_type -type record_header -type exec_record -type exec_flags -type exec_layout -type syscall_record -type source_counters -type source_config -type transport -type transport_config -type spsc_queue -type spsc_slot -type wake_state -type wakeup_mode -type sleep_state -type bench_record -type bench_args -type recorder_counters ringwatch bpf/ringwatch.c
//go:generate go tool bpf2go -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3" -output-dir internal/abi -go-package abi -type msg_type -type msg_header -type msg_ping -type msg_set_pids -type msg_source -type msg_data -type msg_reply -type msg_reject control bpf/control.c
//go:generate go tool bpf2go -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3" -output-dir internal/testbpf -go-package testbpf -type fill_args -type hold_args -type hold_state -type overwrite_args -type overwrite_record testfill bpf/testfill.c
//go:generate go tool bpf2go -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3" -output-dir examples/ringreader -go-package main -type record -type run_args counter examples/ringreader/bpf/counter.c
