// Package progstats lists every BPF program on the host, with its name,
// type, ID, the maps it uses, and the kernel's run statistics: how many
// times it ran and for how long.
//
// The kernel counts runs only while statistics are enabled
// (BPF_ENABLE_STATS, Linux 5.8, or the kernel.bpf_stats_enabled sysctl),
// because counting costs time on every run of every program on the host.
// [Enable] turns them on for as long as the returned closer is open; the
// kernel turns them off again when the last holder closes it or exits, so
// nothing is left enabled after ringwatch (kernel/bpf/syscall.c,
// bpf_enable_runtime_stats and bpf_stats_release).
//
// Listing needs CAP_SYS_ADMIN (BPF_PROG_GET_NEXT_ID); without it [List]
// returns an error wrapping [ErrPermission].
package progstats
