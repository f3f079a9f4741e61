package testenv

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestSleepsInEpollSeesOnlyARealSleeper: no thread sleeps on a fresh epoll
// set; one that blocks in epoll_wait on it is seen, and, once woken, no
// longer is.
func TestSleepsInEpollSeesOnlyARealSleeper(t *testing.T) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(epfd)
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN}); err != nil {
		t.Fatal(err)
	}
	if asleep, err := SleepsInEpoll(epfd); err != nil || asleep {
		t.Fatalf("before any wait: asleep %v, %v", asleep, err)
	}
	done := make(chan error, 1)
	go func() {
		events := make([]unix.EpollEvent, 1)
		_, err := unix.EpollWait(epfd, events, -1)
		done <- err
	}()
	WaitForEpollSleep(t, epfd, nil)
	if _, err := unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("epoll_wait: %v", err)
	}
	if asleep, err := SleepsInEpoll(epfd); err != nil || asleep {
		t.Fatalf("after the wakeup: asleep %v, %v", asleep, err)
	}
}
