package consumer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ErrClosed is returned by [Consumer.Read] and [Consumer.Drain] once
// [Consumer.Close] has been called.
var ErrClosed = os.ErrClosed

// maxBatchRecords bounds a batch, and so the memory behind [Batch.Records]
// and how long a ring waits for its space while the callback runs.
const maxBatchRecords = 1024

// wakeToken marks the eventfd's events in the epoll set; ring events carry
// the ring's index.
const wakeToken = -1

// ring is what the consumer needs of one kernel-to-user transport.
type ring interface {
	fd() int
	nextBatch(b *batch, maxRecords int) error
	release() bool
	pending() uint64
	capacity() uint64
	close() error
}

var _ ring = (*ringbuf)(nil)

// batch is the reusable buffer behind [Batch].
type batch struct {
	records   [][]byte
	bytes     uint64
	discarded uint64
}

// A Batch is a run of records from one ring, handed to the callback of
// [Consumer.Read] or [Consumer.Drain].
type Batch struct {
	// Ring is the index of the ring, in the order given to [Open].
	Ring int
	// Records are the records' payloads, in ring order, without the ring's
	// own headers. They alias the ring's memory, without a copy: they are
	// valid only until the callback returns, when their space goes back to
	// the producer. Copy what must outlive the callback.
	Records [][]byte
	// ReadTime is CLOCK_MONOTONIC in nanoseconds, the clock of
	// bpf_ktime_get_ns(), taken after the batch was read from the ring:
	// every record in it was reserved by its producer before ReadTime.
	ReadTime int64
}

// RingStats counts what one ring has carried. The counters only grow.
type RingStats struct {
	Records   uint64 // records handed to the callback
	Bytes     uint64 // payload bytes handed to the callback, ring headers and padding excluded
	Discarded uint64 // records the producer discarded; skipped, not delivered
	Batches   uint64 // callback invocations
	Wakeups   uint64 // times epoll woke the consumer for this ring
	Pending   uint64 // bytes produced but not yet consumed, headers included, when Stats was called
	Capacity  uint64 // the ring's data size in bytes
}

type ringCounters struct {
	records, bytes, discarded, batches, wakeups atomic.Uint64
	capacity                                    uint64 // set by Open
}

// A Consumer reads any number of rings through one epoll instance.
//
// One goroutine at a time may call [Consumer.Read] or [Consumer.Drain];
// [Consumer.Stats] and [Consumer.Close] are safe from any goroutine.
type Consumer struct {
	// mu guards the mappings and file descriptors: Read, Drain, Stats and
	// wake hold it shared while they use them; Close holds it exclusively
	// to free them.
	mu      sync.RWMutex
	reading sync.Mutex // one reader at a time
	closed  atomic.Bool

	rings    []ring
	counters []ringCounters
	epollFD  int
	wakeFD   int // eventfd written by Close and context cancellation
	events   []unix.EpollEvent
	batch    batch
}

// Open maps every ring buffer map and returns a Consumer that waits on all
// of them. The maps must be BPF_MAP_TYPE_RINGBUF and must stay open until
// the Consumer is closed; the Consumer does not close them. On error,
// nothing stays mapped or open.
func Open(maps ...*ebpf.Map) (_ *Consumer, err error) {
	if len(maps) == 0 {
		return nil, errors.New("open consumer: no rings given")
	}
	c := &Consumer{
		epollFD:  -1,
		wakeFD:   -1,
		counters: make([]ringCounters, len(maps)),
		events:   make([]unix.EpollEvent, len(maps)+1),
		batch:    batch{records: make([][]byte, 0, maxBatchRecords)},
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.free())
		}
	}()

	if c.epollFD, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("create epoll instance: %w", err)
	}
	if c.wakeFD, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("create eventfd: %w", err)
	}
	if err = c.watch(c.wakeFD, wakeToken); err != nil {
		return nil, err
	}
	for i, m := range maps {
		r, err := openRingbuf(m)
		if err != nil {
			return nil, fmt.Errorf("open ring %d: %w", i, err)
		}
		c.rings = append(c.rings, r)
		c.counters[i].capacity = r.capacity()
		if err := c.watch(r.fd(), i); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Consumer) watch(fd, token int) error {
	// Level-triggered: a ring stays ready while the kernel's poll sees
	// unconsumed data, so a wakeup cannot be lost between our last look at
	// the ring and epoll_wait (kernel/bpf/ringbuf.c: ringbuf_map_poll_kern).
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(token)}
	if err := unix.EpollCtl(c.epollFD, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("add fd %d to epoll: %w", fd, err)
	}
	return nil
}

// Read waits until at least one ring holds records, then passes every
// record available in every ring to fn, in batches, and returns how many
// records it passed. Each ring's space is given back to its producer after
// each batch, with a single store of the consumer position.
//
// fn must not call the Consumer's methods: they would wait for Read.
//
// Read returns ctx.Err() when ctx is done and [ErrClosed] when the Consumer
// is closed, waking up from the wait in either case. An error wrapping
// [ErrCorrupt] means a ring broke the kernel's format; it cannot be read
// further.
func (c *Consumer) Read(ctx context.Context, fn func(Batch)) (int, error) {
	c.reading.Lock()
	defer c.reading.Unlock()
	c.mu.RLock()
	defer c.mu.RUnlock()

	var stopWake func() bool
	defer func() {
		if stopWake != nil {
			stopWake()
		}
	}()
	for {
		if c.closed.Load() {
			return 0, ErrClosed
		}
		n, err := c.drain(fn)
		if n > 0 || err != nil {
			return n, err
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		// Registered only when about to sleep: a busy consumer finds
		// records without waiting and allocates nothing here.
		if stopWake == nil && ctx.Done() != nil {
			stopWake = context.AfterFunc(ctx, c.wake)
		}
		if err := c.wait(); err != nil {
			return 0, err
		}
	}
}

// Drain passes every record available now to fn, in batches, without
// waiting, and returns how many it passed. Use it to empty the rings after
// the producers have stopped. Errors are those of [Consumer.Read].
func (c *Consumer) Drain(fn func(Batch)) (int, error) {
	c.reading.Lock()
	defer c.reading.Unlock()
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed.Load() {
		return 0, ErrClosed
	}
	return c.drain(fn)
}

// drain reads every ring until a read finds nothing new.
func (c *Consumer) drain(fn func(Batch)) (int, error) {
	total := 0
	for i, r := range c.rings {
		for {
			b := &c.batch
			b.records, b.bytes, b.discarded = b.records[:0], 0, 0
			err := r.nextBatch(b, maxBatchRecords)
			if n := len(b.records); n > 0 {
				fn(Batch{Ring: i, Records: b.records, ReadTime: MonotonicNow()})
				cnt := &c.counters[i]
				cnt.records.Add(uint64(n))
				cnt.bytes.Add(b.bytes)
				cnt.batches.Add(1)
				total += n
			}
			if b.discarded > 0 {
				c.counters[i].discarded.Add(b.discarded)
			}
			released := r.release()
			if err != nil {
				return total, fmt.Errorf("read ring %d: %w", i, err)
			}
			// Stop only after a read that follows the last release found
			// nothing: see ringbuf.release for why that order matters.
			if !released {
				break
			}
		}
	}
	return total, nil
}

// wait blocks until epoll reports a ring or the eventfd ready.
func (c *Consumer) wait() error {
	n, err := unix.EpollWait(c.epollFD, c.events, -1)
	if errors.Is(err, unix.EINTR) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("wait for rings: %w", err)
	}
	for _, ev := range c.events[:n] {
		if ev.Fd == wakeToken {
			var buf [8]byte
			// Resets the eventfd counter; EAGAIN means another reader
			// already did, which is fine.
			_, _ = unix.Read(c.wakeFD, buf[:])
			continue
		}
		c.counters[ev.Fd].wakeups.Add(1)
	}
	return nil
}

// wake makes a blocked wait return.
func (c *Consumer) wake() {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.wakeFD < 0 {
		return // already freed by Close
	}
	one := [8]byte{1}
	// An eventfd write only fails if the counter would overflow, and then
	// the waiter is awake anyway.
	_, _ = unix.Write(c.wakeFD, one[:])
}

// Stats returns the counters of every ring, in the order given to [Open].
// After Close, Pending is 0.
func (c *Consumer) Stats() []RingStats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	stats := make([]RingStats, len(c.counters))
	for i := range c.counters {
		cnt := &c.counters[i]
		stats[i] = RingStats{
			Records:   cnt.records.Load(),
			Bytes:     cnt.bytes.Load(),
			Discarded: cnt.discarded.Load(),
			Batches:   cnt.batches.Load(),
			Wakeups:   cnt.wakeups.Load(),
			Capacity:  cnt.capacity,
		}
		if i < len(c.rings) {
			stats[i].Pending = c.rings[i].pending()
		}
	}
	return stats
}

// Close wakes a blocked [Consumer.Read], waits for it to return, and unmaps
// every ring. It is safe to call more than once and from any goroutine; the
// first call's error is the only one reported.
func (c *Consumer) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	c.wake()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.free()
}

// free unmaps the rings and closes the descriptors; callers hold mu or own c.
func (c *Consumer) free() error {
	var errs []error
	for _, r := range c.rings {
		errs = append(errs, r.close())
	}
	c.rings = nil
	for _, fd := range []*int{&c.epollFD, &c.wakeFD} {
		if *fd >= 0 {
			errs = append(errs, unix.Close(*fd))
			*fd = -1
		}
	}
	return errors.Join(errs...)
}
