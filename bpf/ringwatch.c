//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * ringwatch's ring-0 producers: kernel events written as records into one
 * BPF ring buffer, with every attempt numbered and every loss counted.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "ringwatch.h"

/* bpf_probe_read_kernel_str is GPL-only. */
char LICENSE[] SEC("license") = "Dual MIT/GPL";

/*
 * The kernel-to-user ring. A BPF_MAP_TYPE_RINGBUF has no key or value type
 * (the kernel requires key_size == value_size == 0), so the record types
 * reach Go through bpf2go's -type flags in gen.go instead of __type(value).
 * max_entries is the data size in bytes; pkg/loader sets it before loading.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RECORD_TYPE_MAX);
	__type(key, __u32);
	__type(value, struct source_counters);
} counters SEC(".maps");

/* Each source's run-time settings, by record type: see struct source_config. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RECORD_TYPE_MAX);
	__type(key, __u32);
	__type(value, struct source_config);
} source_config SEC(".maps");

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
BTF_ANCHOR(enum exec_flags, anchor_exec_flags);
BTF_ANCHOR(struct exec_record, anchor_exec_record);
BTF_ANCHOR(struct syscall_record, anchor_syscall_record);

/*
 * Skips the event if the source is paused or sampling leaves it out;
 * otherwise numbers the attempt, reserves size bytes and fills the record header.
 * Returns NULL when the record cannot be written; a full ring is counted as
 * lost in the same per-CPU counters slot that numbered the attempt.
 *
 * The sequence number is taken before the reserve, so the consumer sees a
 * gap exactly where a record was lost. size must be a compile-time constant
 * (bpf_ringbuf_reserve takes ARG_CONST_ALLOC_SIZE_OR_ZERO), which
 * __always_inline preserves.
 */
static __always_inline void *begin_record(enum record_type type, __u64 size)
{
	__u32 key = type;
	struct source_counters *c = bpf_map_lookup_elem(&counters, &key);
	struct source_config *cfg = bpf_map_lookup_elem(&source_config, &key);
	struct record_header *hdr;
	__u64 now = bpf_ktime_get_ns();
	__u64 seq;

	if (!c || !cfg)
		return NULL; /* cannot happen: type < RECORD_TYPE_MAX */
	if (cfg->paused) {
		c->skipped++;
		return NULL;
	}
	if (c->sample_countdown > 0) {
		c->sample_countdown--;
		c->skipped++;
		return NULL;
	}
	if (cfg->sample_every > 1)
		c->sample_countdown = cfg->sample_every - 1;
	seq = c->attempts++;

	hdr = bpf_ringbuf_reserve(&events, size, 0);
	if (!hdr) {
		c->lost++;
		return NULL;
	}
	hdr->ktime_ns = now;
	hdr->seq = seq;
	hdr->type = type;
	hdr->cpu = bpf_get_smp_processor_id();
	return hdr;
}

/*
 * sched_process_exec fires after the new image is in place (fs/exec.c,
 * exec_binprm), so comm is already the new program's name and current's
 * tgid is the process's pid even when a non-leader thread called execve.
 */
SEC("tracepoint/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct exec_record *rec;
	unsigned int filename_off;
	long n;

	rec = begin_record(RECORD_EXEC, sizeof(*rec));
	if (!rec)
		return 0;

	rec->pid = bpf_get_current_pid_tgid() >> 32;
	rec->ppid = BPF_CORE_READ(task, real_parent, tgid);
	rec->uid = (__u32)bpf_get_current_uid_gid();
	rec->flags = 0;
	bpf_get_current_comm(rec->comm, sizeof(rec->comm));

	/* __data_loc: low 16 bits are the offset from the start of the entry. */
	filename_off = ctx->__data_loc_filename & 0xFFFF;
	n = bpf_probe_read_kernel_str(rec->filename, sizeof(rec->filename),
				      (void *)ctx + filename_off);
	if (n < 0)
		rec->filename[0] = '\0';
	else if (n == sizeof(rec->filename))
		rec->flags |= EXEC_FILENAME_TRUNCATED;

	bpf_ringbuf_submit(rec, 0);
	return 0;
}

static __always_inline bool syscall_wanted(__u32 tgid)
{
	__u32 zero = 0;
	struct syscall_filter *f = bpf_map_lookup_elem(&syscall_config, &zero);

	if (!f)
		return false; /* cannot happen: index 0 of a 1-entry array */
	if (f->allow_list)
		return bpf_map_lookup_elem(&syscall_pids, &tgid) != NULL;
	return tgid != f->exclude_pid;
}

/*
 * The high-volume source. A raw tracepoint rather than the classic
 * raw_syscalls/sys_enter tracepoint: the program gets the tracepoint's
 * arguments (struct pt_regs *regs, long id) directly, without the kernel
 * first copying six arguments into a perf trace buffer on every syscall.
 */
SEC("raw_tracepoint/sys_enter")
int handle_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct syscall_record *rec;

	if (!syscall_wanted(pid_tgid >> 32))
		return 0;

	rec = begin_record(RECORD_SYSCALL, sizeof(*rec));
	if (!rec)
		return 0;
	rec->pid = pid_tgid >> 32;
	rec->tid = (__u32)pid_tgid;
	rec->nr = (__s64)ctx->args[1];
	bpf_ringbuf_submit(rec, 0);
	return 0;
}
