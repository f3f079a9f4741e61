// Package hostrings is the host ring census: every BPF ring buffer
// (BPF_MAP_TYPE_RINGBUF), user ring buffer (BPF_MAP_TYPE_USER_RINGBUF) and
// perf event array on the machine, whoever loaded it, with the positions of
// the two ring kinds read live.
//
// A [Census] walks the kernel's map IDs (BPF_MAP_GET_NEXT_ID), opens each
// ring read-only (BPF_MAP_GET_FD_BY_ID with BPF_F_RDONLY) and maps its
// consumer and producer pages with PROT_READ, never its data and never
// writable, so the census cannot disturb another process's ring. Each
// position is a byte counter that only grows: producer minus consumer is the
// fill, and their rates are the throughput in and out. The census also
// finds the programs that use each map (from every program's map IDs, see
// package progstats) and the processes that hold it (from
// /proc/PID/fdinfo), and walks again on a period, so new rings appear and
// freed ones leave.
//
// The kernel lets only CAP_SYS_ADMIN walk map IDs; without it [Open]
// returns an error wrapping [ErrPermission].
//
// [Peaks] and [Advise] are the sizing model: fed the census's samples,
// Peaks keeps each ring's peak, the span between two samples (10 ms apart
// in [Census.Run]) with the highest producer rate, and Advise says from it
// how long the ring lasts at that rate with its consumer stopped, and the
// smallest ring the kernel accepts that would hold a consumer pause of a
// given length.
//
// Perf event arrays are listed with their slots (one per CPU), programs and
// owners, but no positions: a perf buffer's head and tail live in each
// owner's mmap of its perf event, not in the map.
package hostrings
