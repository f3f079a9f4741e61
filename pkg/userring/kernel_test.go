package userring_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/control"
	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/pkg/userring"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// openControl loads ringwatch's control program on its own, with a user
// ring of size bytes, and a Writer for that ring.
func openControl(t *testing.T, size int) (*loader.ControlProgram, *userring.Writer) {
	t.Helper()
	ctl, err := loader.OpenControl(loader.ControlOptions{UserRingSize: size})
	if err != nil {
		t.Fatalf("OpenControl: %v", err)
	}
	t.Cleanup(func() { ctl.Close() })
	w, err := userring.Open(ctl.UserRing())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return ctl, w
}

// value is the payload of data message i: distinct, and far from its
// neighbours, so a swap or a repeat changes the checksum.
func value(i uint64) uint64 { return (i + 1) * 0x9e3779b97f4a7c15 }

func writeData(ctx context.Context, w *userring.Writer, seq uint64, wait bool) error {
	var s userring.Sample
	var err error
	if wait {
		s, err = w.ReserveWait(ctx, control.DataSize)
	} else {
		s, err = w.Reserve(control.DataSize)
	}
	if err != nil {
		return err
	}
	control.AppendData(s.Data[:0], seq, value(seq))
	w.Submit(s)
	return nil
}

// TestMillionMessagesArriveInOrder writes 1,000,000 data messages through a
// 16 KiB user ring, which holds about 500 of them, to the kernel's control
// program. First the writer fills the ring and gets ErrFull; then it goes
// on with ReserveWait, which must block, since nothing drains, until a
// second goroutine starts ringing the doorbell. The kernel's count, sequence
// check and checksum must match what was written.
func TestMillionMessagesArriveInOrder(t *testing.T) {
	testenv.RequireUserRing(t)
	const total = 1_000_000
	ctl, w := openControl(t, 16<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var seq uint64
	for ; ; seq++ {
		err := writeData(ctx, w, seq, false)
		if errors.Is(err, userring.ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if seq == 0 || seq*32 > 16<<10 {
		t.Fatalf("%d messages of 32 ring bytes fit a 16 KiB ring before ErrFull", seq)
	}
	var sum uint64
	for i := range uint64(total) {
		sum = control.DataChecksum(sum, value(i))
	}

	var wg sync.WaitGroup
	var writeErr error
	writerDone := make(chan struct{})
	wg.Go(func() {
		defer close(writerDone)
		for i := seq; i < total; i++ {
			if writeErr = writeData(ctx, w, i, true); writeErr != nil {
				return
			}
		}
	})
	// The ring is full and nobody drains: the writer must go to sleep.
	waitFor(t, writerDone, func() bool { return w.Stats().Waits > 0 })

	var drainErr error
	wg.Go(func() {
		for {
			n, err := ctl.DoorbellWake()
			if err != nil {
				drainErr = err
				return
			}
			if n > 0 {
				continue
			}
			st, err := ctl.Stats()
			if err != nil {
				drainErr = err
				return
			}
			if st.Accepted[abi.MsgData] >= total || ctx.Err() != nil {
				return
			}
			time.Sleep(10 * time.Microsecond) // let the writer refill
		}
	})
	wg.Wait()
	if writeErr != nil || drainErr != nil {
		t.Fatalf("writer: %v; drainer: %v", writeErr, drainErr)
	}

	st, err := ctl.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Accepted[abi.MsgData] != total || st.DataNextSeq != total || st.DataOutOfOrder != 0 {
		t.Errorf("kernel counted %d data messages, next seq %d, %d out of order; want %d, %d, 0",
			st.Accepted[abi.MsgData], st.DataNextSeq, st.DataOutOfOrder, total, total)
	}
	if st.DataChecksum != sum {
		t.Errorf("kernel checksum %#x, written %#x", st.DataChecksum, sum)
	}
	if st.RejectedTotal() != 0 {
		t.Errorf("kernel rejected %d messages: %v", st.RejectedTotal(), st.Rejected)
	}
	ws := w.Stats()
	if ws.Submitted != total || ws.Bytes != total*uint64(control.DataSize) || ws.Pending != 0 {
		t.Errorf("writer stats: %+v", ws)
	}
	if ws.Full < 2 || ws.Waits == 0 {
		t.Errorf("writer found the ring full %d times and waited %d times; want at least 2 and 1", ws.Full, ws.Waits)
	}
}

func TestReserveWaitStopsOnContextAndClose(t *testing.T) {
	testenv.RequireUserRing(t)
	page := os.Getpagesize()
	_, w := openControl(t, page)
	if err := w.Write(make([]byte, w.MaxSample())); err != nil {
		t.Fatalf("fill the ring: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := w.ReserveWait(ctx, 8); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReserveWait on a full ring nobody drains: %v, want DeadlineExceeded", err)
	}

	var waitErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, waitErr = w.ReserveWait(context.Background(), 8)
	}()
	// The first wait was the timed-out one.
	waitFor(t, done, func() bool { return w.Stats().Waits >= 2 })
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		if !errors.Is(waitErr, userring.ErrClosed) {
			t.Fatalf("ReserveWait after Close: %v, want ErrClosed", waitErr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not wake a waiting ReserveWait")
	}
}

// TestDrainWakesTheWaiter checks the epoll wakeup: a writer waits for room
// for a large sample; one doorbell drains the ring and must wake it.
func TestDrainWakesTheWaiter(t *testing.T) {
	testenv.RequireUserRing(t)
	ctl, w := openControl(t, os.Getpagesize())
	for i := uint64(0); ; i++ {
		err := writeData(context.Background(), w, i, false)
		if errors.Is(err, userring.ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var writeErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// A zeroed sample: the kernel will reject it as of unknown type,
		// which is fine; the point is the wait.
		writeErr = w.WriteWait(ctx, make([]byte, w.MaxSample()))
	}()
	waitFor(t, done, func() bool { return w.Stats().Waits > 0 })
	if _, err := ctl.DoorbellWake(); err != nil {
		t.Fatal(err)
	}
	<-done
	if writeErr != nil {
		t.Fatalf("WriteWait after the drain: %v", writeErr)
	}
	if _, err := ctl.DoorbellWake(); err != nil {
		t.Fatal(err)
	}
	st, err := ctl.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Rejected[abi.RejectUnknownType] != 1 {
		t.Errorf("the zeroed sample was not rejected as an unknown type: %v", st.Rejected)
	}
}

// waitFor polls until cond holds, failing t if the goroutine behind done
// ends first or a generous deadline passes: a bound on a failure, not a
// measurement.
func waitFor(t *testing.T, done <-chan struct{}, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		select {
		case <-done:
			if !cond() {
				t.Fatal("the writer returned before it waited")
			}
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer never waited")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestOpenRefusesOtherMaps(t *testing.T) {
	testenv.RequireBPF(t)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: uint32(os.Getpagesize())})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if w, err := userring.Open(m); err == nil {
		w.Close()
		t.Fatal("Open accepted a kernel-to-user ring buffer")
	}
}
