// Package loader owns ringwatch's BPF programs: it checks that the machine
// can run the producers, loads the objects internal/abi embeds, attaches the
// chosen sources to their kernel events, reads the producers' counters, and
// frees everything on [Producers.Close]. It is the one reason to change for
// how programs reach the kernel; it neither reads rings (pkg/consumer) nor
// sizes them (internal/transport, asked through [Transport]), nor decodes
// records (internal/abi).
//
//   - loader.go: [Source], [Open], [Options], [Producers]: load, attach,
//     counters, detach, close.
//   - checks.go: the checks [Open] makes before touching the kernel, each
//     with an error that says what to do.
//   - control.go: [Control], the control program of bpf/control.c, loaded
//     on its own ([OpenControl]) or sharing the producers' settings maps
//     ([Producers.OpenControl]), and its doorbell. Its messages are encoded
//     by internal/control.
package loader
