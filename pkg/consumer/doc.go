// Package consumer reads kernel-to-user BPF rings from Go: it maps each
// ring, waits on all of them with one epoll instance, and hands committed
// records to a callback in batches, without copying or allocating per
// record. It needs only the maps, so a program loaded with cilium/ebpf
// reads its ring buffer with
//
//	c, err := consumer.Open(consumer.RingBuffer("events", objs.Events))
//	...
//	n, err := c.Read(ctx, func(b consumer.Batch) { /* b.Records */ })
//
// A Consumer shares nothing mutable with another, so several may read side
// by side. It has one reader at a time; [Consumer.Stats] and
// [Consumer.Close] may be called from any goroutine.
//
// Stable (the API promised): Open, RingBuffer, PerfBuffer, Ring.Map, Batch
// and its lifetime (records alias ring memory until the callback returns),
// Read, Drain, Stats, Close, ErrClosed, ErrCorrupt, MonotonicNow,
// MaxPerfRecord and WakeupEvery; RingStats may gain fields. Not stable,
// because it follows ringwatch's own BPF programs (bpf/ringwatch.h):
// SPSCQueues, SPSCQueueRange, OpenConfig and Config beyond Rings, Woken,
// DefaultMaxDelay, Wakeups, and the wakeup modes other than WakeupEvery.
// Not stable yet, because it is new (Linux 6.19's BPF_F_RB_OVERWRITE):
// Recorder, OpenRecorder, Snapshot and RecorderSupported.
package consumer
