/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * Message layouts of the user ring: what user space writes into the
 * BPF_MAP_TYPE_USER_RINGBUF of bpf/control.c, and what the control program
 * writes back. Like ringwatch.h, this header is the single source of the
 * layouts: bpf2go generates the Go types from it (gen.go passes -type for
 * each), and nothing here is re-declared by hand in Go.
 *
 * Every message starts with struct msg_header. The ring's own record header
 * already carries each message's length, so messages carry none: the control
 * program checks that a record is exactly as long as its type's layout says,
 * and counts any other as rejected.
 *
 * Fields are fixed-width and naturally aligned, as in ringwatch.h.
 */
#ifndef RINGWATCH_CONTROL_H
#define RINGWATCH_CONTROL_H

#include "ringwatch.h"

/* What a message asks for; also the index of its count in drain_stats. */
enum msg_type {
	MSG_PING = 1,         /* struct msg_ping: answered with a struct msg_reply */
	MSG_SET_PIDS = 2,     /* struct msg_set_pids, then count __u32 tgids */
	MSG_SET_SAMPLING = 3, /* struct msg_source */
	MSG_PAUSE = 4,        /* struct msg_source, sample_every 0 */
	MSG_RESUME = 5,       /* struct msg_source, sample_every 0 */
	MSG_DATA = 6,         /* struct msg_data: counted and checksummed, nothing else */
	MSG_TYPE_MAX,
};

struct msg_header {
	enum msg_type type; /* 4 bytes */
	__u32 reserved;     /* must be 0 */
};

/* Answered on the replies ring with the same id and sent_ns. */
struct msg_ping {
	struct msg_header hdr;
	__u64 id;      /* chosen by the sender, echoed */
	__u64 sent_ns; /* the sender's CLOCK_MONOTONIC, echoed */
};

/*
 * Replaces the syscalls source's allow-list with the count tgids that follow
 * this struct in the message (16 + 4*count bytes in all). count 0 clears the
 * list: the source then reports every process but exclude_pid (the
 * sender's own, so that it does not record its own reading; 0 excludes
 * none). At most MAX_FILTER_PIDS; no listed tgid may be 0.
 */
struct msg_set_pids {
	struct msg_header hdr;
	__u32 count;
	__u32 exclude_pid; /* becomes syscall_filter.exclude_pid */
};

/* Sets a source's sampling, or pauses or resumes it (struct source_config). */
struct msg_source {
	struct msg_header hdr;
	enum record_type source;
	__u32 sample_every; /* MSG_SET_SAMPLING: 0 and 1 mean every event; otherwise 0 */
};

/*
 * Bulk data that changes nothing: the control program counts it, checks
 * that seq follows the previous one, and folds value into a checksum, so a
 * test can prove that what user space wrote is what the kernel read, in
 * order.
 */
struct msg_data {
	struct msg_header hdr;
	__u64 seq;
	__u64 value;
};

/* The answer to a ping, on the kernel-to-user replies ring. */
struct msg_reply {
	__u64 id;         /* the ping's */
	__u64 sent_ns;    /* the ping's */
	__u64 drained_ns; /* bpf_ktime_get_ns() when the ping was read */
	__u64 accepted;   /* messages accepted so far, this ping included */
	__u64 rejected;   /* messages rejected so far */
};

/* Why a message was rejected; the index of its count in drain_stats. */
enum msg_reject {
	REJECT_UNKNOWN_TYPE = 0, /* type 0 or not below MSG_TYPE_MAX */
	REJECT_LENGTH = 1,       /* shorter or longer than the type's layout */
	REJECT_VALUE = 2,        /* a field out of range: reserved set, bad source, tgid 0, too many tgids */
	REJECT_APPLY = 3,        /* well formed, but a map update failed */
	REJECT_REASON_MAX,
};

/*
 * The control program's counters and state, in a one-entry array. Only the
 * callback of bpf_user_ringbuf_drain writes them (drains excepted), and the
 * kernel lets one drain of a ring run at a time (ringbuf.c: rb->busy), so
 * plain increments are exact.
 */
struct drain_stats {
	__u64 accepted[MSG_TYPE_MAX];     /* by enum msg_type; [0] unused */
	__u64 rejected[REJECT_REASON_MAX]; /* by enum msg_reject */
	__u64 replies_lost;      /* ping replies the replies ring had no room for */
	__u64 drains;            /* doorbell runs that drained (possibly nothing) */
	__u64 data_next_seq;     /* the seq the next MSG_DATA should carry */
	__u64 data_out_of_order; /* MSG_DATA whose seq was not data_next_seq */
	__u64 data_checksum;     /* starts at 0; each value: (sum ^ value) * DATA_CHECKSUM_PRIME */
	__u32 pid_tag;           /* value of the syscall_pids entries the last MSG_SET_PIDS wrote */
	__u32 reserved;
};

/* The 64-bit FNV prime: multiplying after each xor makes the sum order-sensitive. */
#define DATA_CHECKSUM_PRIME 0x100000001b3ULL

#endif /* RINGWATCH_CONTROL_H */
