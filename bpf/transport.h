/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * The transports' side of every producer: the maps records travel through,
 * and reserve() and submit(), which write a record into the chosen
 * transport and wake its consumer as transport_config.wakeup says.
 * bpf/ringwatch.c (the product's producers) and bpf/testfill.c (the test
 * fillers of internal/testbpf) both include it, so the tests drive the very
 * code the sources run; the test object is loaded with these maps replaced
 * by the loaded producers' own (ebpf.CollectionOptions.MapReplacements).
 * Include after vmlinux.h, bpf_helpers.h and ringwatch.h.
 */
#ifndef RINGWATCH_TRANSPORT_H
#define RINGWATCH_TRANSPORT_H

/*
 * The kernel-to-user transports. Each source has one program per transport
 * (see the end of bpf/ringwatch.c) and internal/loader loads only the chosen
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
 * The slots of every queue. No BTF value type: internal/loader sets value_size to
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
 * one per consumer in an array of maps that internal/transport fills.
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
 *   3. writes the record and its length into slot tail_slot (tail mod
 *      spsc_slots, kept beside tail and wrapped by a compare),
 *   4. publishes it with a fetch-and-add of tail,
 *   5. reads wake_state.consumer_sleeping; if set (and, lazily, pending is
 *      at the consumer's watermark), clears it with a compare-and-swap and
 *      rings the doorbell.
 *
 * The consumer (pkg/consumer/spsc.go) reads tail when it has read every slot
 * up to the tail it last saw, reads the slots before it, then stores head
 * once per batch. So while records flow, the producer's line crosses to the
 * consumer once per pass, not once per record, and the consumer's line
 * crosses to the producer only when its cached head says full.
 *
 * Memory ordering, by construction on every architecture the BPF JITs
 * target, with the same object (bpf2go builds one little-endian object for
 * x86-64 and arm64 alike):
 *   - The tail publish (4) is a fetching atomic add, which every JIT emits
 *     fully ordered (Documentation/bpf/standardization/instruction-set.rst:
 *     BPF_FETCH atomics; x86-64 lock xadd, arm64 LDADDAL or a load/store-
 *     exclusive loop between barriers). So the slot stores (3) are visible
 *     before the new tail: a release. The consumer's tail load is an
 *     acquire (Go's sync/atomic: MOV on x86-64, LDAR on arm64), so it reads
 *     a complete slot.
 *   - We never overwrite a slot being read: the consumer's slot loads come
 *     before its head store, a release (XCHG on x86-64, STLR on arm64).
 *     Our head load (2) comes before our slot stores, and they depend on it
 *     through the room check's branch: no CPU makes a store visible before
 *     the branch it depends on resolves (a control dependency, which the
 *     kernel's own memory model relies on for load-to-store order:
 *     tools/memory-model/Documentation/explanation.txt), and READ_ONCE and
 *     barrier() keep the compiler from hoisting the stores above it.
 *   - The sleep handshake (5) is Dekker's: the consumer stores sleeping then
 *     loads every tail; the producer stores tail then loads sleeping. Each
 *     side needs its store visible before its load (StoreLoad), the one
 *     reordering x86-64 allows and one of the four arm64 allows, or both can
 *     miss the other and the consumer sleeps on a record. The consumer's
 *     store is an atomic exchange (a full barrier on both); the producer's
 *     tail publish is the fully ordered fetch-and-add above, so the same
 *     instruction that releases the slot also fences the handshake: one
 *     locked instruction per record, where the kernel's ring buffer takes
 *     two (the spin lock in reserve, the xchg in commit).
 * The fetch must be used (its result is tail's next value below): an
 * atomic add whose result is unused compiles to BPF's non-fetching add,
 * which the arm64 JIT emits as an unordered STADD.
 */

/* Where a record is being written, from reserve() to submit(). */
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
		index = cpu * slots + q->tail_slot;
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
 * sleeps deeply, or lazily once pending reaches the watermark it set for
 * this sleep. The caller must have fenced between publishing and this read
 * of the flag (see The SPSC queue: Dekker's handshake); bpf_ringbuf_submit's
 * xchg and the SPSC tail's fetch-and-add are such fences. pending is only
 * computed when a lazy sleeper makes it matter.
 */
#define WAKE_IF_ASLEEP(out, pending_expr)						\
	do {										\
		__u32 consumer_ = consumer_of(out);					\
		struct wake_state *ws_ = bpf_map_lookup_elem(&consumer_state, &consumer_); \
		__u32 state_;								\
											\
		if (!ws_)								\
			break;								\
		state_ = READ_ONCE(ws_->consumer_sleeping);				\
		if (state_ == SLEEP_DEEP ||						\
		    (state_ == SLEEP_LAZY && (pending_expr) >= READ_ONCE(ws_->watermark))) \
			ring_doorbell(ws_, state_, consumer_);				\
	} while (0)

/*
 * Hands the record to the consumer, waking it as transport_config.wakeup
 * says. Returns false if the transport refused the record after all
 * (perfbuf: the CPU's buffer was full).
 *
 * Discarded records. ringwatch's producers never call bpf_ringbuf_discard,
 * but a program sharing a ring with them might, and the kernel's own wakeup
 * rule does not survive it: a discarded record stays in the ring until the
 * consumer skips it, and bpf_ringbuf_commit (kernel/bpf/ringbuf.c) wakes
 * the consumer for a flags-0 commit only when the consumer position equals
 * the record's position. So after a discard with BPF_RB_NO_WAKEUP at the
 * consumer's position, the next flags-0 submit finds the discarded record
 * in front of it and wakes nobody (the kernel documents this since commit
 * f9a80c7ce49e, "bpf: Clarify BPF_RB_NO_WAKEUP behavior for
 * bpf_ringbuf_discard()"). WAKEUP_ADAPTIVE (the doorbell looks at the
 * consumer's flag, not at positions) and WAKEUP_EVERY (BPF_RB_FORCE_WAKEUP)
 * do not depend on that rule; WAKEUP_KERNEL does: in that mode a discard
 * must pass flags 0 (which wakes a consumer waiting at that position) or
 * the next submit BPF_RB_FORCE_WAKEUP. internal/loader's tests run every mode
 * through bpf/testfill.c's discarding filler.
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
			WAKE_IF_ASLEEP(out, bpf_ringbuf_query(out->ring, BPF_RB_AVAIL_DATA));
		return true;
	}

	case TRANSPORT_PERFBUF: {
		/*
		 * With WAKEUP_EVERY and WAKEUP_KERNEL, the perf buffer wakes its
		 * consumer itself, for every sample (pkg/consumer sets
		 * wakeup_events to 1). With WAKEUP_ADAPTIVE and WAKEUP_BUSY it
		 * wakes it only at its watermark, half the buffer
		 * (wakeup_watermark), and an adaptive producer rings the doorbell
		 * of a consumer that sleeps deeply. A lazy sleeper is left to its
		 * timer and to perf's watermark: no helper tells a program how
		 * full a perf buffer is.
		 */
		long err = bpf_perf_event_output(ctx, &perf_events, BPF_F_CURRENT_CPU, out->rec, size);

		barrier();
		if (cfg->wakeup != WAKEUP_ADAPTIVE) {
			out->scratch->busy = 0;
			return err == 0;
		}
		/*
		 * The handshake's fence after the sample is published (perf's
		 * smp_wmb before data_head orders stores only): an exchange,
		 * fully ordered on every JIT, which frees the scratch buffer too.
		 */
		if (__sync_lock_test_and_set(&out->scratch->busy, 0) == 0)
			return false; /* cannot happen: reserve set it */
		if (err == 0)
			WAKE_IF_ASLEEP(out, 0);
		return err == 0;
	}

	case TRANSPORT_SPSC: {
		struct spsc_queue *q = out->queue;
		__u32 next_slot = q->tail_slot + 1;
		__u64 tail;

		out->slot->len = size;
		if (next_slot >= cfg->spsc_slots)
			next_slot = 0;
		q->tail_slot = next_slot; /* ours alone, like tail */
		barrier();
		/* Publish, fully ordered: see The SPSC queue. */
		tail = __sync_fetch_and_add(&q->tail, 1) + 1;
		switch (cfg->wakeup) {
		case WAKEUP_EVERY:
		case WAKEUP_KERNEL:
			ring_bell(consumer_of(out));
			break;
		case WAKEUP_ADAPTIVE:
			WAKE_IF_ASLEEP(out, tail - READ_ONCE(q->head)); /* watermark in slots */
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
 * Records of a size known only at run time
 * ========================================
 *
 * (Added for exec records as long as their filename: a block of its own so
 * that reserve() and submit() above stay as they are.)
 *
 * bpf_ringbuf_reserve takes a size the verifier knows as a constant
 * (ARG_CONST_ALLOC_SIZE_OR_ZERO, kernel/bpf/ringbuf.c), so a record whose
 * length is only known once its string has been read cannot be reserved in
 * place at that length. reserve_dynamic() hands out room for max_size bytes,
 * and submit_dynamic() then carries the first size of them, size <= max_size:
 *
 *   - ringbuf, percpu-ringbuf: the record is built in the per-CPU scratch of
 *     the perfbuf programs (struct perf_scratch, with its busy flag) and
 *     copied into the ring by bpf_ringbuf_output, whose size may vary at run
 *     time (ARG_CONST_SIZE_OR_ZERO: bounded, not constant). The ring's room
 *     is taken by that call, so a full ring refuses the record at submit
 *     time: begin_record has already numbered it, and end_record counts it
 *     lost, as it does for a perf buffer.
 *   - perfbuf: as reserve(): the record is built in the same scratch, and
 *     bpf_perf_event_output takes size.
 *   - spsc: as reserve(): a slot holds the largest record, and slot->len
 *     says how much of it is the record.
 *
 * Two other ways were built and measured (README, "Exec records": the
 * kernel's run time of exec_ringbuf over real execs; the three are within
 * that measurement's noise, and this one is the smallest code that carries
 * a record's exact length):
 *   - bpf_ringbuf_reserve_dynptr (Linux 5.19) reserves a size known at run
 *     time in place, but its memory is reached through bpf_dynptr_data,
 *     which again needs a constant length, so the string is still read
 *     elsewhere and copied in with bpf_dynptr_write: this copy, with three
 *     more helper calls; it measured slowest.
 *   - a ladder of constant-size bpf_ringbuf_reserve calls in 8-byte steps,
 *     sized before the read from the tracepoint's own length of the
 *     filename (__data_loc_filename's high 16 bits): no copy, but 33 call
 *     sites, each a path the verifier checks, and the program's code grows
 *     from 947 to 1710 bytes (this way: 1178), which a program that runs
 *     cold, once per exec, may pay for in instruction cache misses.
 */

/*
 * Room for a record of at most max_size bytes whose length submit_dynamic
 * gives. Returns NULL when there is none (scratch busy, queue full): the
 * caller counts the record as lost.
 */
static __always_inline void *reserve_dynamic(struct output *out, __u32 max_size, const enum transport transport)
{
	__u32 zero = 0;

	switch (transport) {
	case TRANSPORT_RINGBUF:
	case TRANSPORT_PERCPU_RINGBUF: {
		struct transport_config *cfg = get_transport_config();
		struct perf_scratch *scratch;

		if (!cfg)
			return NULL; /* cannot happen: index 0 of a 1-entry array */
		out->cfg = cfg;
		if (transport == TRANSPORT_RINGBUF) {
			out->ring = &events;
		} else {
			__u32 ring;

			if (cfg->cpus_per_ring == 0)
				return NULL;
			ring = bpf_get_smp_processor_id() / cfg->cpus_per_ring;
			out->ring = bpf_map_lookup_elem(&percpu_events, &ring);
			if (!out->ring)
				return NULL;
			out->ring_index = ring;
		}
		scratch = bpf_map_lookup_elem(&perf_scratch, &zero);
		if (!scratch || scratch->busy)
			return NULL;
		scratch->busy = 1;
		barrier();
		out->scratch = scratch;
		out->rec = scratch->data;
		return out->rec;
	}
	default:
		return reserve(out, max_size, transport);
	}
}

/*
 * Hands the first size bytes of the record reserve_dynamic returned to the
 * consumer, waking it as submit() does. Returns false if the transport
 * refused the record (ring or perf buffer full).
 */
static __always_inline bool submit_dynamic(struct output *out, void *ctx, __u32 size, const enum transport transport)
{
	switch (transport) {
	case TRANSPORT_RINGBUF:
	case TRANSPORT_PERCPU_RINGBUF: {
		struct transport_config *cfg = out->cfg;
		__u64 flags = BPF_RB_NO_WAKEUP; /* the flags of submit()'s ring buffer case */
		long err;

		if (cfg->wakeup == WAKEUP_EVERY)
			flags = BPF_RB_FORCE_WAKEUP;
		else if (cfg->wakeup == WAKEUP_KERNEL)
			flags = 0;
		err = bpf_ringbuf_output(out->ring, out->rec, size, flags);
		barrier();
		out->scratch->busy = 0;
		if (err)
			return false;
		/* bpf_ringbuf_output commits with the same xchg as
		 * bpf_ringbuf_submit: the fence WAKE_IF_ASLEEP needs. */
		if (cfg->wakeup == WAKEUP_ADAPTIVE)
			WAKE_IF_ASLEEP(out, bpf_ringbuf_query(out->ring, BPF_RB_AVAIL_DATA));
		return true;
	}
	default:
		return submit(out, ctx, size, transport);
	}
}

#endif /* RINGWATCH_TRANSPORT_H */
