package hostview

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/pkg/hostrings"
)

// RingsOptions are what `ringwatch rings` shows.
type RingsOptions struct {
	JSON     bool          // a JSON array, one object a ring, instead of a table
	Interval time.Duration // how long to watch: the rates are over it
	Pause    time.Duration // the consumer pause the sizing advice is for
	// Names names an option as the program's command line does, in the
	// table's words; nil keeps the options' own names.
	Names func(option string) string
}

// WriteRings watches every ring on the host for o.Interval and writes them
// to w once, as a table or JSON.
func WriteRings(w io.Writer, o RingsOptions) error {
	rows, err := sampleRings(o.Interval, o.Pause)
	if err != nil {
		return err
	}
	if o.JSON {
		return writeRingsJSON(w, rows)
	}
	return writeRingsTable(w, rows, o.Interval, o.Pause, o.Names)
}

// sampleRings opens a census and reads it every census sample period
// (10ms) for interval: the rates are between the first reading and the
// last, and the peaks between each reading and the next. The advice is
// for a consumer pause of pause.
func sampleRings(interval, pause time.Duration) ([]ringRow, error) {
	census, err := hostrings.Open(hostrings.Options{})
	if err != nil {
		return nil, err
	}
	defer census.Close()
	peaks := hostrings.NewPeaks(hostrings.PeakOptions{})
	every := census.Options().SampleEvery
	t0 := time.Now()
	first := census.Sample(t0)
	peaks.Observe(first)
	last, t1 := first, t0
	for end := t0.Add(interval); t1.Before(end); {
		time.Sleep(min(time.Until(t1.Add(every)), time.Until(end)))
		t1 = time.Now()
		last = census.Sample(t1)
		peaks.Observe(last)
	}
	rows := ringRows(first, last, t1.Sub(t0))
	adviseRows(rows, peaks, pause, t1)
	return rows, nil
}

// ringRow is one ring with its rates: a line of `rings` and of `top`.
type ringRow struct {
	hostrings.Ring
	hostrings.Rates
	// Advice is the sizing model at the ring's peak, when HasAdvice: a
	// ring with positions, one span of it measured.
	Advice    hostrings.Advice
	HasAdvice bool
}

// adviseRows gives every row with a peak in peaks its advice for a
// consumer pause of pause.
func adviseRows(rows []ringRow, peaks *hostrings.Peaks, pause time.Duration, now time.Time) {
	page := os.Getpagesize()
	for i := range rows {
		r := &rows[i]
		if !r.HasPositions() {
			continue
		}
		if peak, ok := peaks.Peak(r.ID, now); ok {
			r.Advice, r.HasAdvice = hostrings.Advise(r.Ring, peak, pause, page), true
		}
	}
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

// RingJSON is a ring as `rings --json` prints it.
type RingJSON struct {
	MapID          uint32   `json:"map_id"`
	Name           string   `json:"name"`
	Type           string   `json:"type"`
	Overwrite      bool     `json:"overwrite"` // created with BPF_F_RB_OVERWRITE (Linux 6.19): a flight recorder
	CapacityBytes  uint64   `json:"capacity_bytes,omitempty"`
	CPUs           int      `json:"cpus,omitempty"`
	ProducerPos    *uint64  `json:"producer_pos"`
	ConsumerPos    *uint64  `json:"consumer_pos"`
	PendingBytes   *uint64  `json:"pending_bytes"`
	Fill           *float64 `json:"fill"`
	InBytesPerSec  *float64 `json:"in_bytes_per_second"`
	OutBytesPerSec *float64 `json:"out_bytes_per_second"`
	SecondsToFull  *float64 `json:"seconds_to_full"`        // null: not filling, or in overwrite mode
	ConsumerPauseS *float64 `json:"consumer_pause_seconds"` // null: nothing produced, or in overwrite mode

	// Overwrite mode only, else null: the overwrite position, the bytes
	// it overwrote per second, and how far back it reaches at the rate in.
	OverwritePos           *uint64  `json:"overwrite_pos"`
	OverwrittenBytesPerSec *float64 `json:"overwritten_bytes_per_second"`
	HistoryS               *float64 `json:"history_seconds"` // null: nothing produced

	// The sizing advice, at the peak: all null for a perf event array.
	PeakInBytesPerSec    *float64 `json:"peak_in_bytes_per_second"`       // the fastest span's rate
	PeakBytes            *uint64  `json:"peak_bytes"`                     // bytes produced in that span
	PeakSpanS            *float64 `json:"peak_span_seconds"`              // its length
	PeakPendingBytes     *uint64  `json:"peak_pending_bytes"`             // pending as it began
	SecondsToFullAtPeak  *float64 `json:"seconds_to_full_at_peak"`        // null: nothing produced
	ConsumerPauseAtPeakS *float64 `json:"consumer_pause_at_peak_seconds"` // capacity / peak rate; null: nothing produced
	PauseS               *float64 `json:"pause_seconds"`                  // the pause the advice is for (--pause)
	NeededBytes          *uint64  `json:"needed_bytes"`                   // peak rate * pause + peak pending
	AdvisedCapacity      *uint64  `json:"advised_capacity_bytes"`         // null: no ring holds it
	LargestRingPauseS    *float64 `json:"largest_ring_pause_seconds"`     // when no ring holds it: what the largest holds
	// In overwrite mode, in place of the four above and the times to full
	// and pause: capacity / peak rate; null: nothing produced.
	HistoryAtPeakS *float64 `json:"history_at_peak_seconds"`

	Stalled  bool          `json:"stalled"`
	Ours     bool          `json:"ours"`
	Owners   []OwnerJSON   `json:"owners"`
	Programs []ProgramJSON `json:"programs"`
}

// OwnerJSON is a process that holds a ring, in RingJSON.
type OwnerJSON struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
}

// ProgramJSON is a program that uses a ring, in RingJSON.
type ProgramJSON struct {
	ID   uint32 `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
}

func writeRingsJSON(w io.Writer, rows []ringRow) error {
	out := make([]RingJSON, 0, len(rows))
	for _, r := range rows {
		j := RingJSON{MapID: uint32(r.ID), Name: r.Name, Type: string(r.Kind), Overwrite: r.Overwrite, CapacityBytes: r.Capacity, CPUs: r.CPUs,
			Stalled: r.Rates.Stalled, Ours: r.Ours, Owners: []OwnerJSON{}, Programs: []ProgramJSON{}}
		if r.HasPositions() {
			producer, consumer, pending, fill := r.Producer, r.Consumer, r.Pending(), r.Fill()
			in, out := r.In, r.Out
			j.ProducerPos, j.ConsumerPos, j.PendingBytes, j.Fill = &producer, &consumer, &pending, &fill
			j.InBytesPerSec, j.OutBytesPerSec = &in, &out
			j.SecondsToFull, j.ConsumerPauseS = finiteSeconds(r.ToFull), finiteSeconds(r.ConsumerGrace)
			if r.Overwrite {
				over, rate := r.OverwritePos, r.Overwritten
				j.OverwritePos, j.OverwrittenBytesPerSec, j.HistoryS = &over, &rate, finiteSeconds(r.History)
			}
		}
		if r.HasAdvice && r.Overwrite {
			a := r.Advice
			rate, bytes, span, pending := a.Rate, a.Peak.Bytes, a.Peak.Duration().Seconds(), a.Peak.Pending
			j.PeakInBytesPerSec, j.PeakBytes, j.PeakSpanS, j.PeakPendingBytes = &rate, &bytes, &span, &pending
			j.HistoryAtPeakS = finiteSeconds(a.History)
		} else if r.HasAdvice {
			a := r.Advice
			rate, bytes, span, pending := a.Rate, a.Peak.Bytes, a.Peak.Duration().Seconds(), a.Peak.Pending
			pause, need := a.Pause.Seconds(), a.Need
			j.PeakInBytesPerSec, j.PeakBytes, j.PeakSpanS, j.PeakPendingBytes = &rate, &bytes, &span, &pending
			j.SecondsToFullAtPeak, j.ConsumerPauseAtPeakS = finiteSeconds(a.ToFull), finiteSeconds(a.Grace)
			j.PauseS, j.NeededBytes = &pause, &need
			if c := a.Capacity; c != 0 {
				j.AdvisedCapacity = &c
			} else {
				j.LargestRingPauseS = finiteSeconds(a.LargestHolds)
			}
		}
		for _, o := range r.Owners {
			j.Owners = append(j.Owners, OwnerJSON{PID: o.PID, Comm: o.Comm})
		}
		for _, p := range r.Programs {
			j.Programs = append(j.Programs, ProgramJSON{ID: uint32(p.ID), Name: p.Name, Type: p.Type.String()})
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

func writeRingsTable(w io.Writer, rows []ringRow, interval, pause time.Duration, names func(string) string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTYPE\tCAPACITY\tFILL\tIN/s\tOUT/s\tOVERWRITTEN/s\tFULL IN\tPAUSE OK\tSTALLED\tOWNER\tPROGRAMS")
	for _, r := range rows {
		name := r.Name
		if r.Ours {
			name += " (ours)"
		}
		if !r.HasPositions() {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d CPUs\t-\t-\t-\t-\t-\t-\t-\t%s\t%s\n", r.ID, name, r.Kind, r.CPUs, owners(r.Owners), programs(r.Programs))
			continue
		}
		overwritten, full, pauseOK := "-", formatWait(r.ToFull), formatWait(r.ConsumerGrace)
		if r.Overwrite {
			// A flight recorder neither fills nor waits on its consumer:
			// its rate of loss by design, and no time to full or pause.
			overwritten, full, pauseOK = FormatBytes(r.Overwritten), "-", "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%.1f%% (%s)\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, name, typeName(r.Ring),
			FormatBytes(float64(r.Capacity)), 100*r.Fill(), FormatBytes(float64(r.Pending())),
			FormatBytes(r.In), FormatBytes(r.Out), overwritten, full, pauseOK,
			yesNo(r.Rates.Stalled), owners(r.Owners), programs(r.Programs))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	fmt.Fprintln(tw, abi.Words(names, "\nSizing, at each ring's peak (its fastest %v sample in %v) for a %v consumer pause ({pause}):",
		hostrings.DefaultSampleEvery, interval, pause))
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\n", r.ID, r.Name, sizingSentence(r, interval))
	}
	return tw.Flush()
}

// sizingSentence is a ring's advice as a person sizing it reads it:
// "fills in 12.3ms at 324.2MiB/s; 64.0MiB holds a 100ms pause (now 4.0MiB)".
func sizingSentence(r ringRow, over time.Duration) string {
	a := r.Advice
	switch {
	case !r.HasPositions():
		return "perf event array: its positions are in its owner's perf buffers, not the map; no advice"
	case !r.HasAdvice:
		return "no span measured yet; no advice"
	case r.Overwrite && a.Rate == 0:
		return fmt.Sprintf("overwrite mode: nothing produced in %v; it keeps its %s of history as long as that lasts; no sizing advice",
			over, FormatBytes(float64(r.Capacity)))
	case r.Overwrite:
		return fmt.Sprintf("overwrite mode: keeps the last %s at %s/s; size it by the history it should keep, not by a pause (now %s)",
			formatWait(a.History), FormatBytes(a.Rate), FormatBytes(float64(r.Capacity)))
	case a.Rate == 0:
		return fmt.Sprintf("nothing produced in %v: any ring holds a pause at that rate; %s, the smallest for what was pending, does (now %s)",
			over, FormatBytes(float64(a.Capacity)), FormatBytes(float64(r.Capacity)))
	case a.Capacity == 0:
		return fmt.Sprintf("fills in %s at %s/s; no ring holds a %v pause at that rate: the largest, %s, holds %s (now %s)",
			formatWait(a.ToFull), FormatBytes(a.Rate), a.Pause, FormatBytes(hostrings.MaxCapacity), formatWait(a.LargestHolds),
			FormatBytes(float64(r.Capacity)))
	}
	return fmt.Sprintf("fills in %s at %s/s; %s holds a %v pause (now %s)", formatWait(a.ToFull), FormatBytes(a.Rate),
		FormatBytes(float64(a.Capacity)), a.Pause, FormatBytes(float64(r.Capacity)))
}

// typeName is a ring's kind, and its mode when it is a flight recorder.
func typeName(r hostrings.Ring) string {
	if r.Overwrite {
		return string(r.Kind) + "/overwrite"
	}
	return string(r.Kind)
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

// FormatBytes is n in B, KiB, MiB or GiB, with one decimal above bytes.
func FormatBytes(n float64) string {
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
