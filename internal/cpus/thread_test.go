package cpus

import (
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRunOnPinsAndRestores: inside RunOn the thread may run on its CPU
// alone; afterwards it has its whole affinity back.
func TestRunOnPinsAndRestores(t *testing.T) {
	all, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	last := all[len(all)-1]
	runtime.LockOSThread() // so that Allowed after RunOn reads the same thread
	defer runtime.UnlockOSThread()
	err = RunOn(last, func() error {
		if got, err := Allowed(); err != nil || !slices.Equal(got, []int{last}) {
			t.Errorf("Allowed inside RunOn(%d) = %v, %v", last, got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Allowed(); err != nil || !slices.Equal(got, all) {
		t.Errorf("Allowed after RunOn = %v, %v; want %v again", got, err, all)
	}
	if err := RunOn(1<<20, func() error { t.Error("ran on no CPU"); return nil }); err == nil {
		t.Error("RunOn a CPU beyond any machine succeeded")
	}
}

// TestThreadTime: the CPU clock of the calling thread, by its id or by 0,
// is CLOCK_THREAD_CPUTIME_ID's, and grows while the thread runs.
func TestThreadTime(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	thread := func() time.Duration {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ts.Nano())
	}
	before := thread()
	byTID, err := ThreadTime(tid)
	if err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); time.Since(start) < 20*time.Millisecond; {
	}
	self, err := ThreadTime(0)
	if err != nil {
		t.Fatal(err)
	}
	after := thread()
	if byTID < before || self < byTID || after < self {
		t.Errorf("CLOCK_THREAD_CPUTIME_ID %v, ThreadTime(%d) %v, ThreadTime(0) %v, CLOCK_THREAD_CPUTIME_ID %v: want them in order", before, tid, byTID, self, after)
	}
	if self-byTID < 5*time.Millisecond {
		t.Errorf("ThreadTime grew %v over a 20ms spin", self-byTID)
	}
	// No thread has an id of pid_max or more, and none of another
	// process has a clock here.
	raw, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	pidMax, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	for _, other := range []int{pidMax, os.Getppid()} {
		if _, err := ThreadTime(other); err == nil {
			t.Errorf("ThreadTime(%d), not a thread of this process, succeeded", other)
		}
	}
}

// TestOnline: the online CPUs include every CPU this process may run on,
// and stop below the number of possible CPUs given.
func TestOnline(t *testing.T) {
	allowed, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	online, err := Online(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	for _, cpu := range allowed {
		if !slices.Contains(online, cpu) {
			t.Errorf("CPU %d is allowed but not online (%v)", cpu, online)
		}
	}
	last := allowed[len(allowed)-1]
	if few, err := Online(last); err != nil || slices.Contains(few, last) || !slices.IsSorted(few) {
		t.Errorf("Online(%d) = %v, %v", last, few, err)
	}
}
