package consumer

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/abi"
)

// DefaultMaxDelay bounds how long an adaptive consumer's lazy sleep leaves
// records waiting, not counting the time the kernel keeps the consumer's
// thread waiting for a CPU once it is due to wake, which no timer
// shortens. 1 ms is below what a person or a scrape can notice, yet long
// enough to batch: at 10,000 records a second it replaces 10,000 wakeups
// with at most 1,000, and while no records flow there are none.
const DefaultMaxDelay = time.Millisecond

// The consumer's sleep states in wake_state.consumer_sleeping.
const (
	sleepAwake = uint32(abi.SleepAwake)
	sleepDeep  = uint32(abi.SleepDeep)
	sleepLazy  = uint32(abi.SleepLazy)
)

// sleeper decides how a Consumer sleeps and tells the producers: the sleep
// policy of its wakeup mode, from what its flow model measured, and the
// handshake that lets producers wake it without polling. The handshake is a
// flag it raises in shared memory before sleeping, and a doorbell producers
// ring when they find it raised; the producers' side, and why the
// handshake loses no wakeup, are in bpf/transport.h ("The SPSC queue").
type sleeper struct {
	mode Wakeup
	// lazyFor is how long a lazy sleep lasts at most; <0: never sleep
	// lazily.
	lazyFor time.Duration
	flow    flow
	// paces: every ring is woken through the handshake alone, so a sleep
	// that leaves records in the rings on purpose is not cut short by the
	// kernel waking us for them (a perf buffer wakes its reader for every
	// sample). Set by newConsumer.
	paces bool

	// The handshake; sleeping is nil without one.
	sleeping  *uint32 // wake_state.consumer_sleeping
	watermark *uint32 // wake_state.watermark
	bell      doorbell
	mem       []byte // the wake state mapping; nil over plain memory
}

// A doorbell is what the consumer waits on while the rings are quiet and
// their producers know it sleeps.
type doorbell interface {
	fd() int
	// clear consumes the rings that woke us, so epoll blocks again.
	clear() error
	close() error
}

// openSleeper sets up how a consumer sleeps in mode ("" and WakeupKernel
// being WakeupEvery): with the handshake over the doorbell and entry index
// of the state array if the mode or one of the rings (withBell) needs it.
func openSleeper(mode Wakeup, maxDelay time.Duration, withBell bool, doorbellMap, state *ebpf.Map, index int) (*sleeper, error) {
	given := mode
	switch mode {
	case "", WakeupKernel:
		mode = WakeupEvery
	}
	if !slices.Contains(Wakeups(), mode) {
		return nil, fmt.Errorf("unknown wakeup mode %q", given)
	}
	lazy := lazySleep(maxDelay)
	s := &sleeper{mode: mode, lazyFor: lazy, flow: newFlow(holdSleeps * max(lazy, 0))}
	if mode != WakeupAdaptive && !withBell {
		return s, nil
	}
	if doorbellMap == nil || state == nil {
		return nil, errors.New("adaptive wakeups and spsc rings need Config.Doorbell and Config.State")
	}
	if state.Type() != ebpf.Array || state.Flags()&unix.BPF_F_MMAPABLE == 0 || int(state.ValueSize()) != abi.WakeStateSize {
		return nil, fmt.Errorf("wake state %v is not a BPF_F_MMAPABLE array of %d-byte values", state, abi.WakeStateSize)
	}
	if index < 0 || index >= int(state.MaxEntries()) {
		return nil, fmt.Errorf("wake state %d of %v, which has %d", index, state, state.MaxEntries())
	}
	// An mmapable array's values are laid out one after the other from
	// offset 0 (kernel/bpf/arraymap.c: array_map_mmap); map the pages up
	// to ours.
	end := (index + 1) * abi.WakeStateSize
	page := os.Getpagesize()
	mem, err := unix.Mmap(state.FD(), 0, (end+page-1)/page*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap wake state: %w", err)
	}
	r, err := openRingbuf(doorbellMap)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("doorbell: %w", err), unix.Munmap(mem))
	}
	s.sleeping = (*uint32)(unsafe.Pointer(&mem[index*abi.WakeStateSize+abi.WakeSleepingOffset]))
	s.watermark = (*uint32)(unsafe.Pointer(&mem[index*abi.WakeStateSize+abi.WakeWatermarkOffset]))
	s.bell = &ringDoorbell{r: r, b: batch{records: make([][]byte, 0, 64)}}
	s.mem = mem
	atomic.StoreUint32(s.sleeping, sleepAwake)
	return s, nil
}

// lazySleep is how long a lazy sleep lasts for records to wait at most
// maxDelay: shorter by what comes after the timeout, up to 200µs. That is
// the timer's slack, by which the kernel may fire the timeout late (the
// thread's timer slack, 50µs unless set with PR_SET_TIMERSLACK:
// fs/eventpoll.c, ep_poll, takes it from fs/select.c,
// select_estimate_accuracy), and the time the thread takes to wake up and
// read (this package's bench measures a thread wakeup's p99 at 80-100µs on
// a 2-CPU VM). Not included, as no sleep length can make up for it: time
// spent waiting for a CPU on a busy machine.
// TestLazySleepDeliversWithinItsDelay measures both.
func lazySleep(maxDelay time.Duration) time.Duration {
	switch {
	case maxDelay == 0:
		maxDelay = DefaultMaxDelay
	case maxDelay < 0:
		return -1
	}
	return maxDelay - min(200*time.Microsecond, maxDelay/4)
}

// polls reports whether the consumer never sleeps.
func (s *sleeper) polls() bool { return s.mode == WakeupBusy }

// How a flowing consumer paces its passes (see sleeper.pace).
const (
	// paceFraction: a consumer lets its rings fill for 1/paceFraction of
	// the time until the first is full at the rate just measured: the rest
	// is slack for a wakeup that comes late, or a rate that rises.
	paceFraction = 4
	// minSleep: a pause shorter than this spins instead of sleeping in
	// epoll, whose timer may fire 50µs late (the thread's timer slack)
	// and whose wakeup costs about as much again.
	minSleep = 100 * time.Microsecond
	// busyBatch and busyPaceMax: a busy consumer waits for about busyBatch
	// records before a pass, when they come fast enough to arrive within
	// busyPaceMax; slower than that it reads each as it comes, which costs
	// little at such rates.
	busyBatch   = 256
	busyPaceMax = 50 * time.Microsecond
)

// pace is how long to let the rings fill before the next pass; 0: read
// now. A consumer that reads right behind its producers reads each record
// as it is written: every header is a cache line still in the producer's
// cache, fetched one after the other, and every batch of one record pays
// what a batch costs. Waiting a fraction of the time until the first ring
// is full (bounded by the lazy sleep) lets each pass read a stretch of
// records in stream. A rate too low for a lazy sleep to hold one record
// is not paced.
func (s *sleeper) pace() time.Duration {
	f := &s.flow
	if !s.paces || f.recordRate <= 0 {
		return 0
	}
	var wait time.Duration
	switch s.mode {
	case WakeupAdaptive:
		if s.lazyFor <= 0 || f.recordRate*s.lazyFor.Seconds() < 1 {
			return 0
		}
		wait = s.lazyFor
	case WakeupBusy:
		wait = seconds(busyBatch / f.recordRate)
		if wait > busyPaceMax {
			return 0
		}
	default:
		return 0
	}
	return min(wait, seconds(f.untilFull/paceFraction))
}

// lazyFrom is the fewest records a lazy sleep must be expected to find to
// be chosen over a deep one. At half a record it costs two timer wakeups
// per record, about what a doorbell costs the producer and its wakeup the
// consumer; below it, deep sleeps cost less.
const lazyFrom = 0.5

// flowing reports whether records come often enough for a lazy sleep.
func (s *sleeper) flowing() bool {
	return s.lazyFor > 0 && s.flow.recordRate*s.lazyFor.Seconds() >= lazyFrom
}

// prepare gets ready to sleep and returns how long for (negative: until
// woken), or false if a ring is ready and the consumer must read instead.
//
// In WakeupAdaptive it tells the producers how it will sleep: deeply (wake
// me for the next record) when records are rarer than a lazy sleep, lazily
// (wake me at the watermark; I wake myself in time for MaxDelay) while
// they flow. Then it consumes the doorbells that woke us, raises the flag,
// and looks at every ring once more. The order matters: a producer
// publishes a record before it rings, so a doorbell consumed here belongs
// to a record ready() sees; and the flag is raised with an XCHG, a full
// barrier, before ready() reads the rings.
func (s *sleeper) prepare(rings []ring) (time.Duration, bool) {
	timeout := time.Duration(-1)
	if s.sleeping == nil {
		return timeout, true
	}
	state := sleepAwake // the producers wake us by themselves
	if s.mode == WakeupAdaptive {
		state = sleepDeep
		if s.flowing() {
			state, timeout = sleepLazy, min(s.lazyFor, seconds(s.flow.untilFull/paceFraction))
			s.setWatermark(rings, timeout)
		}
	}
	if err := s.bell.clear(); err != nil {
		return 0, false // a doorbell we cannot clear keeps epoll ready: read instead
	}
	if state != sleepAwake {
		atomic.StoreUint32(s.sleeping, state)
	}
	for _, r := range rings {
		if r.ready() {
			s.disarm()
			return 0, false
		}
	}
	return timeout, true
}

// preparePause gets ready for a lazy sleep of wait that leaves records in
// the rings on purpose (pace): the watermark for it, the doorbells
// consumed, the flag raised. It does not look at the rings: they hold
// records, and the timer ends the sleep. It reports false without a
// handshake to sleep on.
func (s *sleeper) preparePause(rings []ring, wait time.Duration) bool {
	if s.sleeping == nil {
		return false
	}
	s.setWatermark(rings, wait)
	if err := s.bell.clear(); err != nil {
		return false
	}
	atomic.StoreUint32(s.sleeping, sleepLazy)
	return true
}

// setWatermark tells the producers when a lazy sleep of d must end early:
// once the ring that fills first holds what it held plus twice what it
// would gain in d at the rate just measured, but at least a quarter of it
// and at most half. Then a rate that doubles wakes us with half a ring to
// spare, and a trickle of records, which cannot fill a ring, waits for the
// timer instead of ringing for each record. The doorbell only guards
// against overflow: the timer bounds the delay. The store needs no
// barrier: the flag raised after it is an XCHG, and a producer that reads
// an older watermark reads one that was as valid a sleep before.
func (s *sleeper) setWatermark(rings []ring, d time.Duration) {
	f := &s.flow
	capacity := f.capacity
	if capacity == 0 {
		capacity = rings[0].capacity()
	}
	level := float64(f.pending) + 2*f.byteRate*d.Seconds()
	bytes := min(max(uint64(min(level, float64(capacity))), capacity/4), capacity/2)
	w := max(rings[0].units(bytes), 1)
	atomic.StoreUint32(s.watermark, uint32(min(w, 1<<32-1)))
}

// woke follows a sleep that prepare or preparePause allowed: it lowers the
// flag. It returns false when a lazy sleep timed out.
func (s *sleeper) woke(woken bool, timeout time.Duration) bool {
	if s.sleeping != nil {
		s.disarm()
	}
	return woken || timeout < 0
}

// disarm lowers the flag: we are awake, and producers stop ringing.
func (s *sleeper) disarm() { atomic.StoreUint32(s.sleeping, sleepAwake) }

func (s *sleeper) close() error {
	var errs []error
	if s.bell != nil {
		errs = append(errs, s.bell.close())
		s.bell = nil
	}
	if s.mem != nil {
		errs = append(errs, unix.Munmap(s.mem))
		s.mem = nil
	}
	return errors.Join(errs...)
}

// ringDoorbell is the kernel's doorbell: a BPF ring buffer whose records
// mean only "wake up".
type ringDoorbell struct {
	r *ringbuf
	b batch
}

func (d *ringDoorbell) fd() int { return d.r.fd() }

func (d *ringDoorbell) clear() error {
	for {
		d.b.reset()
		err := d.r.nextBatch(&d.b, cap(d.b.records))
		if !d.r.release() || err != nil {
			return err
		}
	}
}

func (d *ringDoorbell) close() error { return d.r.close() }
