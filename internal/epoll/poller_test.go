package epoll

import (
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// eventfd returns a non-blocking eventfd that t closes.
func eventfd(t *testing.T) int {
	t.Helper()
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func signal(t *testing.T, fd int) {
	t.Helper()
	one := [8]byte{1}
	if _, err := unix.Write(fd, one[:]); err != nil {
		t.Fatal(err)
	}
}

func newPoller(t *testing.T, fds int) *Poller {
	t.Helper()
	p, err := New(fds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestWaitReportsTokens: a ready descriptor comes back with its token, the
// eventfd never does, and nothing ready means a timeout that woke nothing.
func TestWaitReportsTokens(t *testing.T) {
	p := newPoller(t, 2)
	a, b := eventfd(t), eventfd(t)
	if err := p.Add(a, unix.EPOLLIN, 7); err != nil {
		t.Fatal(err)
	}
	if err := p.Add(b, unix.EPOLLIN, -2); err != nil {
		t.Fatal(err)
	}
	if ready, woke, err := p.Wait(0); err != nil || woke || len(ready) != 0 {
		t.Fatalf("Wait on nothing ready = %v, %v, %v; want a timeout", ready, woke, err)
	}
	signal(t, b)
	ready, woke, err := p.Wait(time.Second)
	if err != nil || !woke || len(ready) != 1 || ready[0].Fd != -2 {
		t.Fatalf("Wait with token -2 ready = %v, %v, %v", ready, woke, err)
	}
	// Level-triggered: still ready until read.
	p.Wake()
	ready, woke, err = p.Wait(time.Second)
	if err != nil || !woke || len(ready) != 1 || ready[0].Fd != -2 {
		t.Fatalf("Wait after Wake with token -2 still ready = %v, %v, %v; want token -2 alone", ready, woke, err)
	}
}

// TestWakeIsNotLost: a Wake before the Wait ends that Wait at once, and
// once: the next Wait times out.
func TestWakeIsNotLost(t *testing.T) {
	p := newPoller(t, 0)
	p.Wake()
	p.Wake()
	if ready, woke, err := p.Wait(-1); err != nil || !woke || len(ready) != 0 {
		t.Fatalf("Wait after Wake = %v, %v, %v; want woken, nothing ready", ready, woke, err)
	}
	if _, woke, err := p.Wait(time.Millisecond); err != nil || woke {
		t.Fatalf("second Wait = %v, %v; want a timeout: the eventfd is reset", woke, err)
	}
}

// TestWakeEndsABlockedWait: Wake from another goroutine ends a Wait with
// no timeout.
func TestWakeEndsABlockedWait(t *testing.T) {
	p := newPoller(t, 0)
	done := make(chan error, 1)
	go func() {
		_, woke, err := p.Wait(-1)
		if err == nil && !woke {
			err = errors.New("returned without being woken")
		}
		done <- err
	}()
	time.Sleep(10 * time.Millisecond) // most likely asleep by now; a Wake before is kept anyway
	p.Wake()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait still blocked 10s after Wake")
	}
}

// TestTimeoutBelowAMillisecond: Wait sleeps at least its timeout, which
// epoll_pwait2 takes finer than epoll_wait's milliseconds.
func TestTimeoutBelowAMillisecond(t *testing.T) {
	p := newPoller(t, 0)
	const timeout = 300 * time.Microsecond
	start := time.Now()
	if _, woke, err := p.Wait(timeout); err != nil || woke {
		t.Fatalf("Wait(%v) = %v, %v; want a timeout", timeout, woke, err)
	}
	if took := time.Since(start); took < timeout {
		t.Errorf("Wait(%v) returned after %v", timeout, took)
	}
}

// TestEdgeTriggered: an EPOLLET descriptor reports each change once, not
// the state: what pkg/userring relies on to sleep while its ring has
// some room, but too little.
func TestEdgeTriggered(t *testing.T) {
	p := newPoller(t, 1)
	fd := eventfd(t)
	if err := p.Add(fd, unix.EPOLLIN|unix.EPOLLET, 0); err != nil {
		t.Fatal(err)
	}
	signal(t, fd)
	if ready, _, err := p.Wait(time.Second); err != nil || len(ready) != 1 || ready[0].Fd != 0 {
		t.Fatalf("first Wait = %v, %v; want token 0", ready, err)
	}
	if ready, woke, err := p.Wait(time.Millisecond); err != nil || woke || len(ready) != 0 {
		t.Fatalf("second Wait, nothing new = %v, %v, %v; want a timeout", ready, woke, err)
	}
	signal(t, fd)
	if ready, _, err := p.Wait(time.Second); err != nil || len(ready) != 1 {
		t.Fatalf("Wait after a new event = %v, %v; want token 0", ready, err)
	}
}

// TestCloseEndsAWaitAndLaterOnes: Close wakes a blocked Wait and waits for
// it; Wait, Add and Wake after it fail or do nothing; a second Close
// reports nothing; no descriptor stays open.
func TestCloseEndsAWaitAndLaterOnes(t *testing.T) {
	extra := eventfd(t)
	before := openFDs(t)
	p, err := New(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Add(0, unix.EPOLLIN, wakeToken); err == nil {
		t.Error("Add with the eventfd's token succeeded")
	}
	done := make(chan error, 1)
	go func() {
		for {
			// A Wait woken by Close returns; the owner loops, and its
			// next Wait must not sleep.
			if _, _, err := p.Wait(-1); err != nil {
				done <- err
				return
			}
		}
	}()
	time.Sleep(10 * time.Millisecond)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("Wait after Close = %v, want os.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait still blocked 10s after Close")
	}
	if _, _, err := p.Wait(0); err != os.ErrClosed {
		t.Errorf("Wait after Close = %v, want os.ErrClosed", err)
	}
	if err := p.Add(extra, unix.EPOLLIN, 1); err != os.ErrClosed {
		t.Errorf("Add after Close = %v, want os.ErrClosed", err)
	}
	p.Wake()
	if err := p.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if p.FD() != -1 {
		t.Errorf("FD after Close = %d", p.FD())
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open before New, %d after Close", before, after)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
