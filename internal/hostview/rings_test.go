package hostview

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ringwatch/ringwatch/pkg/hostrings"
)

// TestOverwriteRingIsShownAsAFlightRecorder: `rings` (table and JSON) and
// `top` show an overwrite-mode ring's mode, overwrite position and rate,
// and size it by the history it keeps rather than by a consumer pause.
func TestOverwriteRingIsShownAsAFlightRecorder(t *testing.T) {
	t0 := time.Unix(1000, 0)
	prev := hostrings.Ring{ID: 5, Name: "recorder", Kind: hostrings.RingBuf, Overwrite: true, Capacity: 4 << 20,
		Producer: 8 << 20, OverwritePos: 4 << 20, SampledAt: t0}
	cur := prev
	cur.Producer, cur.OverwritePos, cur.SampledAt = 9<<20, 5<<20, t0.Add(time.Second)
	rows := ringRows([]hostrings.Ring{prev}, []hostrings.Ring{cur}, time.Second)
	peaks := hostrings.NewPeaks(hostrings.PeakOptions{})
	peaks.Observe([]hostrings.Ring{prev})
	peaks.Observe([]hostrings.Ring{cur})
	adviseRows(rows, peaks, 100*time.Millisecond, cur.SampledAt)
	r := rows[0]
	if r.Overwritten != 1<<20 || r.History != 4*time.Second || r.Rates.Stalled || !r.HasAdvice || r.Advice.History != 4*time.Second {
		t.Fatalf("row %+v; want 1 MiB/s overwritten, 4s of history, not stalled, advice of 4s", r)
	}

	var table bytes.Buffer
	if err := writeRingsTable(&table, rows, time.Second, 100*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	line := lineWith(table.String(), "5 ")
	for _, want := range []string{"ringbuf/overwrite", "100.0% (4.0MiB)", "1.0MiB"} {
		if !strings.Contains(line, want) {
			t.Errorf("table line %q lacks %q", line, want)
		}
	}
	if want := "overwrite mode: keeps the last 4s at 1.0MiB/s; size it by the history it should keep, not by a pause (now 4.0MiB)"; !strings.Contains(table.String(), want) {
		t.Errorf("table lacks %q:\n%s", want, table.String())
	}

	var out bytes.Buffer
	if err := writeRingsJSON(&out, rows); err != nil {
		t.Fatal(err)
	}
	var js []RingJSON
	if err := json.Unmarshal(out.Bytes(), &js); err != nil {
		t.Fatal(err)
	}
	j := js[0]
	if !j.Overwrite || j.OverwritePos == nil || *j.OverwritePos != 5<<20 || j.OverwrittenBytesPerSec == nil || *j.OverwrittenBytesPerSec != 1<<20 ||
		j.HistoryS == nil || *j.HistoryS != 4 || j.HistoryAtPeakS == nil || *j.HistoryAtPeakS != 4 {
		t.Errorf("JSON %s; want overwrite true, overwrite_pos 5MiB, 1MiB/s overwritten, 4s of history now and at the peak", out.String())
	}
	if j.SecondsToFull != nil || j.ConsumerPauseS != nil || j.AdvisedCapacity != nil || j.NeededBytes != nil || j.Stalled {
		t.Errorf("JSON %s; want no time to full, pause, capacity advice or stall for a flight recorder", out.String())
	}

	top := ringLine(r)
	for _, want := range []string{"rb/overwrite", "1.0MiB", "no"} {
		if !strings.Contains(top, want) {
			t.Errorf("top line %q lacks %q", top, want)
		}
	}
	m := &topModel{rings: rows, interval: time.Second}
	if want := "overwrite position 5242880, 1.0MiB/s overwritten, 4s of history"; !strings.Contains(m.details(), want) {
		t.Errorf("top's details %q lack %q", m.details(), want)
	}
}
