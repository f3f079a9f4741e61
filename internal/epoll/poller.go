package epoll

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// wakeToken marks the eventfd's events in the epoll set; the owner of the
// Poller chooses the other tokens.
const wakeToken = -1

// A Poller is one epoll set and an eventfd that interrupts its wait.
//
// One goroutine at a time may call Wait: the events it returns live in a
// buffer the next Wait reuses. Add, Wake and Close are safe from any
// goroutine.
type Poller struct {
	// mu guards the descriptors: Wait and Wake hold it shared while they
	// use them, Close exclusively to close them.
	mu      sync.RWMutex
	closed  atomic.Bool
	epollFD int
	wakeFD  int // written by Wake
	events  []unix.EpollEvent
}

// New creates an epoll set for up to fds descriptors besides its eventfd.
// On error nothing stays open.
func New(fds int) (_ *Poller, err error) {
	p := &Poller{epollFD: -1, wakeFD: -1, events: make([]unix.EpollEvent, fds+1)}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.Close())
		}
	}()
	if p.epollFD, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("create epoll instance: %w", err)
	}
	if p.wakeFD, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("create eventfd: %w", err)
	}
	if err := p.add(p.wakeFD, unix.EPOLLIN, wakeToken); err != nil {
		return nil, err
	}
	return p, nil
}

// Add watches fd for events (unix.EPOLLIN, unix.EPOLLOUT, with
// unix.EPOLLET for edge-triggered), reporting it with token, which is the
// caller's to choose but must not be -1, the eventfd's.
func (p *Poller) Add(fd int, events uint32, token int32) error {
	if token == wakeToken {
		return fmt.Errorf("add fd %d to epoll: token %d is the eventfd's", fd, token)
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.epollFD < 0 {
		return os.ErrClosed
	}
	return p.add(fd, events, token)
}

func (p *Poller) add(fd int, events uint32, token int32) error {
	ev := unix.EpollEvent{Events: events, Fd: token}
	if err := unix.EpollCtl(p.epollFD, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("add fd %d to epoll: %w", fd, err)
	}
	return nil
}

// Wait blocks until a watched descriptor or the eventfd is ready, or
// timeout passes (negative: no timeout). It returns the watched
// descriptors that are ready, their tokens in Fd, in a slice the next Wait
// reuses, and whether anything woke it: a signal counts (EINTR is not an
// error), and so does Wake. Its other errors are epoll_wait's, unwrapped,
// for the owner to say what it was waiting for; after Close it returns
// [os.ErrClosed].
func (p *Poller) Wait(timeout time.Duration) (ready []unix.EpollEvent, woke bool, err error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	// Close sets closed before it wakes us and then waits for mu: a Wait
	// that starts after the eventfd was read must not sleep again.
	if p.closed.Load() || p.epollFD < 0 {
		return nil, false, os.ErrClosed
	}
	n, err := epollWait(p.epollFD, p.events, timeout)
	if errors.Is(err, unix.EINTR) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	ready = p.events[:0]
	for _, ev := range p.events[:n] {
		if ev.Fd == wakeToken {
			var buf [8]byte
			// Resets the eventfd counter; EAGAIN means another reader
			// already did, which is fine.
			_, _ = unix.Read(p.wakeFD, buf[:])
			continue
		}
		ready = append(ready, ev)
	}
	return ready, n > 0, nil
}

// Wake makes a blocked Wait return, or the next one if none is blocked.
// After Close it does nothing.
func (p *Poller) Wake() {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.wakeFD < 0 {
		return
	}
	one := [8]byte{1}
	// An eventfd write only fails if the counter would overflow, and then
	// the waiter is awake anyway.
	_, _ = unix.Write(p.wakeFD, one[:])
}

// FD is the epoll set's descriptor, for tests that watch a thread sleep in
// it; -1 after Close.
func (p *Poller) FD() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.epollFD
}

// Close wakes a blocked Wait, waits for it to return, and closes the
// descriptors. Later calls to Wait return [os.ErrClosed]. It is safe to
// call more than once; only the first call reports errors.
func (p *Poller) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	p.Wake()
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, fd := range []*int{&p.epollFD, &p.wakeFD} {
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
