package consumer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newRingbufMap(t *testing.T, size uint32) *ebpf.Map {
	t.Helper()
	testenv.RequireBPF(t)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: size})
	if err != nil {
		t.Fatalf("create ring buffer: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// wakeState is a struct wake_state array as the loader creates it.
func wakeState(t *testing.T) *ebpf.Map {
	t.Helper()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: uint32(abi.WakeStateSize),
		MaxEntries: 1, Flags: unix.BPF_F_MMAPABLE})
	if err != nil {
		t.Fatalf("create wake state: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func ringOf(m *ebpf.Map) Ring { return RingBuffer("test", m) }

// readInBackground starts a Read of an empty ring, which must block, and
// returns its result channel once the kernel shows Read's thread asleep in
// epoll on the consumer's epoll set.
func readInBackground(t *testing.T, c *Consumer, ctx context.Context) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(ctx, func(Batch) { t.Error("records in an empty ring") })
		done <- err
	}()
	testenv.WaitForEpollSleep(t, c.poller.FD(), func() error {
		select {
		case err := <-done:
			return fmt.Errorf("Read of an empty ring returned instead of blocking: %v", err)
		default:
			return nil
		}
	})
	return done
}

// waitFor fails t if done does not deliver within a generous deadline: the
// wakeup must happen, however slow the machine.
func waitFor(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("blocked Read was not woken")
		return nil
	}
}

func TestCancelWakesBlockedRead(t *testing.T) {
	c, err := Open(ringOf(newRingbufMap(t, uint32(os.Getpagesize()))))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := readInBackground(t, c, ctx)
	cancel()
	if err := waitFor(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel: %v, want context.Canceled", err)
	}
	// The consumer is still usable after a cancelled Read.
	if n, err := c.Drain(func(Batch) {}); n != 0 || err != nil {
		t.Fatalf("Drain after cancel: %d, %v", n, err)
	}
}

func TestCloseWakesBlockedRead(t *testing.T) {
	c, err := Open(ringOf(newRingbufMap(t, uint32(os.Getpagesize()))))
	if err != nil {
		t.Fatal(err)
	}
	done := readInBackground(t, c, context.Background())
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := waitFor(t, done); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v, want ErrClosed", err)
	}
	if _, err := c.Read(context.Background(), func(Batch) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read on a closed consumer: %v, want ErrClosed", err)
	}
	if _, err := c.Drain(func(Batch) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Drain on a closed consumer: %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if s := c.Stats(); len(s) != 1 || s[0].Capacity != uint64(os.Getpagesize()) || s[0].Pending != 0 {
		t.Fatalf("Stats after Close: %+v", s)
	}
}

func TestOpenStatsOfFreshRings(t *testing.T) {
	page := uint32(os.Getpagesize())
	c, err := Open(ringOf(newRingbufMap(t, page)), ringOf(newRingbufMap(t, 16*page)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := c.Stats()
	if len(s) != 2 || s[0].Capacity != uint64(page) || s[1].Capacity != uint64(16*page) || s[0].Pending != 0 {
		t.Fatalf("Stats: %+v", s)
	}
}

func TestOpenRejectsOtherMaps(t *testing.T) {
	testenv.RequireBPF(t)
	array, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer array.Close()
	// The good ring is opened first, so the failure must unmap it again;
	// TestMain's descriptor check and the ring's clean Close cover that.
	ring := newRingbufMap(t, uint32(os.Getpagesize()))
	c, err := Open(ringOf(ring), ringOf(array))
	if err == nil {
		c.Close()
		t.Fatal("Open accepted an array map")
	}
	if !strings.Contains(err.Error(), "not a RingBuf") {
		t.Fatalf("err = %v", err)
	}
	for _, bad := range []Ring{
		PerfBuffer("perf", array, 0, os.Getpagesize()),
		PerfBuffer("perf", ring, 0, os.Getpagesize()),
		SPSCQueues("queues", array, array, 1),
		SPSCQueues("queues", nil, nil, 0),
		{Name: "what"}, // not made by a constructor
	} {
		c, err := OpenConfig(Config{Rings: []Ring{ringOf(ring), bad}, Doorbell: ring, State: wakeState(t)})
		if err == nil {
			c.Close()
			t.Errorf("Open accepted ring %q", bad.Name)
		} else if !strings.Contains(err.Error(), bad.Name) {
			t.Errorf("error does not name the ring %q: %v", bad.Name, err)
		}
	}
	// The sleep handshake needs its maps.
	if c, err := OpenConfig(Config{Rings: []Ring{ringOf(ring)}, Wakeup: WakeupAdaptive}); err == nil {
		c.Close()
		t.Error("OpenConfig accepted adaptive wakeups without a doorbell")
	}
	if c, err := OpenConfig(Config{Rings: []Ring{ringOf(ring)}, Wakeup: "sometimes"}); err == nil {
		c.Close()
		t.Error("OpenConfig accepted an unknown wakeup mode")
	}
	if _, err := Open(); err == nil {
		t.Fatal("Open accepted no rings")
	}
}
