//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * ringwatch's ring-0 producers: kernel events written as records into one
 * BPF ring buffer, with every attempt numbered and every loss counted. The
 * transports they write through, and how they wake the consumer, are in
 * transport.h.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "ringwatch.h"
#include "transport.h"

/* bpf_probe_read_kernel_str is GPL-only. */
char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RECORD_TYPE_MAX);
	__type(key, __u32);
	__type(value, struct source_counters);
} counters SEC(".maps");

/*
 * The flight recorder: an overwrite-mode ring that keeps the newest records.
 * internal/loader creates it with BPF_F_RB_OVERWRITE and its size only when
 * transport_config.recorder is set; otherwise it stays a one-page ring that
 * nothing writes.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} recorder SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct recorder_counters);
} recorder_stats SEC(".maps");

/*
 * Copies a finished record into the recorder. Nobody waits on that ring,
 * so it wakes no one; a refusal is counted and leaves the transport's
 * record alone.
 */
static __always_inline void record_copy(const void *rec, __u32 size)
{
	__u32 zero = 0;
	struct recorder_counters *rc = bpf_map_lookup_elem(&recorder_stats, &zero);

	if (!rc)
		return;
	if (bpf_ringbuf_output(&recorder, (void *)rec, size, BPF_RB_NO_WAKEUP))
		rc->failed++;
	else
		rc->written++;
}

/* source_configs, syscall_pids, syscall_config and BTF_ANCHOR. */
#include "settings.h"

BTF_ANCHOR(enum exec_flags, anchor_exec_flags);
BTF_ANCHOR(enum exec_layout, anchor_exec_layout);
BTF_ANCHOR(struct exec_record, anchor_exec_record);
BTF_ANCHOR(struct syscall_record, anchor_syscall_record);
BTF_ANCHOR(struct spsc_slot, anchor_spsc_slot);
BTF_ANCHOR(enum transport, anchor_transport);
BTF_ANCHOR(enum wakeup_mode, anchor_wakeup_mode);
BTF_ANCHOR(enum sleep_state, anchor_sleep_state);
BTF_ANCHOR(struct bench_record, anchor_bench_record);
BTF_ANCHOR(struct bench_args, anchor_bench_args);
BTF_ANCHOR(struct recorder_counters, anchor_recorder_counters);

/*
 * Skips the event if the source is paused or sampling leaves it out;
 * otherwise numbers the attempt, reserves size bytes in the transport and
 * fills the record header. Returns NULL when no record is to be written; a
 * record the transport has no room for is counted as lost in the same
 * per-CPU counters slot that numbered the attempt.
 *
 * The sequence number is taken before the reserve, so the consumer sees a
 * gap exactly where a record was lost. size must be a compile-time constant
 * (bpf_ringbuf_reserve takes ARG_CONST_ALLOC_SIZE_OR_ZERO), which
 * __always_inline preserves; so is transport, which leaves only the chosen
 * transport's code in each program. With SIZE_AT_SUBMIT, size is the
 * largest the record may be, and end_record gives its length
 * (reserve_dynamic in transport.h).
 */
#define SIZE_FIXED false
#define SIZE_AT_SUBMIT true
static __always_inline void *begin_record(struct output *out, enum record_type type, __u32 size,
					  const enum transport transport, const bool sizing)
{
	__u32 key = type;
	struct source_counters *c = bpf_map_lookup_elem(&counters, &key);
	struct source_config *cfg = bpf_map_lookup_elem(&source_configs, &key);
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

	hdr = sizing == SIZE_AT_SUBMIT ? reserve_dynamic(out, size, transport) : reserve(out, size, transport);
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
 * Submits the record begin_record returned, size bytes long (the sizing
 * begin_record was given), counting a late refusal as lost.
 */
static __always_inline void end_record(struct output *out, void *ctx, enum record_type type, __u32 size,
				       const enum transport transport, const bool sizing)
{
	__u32 key = type;
	struct source_counters *c;

	if (out->cfg->recorder)
		record_copy(out->rec, size);
	if (sizing == SIZE_AT_SUBMIT ? submit_dynamic(out, ctx, size, transport) : submit(out, ctx, size, transport))
		return;
	c = bpf_map_lookup_elem(&counters, &key);
	if (c)
		c->lost++;
}

/*
 * The length of an exec record whose filename, NUL included, is n bytes
 * (1 <= n <= FILENAME_LEN), as ringwatch.h defines it; zeroes the bytes
 * between the NUL and that length, which would otherwise carry what the
 * scratch buffer or the ring held before. Little-endian: the last word's
 * low bytes are the filename's.
 */
static __always_inline __u32 exec_record_size(struct exec_record *rec, __u32 n)
{
	__u32 end = __builtin_offsetof(struct exec_record, filename) + n;
	__u32 size = (end + EXEC_RECORD_ALIGN - 1) & ~(EXEC_RECORD_ALIGN - 1);
	__u32 kept;
	__u64 *last;

	_Static_assert(EXEC_RECORD_ALIGN == sizeof(__u64), "the last word is the alignment unit");
	/* The verifier bounds x & ~7 by x's bound (kernel/bpf/verifier.c,
	 * scalar32_min_max_and), 319 here, past the end of an spsc slot: say
	 * again what is true, where the compiler cannot drop it. */
	asm volatile("" : "+r"(size));
	if (size > sizeof(*rec))
		size = sizeof(*rec);
	kept = sizeof(__u64) - (size - end); /* bytes of the last word that are content: 1 to 8 */
	last = (void *)rec + size - sizeof(__u64);
	if (kept < sizeof(__u64))
		*last &= (1ULL << (kept * 8)) - 1;
	return size;
}

/*
 * sched_process_exec fires after the new image is in place (fs/exec.c,
 * exec_binprm), so comm is already the new program's name and current's
 * tgid is the process's pid even when a non-leader thread called execve.
 *
 * The record is as long as its filename (see struct exec_record): it is
 * built where reserve_dynamic says, the filename read with
 * bpf_probe_read_kernel_str, whose return value (the bytes copied, NUL
 * included) gives the length submit_dynamic carries. The tracepoint also
 * gives the length before any read (the high 16 bits of
 * __data_loc_filename: strlen + 1, include/trace/stages/
 * stage5_get_offsets.h), which bpf_ringbuf_reserve_dynptr would need; the
 * read's own count needs no trust in it.
 */
static __always_inline int emit_exec(struct trace_event_raw_sched_process_exec *ctx,
				     const enum transport transport)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct output out = {};
	struct exec_record *rec;
	unsigned int filename_off;
	long n;

	rec = begin_record(&out, RECORD_EXEC, sizeof(*rec), transport, SIZE_AT_SUBMIT);
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
	if (n <= 0) {
		rec->filename[0] = '\0';
		n = 1;
	} else if (n >= sizeof(rec->filename)) {
		rec->flags |= EXEC_FILENAME_TRUNCATED;
		n = sizeof(rec->filename);
	}

	end_record(&out, ctx, RECORD_EXEC, exec_record_size(rec, n), transport, SIZE_AT_SUBMIT);
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
static __always_inline int emit_sys_enter(struct bpf_raw_tracepoint_args *ctx,
					  const enum transport transport)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct output out = {};
	struct syscall_record *rec;

	if (!syscall_wanted(pid_tgid >> 32))
		return 0;

	rec = begin_record(&out, RECORD_SYSCALL, sizeof(*rec), transport, SIZE_FIXED);
	if (!rec)
		return 0;
	rec->pid = pid_tgid >> 32;
	rec->tid = (__u32)pid_tgid;
	rec->nr = (__s64)ctx->args[1];
	end_record(&out, ctx, RECORD_SYSCALL, sizeof(*rec), transport, SIZE_FIXED);
	return 0;
}

/*
 * The programs: every source on every transport. internal/loader finds them by
 * name, <source program>_<transport>.
 */
/*
 * What the programs return. A tracepoint program's return value decides
 * whether the event goes on to perf: 0 drops it for every perf event on the
 * tracepoint, `perf stat -e sched:sched_process_exec` included
 * (kernel/events/core.c, perf_trace_run_bpf_submit: a 0 from trace_call_bpf
 * returns before perf_tp_event). ringwatch only watches, so it returns 1:
 * other tools see every event they would see without it. A raw tracepoint
 * program's return value is ignored (kernel/trace/bpf_trace.c,
 * __bpf_trace_run), and it runs beside perf's own handler, not before it.
 */
#define PASS_TO_PERF 1

#define SOURCE_PROGRAMS(name, transport)						\
	SEC("tracepoint/sched/sched_process_exec")					\
	int exec_##name(struct trace_event_raw_sched_process_exec *ctx)		\
	{										\
		emit_exec(ctx, transport);						\
		return PASS_TO_PERF;							\
	}										\
	SEC("raw_tracepoint/sys_enter")							\
	int sys_enter_##name(struct bpf_raw_tracepoint_args *ctx)			\
	{										\
		emit_sys_enter(ctx, transport);						\
		return 0; /* ignored */							\
	}

SOURCE_PROGRAMS(ringbuf, TRANSPORT_RINGBUF)
SOURCE_PROGRAMS(percpu_ringbuf, TRANSPORT_PERCPU_RINGBUF)
SOURCE_PROGRAMS(perfbuf, TRANSPORT_PERFBUF)
SOURCE_PROGRAMS(spsc, TRANSPORT_SPSC)

/*
 * The synthetic producer of `ringwatch bench`: a syscall program that
 * internal/bench runs with BPF_PROG_TEST_RUN from a thread pinned to one CPU.
 * Each run writes args->count records of a fixed size, through the same
 * reserve and submit as the sources, so it measures the transports as the
 * sources use them. The loop is an open-coded iterator (Linux 6.4), which
 * the verifier checks once rather than once per iteration.
 */
/* Per CPU: the scale scenario runs a producer on each of several CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bench_counters);
} bench_counters SEC(".maps");

extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;

static __always_inline int bench_run(void *ctx, __u32 count, const __u32 size, const enum transport transport)
{
	__u32 zero = 0;
	struct bench_counters *bc = bpf_map_lookup_elem(&bench_counters, &zero);
	struct bpf_iter_num it;
	int *i;

	if (!bc)
		return 0;
	bpf_iter_num_new(&it, 0, count);
	while ((i = bpf_iter_num_next(&it))) {
		struct output out = {};
		struct bench_record *rec;
		__u64 seq = bc->attempts++;

		rec = reserve(&out, size, transport);
		if (!rec) {
			bc->lost++;
			continue;
		}
		rec->ktime_ns = bpf_ktime_get_ns();
		rec->seq = seq;
		if (!submit(&out, ctx, size, transport))
			bc->lost++;
	}
	bpf_iter_num_destroy(&it);
	return 0;
}

#define BENCH_PROGRAM(name, transport, size)						\
	SEC("syscall")									\
	int bench_##size##_##name(struct bench_args *args)				\
	{										\
		return bench_run(args, args->count, size, transport);			\
	}
/*
 * syscall programs are sleepable, and sleepable programs may not use a
 * perf event array (the verifier: "Sleepable programs can only use array,
 * hash, ringbuf and local storage maps"). The perfbuf producer is a raw
 * tracepoint program instead, never attached, run the same way; its
 * context is the tracepoint's arguments, and args[0] is the count.
 */
#define BENCH_PERF_PROGRAM(size)							\
	SEC("raw_tp/bench")								\
	int bench_##size##_perfbuf(struct bpf_raw_tracepoint_args *ctx)			\
	{										\
		return bench_run(ctx, ctx->args[0], size, TRANSPORT_PERFBUF);		\
	}
#define BENCH_PROGRAMS(name, transport, program)					\
	program(name, transport, 16)							\
	program(name, transport, 64)							\
	program(name, transport, 256)							\
	program(name, transport, 1024)							\
	program(name, transport, 4096)
#define PERF_PROGRAM(name, transport, size) BENCH_PERF_PROGRAM(size)

BENCH_PROGRAMS(ringbuf, TRANSPORT_RINGBUF, BENCH_PROGRAM)
BENCH_PROGRAMS(percpu_ringbuf, TRANSPORT_PERCPU_RINGBUF, BENCH_PROGRAM)
BENCH_PROGRAMS(perfbuf, TRANSPORT_PERFBUF, PERF_PROGRAM)
BENCH_PROGRAMS(spsc, TRANSPORT_SPSC, BENCH_PROGRAM)
