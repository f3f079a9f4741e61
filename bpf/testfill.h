/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * The contexts and state of bpf/testfill.c, the test fillers; bpf2go
 * generates their Go types into internal/testbpf.
 */
#ifndef RINGWATCH_TESTFILL_H
#define RINGWATCH_TESTFILL_H

/*
 * fill_<transport>'s context. Each of the submits records (a struct
 * bench_record, seq counting up from first_seq) is preceded by discards
 * records reserved and discarded with discard_flags.
 */
struct fill_args {
	__u32 submits;
	__u32 discards;
	__u64 discard_flags; /* 0, BPF_RB_NO_WAKEUP or BPF_RB_FORCE_WAKEUP */
	__u64 first_seq;
};

/* hold_<transport>'s context. */
struct hold_args {
	__u64 seq;        /* the held record's seq */
	__u64 timeout_ns; /* submit anyway once held this long */
};

/*
 * hold_<transport>'s state, one entry of hold_control: the program sets
 * holding once it has reserved, and submits once the test sets release.
 */
struct hold_state {
	__u32 holding;   /* set by the program: a record is reserved, not submitted */
	__u32 release;   /* set by the test: submit it */
	__u32 timed_out; /* set by the program: released by timeout_ns, not by the test */
	__u32 pad;
};

/*
 * fill_overwrite's context: it writes records struct overwrite_records,
 * seq counting up from first_seq, into overwrite_events, and fills in the
 * rest (BPF_PROG_TEST_RUN copies a syscall program's context back).
 */
struct overwrite_args {
	__u32 records;
	__u32 failed;        /* out: reserves that failed */
	__u64 first_seq;
	__u64 overwrite_pos; /* out: bpf_ringbuf_query(BPF_RB_OVERWRITE_POS) after the run */
};

/*
 * A record of fill_overwrite: its sequence number, and check words derived
 * from it, so that a reader can tell a record that is whole from one torn
 * by a later record written over part of it.
 */
struct overwrite_record {
	__u64 seq;
	__u64 check[4]; /* check[i] = seq * OVERWRITE_CHECK_MUL + i */
};

#define OVERWRITE_CHECK_MUL 0x9e3779b97f4a7c15ULL

#endif /* RINGWATCH_TESTFILL_H */
