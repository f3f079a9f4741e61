package consumer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringwatch/ringwatch/internal/epoll"
)

// ErrClosed is returned by [Consumer.Read] and [Consumer.Drain] once
// [Consumer.Close] has been called.
var ErrClosed = os.ErrClosed

// maxBatchRecords bounds a batch, and so the memory behind [Batch.Records]
// and how long a ring waits for its space while the callback runs.
const maxBatchRecords = 1024

// RingStats counts what one ring has carried. The counters only grow.
type RingStats struct {
	Records   uint64 // records handed to the callback
	Bytes     uint64 // payload bytes handed to the callback, ring headers and padding excluded
	Discarded uint64 // records the producer discarded; skipped, not delivered
	Batches   uint64 // callback invocations
	Wakeups   uint64 // times epoll woke the consumer for this ring
	Pending   uint64 // bytes produced but not yet consumed, headers included, when Stats was called
	Capacity  uint64 // the ring's data size in bytes
	// KernelLost counts the records the kernel reported lost on this ring
	// (perf buffers' PERF_RECORD_LOST); always 0 for the other transports,
	// whose losses only the producers count.
	KernelLost uint64
}

type ringCounters struct {
	records, bytes, discarded, batches, wakeups atomic.Uint64
	kernelLost                                  atomic.Uint64 // a copy of ring.lost, kept past Close
	capacity                                    uint64        // set by Open
}

// bellToken marks the doorbell's events in the epoll set; ring events carry
// the ring's index.
const bellToken = -2

// A Consumer reads any number of rings through one epoll instance. It owns
// its rings' mappings, its epoll set, its sleep state and its counters, and
// shares nothing mutable with another Consumer: several may run side by
// side, each over its own rings.
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
	woken    atomic.Uint64 // sleeps a ring or the doorbell ended
	sleeper  *sleeper
	poller   *epoll.Poller
	counters []ringCounters
	batch    batch
}

// Read waits until at least one ring holds records, then passes the
// records committed in every ring to fn, in batches, and returns how many
// records it passed. Each ring's space is given back to its producer after
// each batch, with a single store of the consumer position. Records
// committed while a ring is being read are left for the next call.
//
// While records flow, an adaptive or busy consumer paces its calls: it
// lets the rings fill for a fraction of the time until the first is full
// at the rate it measured, bounded by [Config.MaxDelay] (for busy, by
// 50µs), before it reads, so that it reads stretches of records rather
// than each record as it is written.
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
	// Registered only when about to sleep: a busy consumer finds records
	// without waiting and allocates nothing here.
	wakeOnDone := func() {
		if stopWake == nil && ctx.Done() != nil {
			stopWake = context.AfterFunc(ctx, c.wake)
		}
	}
	for {
		if c.closed.Load() {
			return 0, ErrClosed
		}
		if wait := c.sleeper.pace(); wait > 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			if !c.sleeper.polls() && wait >= minSleep {
				wakeOnDone()
			}
			if err := c.pause(wait); err != nil {
				return 0, err
			}
		}
		n, err := c.pass(fn)
		c.sleeper.flow.look(c.rings, MonotonicNow(), n)
		if n > 0 || err != nil {
			return n, err
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if c.sleeper.polls() {
			continue // the producers never wake us
		}
		wakeOnDone()
		if _, err := c.sleep(); err != nil {
			return 0, err
		}
	}
}

// pause lets the rings fill for wait, which pace chose: a lazy sleep, with
// the producers told when to wake us early, or a spin when the sleep would
// be too short to be worth one (or the consumer polls).
func (c *Consumer) pause(wait time.Duration) error {
	if c.sleeper.polls() || wait < minSleep || !c.sleeper.preparePause(c.rings, wait) {
		spin(wait)
		return nil
	}
	_, woken, err := c.wait(wait)
	c.sleeper.woke(woken, wait)
	return err
}

// spin waits d without giving up the CPU.
func spin(d time.Duration) {
	for until := MonotonicNow() + d.Nanoseconds(); MonotonicNow() < until; {
	}
}

// sleep waits for the rings as the sleeper says, and counts what woke it.
// It returns false when a lazy sleep timed out.
func (c *Consumer) sleep() (bool, error) {
	timeout, ok := c.sleeper.prepare(c.rings)
	if !ok {
		return true, nil // records arrived while we were telling
	}
	_, woken, err := c.wait(timeout)
	return c.sleeper.woke(woken, timeout), err
}

// wait waits in epoll for timeout (negative: until woken), and counts what
// woke it.
func (c *Consumer) wait(timeout time.Duration) (int, bool, error) {
	ready, woken, err := c.poller.Wait(timeout)
	if err != nil {
		err = fmt.Errorf("wait for rings: %w", err)
	}
	if len(ready) > 0 {
		c.woken.Add(1)
	}
	for _, ev := range ready {
		if ev.Fd != bellToken {
			c.counters[ev.Fd].wakeups.Add(1)
			continue
		}
		// The doorbell does not say which ring: count it on each ring
		// that has something to read.
		for i, r := range c.rings {
			if r.ready() {
				c.counters[i].wakeups.Add(1)
			}
		}
	}
	return len(ready), woken, err
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
	total := 0
	for {
		n, err := c.pass(fn)
		total += n
		if n == 0 || err != nil {
			return total, err
		}
	}
}

// pass reads every ring once: each up to where its producers were when
// its batch ended short of a bound, so that a consumer never chases a
// producer record by record (Read leaves what comes later for its next
// pass).
func (c *Consumer) pass(fn func(Batch)) (int, error) {
	total := 0
	for i, r := range c.rings {
		cnt := &c.counters[i]
		for {
			b := &c.batch
			b.reset()
			err := r.nextBatch(b, maxBatchRecords)
			if n := len(b.records); n > 0 {
				fn(Batch{Ring: i, Records: b.records, Bytes: b.bytes, ReadTime: MonotonicNow()})
				cnt.records.Add(uint64(n))
				cnt.bytes.Add(b.bytes)
				cnt.batches.Add(1)
				total += n
			}
			if b.discarded > 0 {
				cnt.discarded.Add(b.discarded)
			}
			cnt.kernelLost.Store(r.lost())
			r.release()
			if err != nil {
				return total, fmt.Errorf("read ring %d: %w", i, err)
			}
			if !b.full {
				break
			}
		}
	}
	return total, nil
}

// wake makes a blocked Read return.
func (c *Consumer) wake() {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.poller != nil {
		c.poller.Wake()
	}
}

// Woken counts the sleeps that a ring or the doorbell ended: the times a
// producer, or the kernel for it, woke this consumer. (RingStats.Wakeups
// counts, per ring, the wakeups that found that ring ready.)
func (c *Consumer) Woken() uint64 { return c.woken.Load() }

// Stats returns the counters of every ring, in the order given to [Open].
// After Close, Pending is 0.
func (c *Consumer) Stats() []RingStats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	stats := make([]RingStats, len(c.counters))
	for i := range c.counters {
		cnt := &c.counters[i]
		stats[i] = RingStats{
			Records:    cnt.records.Load(),
			Bytes:      cnt.bytes.Load(),
			Discarded:  cnt.discarded.Load(),
			Batches:    cnt.batches.Load(),
			Wakeups:    cnt.wakeups.Load(),
			KernelLost: cnt.kernelLost.Load(),
			Capacity:   cnt.capacity,
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
	errs = append(errs, c.sleeper.close())
	if c.poller != nil {
		errs = append(errs, c.poller.Close())
		c.poller = nil
	}
	return errors.Join(errs...)
}
