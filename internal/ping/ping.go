package ping

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/control"
	"github.com/ringwatch/ringwatch/internal/session"
)

// MaxCount bounds Options.Count: every round trip is kept, to sort them.
const MaxCount = 1_000_000

// Options say how many pings to send, and how.
type Options struct {
	Count    int           // pings to send, one after the other: 1 to MaxCount
	Interval time.Duration // pause between pings; 0 sends the next at once
	Timeout  time.Duration // how long each ping's answer may take
}

// Run sends o.Count pings through the user ring and writes the report to
// w once every one was answered. It stops, with an error, when ctx is
// done, a ping goes unanswered, or the kernel's counts disagree with what
// was sent. An error wrapping loader.ErrUnsupportedKernel means the kernel
// lacks the user ring.
func Run(ctx context.Context, o Options, w io.Writer) (err error) {
	ch, err := session.OpenControl(nil, control.Options{})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, ch.Close()) }()

	pongs := make([]control.Pong, 0, o.Count)
	for i := range o.Count {
		if i > 0 && o.Interval > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(o.Interval):
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted after %d of %d pings", i, o.Count)
		}
		pctx, cancel := context.WithTimeout(ctx, o.Timeout)
		pong, err := ch.Ping(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("ping %d of %d: %w", i+1, o.Count, err)
		}
		pongs = append(pongs, pong)
	}
	st, err := ch.DrainStats()
	if err != nil {
		return err
	}
	if got := st.Accepted[abi.MsgPing]; got != uint64(o.Count) || st.RejectedTotal() != 0 {
		return fmt.Errorf("the kernel counted %d pings and %d rejected messages, %d pings were sent",
			got, st.RejectedTotal(), o.Count)
	}
	writeReport(w, summarize(pongs))
	return nil
}

// summary is what ringwatch ping reports.
type summary struct {
	count                    int
	p50, p99, max, min, mean time.Duration
	toKernel, fromKernel     time.Duration // the legs of the median round trip
}

// summarize orders the round trips; pongs must not be empty.
func summarize(pongs []control.Pong) summary {
	sorted := slices.Clone(pongs)
	slices.SortFunc(sorted, func(a, b control.Pong) int { return int(a.RoundTrip - b.RoundTrip) })
	var total time.Duration
	for _, p := range sorted {
		total += p.RoundTrip
	}
	median := sorted[rank(len(sorted), 50)]
	return summary{
		count:      len(sorted),
		p50:        median.RoundTrip,
		p99:        sorted[rank(len(sorted), 99)].RoundTrip,
		max:        sorted[len(sorted)-1].RoundTrip,
		min:        sorted[0].RoundTrip,
		mean:       total / time.Duration(len(sorted)),
		toKernel:   median.ToKernel,
		fromKernel: median.FromKernel,
	}
}

// rank is the index of the pct-th percentile among n > 0 sorted values,
// by the nearest-rank method: the smallest value with at least pct% of the
// values at or below it. Integer arithmetic, so 99% of 1000 is exactly 990.
func rank(n, pct int) int {
	return max((pct*n+99)/100-1, 0)
}

func writeReport(w io.Writer, s summary) {
	fmt.Fprintf(w, "ringwatch ping: %d pings answered through the user ring and back\n", s.count)
	fmt.Fprintf(w, "round trip: p50 %v  p99 %v  max %v  (min %v, mean %v)\n", s.p50, s.p99, s.max, s.min, s.mean)
	fmt.Fprintf(w, "median split: user -> kernel %v, kernel -> user %v\n", s.toKernel, s.fromKernel)
}
