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
 * The kernel-to-user transports. Each source has one program per transport
 * (see the end of this file) and pkg/loader loads only the chosen
 * transport's programs and the maps they use; it also sets every size below
 * that depends on the machine or on the command line.
 */

/*
 * ringbuf: one BPF_MAP_TYPE_RINGBUF shared by every CPU. A ring buffer has no
 * key or value type (the kernel requires key_size == value_size == 0), so the
 * record types reach Go through bpf2go's -type flags in gen.go instead of
 * __type(value). max_entries is the data size in bytes.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

/*
 * percpu-ringbuf: ring buffers in an array of maps, one per CPU or per group
 * of transport_config.cpus_per_ring CPUs. Each CPU reserves only in its own
 * ring, so CPUs stop contending for one ring's spinlock.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_RINGBUF);
		__uint(max_entries, 4 << 20);
	});
} percpu_events SEC(".maps");

/* perfbuf: one perf buffer per CPU; pkg/consumer opens them and fills the array. */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

/*
 * bpf_perf_event_output copies a record that is already complete, so the
 * perfbuf programs build it here first: one buffer per CPU, with a busy flag
 * so that a program interrupting another on the same CPU cannot overwrite a
 * record half built.
 */
#define PERF_SCRATCH_SIZE 4096
struct perf_scratch {
	__u32 busy;
	__u32 pad;
	__u8 data[PERF_SCRATCH_SIZE];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct perf_scratch);
} perf_scratch SEC(".maps");

/* spsc: see "The SPSC queue" below. Both arrays are mapped by pkg/consumer. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1); /* one per possible CPU */
	__type(key, __u32);
	__type(value, struct spsc_queue);
} spsc_queues SEC(".maps");

/*
 * The slots of every queue. No BTF value type: pkg/loader sets value_size to
 * the slot size, which the verifier then checks every record write against.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1); /* possible CPUs * spsc_slots */
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 8);
} spsc_slots SEC(".maps");

/* The sleep handshake: one wake_state per consumer, mapped by each. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1); /* one per consumer */
	__type(key, __u32);
	__type(value, struct wake_state);
} consumer_state SEC(".maps");

/*
 * Each consumer's doorbell: a ring buffer only so that epoll can wait on it,
 * one per consumer in an array of maps that pkg/transport fills.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1); /* one per consumer */
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_RINGBUF);
		__uint(max_entries, 4096);
	});
} doorbells SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct transport_config);
} transport_settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RECORD_TYPE_MAX);
	__type(key, __u32);
	__type(value, struct source_counters);
} counters SEC(".maps");

/* source_configs, syscall_pids, syscall_config and BTF_ANCHOR. */
#include "settings.h"

BTF_ANCHOR(enum exec_flags, anchor_exec_flags);
BTF_ANCHOR(struct exec_record, anchor_exec_record);
BTF_ANCHOR(struct syscall_record, anchor_syscall_record);
BTF_ANCHOR(struct spsc_slot, anchor_spsc_slot);
BTF_ANCHOR(enum transport, anchor_transport);
BTF_ANCHOR(enum wakeup_mode, anchor_wakeup_mode);
BTF_ANCHOR(enum sleep_state, anchor_sleep_state);
BTF_ANCHOR(struct bench_record, anchor_bench_record);
BTF_ANCHOR(struct bench_args, anchor_bench_args);

#define READ_ONCE(x) (*(const volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))
/* Keeps the compiler from moving memory accesses across it; emits nothing. */
#define barrier() asm volatile("" ::: "memory")

/*
 * The SPSC queue
 * ==============
 *
 * Queue k is written only by BPF programs running on CPU k and read only by
 * the one consumer thread, so neither side needs a lock. The producer:
 *
 *   1. refuses to nest: if busy is set, a program on this CPU was interrupted
 *      while writing a slot; the record is counted as lost. busy is only ever
 *      touched by this CPU, and an interrupting program sees everything the
 *      interrupted one stored before it, so plain accesses suffice (with
 *      barrier() against the compiler).
 *   2. checks for room: tail - head < spsc_slots, using cached_head and
 *      reading the consumer's head only when the cached one says full. A full
 *      queue counts the record as lost.
 *   3. writes the record and its length into slot tail & (spsc_slots - 1),
 *   4. publishes it: tail = tail + 1,
 *   5. fences, then reads wake_state.consumer_sleeping; if set, clears it
 *      with a compare-and-swap and rings the doorbell.
 *
 * The consumer (pkg/consumer/spsc.go) reads tail, reads the slots before it,
 * then stores head once per batch.
 *
 * Memory ordering on x86-64. x86-64 is TSO: stores are not reordered with
 * stores, loads not with loads, and loads not with later stores; only a
 * store followed by a load of another location may be reordered (the store
 * waits in the store buffer). The BPF JIT emits our loads and stores in
 * program order, as plain movs, and READ_ONCE/WRITE_ONCE/barrier() keep the
 * compiler from reordering them. So, with no fence and no atomic on the data
 * path:
 *   - slot stores (3) become visible before the tail store (4): a consumer
 *     that reads the new tail then reads a complete slot;
 *   - the consumer's slot loads complete before its head store, and our head
 *     load comes before our slot stores: we never overwrite a slot being read.
 * The sleep handshake (5) is Dekker's: the consumer stores sleeping = 1 then
 * loads every tail; the producer stores tail then loads sleeping. Each side
 * needs its store visible before its load (StoreLoad), the one reordering
 * x86-64 allows, or both can miss the other and the consumer sleeps on a
 * record. The consumer's atomic store is an XCHG, a full barrier. BPF has no
 * fence instruction, so the producer's fence is a fetch-and-add on a word of
 * its own cache line (wake_checks), which the x86-64 JIT emits as lock xadd:
 * it orders without contending, as no other CPU writes that line. It is the
 * only locked instruction per record; the kernel's ring buffer takes two (the
 * spin lock in reserve, the xchg in commit).
 *
 * What arm64 would need. arm64 reorders all four ways, so plain accesses are
 * not enough: the tail store (4) must be a store-release and the producer's
 * head load a load-acquire; the consumer's tail load an acquire and its head
 * store a release (Go's sync/atomic gives it both). BPF has load-acquire and
 * store-release instructions from Linux 6.15 (with LLVM 21's
 * __atomic_load_n/__atomic_store_n); on an older kernel a fetch-and-add
 * before the tail store gives the release, at the cost of a second fence.
 * The fetching atomics are fully ordered on every JIT (Documentation/bpf/
 * standardization/instruction-set.rst), so the handshake fence (5) carries
 * over as is.
 */

/* Where a record is being written, from begin_record to end_record. */
struct output {
	void *rec;
	struct transport_config *cfg;
	void *ring;               /* ringbuf, percpu-ringbuf: the ring reserved in */
	__u32 ring_index;         /* which ring: see transport_config.consumer_shift */
	struct spsc_queue *queue; /* spsc */
	struct spsc_slot *slot;   /* spsc */
	struct perf_scratch *scratch; /* perfbuf */
};

static __always_inline struct transport_config *get_transport_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&transport_settings, &zero);
}

/*
 * Reserves size bytes for a record in the transport. Returns NULL when there
 * is no room: the caller counts the record as lost.
 */
static __always_inline void *reserve(struct output *out, __u32 size, const enum transport transport)
{
	__u32 cpu = bpf_get_smp_processor_id(), zero = 0;
	struct transport_config *cfg = get_transport_config();

	if (!cfg)
		return NULL; /* cannot happen: index 0 of a 1-entry array */
	out->cfg = cfg;
	switch (transport) {
	case TRANSPORT_RINGBUF:
		out->ring = &events;
		out->rec = bpf_ringbuf_reserve(&events, size, 0);
		return out->rec;

	case TRANSPORT_PERCPU_RINGBUF: {
		__u32 ring;
		void *rb;

		if (cfg->cpus_per_ring == 0)
			return NULL;
		ring = cpu / cfg->cpus_per_ring;
		rb = bpf_map_lookup_elem(&percpu_events, &ring);
		if (!rb)
			return NULL;
		out->ring = rb;
		out->ring_index = ring;
		out->rec = bpf_ringbuf_reserve(rb, size, 0);
		return out->rec;
	}

	case TRANSPORT_PERFBUF: {
		struct perf_scratch *scratch = bpf_map_lookup_elem(&perf_scratch, &zero);

		if (!scratch || scratch->busy)
			return NULL;
		scratch->busy = 1;
		barrier();
		out->scratch = scratch;
		out->ring_index = cpu;
		out->rec = scratch->data;
		return out->rec;
	}

	case TRANSPORT_SPSC: {
		struct spsc_queue *q = bpf_map_lookup_elem(&spsc_queues, &cpu);
		struct spsc_slot *slot;
		__u64 tail, slots;
		__u32 index;

		if (!q || READ_ONCE(q->busy))
			return NULL;
		WRITE_ONCE(q->busy, 1);
		barrier();
		slots = cfg->spsc_slots;
		tail = q->tail;
		if (tail - q->cached_head >= slots) {
			q->cached_head = READ_ONCE(q->head);
			if (tail - q->cached_head >= slots)
				goto refuse;
		}
		index = cpu * slots + (tail & (slots - 1));
		slot = bpf_map_lookup_elem(&spsc_slots, &index);
		if (!slot)
			goto refuse;
		out->queue = q;
		out->ring_index = cpu;
		out->slot = slot;
		out->rec = slot->data;
		return out->rec;
refuse:
		barrier();
		WRITE_ONCE(q->busy, 0);
		return NULL;
	}
	}
	return NULL;
}

/* The consumer that reads the ring out wrote to: see transport_config. */
static __always_inline __u32 consumer_of(const struct output *out)
{
	return out->ring_index >> (out->cfg->consumer_shift & 31);
}

/* Rings consumer's doorbell: a record that only wakes it. */
static __always_inline void ring_bell(__u32 consumer)
{
	__u64 cpu = bpf_get_smp_processor_id();
	void *bell = bpf_map_lookup_elem(&doorbells, &consumer);

	/* A failed output means the doorbell ring already holds unread
	 * doorbells, which keep epoll ready: the consumer wakes all the same. */
	if (bell)
		bpf_ringbuf_output(bell, &cpu, sizeof(cpu), BPF_RB_FORCE_WAKEUP);
}

/*
 * Wakes the consumer if it sleeps in state, and nobody else woke it first:
 * the compare-and-swap lets exactly one producer ring the doorbell.
 */
static __always_inline void ring_doorbell(struct wake_state *ws, __u32 state, __u32 consumer)
{
	if (__sync_val_compare_and_swap(&ws->consumer_sleeping, state, SLEEP_AWAKE) != state)
		return;
	ring_bell(consumer);
}

/*
 * WAKEUP_ADAPTIVE, after a record is published: wakes a consumer that
 * sleeps deeply, or lazily once pending reaches the watermark. The caller
 * must have fenced between publishing and this read of the flag (see The
 * SPSC queue: Dekker's handshake); bpf_ringbuf_submit's xchg is such a
 * fence. pending is only computed when a lazy sleeper makes it matter.
 */
#define WAKE_IF_ASLEEP(out, cfg, pending_expr)					\
	do {										\
		__u32 consumer_ = consumer_of(out);					\
		struct wake_state *ws_ = bpf_map_lookup_elem(&consumer_state, &consumer_); \
		__u32 state_;								\
											\
		if (!ws_)								\
			break;								\
		state_ = READ_ONCE(ws_->consumer_sleeping);				\
		if (state_ == SLEEP_DEEP ||						\
		    (state_ == SLEEP_LAZY && (pending_expr) >= (cfg)->watermark))	\
			ring_doorbell(ws_, state_, consumer_);				\
	} while (0)

/*
 * Hands the record to the consumer, waking it as transport_config.wakeup
 * says. Returns false if the transport refused the record after all
 * (perfbuf: the CPU's buffer was full).
 */
static __always_inline bool submit(struct output *out, void *ctx, __u32 size, const enum transport transport)
{
	struct transport_config *cfg = out->cfg;

	switch (transport) {
	case TRANSPORT_RINGBUF:
	case TRANSPORT_PERCPU_RINGBUF: {
		__u64 flags = BPF_RB_NO_WAKEUP;

		if (cfg->wakeup == WAKEUP_EVERY)
			flags = BPF_RB_FORCE_WAKEUP;
		else if (cfg->wakeup == WAKEUP_KERNEL)
			flags = 0;

		bpf_ringbuf_submit(out->rec, flags);
		if (cfg->wakeup == WAKEUP_ADAPTIVE)
			WAKE_IF_ASLEEP(out, cfg, bpf_ringbuf_query(out->ring, BPF_RB_AVAIL_DATA));
		return true;
	}

	case TRANSPORT_PERFBUF: {
		/* A perf buffer wakes its consumer itself, for every sample
		 * (pkg/consumer sets wakeup_events to 1): in every mode. */
		long err = bpf_perf_event_output(ctx, &perf_events, BPF_F_CURRENT_CPU, out->rec, size);

		barrier();
		out->scratch->busy = 0;
		return err == 0;
	}

	case TRANSPORT_SPSC: {
		struct spsc_queue *q = out->queue;
		__u64 tail = q->tail + 1;

		out->slot->len = size;
		barrier();
		WRITE_ONCE(q->tail, tail); /* publish: see The SPSC queue */
		switch (cfg->wakeup) {
		case WAKEUP_EVERY:
		case WAKEUP_KERNEL:
			ring_bell(consumer_of(out));
			break;
		case WAKEUP_ADAPTIVE:
			__sync_fetch_and_add(&q->wake_checks, 1); /* StoreLoad fence */
			WAKE_IF_ASLEEP(out, cfg, tail - READ_ONCE(q->head)); /* watermark in slots */
			break;
		}
		barrier();
		WRITE_ONCE(q->busy, 0);
		return true;
	}
	}
	return false;
}

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
 * transport's code in each program.
 */
static __always_inline void *begin_record(struct output *out, enum record_type type, __u32 size,
					  const enum transport transport)
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

	hdr = reserve(out, size, transport);
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

/* Submits the record begin_record returned, counting a late refusal as lost. */
static __always_inline void end_record(struct output *out, void *ctx, enum record_type type, __u32 size,
				       const enum transport transport)
{
	__u32 key = type;
	struct source_counters *c;

	if (submit(out, ctx, size, transport))
		return;
	c = bpf_map_lookup_elem(&counters, &key);
	if (c)
		c->lost++;
}

/*
 * sched_process_exec fires after the new image is in place (fs/exec.c,
 * exec_binprm), so comm is already the new program's name and current's
 * tgid is the process's pid even when a non-leader thread called execve.
 */
static __always_inline int emit_exec(struct trace_event_raw_sched_process_exec *ctx,
				     const enum transport transport)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct output out = {};
	struct exec_record *rec;
	unsigned int filename_off;
	long n;

	rec = begin_record(&out, RECORD_EXEC, sizeof(*rec), transport);
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

	end_record(&out, ctx, RECORD_EXEC, sizeof(*rec), transport);
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

	rec = begin_record(&out, RECORD_SYSCALL, sizeof(*rec), transport);
	if (!rec)
		return 0;
	rec->pid = pid_tgid >> 32;
	rec->tid = (__u32)pid_tgid;
	rec->nr = (__s64)ctx->args[1];
	end_record(&out, ctx, RECORD_SYSCALL, sizeof(*rec), transport);
	return 0;
}

/*
 * The programs: every source on every transport. pkg/loader finds them by
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
 * pkg/bench runs with BPF_PROG_TEST_RUN from a thread pinned to one CPU.
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
