package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ringwatch/ringwatch/internal/cli"
	"github.com/ringwatch/ringwatch/internal/ping"
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

// pingFlagValues are ping's flags as given.
type pingFlagValues struct {
	count             *int
	interval, timeout *time.Duration
}

// pingFlags defines ping's flags. The test of every flag's bad values
// enumerates it: a flag added here needs rows there.
func pingFlags() (cli.FlagSet, pingFlagValues) {
	fs := cli.NewFlagSet("ringwatch ping")
	return fs, pingFlagValues{
		count:    fs.Int("count", 10, 1, ping.MaxCount, "", "how many pings to send, one after the other"),
		interval: fs.Duration("interval", 0, false, "10ms", "pause between pings, such as 10ms; 0 sends the next as soon as the last is answered"),
		timeout:  fs.Duration("timeout", time.Second, true, "1s", "how long to wait for each ping's answer"),
	}
}

// parsePingFlags reads ping's command line; every value is checked as it
// is read. It returns flag.ErrHelp after printing the help for --help.
func parsePingFlags(args []string, stderr io.Writer) (ping.Options, error) {
	fs, f := pingFlags()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.PrintUsage(stderr, pingUsage, pingExamples)
		}
		return ping.Options{}, err
	}
	return ping.Options{Count: *f.count, Interval: *f.interval, Timeout: *f.timeout}, nil
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := ping.Run(ctx, cfg, stdout); err != nil {
		fmt.Fprintf(stderr, "ringwatch ping: %v\n", err)
		return exitError
	}
	return exitOK
}
