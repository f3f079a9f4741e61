package cpus

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Online reads which of the first possible CPUs are online: a perf event
// cannot be opened on an offline one.
func Online(possible int) ([]int, error) {
	raw, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, fmt.Errorf("read online CPUs: %w", err)
	}
	online, err := parseList(strings.TrimSpace(string(raw)), func(int) error { return nil })
	if err != nil {
		return nil, fmt.Errorf("read online CPUs: %w", err)
	}
	kept := online[:0]
	for _, cpu := range online {
		if cpu < possible {
			kept = append(kept, cpu)
		}
	}
	return kept, nil
}

// PinThread lets the calling thread run on cpu alone. The caller must have
// locked its goroutine to the thread (runtime.LockOSThread): otherwise
// the pin stays with a thread other goroutines will run on. Its error is
// sched_setaffinity's, for the caller to say what it was pinning.
func PinThread(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	return unix.SchedSetaffinity(0, &set)
}

// RunOn runs fn on a thread pinned to cpu, and afterwards gives the thread
// back its affinity and to the scheduler.
func RunOn(cpu int, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return fmt.Errorf("read CPU affinity: %w", err)
	}
	if err := PinThread(cpu); err != nil {
		return fmt.Errorf("pin to CPU %d: %w", cpu, err)
	}
	defer unix.SchedSetaffinity(0, &old)
	return fn()
}

// ThreadTime reads the CPU clock of thread tid of this process (0: the
// calling thread), the time it has run, in user and system mode together:
// clockid ~tid << 3 | CPUCLOCK_PERTHREAD_MASK | CPUCLOCK_SCHED
// (include/linux/posix-timers.h: make_thread_cpuclock). Unlike getrusage
// it reads any thread, and in nanoseconds.
func ThreadTime(tid int) (time.Duration, error) {
	var ts unix.Timespec
	clock := int32(^uint32(tid)<<3 | 4 | 2)
	if err := unix.ClockGettime(clock, &ts); err != nil {
		return 0, err
	}
	return time.Duration(ts.Nano()), nil
}
