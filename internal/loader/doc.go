// Package loader owns ringwatch's BPF programs: it checks that the machine
// can run the producers, loads the objects internal/abi embeds, attaches the
// chosen sources to their kernel events, reads the producers' counters, and
// frees everything on [Producers.Close]. It is the one reason to change for
// how programs reach the kernel; it neither reads rings (pkg/consumer) nor
// sizes them (internal/transport, asked through [MapOwner]), nor decodes
// records (internal/abi).
//
// [Open] checks the machine before touching the kernel, each check with an
// error that says what to do. [ControlProgram] is the control program of
// bpf/control.c, loaded on its own ([OpenControl]) or sharing the
// producers' settings maps ([Producers.OpenControl]), with its doorbell;
// internal/control encodes its messages.
package loader
