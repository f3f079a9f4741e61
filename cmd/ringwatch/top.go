package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/ringwatch/ringwatch/internal/cli"
	"github.com/ringwatch/ringwatch/internal/hostview"
	"github.com/ringwatch/ringwatch/pkg/hostrings"
)

const topUsage = `Usage: ringwatch top [flags]

A live view of every BPF ring and program on the host, refreshed every
--interval. Rings: fill bar, bytes in and out per second, the peak (the
highest rate in over one 10ms sample since the last refresh), time until
full, the size advised for a consumer pause of --pause at the peak (as in
'ringwatch rings'), stalled, owner. Programs: runs per second, mean time per run and the share of
one CPU they take, from the kernel's run statistics, which top turns on while
it runs (they cost every program run on the host some 70ns) and off when it
exits. It needs no 'ringwatch run'. Needs CAP_SYS_ADMIN.

Keys: tab switches between rings and programs; up/down (or k/j) selects a
row; s changes the sort order of the selected table; q quits and restores
the terminal.

Flags:
`

const topExamples = `
Examples:
  sudo ringwatch top
  sudo ringwatch top --once > frame.txt

Exit status: 0 after q (or one frame with --once), 1 if the rings or programs
cannot be read, 2 for a wrong command line.
`

// topFlagValues are top's flags as given, each checked on its own.
type topFlagValues struct {
	once            *bool
	interval, pause *time.Duration
}

// topFlags defines top's flags. The test of every flag's bad values
// enumerates it: a flag added here needs rows there.
func topFlags() (cli.FlagSet, topFlagValues) {
	fs := cli.NewFlagSet("ringwatch top")
	return fs, topFlagValues{
		once:     fs.Bool("once", false, "print one frame, from two readings --interval apart, and exit: for scripts"),
		interval: fs.Duration("interval", time.Second, true, "1s", "time between refreshes, 100ms or more"),
		pause:    fs.Duration("pause", hostrings.DefaultPause, true, "100ms", "the consumer pause the sizing advice is for: the ring that holds it at the peak rate"),
	}
}

// minTopInterval keeps top's refreshes, each a census sample and a
// program walk, from taking a CPU of their own.
const minTopInterval = 100 * time.Millisecond

// parseTopFlags reads top's command line. It returns flag.ErrHelp after
// printing the help for --help.
func parseTopFlags(args []string, stderr io.Writer) (hostview.TopOptions, error) {
	fs, f := topFlags()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.PrintUsage(stderr, topUsage, topExamples)
		}
		return hostview.TopOptions{}, err
	}
	if *f.interval < minTopInterval {
		return hostview.TopOptions{}, fmt.Errorf("--interval %v: give %v or more", *f.interval, minTopInterval)
	}
	return hostview.TopOptions{Once: *f.once, Interval: *f.interval, Pause: *f.pause}, nil
}

func topCommand(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseTopFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "ringwatch top: %v\nSee 'ringwatch top --help'.\n", err)
		return exitUsage
	}
	if err := hostview.Top(stdout, cfg); err != nil {
		fmt.Fprintf(stderr, "ringwatch top: %v\n", cli.Reword(err, flagOf))
		return exitError
	}
	return exitOK
}
