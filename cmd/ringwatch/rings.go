package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ringwatch/ringwatch/pkg/hostrings"
)

const ringsUsage = `Usage: ringwatch rings [flags]

Lists every BPF ring on the host, whoever loaded it: ring buffers
(BPF_MAP_TYPE_RINGBUF), user ring buffers (BPF_MAP_TYPE_USER_RINGBUF) and
perf event arrays. It reads each ring's positions twice, --interval apart,
and shows its capacity, fill, bytes in and out per second, how long until it
is full at those rates, how long its consumer may pause before an empty ring
fills (capacity / bytes in per second), whether it is stalled (bytes pending
and the consumer unmoved over the interval), and the processes holding it and
the programs using it. The positions are mapped read-only: ringwatch never
writes another process's ring. A perf event array shows its CPUs but no
positions: those live in each owner's perf buffers. Needs CAP_SYS_ADMIN.

Flags:
`

const ringsExamples = `
Examples:
  ringwatch rings
  ringwatch rings --json | jq '.[] | select(.stalled)'

Exit status: 0 after listing, 1 if the rings cannot be read, 2 for a wrong
command line.
`

type ringsConfig struct {
	json     bool
	interval time.Duration
}

// ringsFlagValues are rings' flags as given, each checked on its own.
type ringsFlagValues struct {
	json     *bool
	interval *time.Duration
}

// ringsFlags defines rings' flags. The test of every flag's bad values
// enumerates it: a flag added here needs rows there.
func ringsFlags() (flagSet, ringsFlagValues) {
	fs := newFlagSet("rings")
	return fs, ringsFlagValues{
		json:     fs.Bool("json", false, "print a JSON array, one object per ring, instead of a table"),
		interval: fs.Duration("interval", time.Second, true, "1s", "time between the two readings the rates come from"),
	}
}

// parseRingsFlags reads rings' command line. It returns flag.ErrHelp after
// printing the help for --help.
func parseRingsFlags(args []string, stderr io.Writer) (ringsConfig, error) {
	fs, f := ringsFlags()
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(fs, stderr, ringsUsage, ringsExamples)
		}
		return ringsConfig{}, err
	}
	return ringsConfig{json: *f.json, interval: *f.interval}, nil
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
	rows, err := sampleRings(cfg.interval)
	if err != nil {
		fmt.Fprintf(stderr, "ringwatch rings: %v\n", err)
		return exitError
	}
	if cfg.json {
		err = writeRingsJSON(stdout, rows)
	} else {
		err = writeRingsTable(stdout, rows)
	}
	if err != nil {
		fmt.Fprintf(stderr, "ringwatch rings: %v\n", err)
		return exitError
	}
	return exitOK
}

// sampleRings opens a census and reads it twice, interval apart.
func sampleRings(interval time.Duration) ([]ringRow, error) {
	census, err := hostrings.Open(hostrings.Options{})
	if err != nil {
		return nil, err
	}
	defer census.Close()
	t0 := time.Now()
	first := census.Sample(t0)
	time.Sleep(interval)
	t1 := time.Now()
	return ringRows(first, census.Sample(t1), t1.Sub(t0)), nil
}

// ringRow is one ring with its rates: a line of `rings` and of `top`.
type ringRow struct {
	hostrings.Ring
	hostrings.Rates
}

// ringRows pairs the rings of two samples dt apart; a ring only in cur
// (new since prev) has no rates yet.
func ringRows(prev, cur []hostrings.Ring, dt time.Duration) []ringRow {
	rows := make([]ringRow, 0, len(cur))
	for _, r := range cur {
		before := r
		if i := slices.IndexFunc(prev, func(p hostrings.Ring) bool { return p.ID == r.ID }); i >= 0 {
			before = prev[i]
		}
		rows = append(rows, ringRow{Ring: r, Rates: hostrings.RatesBetween(before, r, dt)})
	}
	return rows
}

// ringJSON is a ring as `rings --json` prints it.
type ringJSON struct {
	MapID          uint32        `json:"map_id"`
	Name           string        `json:"name"`
	Type           string        `json:"type"`
	CapacityBytes  uint64        `json:"capacity_bytes,omitempty"`
	CPUs           int           `json:"cpus,omitempty"`
	ProducerPos    *uint64       `json:"producer_pos"`
	ConsumerPos    *uint64       `json:"consumer_pos"`
	PendingBytes   *uint64       `json:"pending_bytes"`
	Fill           *float64      `json:"fill"`
	InBytesPerSec  *float64      `json:"in_bytes_per_second"`
	OutBytesPerSec *float64      `json:"out_bytes_per_second"`
	SecondsToFull  *float64      `json:"seconds_to_full"`        // null: not filling
	ConsumerPauseS *float64      `json:"consumer_pause_seconds"` // null: nothing produced
	Stalled        bool          `json:"stalled"`
	Ours           bool          `json:"ours"`
	Owners         []ownerJSON   `json:"owners"`
	Programs       []programJSON `json:"programs"`
}

type ownerJSON struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
}

type programJSON struct {
	ID   uint32 `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
}

func writeRingsJSON(w io.Writer, rows []ringRow) error {
	out := make([]ringJSON, 0, len(rows))
	for _, r := range rows {
		j := ringJSON{MapID: uint32(r.ID), Name: r.Name, Type: string(r.Kind), CapacityBytes: r.Capacity, CPUs: r.CPUs,
			Stalled: r.Rates.Stalled, Ours: r.Ours, Owners: []ownerJSON{}, Programs: []programJSON{}}
		if r.HasPositions() {
			producer, consumer, pending, fill := r.Producer, r.Consumer, r.Pending(), r.Fill()
			in, out := r.In, r.Out
			j.ProducerPos, j.ConsumerPos, j.PendingBytes, j.Fill = &producer, &consumer, &pending, &fill
			j.InBytesPerSec, j.OutBytesPerSec = &in, &out
			j.SecondsToFull, j.ConsumerPauseS = finiteSeconds(r.ToFull), finiteSeconds(r.ConsumerGrace)
		}
		for _, o := range r.Owners {
			j.Owners = append(j.Owners, ownerJSON{PID: o.PID, Comm: o.Comm})
		}
		for _, p := range r.Programs {
			j.Programs = append(j.Programs, programJSON{ID: uint32(p.ID), Name: p.Name, Type: p.Type.String()})
		}
		out = append(out, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func finiteSeconds(d time.Duration) *float64 {
	if d == hostrings.Forever {
		return nil
	}
	s := d.Seconds()
	return &s
}

func writeRingsTable(w io.Writer, rows []ringRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTYPE\tCAPACITY\tFILL\tIN/s\tOUT/s\tFULL IN\tPAUSE OK\tSTALLED\tOWNER\tPROGRAMS")
	for _, r := range rows {
		name := r.Name
		if r.Ours {
			name += " (ours)"
		}
		if !r.HasPositions() {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d CPUs\t-\t-\t-\t-\t-\t-\t%s\t%s\n", r.ID, name, r.Kind, r.CPUs, owners(r.Owners), programs(r.Programs))
			continue
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%.1f%% (%s)\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, name, r.Kind,
			formatBytes(float64(r.Capacity)), 100*r.Fill(), formatBytes(float64(r.Pending())),
			formatBytes(r.In), formatBytes(r.Out), formatWait(r.ToFull), formatWait(r.ConsumerGrace),
			yesNo(r.Rates.Stalled), owners(r.Owners), programs(r.Programs))
	}
	return tw.Flush()
}

func owners(os []hostrings.Owner) string {
	if len(os) == 0 {
		return "-"
	}
	s := make([]string, len(os))
	for i, o := range os {
		s[i] = o.Comm + "/" + strconv.Itoa(o.PID)
	}
	return strings.Join(s, ",")
}

func programs(ps []hostrings.Program) string {
	if len(ps) == 0 {
		return "-"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.Name
		if p.Name == "" {
			s[i] = "#" + strconv.FormatUint(uint64(p.ID), 10)
		}
	}
	return strings.Join(s, ",")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// formatBytes is n in B, KiB, MiB or GiB, with one decimal above bytes.
func formatBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return strconv.FormatFloat(math.Round(n), 'f', 0, 64) + "B"
	}
	return strconv.FormatFloat(n, 'f', 1, 64) + units[i]
}

// formatWait is a duration to a person: "never", or rounded to what
// matters.
func formatWait(d time.Duration) string {
	switch {
	case d == hostrings.Forever:
		return "never"
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}
