/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * Layouts shared by counter.c and the Go example: bpf2go generates
 * counterRecord and counterRunArgs from this header (gen.go passes -type for
 * each), so nothing here is re-declared by hand in Go.
 */
#ifndef RINGREADER_COUNTER_H
#define RINGREADER_COUNTER_H

/* At most this many records per run: it bounds the loop for the verifier. */
#define MAX_RECORDS 4096

/* One record of the events ring. */
struct record {
	__u64 seq;   /* 0, 1, 2, ... within one run */
	__u64 value; /* seed * (seq + 1): a value the reader can check */
};

/*
 * The context of write_records, copied in by BPF_PROG_TEST_RUN from
 * RunOptions.Context.
 */
struct run_args {
	__u32 count; /* records to write; at most MAX_RECORDS */
	__u32 seed;
};

#endif /* RINGREADER_COUNTER_H */
