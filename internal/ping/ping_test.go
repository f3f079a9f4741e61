package ping

import (
	"testing"
	"time"

	"github.com/ringwatch/ringwatch/internal/control"
)

func TestPercentilesByNearestRank(t *testing.T) {
	var pongs []control.Pong
	for i := 1000; i >= 1; i-- { // out of order on purpose
		pongs = append(pongs, control.Pong{RoundTrip: time.Duration(i) * time.Microsecond,
			ToKernel: time.Duration(i) * time.Nanosecond})
	}
	s := summarize(pongs)
	if s.count != 1000 || s.p50 != 500*time.Microsecond || s.p99 != 990*time.Microsecond ||
		s.max != 1000*time.Microsecond || s.min != time.Microsecond || s.toKernel != 500*time.Nanosecond {
		t.Errorf("summary of 1..1000µs: %+v", s)
	}
	if s.mean != 500500*time.Nanosecond {
		t.Errorf("mean of 1..1000µs = %v", s.mean)
	}
	one := summarize([]control.Pong{{RoundTrip: 7}})
	if one.p50 != 7 || one.p99 != 7 || one.max != 7 {
		t.Errorf("summary of one: %+v", one)
	}
	for _, tc := range []struct{ n, pct, want int }{{1, 50, 0}, {2, 50, 0}, {3, 50, 1}, {100, 99, 98}, {101, 99, 99}} {
		if got := rank(tc.n, tc.pct); got != tc.want {
			t.Errorf("rank(%d, %d) = %d, want %d", tc.n, tc.pct, got, tc.want)
		}
	}
}
