package consumer

import (
	"time"

	"golang.org/x/sys/unix"
)

// monotonic maps Go's monotonic clock onto CLOCK_MONOTONIC, the clock of
// bpf_ktime_get_ns(). Go's runtime reads CLOCK_MONOTONIC through the vDSO
// for time.Since, but only relative to a time.Time; unix.ClockGettime is a
// real system call. So the offset between the two is measured once, and
// each reading after that costs one time.Since.
type monotonic struct {
	base   time.Time
	offset int64 // CLOCK_MONOTONIC ns at base
}

var clock = newMonotonic()

func newMonotonic() monotonic {
	m := monotonic{base: time.Now()}
	best := time.Duration(1<<63 - 1)
	// The offset is known to within half the time a ClockGettime takes;
	// take the tightest of a few tries.
	for range 16 {
		var ts unix.Timespec
		before := time.Since(m.base)
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			panic("clock_gettime(CLOCK_MONOTONIC): " + err.Error()) // cannot fail on Linux
		}
		after := time.Since(m.base)
		if after-before < best {
			best = after - before
			m.offset = ts.Nano() - int64(before+(after-before)/2)
		}
	}
	return m
}

// MonotonicNow returns CLOCK_MONOTONIC in nanoseconds: the clock of
// bpf_ktime_get_ns(), so a record's kernel timestamp can be subtracted from
// it directly.
func MonotonicNow() int64 {
	return clock.offset + int64(time.Since(clock.base))
}
