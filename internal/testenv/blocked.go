package testenv

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// epollWaits are the system calls a thread sleeps in epoll with: Go's
// unix.EpollWait is epoll_wait on amd64 and epoll_pwait elsewhere, and
// internal/epoll waits with a timeout in epoll_pwait2.
var epollWaits = func() []uint64 {
	calls := []uint64{unix.SYS_EPOLL_PWAIT, unix.SYS_EPOLL_PWAIT2}
	if nr := sysEpollWait; nr >= 0 { // not on arm64: see sysnum_other.go
		calls = append(calls, uint64(nr))
	}
	return calls
}()

// SleepsInEpoll reports whether a thread of this process is asleep (state
// S) in an epoll wait on epfd, as the kernel shows it in
// /proc/self/task/TID/syscall (the call's number and first argument) and
// /proc/self/task/TID/stat. It is what tests watch for where "the reader
// is blocked" must be a fact, not a guess from a sleep.
func SleepsInEpoll(epfd int) (bool, error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return false, fmt.Errorf("list this process's threads: %w", err)
	}
	for _, task := range tasks {
		dir := "/proc/self/task/" + task.Name()
		raw, err := os.ReadFile(dir + "/syscall")
		if err != nil {
			continue // the thread ended
		}
		// "NR arg1 arg2 ...", or "running", or "-1 sp pc" outside a call.
		fields := strings.Fields(string(raw))
		if len(fields) < 2 {
			continue
		}
		nr, err1 := strconv.ParseUint(fields[0], 10, 64)
		fd, err2 := strconv.ParseUint(strings.TrimPrefix(fields[1], "0x"), 16, 64)
		if err1 != nil || err2 != nil || fd != uint64(epfd) || !IsEpollWait(nr) {
			continue
		}
		stat, err := os.ReadFile(dir + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) S ...": the state follows the last ')'.
		if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && strings.HasPrefix(string(stat[i+1:]), " S") {
			return true, nil
		}
	}
	return false, nil
}

// IsEpollWait reports whether system call number nr, as
// /proc/TID/syscall shows it, is one a thread sleeps in epoll with.
func IsEpollWait(nr uint64) bool {
	for _, c := range epollWaits {
		if nr == c {
			return true
		}
	}
	return false
}

// WaitForEpollSleep waits until a thread of this process sleeps in an
// epoll wait on epfd (see SleepsInEpoll), and fails t if none does within
// 10 seconds. returned, if not nil, is asked on each look whether the
// waiter has already given up; a non-nil error from it fails t at once.
func WaitForEpollSleep(t testing.TB, epfd int, returned func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if returned != nil {
			if err := returned(); err != nil {
				t.Fatal(err)
			}
		}
		asleep, err := SleepsInEpoll(epfd)
		if err != nil {
			t.Fatal(err)
		}
		if asleep {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no thread of this process sleeps in epoll on fd %d after 10s", epfd)
		}
		time.Sleep(time.Millisecond)
	}
}
