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

const ringsUsage = `Usage: ringwatch rings [flags]

Lists every BPF ring on the host, whoever loaded it: ring buffers
(BPF_MAP_TYPE_RINGBUF), user ring buffers (BPF_MAP_TYPE_USER_RINGBUF) and
perf event arrays. It reads each ring's positions every 10ms for --interval,
and shows its capacity, fill, bytes in and out per second over the interval,
how long until it is full at those rates, how long its consumer may pause
before an empty ring fills (capacity / bytes in per second), whether it is
stalled (bytes pending and the consumer unmoved over the interval), and the
processes holding it and the programs using it.

Below the table, the sizing advice for each ring: its peak, the highest rate
the producers wrote at over one 10ms sample of the interval (bursts are what
fill rings, and an average hides them), how long the ring lasts at that rate
if its consumer stops now, and the smallest ring the kernel accepts (a power
of two, a multiple of the page size, at most 2GiB) that holds a consumer
pause of --pause at that rate, with what was pending as the peak began.

The positions are mapped read-only: ringwatch never writes another
process's ring. A perf event array shows its CPUs but no positions, and gets
no advice: those live in each owner's perf buffers. Needs CAP_SYS_ADMIN.

Flags:
`

const ringsExamples = `
Examples:
  ringwatch rings
  ringwatch rings --pause 500ms --interval 10s
  ringwatch rings --json | jq '.[] | select(.stalled)'
  ringwatch rings --json | jq '.[] | select(.advised_capacity_bytes > .capacity_bytes)'

Exit status: 0 after listing, 1 if the rings cannot be read, 2 for a wrong
command line.
`

// ringsFlagValues are rings' flags as given, each checked on its own.
type ringsFlagValues struct {
	json            *bool
	interval, pause *time.Duration
}

// ringsFlags defines rings' flags. The test of every flag's bad values
// enumerates it: a flag added here needs rows there.
func ringsFlags() (cli.FlagSet, ringsFlagValues) {
	fs := cli.NewFlagSet("ringwatch rings")
	return fs, ringsFlagValues{
		json:     fs.Bool("json", false, "print a JSON array, one object per ring, instead of a table"),
		interval: fs.Duration("interval", time.Second, true, "1s", "how long to watch: the rates are over it, the peak is the fastest 10ms sample of it; 10ms or more"),
		pause:    fs.Duration("pause", hostrings.DefaultPause, true, "100ms", "the consumer pause the sizing advice is for: the ring that holds it at the peak rate"),
	}
}

// parseRingsFlags reads rings' command line. It returns flag.ErrHelp after
// printing the help for --help.
func parseRingsFlags(args []string, stderr io.Writer) (hostview.RingsOptions, error) {
	fs, f := ringsFlags()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.PrintUsage(stderr, ringsUsage, ringsExamples)
		}
		return hostview.RingsOptions{}, err
	}
	if *f.interval < hostrings.DefaultSampleEvery {
		return hostview.RingsOptions{}, fmt.Errorf("--interval %v: give %v or more (the peak rate is taken over %[2]v census samples)",
			*f.interval, hostrings.DefaultSampleEvery)
	}
	return hostview.RingsOptions{JSON: *f.json, Interval: *f.interval, Pause: *f.pause, Names: flagName}, nil
}

func ringsCommand(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseRingsFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "ringwatch rings: %v\nSee 'ringwatch rings --help'.\n", err)
		return exitUsage
	}
	if err := hostview.WriteRings(stdout, cfg); err != nil {
		fmt.Fprintf(stderr, "ringwatch rings: %v\n", err)
		return exitError
	}
	return exitOK
}
