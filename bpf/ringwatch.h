/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * Record layouts shared by every ringwatch producer and by the Go consumer.
 *
 * This header is the single source of the layouts: bpf2go generates the Go
 * types from it (gen.go passes -type for each), so nothing here is ever
 * re-declared by hand in Go. Change a layout here, run `make generate`, and
 * the Go side follows.
 *
 * All fields are fixed-width and naturally aligned, so the layout is the same
 * for the BPF target and for any 64-bit little-endian host.
 */
#ifndef RINGWATCH_H
#define RINGWATCH_H

/*
 * What a record carries. It is also the index of the source's counters, so
 * the values are small and dense; 0 is never used, so a zeroed record is
 * always recognisably invalid.
 */
enum record_type {
	RECORD_EXEC = 1,
	RECORD_SYSCALL = 2,
	RECORD_TYPE_MAX,
};

/*
 * The fixed header at the start of every record.
 *
 * seq counts record *attempts* per source and per CPU, starting at 0: it is
 * taken before bpf_ringbuf_reserve(), so a record the ring could not hold
 * leaves a gap in the sequence that the consumer sees, while the producer
 * counts the same loss in source_counters.lost. The two are kept
 * independently so each checks the other.
 */
struct record_header {
	__u64 ktime_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC, taken before reserve */
	__u64 seq;      /* per-source, per-CPU attempt number */
	enum record_type type; /* 4 bytes, as every enum here */
	__u32 cpu;      /* bpf_get_smp_processor_id() of the producer */
};

#define COMM_LEN 16
#define FILENAME_LEN 256

/* exec_record.flags */
enum exec_flags {
	EXEC_FILENAME_TRUNCATED = 1 << 0, /* filename did not fit FILENAME_LEN */
};

/* Emitted on tracepoint sched/sched_process_exec. */
struct exec_record {
	struct record_header hdr;
	__u32 pid;  /* tgid of the process that exec'd */
	__u32 ppid; /* tgid of its real parent */
	__u32 uid;  /* real uid */
	__u32 flags;
	char comm[COMM_LEN];         /* new comm, NUL-terminated */
	char filename[FILENAME_LEN]; /* path given to execve, NUL-terminated */
};

/* Emitted on raw tracepoint sys_enter (raw_syscalls/sys_enter). */
struct syscall_record {
	struct record_header hdr;
	__u32 pid; /* tgid */
	__u32 tid;
	__s64 nr;  /* syscall number, as the tracepoint's id argument */
};

/*
 * Per-source, per-CPU counters in a BPF_MAP_TYPE_PERCPU_ARRAY indexed by
 * enum record_type. Only the BPF program running on that CPU writes them, and
 * our programs never nest on one CPU (tracepoint programs run with preemption
 * disabled and the kernel refuses recursion), so plain increments are exact.
 */
struct source_counters {
	__u64 attempts; /* next sequence number: every record tried */
	__u64 lost;     /* attempts the transport refused: ring full or busy */
	__u64 skipped;  /* events left out on purpose: source paused or sampled out */
	__u64 sample_countdown; /* events still to skip before the next sampled one */
};

/*
 * Run-time settings of one source, in an array indexed by enum record_type,
 * written by user space. Events a paused source sees, and events sampling
 * leaves out, take no sequence number: they are counted in
 * source_counters.skipped, not as attempts.
 */
struct source_config {
	__u32 paused;       /* nonzero: emit nothing */
	__u32 sample_every; /* emit one event in sample_every; 0 and 1 mean every event */
};

/*
 * Which processes the syscalls source reports. With allow_list set, only the
 * tgids present in the syscall_pids map; otherwise every tgid but exclude_pid
 * (ringwatch's own, so it does not record the syscalls of its own reading).
 */
struct syscall_filter {
	__u32 allow_list;
	__u32 exclude_pid;
};

#define MAX_FILTER_PIDS 1024

#endif /* RINGWATCH_H */
