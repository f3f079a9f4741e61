package soak

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Counts are the accounting of one ring or one source: what was tried,
// what arrived, what the kernel counted lost, and what the consumer found
// missing from the sequence numbers.
type Counts struct {
	Attempted, Delivered, Lost, Gaps uint64
	// Invalid is records the consumer could not read (rings), or records
	// out of order (sources, summary only).
	Invalid uint64
	// Skipped is events left out on purpose, paused or sampled (sources).
	Skipped uint64
}

// Scrape is what one /metrics scrape says about the books, by ring and by
// source name.
type Scrape struct {
	Rings      map[string]Counts
	Sources    map[string]Counts
	Pending    map[string]uint64 // bytes not yet consumed, by ring
	Goroutines int
}

// ParseScrape reads the text exposition format of a ringwatch scrape.
func ParseScrape(r io.Reader) (Scrape, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return Scrape{}, fmt.Errorf("parse metrics: %w", err)
	}
	s := Scrape{Rings: map[string]Counts{}, Sources: map[string]Counts{}, Pending: map[string]uint64{}}
	ring := func(name string, set func(c *Counts, v uint64)) error {
		return each(families, name, "ring", func(label string, v uint64) {
			c := s.Rings[label]
			set(&c, v)
			s.Rings[label] = c
		})
	}
	source := func(name string, set func(c *Counts, v uint64)) error {
		return each(families, name, "source", func(label string, v uint64) {
			c := s.Sources[label]
			set(&c, v)
			s.Sources[label] = c
		})
	}
	for _, err := range []error{
		ring("ringwatch_ring_records_total", func(c *Counts, v uint64) { c.Delivered = v }),
		ring("ringwatch_ring_lost_records_total", func(c *Counts, v uint64) { c.Lost = v }),
		ring("ringwatch_ring_attempted_records_total", func(c *Counts, v uint64) { c.Attempted = v }),
		ring("ringwatch_ring_sequence_gaps_total", func(c *Counts, v uint64) { c.Gaps = v }),
		ring("ringwatch_ring_invalid_records_total", func(c *Counts, v uint64) { c.Invalid = v }),
		each(families, "ringwatch_ring_pending_bytes", "ring", func(label string, v uint64) { s.Pending[label] = v }),
		source("ringwatch_source_events_total", func(c *Counts, v uint64) { c.Delivered = v }),
		source("ringwatch_source_lost_records_total", func(c *Counts, v uint64) { c.Lost = v }),
		source("ringwatch_source_attempted_records_total", func(c *Counts, v uint64) { c.Attempted = v }),
		source("ringwatch_source_sequence_gaps_total", func(c *Counts, v uint64) { c.Gaps = v }),
		source("ringwatch_source_skipped_events_total", func(c *Counts, v uint64) { c.Skipped = v }),
		each(families, "go_goroutines", "", func(_ string, v uint64) { s.Goroutines = int(v) }),
	} {
		if err != nil {
			return Scrape{}, err
		}
	}
	return s, nil
}

// each calls f with the value of every sample of the family name and its
// label's value. A family that is missing is an error: every metric exists
// from the first scrape.
func each(families map[string]*dto.MetricFamily, name, label string, f func(string, uint64)) error {
	fam, ok := families[name]
	if !ok || len(fam.Metric) == 0 {
		return fmt.Errorf("metric %s not served", name)
	}
	for _, m := range fam.Metric {
		var v float64
		switch {
		case m.Counter != nil:
			v = m.Counter.GetValue()
		case m.Gauge != nil:
			v = m.Gauge.GetValue()
		default:
			return fmt.Errorf("metric %s is neither counter nor gauge", name)
		}
		var lv string
		for _, l := range m.Label {
			if l.GetName() == label {
				lv = l.GetValue()
			}
		}
		if label != "" && lv == "" {
			return fmt.Errorf("metric %s has a sample without label %s", name, label)
		}
		f(lv, uint64(v))
	}
	return nil
}

// Summary is what a run prints on stderr when it stops.
type Summary struct {
	Rings   map[string]Counts
	Sources map[string]Counts
}

var (
	ringLine = regexp.MustCompile(`^ring (\S+) \(\S+\): (\d+) records, \d+ bytes, (\d+) lost, (\d+) attempted, (\d+) sequence gaps, (\d+) invalid`)
	// The skipped and out-of-order parts are printed only when not zero.
	sourceLine = regexp.MustCompile(`^source (\S+): (\d+) records, \d+ bytes, (\d+) lost, (\d+) attempted, (\d+) sequence gaps, \d+ missed(?:, (\d+) skipped \(paused or sampled out\))?(?:, (\d+) out of order)?$`)
)

// ParseSummary finds the exit summary's ring and source lines in a run's
// stderr. It fails if there is no summary.
func ParseSummary(stderr string) (Summary, error) {
	s := Summary{Rings: map[string]Counts{}, Sources: map[string]Counts{}}
	_, after, ok := strings.Cut(stderr, "ringwatch: stopped; carried:\n")
	if !ok {
		return Summary{}, fmt.Errorf("no exit summary in the run's stderr")
	}
	for _, line := range strings.Split(after, "\n") {
		if m := ringLine.FindStringSubmatch(line); m != nil {
			s.Rings[m[1]] = Counts{Delivered: num(m[2]), Lost: num(m[3]), Attempted: num(m[4]), Gaps: num(m[5]), Invalid: num(m[6])}
		} else if m := sourceLine.FindStringSubmatch(line); m != nil {
			s.Sources[m[1]] = Counts{Delivered: num(m[2]), Lost: num(m[3]), Attempted: num(m[4]), Gaps: num(m[5]),
				Skipped: num(m[6]), Invalid: num(m[7])}
		} else if strings.HasPrefix(line, "ring ") || strings.HasPrefix(line, "source ") {
			return Summary{}, fmt.Errorf("summary line not understood: %q", line)
		}
	}
	if len(s.Rings) == 0 || len(s.Sources) == 0 {
		return Summary{}, fmt.Errorf("exit summary has %d ring and %d source lines", len(s.Rings), len(s.Sources))
	}
	return s, nil
}

func num(s string) uint64 {
	n, _ := strconv.ParseUint(s, 10, 64) // "" (an absent part) is 0
	return n
}

// CheckRunning lists what is wrong with a scrape taken while the run
// carries records, given the one before it (zero for the first): every
// counter only grows, and per ring and per source delivered + lost never
// exceeds attempted and gaps never exceed lost. (Records still in a ring
// are attempted but not yet delivered, and the gaps of records lost after
// a CPU's last delivered one are found with its next; the collector reads
// the consumer's counts before the kernel's, so both bounds hold at any
// instant.)
func CheckRunning(prev, s Scrape) []string {
	var bad []string
	check := func(kind string, byName, before map[string]Counts) {
		for _, name := range sortedKeys(byName) {
			c, p := byName[name], before[name]
			if c.Delivered+c.Lost > c.Attempted {
				bad = append(bad, fmt.Sprintf("%s %s: delivered %d + lost %d > attempted %d", kind, name, c.Delivered, c.Lost, c.Attempted))
			}
			if c.Gaps > c.Lost {
				bad = append(bad, fmt.Sprintf("%s %s: gaps %d > lost %d", kind, name, c.Gaps, c.Lost))
			}
			if c.Invalid != 0 {
				bad = append(bad, fmt.Sprintf("%s %s: %d invalid records", kind, name, c.Invalid))
			}
			if c.Attempted < p.Attempted || c.Delivered < p.Delivered || c.Lost < p.Lost || c.Gaps < p.Gaps || c.Skipped < p.Skipped {
				bad = append(bad, fmt.Sprintf("%s %s: a counter went down: %+v after %+v", kind, name, c, p))
			}
		}
	}
	check("ring", s.Rings, prev.Rings)
	check("source", s.Sources, prev.Sources)
	return bad
}

// CheckQuiet lists what is wrong with a scrape taken once nothing is being
// recorded and the rings are drained: then delivered + lost = attempted
// exactly, per ring and per source, and the rings' sums are the sources'.
// Gaps may still trail losses (see CheckRunning).
func CheckQuiet(s Scrape) []string {
	var bad []string
	for kind, byName := range map[string]map[string]Counts{"ring": s.Rings, "source": s.Sources} {
		for _, name := range sortedKeys(byName) {
			if c := byName[name]; c.Delivered+c.Lost != c.Attempted {
				bad = append(bad, fmt.Sprintf("%s %s, drained: delivered %d + lost %d != attempted %d", kind, name, c.Delivered, c.Lost, c.Attempted))
			}
		}
	}
	return append(bad, checkSums(s.Rings, s.Sources, false)...)
}

// CheckFinal lists what is wrong with a run's exit summary: per ring and
// per source, delivered + lost = attempted and gaps = lost exactly, no
// invalid or out-of-order record, and the rings' sums are the sources'.
func CheckFinal(s Summary) []string {
	var bad []string
	for kind, byName := range map[string]map[string]Counts{"ring": s.Rings, "source": s.Sources} {
		for _, name := range sortedKeys(byName) {
			c := byName[name]
			if c.Delivered+c.Lost != c.Attempted {
				bad = append(bad, fmt.Sprintf("%s %s: delivered %d + lost %d != attempted %d", kind, name, c.Delivered, c.Lost, c.Attempted))
			}
			if c.Gaps != c.Lost {
				bad = append(bad, fmt.Sprintf("%s %s: gaps %d != lost %d", kind, name, c.Gaps, c.Lost))
			}
			if c.Invalid != 0 {
				bad = append(bad, fmt.Sprintf("%s %s: %d invalid or out-of-order records", kind, name, c.Invalid))
			}
		}
	}
	return append(bad, checkSums(s.Rings, s.Sources, true)...)
}

// checkSums compares the rings' totals with the sources'.
func checkSums(rings, sources map[string]Counts, withGaps bool) []string {
	var r, s Counts
	for _, c := range rings {
		r.Attempted, r.Delivered, r.Lost, r.Gaps = r.Attempted+c.Attempted, r.Delivered+c.Delivered, r.Lost+c.Lost, r.Gaps+c.Gaps
	}
	for _, c := range sources {
		s.Attempted, s.Delivered, s.Lost, s.Gaps = s.Attempted+c.Attempted, s.Delivered+c.Delivered, s.Lost+c.Lost, s.Gaps+c.Gaps
	}
	if !withGaps {
		r.Gaps, s.Gaps = 0, 0
	}
	if r.Attempted != s.Attempted || r.Delivered != s.Delivered || r.Lost != s.Lost || r.Gaps != s.Gaps {
		return []string{fmt.Sprintf("rings sum to %+v, sources to %+v", r, s)}
	}
	return nil
}

// Total is the sum over rings or sources.
func Total(byName map[string]Counts) Counts {
	var t Counts
	for _, c := range byName {
		t.Attempted += c.Attempted
		t.Delivered += c.Delivered
		t.Lost += c.Lost
		t.Gaps += c.Gaps
		t.Skipped += c.Skipped
		t.Invalid += c.Invalid
	}
	return t
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
