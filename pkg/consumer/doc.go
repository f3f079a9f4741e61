// Package consumer reads kernel-to-user BPF rings from Go: it maps each ring
// into the process, waits on all of them with one epoll instance, and hands
// committed records to a callback in batches, without copying them and
// without allocating per record. It needs only the maps: a program loaded
// with cilium/ebpf reads its ring buffer with
//
//	c, err := consumer.Open(consumer.RingBuffer("events", objs.Events))
//	...
//	n, err := c.Read(ctx, func(b consumer.Batch) { /* b.Records */ })
//
// The files, in the order a record meets them, each depending only on the
// ones before it:
//
//   - wakeup.go: [Wakeup], the modes a consumer and its producers agree
//     on, which a ring is opened for.
//   - ring.go: [Ring], what to read, and the ring interface every walk
//     implements: the walk from the read position to the write position
//     that turns shared memory into a batch of record slices.
//   - ringbuf.go, perfbuf.go, spsc.go: one walk each, over memory mapped
//     by its constructor ([RingBuffer], [PerfBuffer], [SPSCQueues]). Each
//     walk sees only memory and positions, so it is tested on plain Go
//     memory too. internal/ringmap maps a ring buffer's pages.
//   - flow.go: the flow model, each ring's fill rate and the time until
//     the first is full, measured after each pass from the producer
//     positions.
//   - clock.go: CLOCK_MONOTONIC in nanoseconds, the clock of
//     bpf_ktime_get_ns(), so delivery latency is a plain subtraction.
//   - wake.go: the sleeper, which carries out the wakeup mode: how the
//     consumer paces its passes and sleeps (deep, lazy, not at all) by
//     the flow model, and the flag-and-doorbell handshake that lets
//     producers wake it without polling.
//   - consumer.go: [Consumer], which owns its rings, sleeper, counters
//     ([RingStats]) and the epoll set it waits in (internal/epoll, whose
//     eventfd interrupts the wait on Close or context cancellation);
//     [Consumer.Read] and [Consumer.Drain].
//   - open.go: [Open] and [OpenConfig], which put the pieces together.
//
// A Consumer shares nothing mutable with another, so several may read side
// by side, each over its own rings. It has one reader at a time;
// [Consumer.Stats] and [Consumer.Close] may be called from any goroutine.
package consumer
