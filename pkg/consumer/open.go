package consumer

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/epoll"
)

// Config is what [OpenConfig] reads and how it sleeps.
type Config struct {
	Rings []Ring
	// Wakeup must match what the producers were loaded with; "" means
	// WakeupEvery, the behaviour of plain BPF ring buffers.
	Wakeup Wakeup
	// Doorbell (a BPF_MAP_TYPE_RINGBUF) and State (a BPF_F_MMAPABLE array
	// of struct wake_state) carry the sleep handshake: needed by
	// WakeupAdaptive and by SPSC rings. StateIndex is this consumer's
	// entry in State, where its rings' producers look.
	Doorbell, State *ebpf.Map
	StateIndex      int
	// MaxDelay bounds how long a lazy sleep (WakeupAdaptive) leaves a
	// record waiting; 0 means DefaultMaxDelay, and a negative MaxDelay
	// means never sleep lazily: every sleep is deep, woken by the next
	// record.
	MaxDelay time.Duration
}

// Open maps every ring and returns a Consumer that waits on all of them,
// woken by the kernel as plain BPF ring buffers are (WakeupEvery). On
// error, nothing stays mapped or open.
func Open(rings ...Ring) (*Consumer, error) {
	return OpenConfig(Config{Rings: rings})
}

// OpenConfig is Open with the sleep handshake of Config. On error, nothing
// stays mapped or open.
func OpenConfig(cfg Config) (_ *Consumer, err error) {
	if len(cfg.Rings) == 0 {
		return nil, errors.New("open consumer: no rings given")
	}
	withBell := slices.ContainsFunc(cfg.Rings, func(r Ring) bool { return r.doorbell })
	s, err := openSleeper(cfg.Wakeup, cfg.MaxDelay, withBell, cfg.Doorbell, cfg.State, cfg.StateIndex)
	if err != nil {
		return nil, fmt.Errorf("open consumer: %w", err)
	}
	rings := make([]ring, 0, len(cfg.Rings))
	for _, desc := range cfg.Rings {
		if desc.open == nil {
			err = errors.New("not made by RingBuffer, PerfBuffer or SPSCQueues")
		} else {
			var r ring
			if r, err = desc.open(s.mode); err == nil {
				rings = append(rings, r)
				continue
			}
		}
		for _, r := range rings {
			err = errors.Join(err, r.close())
		}
		return nil, fmt.Errorf("open ring %q: %w", desc.Name, errors.Join(err, s.close()))
	}
	return newConsumer(rings, s)
}

// newConsumer waits on rings and s's doorbell, which it owns from now on,
// even on error.
func newConsumer(rings []ring, s *sleeper) (_ *Consumer, err error) {
	c := &Consumer{
		rings:    rings,
		sleeper:  s,
		counters: make([]ringCounters, len(rings)),
		batch:    batch{records: make([][]byte, 0, maxBatchRecords)},
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.free())
		}
	}()
	if c.poller, err = epoll.New(len(rings) + 1); err != nil {
		return nil, err
	}
	s.paces = true
	for i, r := range rings {
		c.counters[i].capacity = r.capacity()
		if _, ok := r.(*perfbuf); ok && s.mode != WakeupAdaptive && s.mode != WakeupBusy {
			s.paces = false // the kernel wakes its reader for every sample
		}
		if _, ok := r.(*ringbuf); ok && s.mode == WakeupAdaptive && s.sleeping != nil {
			// Its producers submit with BPF_RB_NO_WAKEUP and ring the
			// doorbell instead, so its descriptor would only ever report
			// that it holds records, which a consumer pacing its passes
			// leaves there on purpose: epoll is level-triggered.
			continue
		}
		// Level-triggered: a ring buffer stays ready while the kernel's poll
		// sees unconsumed data (kernel/bpf/ringbuf.c:
		// ringbuf_map_poll_kern), and a perf buffer's wakeup waits on the
		// epoll ready list until read (kernel/events/core.c: perf_poll), so
		// no wakeup is lost between our last look at a ring and
		// epoll_wait. The SPSC queues say how they get the same in spsc.go.
		if r.fd() >= 0 {
			if err := c.poller.Add(r.fd(), unix.EPOLLIN, int32(i)); err != nil {
				return nil, err
			}
		}
	}
	if s.bell != nil {
		if err := c.poller.Add(s.bell.fd(), unix.EPOLLIN, bellToken); err != nil {
			return nil, err
		}
	}
	return c, nil
}
