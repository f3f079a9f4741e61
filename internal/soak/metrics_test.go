package soak

import (
	"strings"
	"testing"
)

const scrapeText = `# TYPE go_goroutines gauge
go_goroutines 13
# TYPE ringwatch_ring_records_total counter
ringwatch_ring_records_total{ring="cpu0",transport="perfbuf"} 90
ringwatch_ring_records_total{ring="cpu1",transport="perfbuf"} 10
# TYPE ringwatch_ring_lost_records_total counter
ringwatch_ring_lost_records_total{ring="cpu0",transport="perfbuf"} 5
ringwatch_ring_lost_records_total{ring="cpu1",transport="perfbuf"} 0
# TYPE ringwatch_ring_attempted_records_total counter
ringwatch_ring_attempted_records_total{ring="cpu0",transport="perfbuf"} 97
ringwatch_ring_attempted_records_total{ring="cpu1",transport="perfbuf"} 10
# TYPE ringwatch_ring_sequence_gaps_total counter
ringwatch_ring_sequence_gaps_total{ring="cpu0",transport="perfbuf"} 4
ringwatch_ring_sequence_gaps_total{ring="cpu1",transport="perfbuf"} 0
# TYPE ringwatch_ring_invalid_records_total counter
ringwatch_ring_invalid_records_total{ring="cpu0",transport="perfbuf"} 0
ringwatch_ring_invalid_records_total{ring="cpu1",transport="perfbuf"} 0
# TYPE ringwatch_ring_pending_bytes gauge
ringwatch_ring_pending_bytes{ring="cpu0"} 96
ringwatch_ring_pending_bytes{ring="cpu1"} 0
# TYPE ringwatch_source_events_total counter
ringwatch_source_events_total{source="exec"} 3
ringwatch_source_events_total{source="syscalls"} 97
# TYPE ringwatch_source_lost_records_total counter
ringwatch_source_lost_records_total{source="exec"} 0
ringwatch_source_lost_records_total{source="syscalls"} 5
# TYPE ringwatch_source_attempted_records_total counter
ringwatch_source_attempted_records_total{source="exec"} 3
ringwatch_source_attempted_records_total{source="syscalls"} 104
# TYPE ringwatch_source_sequence_gaps_total counter
ringwatch_source_sequence_gaps_total{source="exec"} 0
ringwatch_source_sequence_gaps_total{source="syscalls"} 4
# TYPE ringwatch_source_skipped_events_total counter
ringwatch_source_skipped_events_total{source="exec"} 1
ringwatch_source_skipped_events_total{source="syscalls"} 700
`

func TestParseScrape(t *testing.T) {
	s, err := ParseScrape(strings.NewReader(scrapeText))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Rings["cpu0"], (Counts{Attempted: 97, Delivered: 90, Lost: 5, Gaps: 4}); got != want {
		t.Errorf("ring cpu0: %+v, want %+v", got, want)
	}
	if got, want := s.Sources["syscalls"], (Counts{Attempted: 104, Delivered: 97, Lost: 5, Gaps: 4, Skipped: 700}); got != want {
		t.Errorf("source syscalls: %+v, want %+v", got, want)
	}
	if s.Pending["cpu0"] != 96 || s.Goroutines != 13 {
		t.Errorf("pending %v, goroutines %d", s.Pending, s.Goroutines)
	}
	// Records still in a ring, and gaps not yet found: a sound running
	// scrape, but not a drained one.
	if bad := CheckRunning(Scrape{}, s); len(bad) != 0 {
		t.Errorf("CheckRunning: %v", bad)
	}
	if bad := CheckQuiet(s); len(bad) != 2 {
		t.Errorf("CheckQuiet found %d problems, want 2 (ring cpu0 and source syscalls): %v", len(bad), bad)
	}

	missing := strings.ReplaceAll(scrapeText, "ringwatch_source_attempted_records_total", "other_total")
	if _, err := ParseScrape(strings.NewReader(missing)); err == nil || !strings.Contains(err.Error(), "attempted") {
		t.Errorf("a scrape without attempted counts parsed: %v", err)
	}
}

func TestCheckRunning(t *testing.T) {
	prev := Scrape{Rings: map[string]Counts{"r": {Attempted: 10, Delivered: 8, Lost: 1, Gaps: 1}}}
	for _, tc := range []struct {
		name string
		c    Counts
		want string
	}{
		{"sound", Counts{Attempted: 12, Delivered: 9, Lost: 2, Gaps: 1}, ""},
		{"more delivered than attempted", Counts{Attempted: 12, Delivered: 11, Lost: 2, Gaps: 1}, "> attempted"},
		{"more gaps than lost", Counts{Attempted: 12, Delivered: 9, Lost: 2, Gaps: 3}, "gaps 3 > lost 2"},
		{"counter went down", Counts{Attempted: 12, Delivered: 7, Lost: 2, Gaps: 1}, "went down"},
		{"invalid record", Counts{Attempted: 12, Delivered: 9, Lost: 2, Gaps: 1, Invalid: 1}, "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Join(CheckRunning(prev, Scrape{Rings: map[string]Counts{"r": tc.c}}), "; ")
			if tc.want == "" && bad != "" || !strings.Contains(bad, tc.want) {
				t.Errorf("CheckRunning: %q, want %q", bad, tc.want)
			}
		})
	}
}

const summaryText = `ringwatch dev: carrying exec,syscalls over spsc, 2 rings
ringwatch: stopped; carried:
ring cpu0 (percpu-ringbuf): 90 records, 3600 bytes, 5 lost, 95 attempted, 5 sequence gaps, 0 invalid, 7 batches, 3 wakeups
ring cpu1 (percpu-ringbuf): 10 records, 400 bytes, 0 lost, 10 attempted, 0 sequence gaps, 0 invalid, 2 batches, 2 wakeups
consumer 0 (cpu0,cpu1): 0.010s busy, woken 5 times
source exec: 3 records, 900 bytes, 0 lost, 3 attempted, 0 sequence gaps, 0 missed, 1 skipped (paused or sampled out)
source syscalls: 97 records, 3100 bytes, 5 lost, 102 attempted, 5 sequence gaps, 0 missed, 700 skipped (paused or sampled out)
user ring: 12 messages (ping 3, set_pids 9), 0 rejected, 0 times full
`

func TestParseSummary(t *testing.T) {
	s, err := ParseSummary(summaryText)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Sources["syscalls"], (Counts{Attempted: 102, Delivered: 97, Lost: 5, Gaps: 5, Skipped: 700}); got != want {
		t.Errorf("source syscalls: %+v, want %+v", got, want)
	}
	if bad := CheckFinal(s); len(bad) != 0 {
		t.Errorf("CheckFinal: %v", bad)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"a gap not found", "5 lost, 102 attempted, 5 sequence gaps", "5 lost, 102 attempted, 4 sequence gaps", "gaps 4 != lost 5"},
		{"a record unaccounted for", "97 records, 3100 bytes, 5 lost, 102", "97 records, 3100 bytes, 5 lost, 103", "!= attempted 103"},
		{"rings and sources disagree", "10 records, 400 bytes, 0 lost, 10 attempted", "11 records, 400 bytes, 0 lost, 11 attempted", "rings sum to"},
		{"out of order", "700 skipped (paused or sampled out)", "700 skipped (paused or sampled out), 2 out of order", "out-of-order"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSummary(strings.Replace(summaryText, tc.from, tc.to, 1))
			if err != nil {
				t.Fatal(err)
			}
			if bad := strings.Join(CheckFinal(s), "; "); !strings.Contains(bad, tc.want) {
				t.Errorf("CheckFinal: %q, want %q", bad, tc.want)
			}
		})
	}
	if _, err := ParseSummary("ringwatch: listen for metrics: address already in use\n"); err == nil {
		t.Error("stderr without a summary parsed")
	}
	if _, err := ParseSummary(strings.Replace(summaryText, "sequence gaps", "gaps", 1)); err == nil {
		t.Error("a summary line in another format parsed")
	}
}
