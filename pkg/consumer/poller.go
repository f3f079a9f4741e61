package consumer

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// wakeToken marks the eventfd's events in the epoll set; the owner of the
// poller chooses the other tokens.
const wakeToken = -1

// poller is one epoll set and an eventfd that interrupts its wait: a
// Consumer's, which owns it alone. Its methods other than wake are for the
// one goroutine that reads.
type poller struct {
	epollFD int
	wakeFD  int // written by wake
	events  []unix.EpollEvent
}

// newPoller creates an epoll set for up to fds descriptors besides its
// eventfd. On error nothing stays open.
func newPoller(fds int) (_ *poller, err error) {
	p := &poller{epollFD: -1, wakeFD: -1, events: make([]unix.EpollEvent, fds+1)}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.close())
		}
	}()
	if p.epollFD, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("create epoll instance: %w", err)
	}
	if p.wakeFD, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("create eventfd: %w", err)
	}
	if err := p.add(p.wakeFD, wakeToken); err != nil {
		return nil, err
	}
	return p, nil
}

// add watches fd for input, reporting it with token.
//
// Level-triggered: a ring buffer stays ready while the kernel's poll sees
// unconsumed data (kernel/bpf/ringbuf.c: ringbuf_map_poll_kern), and a perf
// buffer's wakeup waits on the epoll ready list until read
// (kernel/events/core.c: perf_poll), so no wakeup is lost between our last
// look at a ring and epoll_wait. The SPSC queues say how they get the same
// in spsc.go.
func (p *poller) add(fd int, token int32) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: token}
	if err := unix.EpollCtl(p.epollFD, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("add fd %d to epoll: %w", fd, err)
	}
	return nil
}

// wait blocks until a watched descriptor or the eventfd is ready, or
// timeout passes (negative: no timeout). It returns the tokens of the
// watched descriptors that are ready, in events the next wait reuses, and
// whether anything woke it (a signal counts).
func (p *poller) wait(timeout time.Duration) (ready []unix.EpollEvent, woke bool, err error) {
	n, err := epollWait(p.epollFD, p.events, timeout)
	if errors.Is(err, unix.EINTR) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("wait for rings: %w", err)
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

// wake makes a blocked wait return. Safe from any goroutine until close.
func (p *poller) wake() {
	one := [8]byte{1}
	// An eventfd write only fails if the counter would overflow, and then
	// the waiter is awake anyway.
	_, _ = unix.Write(p.wakeFD, one[:])
}

func (p *poller) close() error {
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
