package consumer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ErrClosed is returned by [Consumer.Read] and [Consumer.Drain] once
// [Consumer.Close] has been called.
var ErrClosed = os.ErrClosed

// maxBatchRecords bounds a batch, and so the memory behind [Batch.Records]
// and how long a ring waits for its space while the callback runs.
const maxBatchRecords = 1024

// wakeToken marks the eventfd's events in the epoll set and bellToken the
// doorbell's; ring events carry the ring's index.
const (
	wakeToken = -1
	bellToken = -2
)

// Transport names a way records travel from the kernel to user space.
type Transport string

// The transports a Consumer reads.
const (
	// Ringbuf is one BPF_MAP_TYPE_RINGBUF shared by every CPU.
	Ringbuf Transport = "ringbuf"
	// PercpuRingbuf is one BPF_MAP_TYPE_RINGBUF per CPU or group of CPUs;
	// each is read as a Ringbuf.
	PercpuRingbuf Transport = "percpu-ringbuf"
	// Perfbuf is a BPF_MAP_TYPE_PERF_EVENT_ARRAY: one perf buffer per CPU.
	Perfbuf Transport = "perfbuf"
	// SPSC is a single-producer single-consumer queue per CPU in
	// BPF_F_MMAPABLE arrays, with a ring buffer as the doorbell.
	SPSC Transport = "spsc"
)

// A Ring describes one kernel-to-user ring for [Open]: which maps to read
// and how. The maps must stay open until the Consumer is closed; the
// Consumer does not close them.
type Ring struct {
	Name      string // for metrics labels and errors
	Transport Transport
	// Map is the BPF_MAP_TYPE_RINGBUF of a Ringbuf or PercpuRingbuf ring,
	// and the BPF_MAP_TYPE_PERF_EVENT_ARRAY of a Perfbuf ring.
	Map *ebpf.Map
	// Perfbuf: the CPU whose buffer this ring is, and the buffer's data
	// size in bytes, a power-of-two multiple of the page size. Open
	// creates the CPU's perf event and stores it in Map at index CPU.
	CPU      int
	PerfSize int
	// SPSC: the queue headers (struct spsc_queue, one per CPU) and the
	// slots (struct spsc_slot, SPSCSlots per queue), BPF_F_MMAPABLE
	// arrays. An SPSC ring is woken through Config.Doorbell.
	Queues, Slots *ebpf.Map
	SPSCSlots     int
}

// Config is what [OpenConfig] reads and how it sleeps.
type Config struct {
	Rings []Ring
	// Wakeup must match what the producers were loaded with; "" means
	// WakeupEvery, the behaviour of plain BPF ring buffers.
	Wakeup Wakeup
	// Doorbell (a BPF_MAP_TYPE_RINGBUF) and State (the one-entry
	// BPF_F_MMAPABLE array of struct wake_state) carry the sleep
	// handshake: needed by WakeupAdaptive and by SPSC rings.
	Doorbell, State *ebpf.Map
	// MaxDelay bounds how long a lazy sleep (WakeupAdaptive) leaves a
	// record waiting; 0 means DefaultMaxDelay, and a negative MaxDelay
	// means never sleep lazily: every sleep is deep, woken by the next
	// record.
	MaxDelay time.Duration
}

// ring is what the consumer needs of one kernel-to-user transport.
type ring interface {
	// fd is what epoll waits on for the ring's records.
	fd() int
	// nextBatch appends records after the read position to b, at most
	// maxRecords, and moves the read position past them.
	nextBatch(b *batch, maxRecords int) error
	// release gives the space of every record read so far back to the
	// producers, and reports whether there was any.
	release() bool
	// ready reports whether a record can be read now. It is the look the
	// consumer takes after raising its sleep flag: see waker.arm.
	ready() bool
	pending() uint64
	capacity() uint64
	// lost counts records the kernel itself reported lost on the ring.
	lost() uint64
	close() error
}

var (
	_ ring = (*ringbuf)(nil)
	_ ring = (*perfbuf)(nil)
	_ ring = (*spsc)(nil)
)

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
	waker    *waker // nil without a doorbell
	mode     Wakeup
	lazyFor  time.Duration // how long a lazy sleep lasts; <0: never sleep lazily
	lazy     bool          // sleep lazily next: records come less than a lazy sleep apart
	lastWake time.Time     // when a producer last woke us
	counters []ringCounters
	epollFD  int
	wakeFD   int // eventfd written by Close and context cancellation
	events   []unix.EpollEvent
	batch    batch
}

// Open maps every ring and returns a Consumer that waits on all of them,
// woken by the kernel as plain BPF ring buffers are (WakeupEvery). On
// error, nothing stays mapped or open.
func Open(rings ...Ring) (*Consumer, error) {
	return OpenConfig(Config{Rings: rings})
}

// OpenConfig is Open with the sleep handshake of Config. On error, nothing
// stays mapped or open.
func OpenConfig(cfg Config) (*Consumer, error) {
	if len(cfg.Rings) == 0 {
		return nil, errors.New("open consumer: no rings given")
	}
	if cfg.Wakeup == "" {
		cfg.Wakeup = WakeupEvery
	}
	if !slices.Contains(Wakeups(), cfg.Wakeup) {
		return nil, fmt.Errorf("open consumer: unknown wakeup mode %q", cfg.Wakeup)
	}
	needBell := cfg.Wakeup == WakeupAdaptive ||
		slices.ContainsFunc(cfg.Rings, func(r Ring) bool { return r.Transport == SPSC })
	var w *waker
	if needBell {
		if cfg.Doorbell == nil || cfg.State == nil {
			return nil, errors.New("open consumer: adaptive wakeups and spsc rings need Config.Doorbell and Config.State")
		}
		var err error
		if w, err = openWaker(cfg.Doorbell, cfg.State); err != nil {
			return nil, fmt.Errorf("open consumer: %w", err)
		}
	}
	opened := make([]ring, 0, len(cfg.Rings))
	for _, desc := range cfg.Rings {
		r, err := openRing(desc)
		if err != nil {
			for _, o := range opened {
				err = errors.Join(err, o.close())
			}
			if w != nil {
				err = errors.Join(err, w.close())
			}
			return nil, fmt.Errorf("open %s ring %q: %w", desc.Transport, desc.Name, err)
		}
		opened = append(opened, r)
	}
	c, err := newConsumer(opened, w)
	if err != nil {
		return nil, err
	}
	c.mode = cfg.Wakeup
	c.lazyFor = lazySleep(cfg.MaxDelay)
	return c, nil
}

// lazySleep is how long a lazy sleep lasts for records to wait at most
// maxDelay: shorter by the time the thread takes to wake up and read, up to
// 200µs (this package's bench measures a thread wakeup's p99 at 80-100µs on
// a 2-CPU VM).
func lazySleep(maxDelay time.Duration) time.Duration {
	switch {
	case maxDelay == 0:
		maxDelay = DefaultMaxDelay
	case maxDelay < 0:
		return -1
	}
	return maxDelay - min(200*time.Microsecond, maxDelay/4)
}

func openRing(desc Ring) (ring, error) {
	switch desc.Transport {
	case Ringbuf, PercpuRingbuf:
		return openRingbuf(desc.Map)
	case Perfbuf:
		return openPerfbuf(desc.Map, desc.CPU, desc.PerfSize)
	case SPSC:
		return openSPSC(desc)
	}
	return nil, fmt.Errorf("unknown transport %q", desc.Transport)
}

// newConsumer waits on rings and w's doorbell, which it owns from now on,
// even on error. It sleeps as WakeupEvery until told otherwise.
func newConsumer(rings []ring, w *waker) (_ *Consumer, err error) {
	c := &Consumer{
		epollFD:  -1,
		wakeFD:   -1,
		rings:    rings,
		waker:    w,
		mode:     WakeupEvery,
		counters: make([]ringCounters, len(rings)),
		events:   make([]unix.EpollEvent, len(rings)+1),
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
	for i, r := range rings {
		c.counters[i].capacity = r.capacity()
		if r.fd() < 0 {
			continue // woken through the doorbell
		}
		if err := c.watch(r.fd(), i); err != nil {
			return nil, err
		}
	}
	if w != nil {
		if err := c.watch(w.bell.fd(), bellToken); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Consumer) watch(fd, token int) error {
	// Level-triggered: a ring buffer stays ready while the kernel's poll
	// sees unconsumed data (kernel/bpf/ringbuf.c: ringbuf_map_poll_kern),
	// and a perf buffer's wakeup waits on the epoll ready list until read
	// (kernel/events/core.c: perf_poll), so no wakeup is lost between our
	// last look at a ring and epoll_wait. The SPSC queues say how they get
	// the same in spsc.go.
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
		if c.mode == WakeupBusy {
			continue // poll: the producers never wake us
		}
		// Registered only when about to sleep: a busy consumer finds
		// records without waiting and allocates nothing here.
		if stopWake == nil && ctx.Done() != nil {
			stopWake = context.AfterFunc(ctx, c.wake)
		}
		woke, err := c.sleep()
		if err != nil {
			return 0, err
		}
		if !woke {
			// A lazy sleep ran out: read what came, and if nothing
			// did, sleep deeply next.
			if n, err := c.drain(fn); n > 0 || err != nil {
				return n, err
			}
			c.lazy = false
		}
	}
}

// sleep waits for the rings. In WakeupAdaptive it first tells the
// producers how: deeply (wake me for the next record) after a quiet spell,
// lazily (wake me at the watermark; I wake myself in time for MaxDelay)
// while records flow. It returns false when a lazy sleep timed out.
func (c *Consumer) sleep() (bool, error) {
	timeout := time.Duration(-1)
	if c.waker != nil {
		state := uint32(sleepAwake)
		if c.mode == WakeupAdaptive {
			state = sleepDeep
			if c.lazy && c.lazyFor >= 0 {
				state, timeout = sleepLazy, c.lazyFor
			}
		}
		if c.waker.arm(state, c.rings) {
			return true, nil // records arrived while we were telling
		}
		defer c.waker.disarm()
	}
	woke, err := c.wait(timeout)
	if woke {
		// Two wakeups less than a lazy sleep apart: records come often
		// enough that waiting for a few is cheaper than waking for
		// each. Further apart, a lazy sleep would only add a timeout.
		now := time.Now()
		c.lazy = now.Sub(c.lastWake) < c.lazyFor
		c.lastWake = now
	}
	return woke || timeout < 0, err
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
			c.counters[i].kernelLost.Store(r.lost())
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

// wait blocks until epoll reports a ring, the doorbell or the eventfd
// ready, or timeout passes (negative: no timeout). It reports whether
// something woke it.
func (c *Consumer) wait(timeout time.Duration) (bool, error) {
	n, err := epollWait(c.epollFD, c.events, timeout)
	if errors.Is(err, unix.EINTR) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("wait for rings: %w", err)
	}
	for _, ev := range c.events[:n] {
		switch ev.Fd {
		case wakeToken:
			var buf [8]byte
			// Resets the eventfd counter; EAGAIN means another reader
			// already did, which is fine.
			_, _ = unix.Read(c.wakeFD, buf[:])
		case bellToken:
			// The doorbell does not say which ring: count it on each
			// ring that has something to read.
			for i, r := range c.rings {
				if r.ready() {
					c.counters[i].wakeups.Add(1)
				}
			}
		default:
			c.counters[ev.Fd].wakeups.Add(1)
		}
	}
	return n > 0, nil
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
	if c.waker != nil {
		errs = append(errs, c.waker.close())
		c.waker = nil
	}
	for _, fd := range []*int{&c.epollFD, &c.wakeFD} {
		if *fd >= 0 {
			errs = append(errs, unix.Close(*fd))
			*fd = -1
		}
	}
	return errors.Join(errs...)
}

// epollWait is epoll_wait with a timeout finer than epoll_wait's
// milliseconds: epoll_pwait2 (Linux 5.11) takes a timespec. On an older
// kernel it falls back to whole milliseconds, rounded up.
func epollWait(epfd int, events []unix.EpollEvent, timeout time.Duration) (int, error) {
	if timeout < 0 {
		return unix.EpollWait(epfd, events, -1)
	}
	ts := unix.NsecToTimespec(timeout.Nanoseconds())
	n, _, errno := unix.Syscall6(unix.SYS_EPOLL_PWAIT2, uintptr(epfd),
		uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(unsafe.Pointer(&ts)), 0, 0)
	switch errno {
	case 0:
		return int(n), nil
	case unix.ENOSYS:
		return unix.EpollWait(epfd, events, int((timeout+time.Millisecond-1)/time.Millisecond))
	}
	return 0, errno
}
