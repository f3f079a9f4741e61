/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * The producers' run-time settings maps, and the BTF anchor macro, shared
 * by both BPF objects: ringwatch.c (the producers, which read the settings)
 * and control.c (the user ring's control program, which writes them).
 * internal/loader loads the control program next to the producers with these
 * maps replaced by the producers' own (ebpf.CollectionOptions.
 * MapReplacements checks that type, sizes and flags match, which one
 * definition guarantees). Include after vmlinux.h, bpf_helpers.h and
 * ringwatch.h.
 */
#ifndef RINGWATCH_SETTINGS_H
#define RINGWATCH_SETTINGS_H

/* Each source's run-time settings, by record type: see struct source_config. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RECORD_TYPE_MAX);
	__type(key, __u32);
	__type(value, struct source_config);
} source_configs SEC(".maps");

/* The syscalls source's allow-list, used when syscall_filter.allow_list is set. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_FILTER_PIDS);
	__type(key, __u32);
	__type(value, __u8);
} syscall_pids SEC(".maps");

/* The syscalls source's filter settings: one entry, written by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct syscall_filter);
} syscall_config SEC(".maps");

/*
 * Types used only by locals or inlined functions do not reach BTF, and
 * bpf2go needs them there to generate the Go declarations. These anchors
 * keep them in BTF. They live in a section of their own, not .bss, because
 * cilium/ebpf would load .bss as a map and map it into the process.
 */
#define BTF_ANCHOR(type, name) \
	const type *name __attribute__((unused, section(".btf_anchors")))

#endif /* RINGWATCH_SETTINGS_H */
