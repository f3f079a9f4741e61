// Package consumer reads kernel-to-user BPF rings from Go: it maps each ring
// into the process, waits on all of them with one epoll instance, and hands
// committed records to a callback in batches, without copying them and
// without allocating per record.
//
// The pieces, in the order a record meets them:
//
//   - One file per transport, each a small type behind the ring interface
//     (consumer.go): the mmap of the kernel's layout, and the walk from the
//     read position to the write position that turns shared memory into a
//     batch of record slices. Each walk sees only memory and positions, so
//     it is tested on plain Go memory too.
//   - ringbuf.go: one BPF_MAP_TYPE_RINGBUF (the ringbuf transport, and each
//     ring of percpu-ringbuf).
//   - perfbuf.go: one CPU's buffer of a BPF_MAP_TYPE_PERF_EVENT_ARRAY.
//   - spsc.go: the single-producer single-consumer queues of every CPU in
//     BPF_F_MMAPABLE arrays.
//   - wake.go: the wakeup modes, and the sleep/doorbell handshake that
//     wakes the consumer without polling: the SPSC queues need it, and the
//     adaptive mode uses it on every transport.
//   - consumer.go: [Consumer], the small public type every transport sits
//     behind. It owns the rings, the epoll instance and an eventfd that
//     wakes a blocked [Consumer.Read] on [Consumer.Close] or context
//     cancellation, and it counts what passes: [RingStats]. [Ring] says
//     which maps to read and how; pkg/loader's Producers.Rings returns them.
//   - clock.go: CLOCK_MONOTONIC in nanoseconds, the clock of
//     bpf_ktime_get_ns(), so delivery latency is a plain subtraction.
//
// A Consumer has one reader at a time; [Consumer.Stats] and
// [Consumer.Close] may be called from any goroutine.
package consumer
