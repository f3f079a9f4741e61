package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The overwritten count is taken at each scrape, and one taken while the
// producers write may be lower than the one before: the counter serves
// the most it has seen.
func TestRecorderCollectorOverwrittenNeverGoesDown(t *testing.T) {
	reads := []RecorderCounts{
		{Attempted: 100, Lost: 2, Overwritten: 10},
		{Attempted: 120, Lost: 2, Overwritten: 7}, // taken mid-write
		{Attempted: 130, Lost: 3, Overwritten: 25},
	}
	i := 0
	c := NewRecorderCollector(func() (RecorderCounts, error) { return reads[i], nil })
	for k, want := range []string{"10", "10", "25"} {
		i = k
		exp := `
# HELP ringwatch_recorder_overwritten_records_total Records the flight recorder overwrote.
# TYPE ringwatch_recorder_overwritten_records_total counter
ringwatch_recorder_overwritten_records_total ` + want + "\n"
		if err := testutil.CollectAndCompare(c, strings.NewReader(exp), "ringwatch_recorder_overwritten_records_total"); err != nil {
			t.Fatalf("scrape %d: %v", k, err)
		}
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}
