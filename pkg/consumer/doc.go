// Package consumer reads kernel-to-user BPF rings from Go: it maps each ring
// into the process, waits on all of them with one epoll instance, and hands
// committed records to a callback in batches, without copying them and
// without allocating per record.
//
// The pieces, in the order a record meets them:
//
//   - ringbuf.go: one BPF_MAP_TYPE_RINGBUF. The mmap of the kernel's page
//     layout (all of this package's unsafe code), and the walk from the
//     consumer position to the producer position that turns ring memory into
//     a batch of record slices. The walk sees only a []byte and two
//     positions, so it is tested on plain Go memory.
//   - consumer.go: [Consumer], the small public type. It owns the rings, the
//     epoll instance and an eventfd that wakes a blocked [Consumer.Read] on
//     [Consumer.Close] or context cancellation, and it counts what passes:
//     [RingStats].
//   - clock.go: CLOCK_MONOTONIC in nanoseconds, the clock of
//     bpf_ktime_get_ns(), so delivery latency is a plain subtraction.
//
// A Consumer has one reader at a time; [Consumer.Stats] and
// [Consumer.Close] may be called from any goroutine.
package consumer
