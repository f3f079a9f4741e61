//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * Test fillers: syscall programs that internal/loader's tests run with
 * BPF_PROG_TEST_RUN to put into a real ring what ringwatch's own producers
 * never do, discarded records and a reservation held open, through the very
 * reserve() and submit() of bpf/transport.h. They live in an object of
 * their own (internal/testbpf), so the product's object does not carry
 * them; the tests load it with the transport's maps replaced by the loaded
 * producers' own.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "ringwatch.h"
#include "transport.h"
#include "settings.h"
#include "testfill.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hold_state);
} hold_control SEC(".maps");

extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;

#define FILL_RECORD sizeof(struct bench_record)

static __always_inline int fill(struct fill_args *args, const enum transport transport)
{
	__u32 submits = args->submits, discards = args->discards;
	__u64 discard_flags = args->discard_flags, seq = args->first_seq;
	struct bpf_iter_num it;
	int *i;

	bpf_iter_num_new(&it, 0, submits);
	while ((i = bpf_iter_num_next(&it))) {
		struct output out = {};
		struct bench_record *rec;
		struct bpf_iter_num d;
		int *j;

		bpf_iter_num_new(&d, 0, discards);
		while ((j = bpf_iter_num_next(&d))) {
			struct output gone = {};
			void *drop = reserve(&gone, FILL_RECORD, transport);

			if (drop)
				bpf_ringbuf_discard(drop, discard_flags);
		}
		bpf_iter_num_destroy(&d);

		rec = reserve(&out, FILL_RECORD, transport);
		if (!rec)
			continue; /* the test counts what arrives */
		rec->ktime_ns = bpf_ktime_get_ns();
		rec->seq = seq++;
		submit(&out, args, FILL_RECORD, transport);
	}
	bpf_iter_num_destroy(&it);
	return 0;
}

/*
 * Reserves one record and keeps it reserved, its header busy, until the
 * test sets hold_state.release or timeout_ns passes; then submits it. The
 * verifier lets no reservation outlive a program run, so the run itself is
 * the hold: the test runs this on one thread and watches the consumer from
 * another. Returns 1 if it held a record, 0 if the ring had no room.
 */
static __always_inline int hold(struct hold_args *args, const enum transport transport)
{
	__u64 deadline = bpf_ktime_get_ns() + args->timeout_ns;
	struct hold_state *hs;
	struct output out = {};
	struct bench_record *rec;
	struct bpf_iter_num outer;
	bool released = false;
	__u32 zero = 0;
	int *i;

	hs = bpf_map_lookup_elem(&hold_control, &zero);
	if (!hs)
		return 0;
	rec = reserve(&out, FILL_RECORD, transport);
	if (!rec)
		return 0;
	rec->ktime_ns = bpf_ktime_get_ns();
	rec->seq = args->seq;
	WRITE_ONCE(hs->holding, 1);

	/* An iterator runs at most BPF_MAX_LOOPS (8M) times: nest two, and
	 * let the deadline end them. */
	bpf_iter_num_new(&outer, 0, 1 << 12);
	while (!released && (i = bpf_iter_num_next(&outer))) {
		struct bpf_iter_num inner;
		int *j;

		bpf_iter_num_new(&inner, 0, 1 << 16);
		while ((j = bpf_iter_num_next(&inner))) {
			if (READ_ONCE(hs->release)) {
				released = true;
				break;
			}
			if (bpf_ktime_get_ns() > deadline) {
				WRITE_ONCE(hs->timed_out, 1);
				released = true;
				break;
			}
		}
		bpf_iter_num_destroy(&inner);
	}
	bpf_iter_num_destroy(&outer);

	WRITE_ONCE(hs->holding, 0);
	submit(&out, args, FILL_RECORD, transport);
	return 1;
}

#define FILL_PROGRAMS(name, transport)						\
	SEC("syscall")								\
	int fill_##name(struct fill_args *args)					\
	{									\
		return fill(args, transport);					\
	}									\
	SEC("syscall")								\
	int hold_##name(struct hold_args *args)					\
	{									\
		return hold(args, transport);					\
	}

/* Only the ring buffers have discards and reservations that block the reader. */
FILL_PROGRAMS(ringbuf, TRANSPORT_RINGBUF)
FILL_PROGRAMS(percpu_ringbuf, TRANSPORT_PERCPU_RINGBUF)

/*
 * The producers' floor: the least a syscall producer can do, for
 * BenchmarkProducerCost (internal/loader) to set ringwatch's producers beside.
 * On raw_syscalls/sys_enter, for the processes in floor_pids (a hash, as
 * the syscalls source's allow-list is), it reserves a 40-byte record (the
 * size of a struct syscall_record), stores the syscall number and submits
 * it with BPF_RB_NO_WAKEUP, into a ring nobody reads, sized by the test so
 * that it does not fill while measured: no counters, no sequence numbers,
 * no wakeup handshake.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096); /* sized by the test */
} floor_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u8);
} floor_pids SEC(".maps");

SEC("raw_tracepoint/sys_enter")
int floor_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 *rec;

	if (!bpf_map_lookup_elem(&floor_pids, &tgid))
		return 0;
	rec = bpf_ringbuf_reserve(&floor_events, sizeof(struct syscall_record), 0);
	if (!rec)
		return 0;
	rec[0] = ctx->args[1];
	bpf_ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
	return 0;
}

/*
 * The flight recorder's test producer. overwrite_events is created with
 * BPF_F_RB_OVERWRITE: when it is full, a reserve overwrites the oldest
 * records instead of failing (kernel/bpf/ringbuf.c, __bpf_ringbuf_reserve,
 * since Linux 6.19, commit feeaf1346f80). bpf/vmlinux.h comes from an older
 * kernel's BTF, so the flag and the query's selector are spelled out here
 * as include/uapi/linux/bpf.h has them. A kernel without the mode refuses
 * the map (-EINVAL), and with it this program: pkg/consumer's tests probe
 * first. fill_overwrite writes args->records records, seq counting up, and
 * leaves in its context what bpf_ringbuf_query says of the ring after them
 * and how many reserves failed, which with one producer (nothing else
 * pending) must be none. (No globals: the other tests prune the maps their
 * programs do not use, and a .bss would go with its variables still named.)
 */
#define BPF_F_RB_OVERWRITE (1U << 19)
#define BPF_RB_OVERWRITE_POS 4

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096); /* sized by the test */
	__uint(map_flags, BPF_F_RB_OVERWRITE);
} overwrite_events SEC(".maps");

BTF_ANCHOR(struct overwrite_record, anchor_overwrite_record);

SEC("syscall")
int fill_overwrite(struct overwrite_args *args)
{
	__u64 seq = args->first_seq;
	__u32 failed = 0;
	struct bpf_iter_num it;
	int *i;

	bpf_iter_num_new(&it, 0, args->records);
	while ((i = bpf_iter_num_next(&it))) {
		struct overwrite_record *rec;

		rec = bpf_ringbuf_reserve(&overwrite_events, sizeof(*rec), 0);
		if (!rec) {
			failed++;
			continue;
		}
		rec->seq = seq;
		rec->check[0] = seq * OVERWRITE_CHECK_MUL;
		rec->check[1] = seq * OVERWRITE_CHECK_MUL + 1;
		rec->check[2] = seq * OVERWRITE_CHECK_MUL + 2;
		rec->check[3] = seq * OVERWRITE_CHECK_MUL + 3;
		/* No wakeup: nobody waits on a flight recorder. */
		bpf_ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
		seq++;
	}
	bpf_iter_num_destroy(&it);
	args->failed = failed;
	args->overwrite_pos = bpf_ringbuf_query(&overwrite_events, BPF_RB_OVERWRITE_POS);
	return 0;
}
