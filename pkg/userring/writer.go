package userring

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/epoll"
)

var (
	// ErrFull is returned by [Writer.Reserve] and [Writer.Write] when the
	// ring has no room for the sample until the kernel drains it. Nothing
	// was written: retry after the kernel side has drained, or use
	// [Writer.ReserveWait], which waits for that.
	ErrFull = errors.New("user ring full: the kernel side has not drained it; retry after it does, or wait with ReserveWait")
	// ErrTooLarge is wrapped by the error for a sample the ring can never
	// hold; the message says the limit.
	ErrTooLarge = errors.New("sample too large for the user ring")
	// ErrCorrupt is wrapped by [Open]'s error when the ring's positions
	// break the kernel's format, for instance after another writer used it.
	ErrCorrupt = errors.New("corrupt user ring")
	// ErrClosed is returned once [Writer.Close] has been called.
	ErrClosed = os.ErrClosed
)

// ringToken marks the ring's events in the epoll set.
const ringToken = 0

// A Sample is room reserved in the ring for one message. Fill Data, then
// hand the Sample to [Writer.Submit] or [Writer.Discard], exactly once.
type Sample struct {
	// Data is the sample's payload, in ring memory: write the message
	// here. Its length is the size reserved. It is valid until Submit or
	// Discard; after that the kernel may read or reuse it.
	Data   []byte
	header *uint32
}

// Stats counts what one Writer has done. The counters only grow.
type Stats struct {
	Submitted uint64 // samples submitted
	Discarded uint64 // samples reserved and then discarded
	Bytes     uint64 // payload bytes submitted, headers and padding excluded
	// Full counts reservations that found the ring full: each either
	// returned ErrFull or waited, once, however long.
	Full     uint64
	Waits    uint64 // times a ReserveWait slept in epoll until the kernel drained
	Pending  uint64 // bytes written and not yet drained, headers included, when Stats was called
	Capacity uint64 // the ring's data size in bytes
}

// A Writer produces samples into one BPF_MAP_TYPE_USER_RINGBUF, for a BPF
// program to read with bpf_user_ringbuf_drain.
//
// All methods are safe for concurrent use. Samples may be reserved by
// several goroutines and submitted in any order; the kernel reads them in
// the order they were reserved, and stops at the first one not yet
// submitted. A Writer must be the ring's only producer: the ring has one
// producer position and no lock between processes.
type Writer struct {
	mu     sync.Mutex // guards ring positions, freed and the free itself
	ring   *ring
	closed atomic.Bool
	freed  bool
	// outstanding counts samples reserved and not yet submitted or
	// discarded: while any is, the ring stays mapped, even after Close.
	outstanding atomic.Int64

	waiting sync.Mutex // one goroutine sleeps in epoll at a time
	// poller is nil for a Writer over plain memory (tests). Its eventfd
	// lets Close and context cancellation wake a waiter.
	poller *epoll.Poller

	submitted, discarded, bytes, full, waits atomic.Uint64
}

// Open maps m, which must be a BPF_MAP_TYPE_USER_RINGBUF, and returns a
// Writer for it. m must stay open until the Writer is closed; the Writer
// does not close it. On error, nothing stays mapped or open.
func Open(m *ebpf.Map) (_ *Writer, err error) {
	w := &Writer{}
	defer func() {
		if err != nil {
			err = errors.Join(err, w.closePoller())
			if w.ring != nil {
				err = errors.Join(err, w.ring.close())
			}
		}
	}()
	if w.ring, err = openRing(m); err != nil {
		return nil, err
	}
	if w.poller, err = epoll.New(1); err != nil {
		return nil, err
	}
	// Edge-triggered: the kernel reports EPOLLOUT while the ring is not
	// completely full (ringbuf_map_poll_user), so a level-triggered wait
	// would return at once whenever there is some room, even too little
	// for the sample. Edge-triggered, epoll_wait returns after each wakeup
	// the kernel sends, which it does after every drain that consumed a
	// sample (bpf_user_ringbuf_drain queues rb->work). A drain that
	// happens between our last look at the ring and epoll_wait is not lost:
	// the wakeup marks the registered fd ready whether or not anyone waits.
	if err := w.poller.Add(w.ring.fd(), unix.EPOLLOUT|unix.EPOLLET, ringToken); err != nil {
		return nil, err
	}
	return w, nil
}

// MaxSample is the largest sample the ring can take: its data size less
// one 8-byte header, and never above the 16 MiB - 1 a BPF dynptr can
// describe.
func (w *Writer) MaxSample() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.freed {
		return 0
	}
	return w.ring.maxSample()
}

// Reserve claims room for a sample of size bytes without waiting. It
// returns [ErrFull] at once when the ring has no room now, an error
// wrapping [ErrTooLarge] when it never will, and [ErrClosed] after Close.
func (w *Writer) Reserve(size int) (Sample, error) {
	s, err := w.tryReserve(size)
	if err == ErrFull {
		w.full.Add(1)
	}
	return s, err
}

// ReserveWait is [Writer.Reserve], but when the ring is full it waits in
// epoll until the kernel side has drained enough room, or ctx is done
// (then it returns ctx.Err()), or the Writer is closed. Something must drain
// the ring meanwhile: ReserveWait does not.
func (w *Writer) ReserveWait(ctx context.Context, size int) (Sample, error) {
	s, err := w.tryReserve(size)
	if err != ErrFull {
		return s, err
	}
	w.full.Add(1)

	w.waiting.Lock()
	defer w.waiting.Unlock()
	var stopWake func() bool
	defer func() {
		if stopWake != nil {
			stopWake()
		}
	}()
	for {
		// Look again first: a waiter before us may have slept through the
		// drain that made room, or left after it.
		s, err := w.tryReserve(size)
		if err != ErrFull {
			return s, err
		}
		if err := ctx.Err(); err != nil {
			return Sample{}, err
		}
		if stopWake == nil && ctx.Done() != nil {
			stopWake = context.AfterFunc(ctx, w.wake)
		}
		w.waits.Add(1)
		if err := w.wait(); err != nil {
			return Sample{}, err
		}
	}
}

func (w *Writer) tryReserve(size int) (Sample, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed.Load() {
		return Sample{}, ErrClosed
	}
	if size < 0 || size > w.ring.maxSample() {
		return Sample{}, fmt.Errorf("sample of %d bytes: a %d-byte user ring takes at most %d (its size less an 8-byte header, and at most 16 MiB - 1): %w",
			size, w.ring.capacity(), w.ring.maxSample(), ErrTooLarge)
	}
	off, ok := w.ring.reserve(size)
	if !ok {
		return Sample{}, ErrFull
	}
	w.outstanding.Add(1)
	return Sample{Data: w.ring.sample(off, size), header: w.ring.header(off)}, nil
}

// wait sleeps until the kernel has drained the ring or wake is called.
// The caller holds w.waiting. A signal ends the wait without an error: the
// caller looks again.
func (w *Writer) wait() error {
	if w.poller == nil {
		return ErrClosed
	}
	_, _, err := w.poller.Wait(-1)
	if err != nil && err != ErrClosed {
		return fmt.Errorf("wait for room in the user ring: %w", err)
	}
	return err
}

// wake makes a waiting ReserveWait look again.
func (w *Writer) wake() {
	if w.poller != nil {
		w.poller.Wake()
	}
}

// Submit hands a reserved sample to the kernel. It does not wait and
// cannot fail; the kernel reads the sample at the next drain that reaches
// it.
func (w *Writer) Submit(s Sample) {
	commit(s.header, len(s.Data), false)
	w.submitted.Add(1)
	w.bytes.Add(uint64(len(s.Data)))
	w.release()
}

// Discard gives a reserved sample back: the kernel skips it.
func (w *Writer) Discard(s Sample) {
	commit(s.header, len(s.Data), true)
	w.discarded.Add(1)
	w.release()
}

// release ends one reservation, and unmaps the ring if it was the last one
// Close was waiting for.
func (w *Writer) release() {
	// The decrement comes after the header store and before the check of
	// closed, and Close sets closed before it checks outstanding: with
	// sequentially consistent atomics, one of the two sees the other, so
	// the ring is unmapped exactly once, after the last commit.
	if w.outstanding.Add(-1) == 0 && w.closed.Load() {
		w.mu.Lock()
		defer w.mu.Unlock()
		_ = w.freeRing() // errors of a deferred unmap have no caller to go to
	}
}

// Write copies p into the ring as one sample: Reserve, copy, Submit.
func (w *Writer) Write(p []byte) error {
	s, err := w.Reserve(len(p))
	if err != nil {
		return err
	}
	copy(s.Data, p)
	w.Submit(s)
	return nil
}

// WriteWait is [Writer.Write] with [Writer.ReserveWait]'s waiting.
func (w *Writer) WriteWait(ctx context.Context, p []byte) error {
	s, err := w.ReserveWait(ctx, len(p))
	if err != nil {
		return err
	}
	copy(s.Data, p)
	w.Submit(s)
	return nil
}

// Stats returns the Writer's counters. After Close, Pending and Capacity
// are 0.
func (w *Writer) Stats() Stats {
	st := Stats{
		Submitted: w.submitted.Load(),
		Discarded: w.discarded.Load(),
		Bytes:     w.bytes.Load(),
		Full:      w.full.Load(),
		Waits:     w.waits.Load(),
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.freed {
		st.Pending = w.ring.pending()
		st.Capacity = w.ring.capacity()
	}
	return st
}

// Close stops the Writer: a waiting ReserveWait returns [ErrClosed], and
// so does every later Reserve. The ring is unmapped now, or, if samples are
// still reserved, when the last of them is submitted or discarded. Close is
// safe to call more than once and from any goroutine; only the first call
// reports errors.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed.Swap(true) {
		w.mu.Unlock()
		return nil
	}
	var errs []error
	if w.outstanding.Load() == 0 {
		errs = append(errs, w.freeRing())
	}
	w.mu.Unlock()

	w.wake()
	w.waiting.Lock() // the waiter, if any, has gone
	defer w.waiting.Unlock()
	errs = append(errs, w.closePoller())
	return errors.Join(errs...)
}

// freeRing unmaps the ring once; the caller holds mu.
func (w *Writer) freeRing() error {
	if w.freed {
		return nil
	}
	w.freed = true
	return w.ring.close()
}

func (w *Writer) closePoller() error {
	if w.poller == nil {
		return nil
	}
	return w.poller.Close()
}
