package consumer

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Wakeup says when the producers wake a sleeping consumer; the loader sets
// the producers' side, [Config.Wakeup] the consumer's.
type Wakeup string

const (
	// WakeupAdaptive: producers submit without waking anyone, and ring the
	// doorbell only when the consumer has said it sleeps. After records
	// have flowed, the consumer sleeps lazily: woken when the watermark of
	// pending data is reached, or by itself after [Config.MaxDelay]. After
	// a lazy sleep that found nothing it sleeps deeply: woken by the next
	// record. A busy consumer costs the producers no wakeups at all.
	WakeupAdaptive Wakeup = "adaptive"
	// WakeupEvery: every record wakes the consumer.
	WakeupEvery Wakeup = "every"
	// WakeupBusy: nothing wakes the consumer; it polls the rings without
	// sleeping, burning a CPU for the lowest latency.
	WakeupBusy Wakeup = "busy"
)

// Wakeups lists the wakeup modes, default first.
func Wakeups() []Wakeup { return []Wakeup{WakeupAdaptive, WakeupEvery, WakeupBusy} }

// DefaultMaxDelay bounds how long an adaptive consumer's lazy sleep leaves
// records waiting. 1 ms is below what a person or a scrape can notice, yet
// long enough to batch: at 10,000 records a second it replaces 10,000
// wakeups with at most 1,000, and while no records flow there are none.
const DefaultMaxDelay = time.Millisecond

// The consumer's sleep states in wake_state.consumer_sleeping
// (bpf/ringwatch.h: enum sleep_state).
const (
	sleepAwake = 0
	sleepDeep  = 1
	sleepLazy  = 2
)

// waker is the consumer's side of the sleep handshake: the flag it raises
// in shared memory before sleeping, and the doorbell producers ring when
// they find it raised. The producers' side, and why the handshake loses no
// wakeup, are in bpf/ringwatch.c ("The SPSC queue").
type waker struct {
	sleeping *uint32 // wake_state.consumer_sleeping
	bell     doorbell
	mem      []byte // the wake state mapping; nil over plain memory
}

// openWaker maps the wake state array read-write and the doorbell ring.
func openWaker(bellMap, state *ebpf.Map) (_ *waker, err error) {
	if state == nil || state.Type() != ebpf.Array || state.Flags()&unix.BPF_F_MMAPABLE == 0 ||
		state.ValueSize() != wakeStateSize {
		return nil, fmt.Errorf("wake state %v is not a BPF_F_MMAPABLE array of %d-byte values", state, wakeStateSize)
	}
	mem, err := unix.Mmap(state.FD(), 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap wake state: %w", err)
	}
	r, err := openRingbuf(bellMap)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("doorbell: %w", err), unix.Munmap(mem))
	}
	w := &waker{
		sleeping: (*uint32)(unsafe.Pointer(&mem[wakeSleepingOffs])),
		bell:     &ringDoorbell{r: r, b: batch{records: make([][]byte, 0, 64)}},
		mem:      mem,
	}
	atomic.StoreUint32(w.sleeping, sleepAwake)
	return w, nil
}

// arm prepares to sleep in state: it consumes the doorbells that woke us,
// raises the flag (unless state is sleepAwake: the producers then wake us
// by themselves), and looks at every ring once more. It reports whether a
// ring is ready, in which case the flag is down again and we must not
// sleep.
//
// The order matters: a producer publishes a record before it rings, so a
// doorbell consumed here belongs to a record ready() sees; and the flag is
// raised with an XCHG, a full barrier, before ready() reads the rings.
func (w *waker) arm(state uint32, rings []ring) bool {
	if err := w.bell.clear(); err != nil {
		return true // a doorbell we cannot clear keeps epoll ready: read instead
	}
	if state != sleepAwake {
		atomic.StoreUint32(w.sleeping, state)
	}
	for _, r := range rings {
		if r.ready() {
			w.disarm()
			return true
		}
	}
	return false
}

// disarm lowers the flag: we are awake, and producers stop ringing.
func (w *waker) disarm() { atomic.StoreUint32(w.sleeping, sleepAwake) }

func (w *waker) close() error {
	errs := []error{w.bell.close()}
	if w.mem != nil {
		errs = append(errs, unix.Munmap(w.mem))
	}
	return errors.Join(errs...)
}
