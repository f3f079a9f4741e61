package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/control"
	"github.com/ringwatch/ringwatch/internal/session"
)

const pingUsage = `Usage: ringwatch ping [flags]

Measures the round trip user -> kernel -> user through ringwatch's user
ring. Loads the kernel's control program on its own (it changes nothing that
runs), then sends --count pings, one at a time: each is written into a
BPF_MAP_TYPE_USER_RINGBUF, a BPF_PROG_TEST_RUN of the control program drains
it in the kernel, and the program answers on a BPF ring buffer that ringwatch
reads back. Prints the median (p50), p99 and largest round trip, and how the
median splits between the two directions.

Needs root (or CAP_BPF and CAP_PERFMON) and Linux 6.1 or later.

Flags:
`

const pingExamples = `
Examples:
  ringwatch ping
  ringwatch ping --count 1000
  ringwatch ping --count 100 --interval 10ms

Exit status: 0 when every ping was answered, 1 if ringwatch could not load
the control program or a ping went unanswered, 2 for a wrong command line.
`

type pingConfig struct {
	count    int
	interval time.Duration
	timeout  time.Duration
}

// maxPings bounds --count: every round trip is kept, to sort them.
const maxPings = 1_000_000

// pingFlagValues are ping's flags as given.
type pingFlagValues struct {
	count             *int
	interval, timeout *time.Duration
}

// pingFlags defines ping's flags. The test of every flag's bad values
// enumerates it: a flag added here needs rows there.
func pingFlags() (flagSet, pingFlagValues) {
	fs := newFlagSet("ping")
	return fs, pingFlagValues{
		count:    fs.Int("count", 10, 1, maxPings, "", "how many pings to send, one after the other"),
		interval: fs.Duration("interval", 0, false, "10ms", "pause between pings, such as 10ms; 0 sends the next as soon as the last is answered"),
		timeout:  fs.Duration("timeout", time.Second, true, "1s", "how long to wait for each ping's answer"),
	}
}

// parsePingFlags reads ping's command line; every value is checked as it
// is read. It returns flag.ErrHelp after printing the help for --help.
func parsePingFlags(args []string, stderr io.Writer) (pingConfig, error) {
	fs, f := pingFlags()
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(fs, stderr, pingUsage, pingExamples)
		}
		return pingConfig{}, err
	}
	return pingConfig{count: *f.count, interval: *f.interval, timeout: *f.timeout}, nil
}

func pingCommand(args []string, stdout, stderr io.Writer) int {
	cfg, err := parsePingFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "ringwatch ping: %v\nSee 'ringwatch ping --help'.\n", err)
		return exitUsage
	}
	if err := ping(cfg, stdout); err != nil {
		fmt.Fprintf(stderr, "ringwatch ping: %v\n", err)
		return exitError
	}
	return exitOK
}

func ping(cfg pingConfig, stdout io.Writer) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ch, err := session.OpenControl(nil, control.Options{})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, ch.Close()) }()

	pongs := make([]control.Pong, 0, cfg.count)
	for i := range cfg.count {
		if i > 0 && cfg.interval > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(cfg.interval):
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted after %d of %d pings", i, cfg.count)
		}
		pctx, cancel := context.WithTimeout(ctx, cfg.timeout)
		pong, err := ch.Ping(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("ping %d of %d: %w", i+1, cfg.count, err)
		}
		pongs = append(pongs, pong)
	}
	st, err := ch.DrainStats()
	if err != nil {
		return err
	}
	if got := st.Accepted[abi.MsgPing]; got != uint64(cfg.count) || st.RejectedTotal() != 0 {
		return fmt.Errorf("the kernel counted %d pings and %d rejected messages, %d pings were sent",
			got, st.RejectedTotal(), cfg.count)
	}
	writePingReport(stdout, summarize(pongs))
	return nil
}

// pingSummary is what ringwatch ping reports.
type pingSummary struct {
	count                    int
	p50, p99, max, min, mean time.Duration
	toKernel, fromKernel     time.Duration // the legs of the median round trip
}

// summarize orders the round trips; pongs must not be empty.
func summarize(pongs []control.Pong) pingSummary {
	sorted := slices.Clone(pongs)
	slices.SortFunc(sorted, func(a, b control.Pong) int { return int(a.RoundTrip - b.RoundTrip) })
	var total time.Duration
	for _, p := range sorted {
		total += p.RoundTrip
	}
	median := sorted[rank(len(sorted), 50)]
	return pingSummary{
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

func writePingReport(w io.Writer, s pingSummary) {
	fmt.Fprintf(w, "ringwatch ping: %d pings answered through the user ring and back\n", s.count)
	fmt.Fprintf(w, "round trip: p50 %v  p99 %v  max %v  (min %v, mean %v)\n", s.p50, s.p99, s.max, s.min, s.mean)
	fmt.Fprintf(w, "median split: user -> kernel %v, kernel -> user %v\n", s.toKernel, s.fromKernel)
}
