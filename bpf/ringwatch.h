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

/*
 * Emitted on tracepoint sched/sched_process_exec. A record is as long as its
 * filename needs, not sizeof(struct exec_record): the fields up to and
 * including comm, then filename's bytes up to and including its NUL, then
 * zero bytes up to the next multiple of EXEC_RECORD_ALIGN. So the shortest
 * (an empty filename) is EXEC_RECORD_MIN_SIZE rounded up, 64 bytes, and the
 * longest, a truncated filename, is the whole struct, 312 bytes;
 * "/usr/bin/true" makes a 72-byte record. A reader takes the filename from
 * the record's bytes only and must accept any length from
 * EXEC_RECORD_MIN_SIZE to the whole struct (and longer: a perf buffer pads).
 */
struct exec_record {
	struct record_header hdr;
	__u32 pid;  /* tgid of the process that exec'd */
	__u32 ppid; /* tgid of its real parent */
	__u32 uid;  /* real uid */
	__u32 flags;
	char comm[COMM_LEN];         /* new comm, NUL-terminated */
	char filename[FILENAME_LEN]; /* path given to execve, NUL-terminated */
};

/* An enum, not a macro, so that bpf2go gives it to Go (gen.go: -type). */
enum exec_layout {
	/* exec_record's length is a multiple of this: the next record in a
	 * ring starts aligned with no padding of the kernel's, and the last
	 * word can be zeroed past the NUL with one store. */
	EXEC_RECORD_ALIGN = 8,
};
/* The shortest exec record's content: every field before filename, and
 * filename's NUL. */
#define EXEC_RECORD_MIN_SIZE (__builtin_offsetof(struct exec_record, filename) + 1)

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

/*
 * How records travel from ring 0 to ring 3. Every source has one program per
 * transport; internal/loader loads only the chosen transport's.
 */
enum transport {
	TRANSPORT_RINGBUF = 1,        /* one BPF_MAP_TYPE_RINGBUF shared by all CPUs */
	TRANSPORT_PERCPU_RINGBUF = 2, /* one ring buffer per CPU or group of CPUs */
	TRANSPORT_PERFBUF = 3,        /* BPF_MAP_TYPE_PERF_EVENT_ARRAY */
	TRANSPORT_SPSC = 4,           /* a queue per CPU in a BPF_F_MMAPABLE array */
};

/*
 * When producers wake the consumer (transport_config.wakeup).
 *
 * WAKEUP_ADAPTIVE: records are submitted without a wakeup; a producer rings
 * the doorbell only when the consumer has said it sleeps, in wake_state: at
 * once for SLEEP_DEEP, and for SLEEP_LAZY once its ring holds
 * wake_state.watermark (the lazy consumer also wakes itself after a
 * bounded delay, and sets the watermark for each sleep from the rate it
 * measured).
 * WAKEUP_EVERY: every record wakes the consumer.
 * WAKEUP_BUSY: no record wakes the consumer, which polls.
 * WAKEUP_KERNEL: ring buffers submit with flags 0, so the kernel wakes the
 * consumer when a commit finds it caught up; spsc rings as WAKEUP_EVERY.
 */
enum wakeup_mode {
	WAKEUP_ADAPTIVE = 0,
	WAKEUP_EVERY = 1,
	WAKEUP_BUSY = 2,
	WAKEUP_KERNEL = 3, /* ring buffers: the kernel's own rule, as libbpf and cilium/ebpf expect */
};

/* Transport settings, one entry, written by user space before attaching. */
struct transport_config {
	__u32 cpus_per_ring; /* percpu-ringbuf: CPU k writes to ring k / cpus_per_ring */
	__u32 spsc_slots;    /* spsc: slots per queue, any count from 2 */
	__u32 wakeup;        /* enum wakeup_mode */
	/*
	 * Ring r (the ring's index: 0 for ringbuf, r = cpu / cpus_per_ring for
	 * percpu-ringbuf, the CPU for perfbuf and spsc) is read by consumer
	 * r >> consumer_shift: its wake_state is consumer_state[r >>
	 * consumer_shift] and its doorbell doorbells[r >> consumer_shift]. Each
	 * consumer reads a contiguous range of 1 << consumer_shift rings, so no
	 * producer ever wakes another consumer, and a shift costs the producer
	 * no division.
	 */
	__u32 consumer_shift;
	/*
	 * 1: every record is also copied into the recorder, an overwrite-mode
	 * ring (BPF_F_RB_OVERWRITE, Linux 6.19) that `run --recorder` reads on
	 * demand; 0 (the default): the producers skip it with this one branch.
	 */
	__u32 recorder;
};

/*
 * The recorder's books, per CPU: records copied into it, and copies the
 * ring refused (in overwrite mode only a record that would reach one still
 * being written, or one larger than the ring).
 */
struct recorder_counters {
	__u64 written;
	__u64 failed;
};

/*
 * One SPSC queue's indices: the element of the spsc_queues array for the CPU
 * whose program is the queue's only producer. head and tail count slots
 * since the start and only grow; record i is in slot i mod spsc_slots. The
 * queue holds as many slots as fit the memory it is given, not a power of
 * two, so the producer keeps tail's slot index beside it (tail_slot) and
 * wraps it with a compare, never a division; the consumer does the same
 * for head. Each side writes only its own cache line, so neither side's
 * stores invalidate the line the other side keeps writing.
 */
struct spsc_queue {
	/* The consumer's line. */
	__u64 head;        /* next slot to read: written by the consumer only */
	__u8 consumer_pad[56];
	/* The producer's line. */
	__u64 tail;        /* next slot to write: written by the producer only */
	__u64 cached_head; /* the producer's last look at head */
	__u32 tail_slot;   /* tail mod spsc_slots: the slot tail names */
	__u32 busy;        /* a program of this CPU is writing a slot */
	__u8 producer_pad[40];
};

/*
 * A slot of the spsc_slots array: queue k owns slots [k * spsc_slots,
 * (k + 1) * spsc_slots). The array's value size, and so the largest record a
 * slot holds, is set by internal/loader to fit the chosen sources' records.
 */
struct spsc_slot {
	__u32 len; /* bytes of data that are the record */
	__u32 reserved;
	__u8 data[]; /* the record */
};

/* wake_state.consumer_sleeping */
enum sleep_state {
	SLEEP_AWAKE = 0,
	SLEEP_DEEP = 1, /* wake me for the next record */
	SLEEP_LAZY = 2, /* wake me once the watermark is reached; I wake myself later */
};

/*
 * What a consumer tells the producers, in a BPF_F_MMAPABLE array with one
 * entry per consumer (transport_config.consumer_shift says whose).
 * consumer_sleeping (enum sleep_state) is set by the consumer just before it
 * waits in epoll; the producer that finds it set clears it with a
 * compare-and-swap and rings the doorbell. watermark is, for SLEEP_LAZY,
 * what pending in its ring wakes the consumer early: bytes for the ring
 * buffers, slots for spsc; the consumer sets it before each lazy sleep, from
 * the rate it measured and how long it means to sleep.
 */
struct wake_state {
	__u32 consumer_sleeping;
	__u32 watermark;
	__u8 pad[56];
};

/*
 * The synthetic producer of `ringwatch bench`: record_size bytes per
 * record (at least 16), starting with this header, written count times per
 * run of a bench program.
 */
struct bench_record {
	__u64 ktime_ns; /* bpf_ktime_get_ns() when written */
	__u64 seq;      /* the bench producer's attempt number */
};

/* The bench program's context: BPF_PROG_TEST_RUN's ctx_in. */
struct bench_args {
	__u32 count;
	__u32 pad;
};

/* The bench producer's counts, per CPU: only the bench program writes them. */
struct bench_counters {
	__u64 attempts;
	__u64 lost;
};

#endif /* RINGWATCH_H */
