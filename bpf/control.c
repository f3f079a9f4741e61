//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * ringwatch's ring-0 consumer: user space writes messages into a
 * BPF_MAP_TYPE_USER_RINGBUF, and drain_user_ring reads them in order and acts
 * on each: it changes the producers' settings (the maps below that
 * bpf/ringwatch.c also declares, shared at load time), answers pings on the
 * replies ring, and counts everything, rejected messages included.
 *
 * The drain runs when user space rings the doorbell: a BPF_PROG_TEST_RUN of
 * drain_user_ring, a BPF_PROG_TYPE_SYSCALL program. Nothing else runs it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "ringwatch.h"
#include "control.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* User space to kernel. max_entries is the data size; internal/loader sets it. */
struct {
	__uint(type, BPF_MAP_TYPE_USER_RINGBUF);
	__uint(max_entries, 64 << 10);
} user_ring SEC(".maps");

/* Kernel to user space: one struct msg_reply per ping. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 10);
} replies SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct drain_stats);
} drain_stats SEC(".maps");

/* Room to work on a pid list without the 512-byte BPF stack. */
struct pid_scratch {
	__u32 pids[MAX_FILTER_PIDS];   /* the message's tgids */
	__u32 to_add[MAX_FILTER_PIDS]; /* of those, the ones not yet in syscall_pids */
	__u32 stale[MAX_FILTER_PIDS];  /* syscall_pids entries not in the message */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pid_scratch);
} pid_scratch SEC(".maps");

/*
 * The producers' settings maps, from the header bpf/ringwatch.c includes
 * too: internal/loader replaces them with the producers' own maps when it loads
 * this object next to the producers.
 */
#include "settings.h"

/* Keep the message types in BTF for bpf2go. */
BTF_ANCHOR(enum msg_type, anchor_msg_type);
BTF_ANCHOR(enum msg_reject, anchor_msg_reject);
BTF_ANCHOR(struct msg_ping, anchor_msg_ping);
BTF_ANCHOR(struct msg_set_pids, anchor_msg_set_pids);
BTF_ANCHOR(struct msg_source, anchor_msg_source);
BTF_ANCHOR(struct msg_data, anchor_msg_data);
BTF_ANCHOR(struct msg_reply, anchor_msg_reply);

/* A handler's verdict: ACCEPTED, or an enum msg_reject. */
#define ACCEPTED (-1)

/*
 * Reads the message into dst and checks that it is exactly size bytes:
 * bpf_dynptr_read fails with -E2BIG when offset+len passes the end of a
 * local dynptr (kernel/bpf/helpers.c: bpf_dynptr_check_off_len), so the
 * first read proves the message is long enough, and a failed one-byte read
 * at size proves it is not longer. (bpf_dynptr_size would need a kfunc and
 * Linux 6.4; this works wherever the user ring does, 6.1.)
 */
static __always_inline bool read_exact(const struct bpf_dynptr *msg, void *dst, __u32 size)
{
	__u8 extra;

	if (bpf_dynptr_read(dst, size, msg, 0, 0))
		return false;
	return bpf_dynptr_read(&extra, 1, msg, size, 0) != 0;
}

static __always_inline struct drain_stats *stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&drain_stats, &zero);
}

static int apply_ping(const struct bpf_dynptr *msg, struct drain_stats *st, __u64 wake_flags)
{
	struct msg_ping ping;
	struct msg_reply reply = {};
	int i;

	if (!read_exact(msg, &ping, sizeof(ping)))
		return REJECT_LENGTH;
	if (ping.hdr.reserved)
		return REJECT_VALUE;

	reply.id = ping.id;
	reply.sent_ns = ping.sent_ns;
	reply.drained_ns = bpf_ktime_get_ns();
	reply.accepted = 1; /* this ping */
	for (i = 0; i < MSG_TYPE_MAX; i++)
		reply.accepted += st->accepted[i];
	for (i = 0; i < REJECT_REASON_MAX; i++)
		reply.rejected += st->rejected[i];
	/* The ping is accepted either way; a reply with no room is counted. */
	if (bpf_ringbuf_output(&replies, &reply, sizeof(reply), wake_flags))
		st->replies_lost++;
	return ACCEPTED;
}

static int apply_source(const struct bpf_dynptr *msg, enum msg_type type)
{
	struct msg_source m;
	struct source_config *cfg;
	__u32 key;

	if (!read_exact(msg, &m, sizeof(m)))
		return REJECT_LENGTH;
	if (m.hdr.reserved || m.source == 0 || m.source >= RECORD_TYPE_MAX)
		return REJECT_VALUE;
	if (type != MSG_SET_SAMPLING && m.sample_every)
		return REJECT_VALUE;
	key = m.source;
	cfg = bpf_map_lookup_elem(&source_configs, &key);
	if (!cfg)
		return REJECT_APPLY;
	/*
	 * Single aligned 32-bit stores: a producer on another CPU reads either
	 * the old or the new setting. A new sample_every takes effect when the
	 * producer's current countdown ends (ringwatch.c: begin_record).
	 */
	switch (type) {
	case MSG_SET_SAMPLING:
		cfg->sample_every = m.sample_every;
		break;
	case MSG_PAUSE:
		cfg->paused = 1;
		break;
	default:
		cfg->paused = 0;
		break;
	}
	return ACCEPTED;
}

/* State of one MSG_SET_PIDS, shared by the loop callbacks below. */
struct pids_walk {
	struct pid_scratch *s;
	__u32 count;   /* tgids in s->pids */
	__u32 n_add;   /* tgids in s->to_add */
	__u32 n_stale; /* tgids in s->stale */
	__u8 tag;      /* value of the entries of the new list */
	bool bad;      /* a tgid was 0 */
	bool failed;   /* a map update failed */
};

static long check_pid(__u32 i, struct pids_walk *w)
{
	if (i >= MAX_FILTER_PIDS)
		return 1;
	if (w->s->pids[i] == 0) {
		w->bad = true;
		return 1;
	}
	return 0;
}

/* Tags an entry the new list keeps; queues a tgid the list does not hold yet. */
static long tag_or_queue(__u32 i, struct pids_walk *w)
{
	__u32 pid, n = w->n_add;
	__u8 *tag;

	if (i >= MAX_FILTER_PIDS || n >= MAX_FILTER_PIDS)
		return 1;
	pid = w->s->pids[i];
	tag = bpf_map_lookup_elem(&syscall_pids, &pid);
	if (tag) {
		*tag = w->tag;
		return 0;
	}
	w->s->to_add[n] = pid;
	w->n_add = n + 1;
	return 0;
}

/* Collects entries the new list did not tag; deletes nothing while iterating. */
static long collect_stale(struct bpf_map *map, __u32 *pid, __u8 *tag, struct pids_walk *w)
{
	__u32 n = w->n_stale;

	if (*tag == w->tag)
		return 0;
	if (n >= MAX_FILTER_PIDS)
		return 1;
	w->s->stale[n] = *pid;
	w->n_stale = n + 1;
	return 0;
}

static long delete_stale(__u32 i, struct pids_walk *w)
{
	__u32 pid;

	if (i >= MAX_FILTER_PIDS)
		return 1;
	pid = w->s->stale[i];
	bpf_map_delete_elem(&syscall_pids, &pid); /* only this program deletes: it is there */
	return 0;
}

static long add_queued(__u32 i, struct pids_walk *w)
{
	__u32 pid;

	if (i >= MAX_FILTER_PIDS)
		return 1;
	pid = w->s->to_add[i];
	/* BPF_ANY: a tgid listed twice in the message was queued twice. */
	if (bpf_map_update_elem(&syscall_pids, &pid, &w->tag, BPF_ANY)) {
		w->failed = true;
		return 1;
	}
	return 0;
}

/*
 * Replaces the allow-list. The producers read it concurrently, so the order
 * matters: tgids both lists hold are never missing; tgids only the old list
 * holds go before tgids only the new list holds arrive; and allow_list is
 * set only once the new tgids are in (cleared before the old ones go). Each
 * process sees one switch, inside this drain; once the drain returns, every
 * record follows the new list. The syscall_pids values tell this message's
 * entries (tag) from earlier ones, so no second copy of the list is kept.
 */
static int apply_set_pids(const struct bpf_dynptr *msg, struct drain_stats *st)
{
	struct pids_walk w = {};
	struct msg_set_pids m;
	struct syscall_filter *filter;
	__u32 zero = 0, size;
	__u8 extra;

	if (bpf_dynptr_read(&m, sizeof(m), msg, 0, 0))
		return REJECT_LENGTH;
	if (m.hdr.reserved || m.count > MAX_FILTER_PIDS)
		return REJECT_VALUE;
	w.s = bpf_map_lookup_elem(&pid_scratch, &zero);
	filter = bpf_map_lookup_elem(&syscall_config, &zero);
	if (!w.s || !filter)
		return REJECT_APPLY;
	size = m.count * sizeof(__u32);
	/*
	 * The count check above bounds size, but clang may keep the bound on a
	 * copy of count the verifier does not connect to size: restate it on
	 * size itself, past a barrier clang cannot see through.
	 */
	barrier_var(size);
	if (size > sizeof(w.s->pids))
		return REJECT_VALUE;
	if (bpf_dynptr_read(w.s->pids, size, msg, sizeof(m), 0) ||
	    !bpf_dynptr_read(&extra, 1, msg, sizeof(m) + size, 0))
		return REJECT_LENGTH;
	w.count = m.count;
	bpf_loop(w.count, check_pid, &w, 0);
	if (w.bad)
		return REJECT_VALUE;

	w.tag = st->pid_tag == 2 ? 1 : 2; /* never the loader's 1 at first */
	st->pid_tag = w.tag;
	filter->exclude_pid = m.exclude_pid; /* read only while allow_list is 0 */
	if (w.count == 0)
		filter->allow_list = 0;
	bpf_loop(w.count, tag_or_queue, &w, 0);
	bpf_for_each_map_elem(&syscall_pids, collect_stale, &w, 0);
	bpf_loop(w.n_stale, delete_stale, &w, 0);
	bpf_loop(w.n_add, add_queued, &w, 0);
	if (w.failed)
		return REJECT_APPLY;
	if (w.count > 0)
		filter->allow_list = 1;
	return ACCEPTED;
}

static int apply_data(const struct bpf_dynptr *msg, struct drain_stats *st)
{
	struct msg_data m;

	if (!read_exact(msg, &m, sizeof(m)))
		return REJECT_LENGTH;
	if (m.hdr.reserved)
		return REJECT_VALUE;
	if (m.seq != st->data_next_seq)
		st->data_out_of_order++;
	st->data_next_seq = m.seq + 1;
	st->data_checksum = (st->data_checksum ^ m.value) * DATA_CHECKSUM_PRIME;
	return ACCEPTED;
}

/*
 * Called by bpf_user_ringbuf_drain for each message, in ring order, one
 * drain at a time; wake_flags are the doorbell's, for ping replies.
 * Returns 0 to go on draining: a bad message is counted and skipped, never a
 * reason to stop. The kernel releases the message's space when this returns
 * (ringbuf.c: __bpf_user_ringbuf_sample_release).
 */
static long handle_msg(const struct bpf_dynptr *msg, __u64 *wake_flags)
{
	struct drain_stats *st = stats();
	struct msg_header hdr;
	int verdict;

	if (!st)
		return 1; /* cannot happen: index 0 of a 1-entry array */
	if (bpf_dynptr_read(&hdr, sizeof(hdr), msg, 0, 0)) {
		st->rejected[REJECT_LENGTH]++;
		return 0;
	}
	switch (hdr.type) {
	case MSG_PING:
		verdict = apply_ping(msg, st, *wake_flags);
		break;
	case MSG_SET_PIDS:
		verdict = apply_set_pids(msg, st);
		break;
	case MSG_SET_SAMPLING:
	case MSG_PAUSE:
	case MSG_RESUME:
		verdict = apply_source(msg, hdr.type);
		break;
	case MSG_DATA:
		verdict = apply_data(msg, st);
		break;
	default:
		verdict = REJECT_UNKNOWN_TYPE;
		break;
	}
	if (verdict == ACCEPTED) {
		if (hdr.type < MSG_TYPE_MAX)
			st->accepted[hdr.type]++;
	} else if (verdict >= 0 && verdict < REJECT_REASON_MAX) {
		st->rejected[verdict]++;
	}
	return 0;
}

/*
 * The doorbell, rung with BPF_PROG_TEST_RUN. Returns what
 * bpf_user_ringbuf_drain returned: the number of messages drained (at most
 * BPF_MAX_USER_RINGBUF_SAMPLES per run), -EBUSY if another drain of the ring
 * was running, or another negative errno if the ring broke the format
 * (kernel/bpf/ringbuf.c: __bpf_user_ringbuf_peek).
 *
 * With wake_flags 0, a drain that took anything wakes a writer waiting in
 * epoll for room, and a ping reply wakes a reader waiting on the replies
 * ring. Each wakeup is an irq_work interrupt (bpf_user_ringbuf_drain and
 * bpf_ringbuf_commit queue rb->work), about 10us on a VM; BPF_RB_NO_WAKEUP
 * spares them for a caller that writes and reads itself.
 */
static __always_inline int drain(__u64 wake_flags)
{
	struct drain_stats *st = stats();
	long n;

	n = bpf_user_ringbuf_drain(&user_ring, handle_msg, &wake_flags, wake_flags);
	if (st && n >= 0)
		__sync_fetch_and_add(&st->drains, 1);
	return n;
}

/*
 * Two programs rather than one with an argument: a BPF_PROG_TEST_RUN
 * context would cost a copy in and an allocation on every ring.
 */
SEC("syscall")
int drain_user_ring(void *ctx)
{
	return drain(BPF_RB_NO_WAKEUP);
}

SEC("syscall")
int drain_user_ring_wake(void *ctx)
{
	return drain(0);
}
