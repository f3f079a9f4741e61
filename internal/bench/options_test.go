package bench

import (
	"slices"
	"testing"
	"time"
)

// TestScenarioRules holds what each scenario runs at: latency and scale at
// the middle size, saturation at the small sizes in a quick run only, the
// quick values where none was given, and the latency records' bound.
func TestScenarioRules(t *testing.T) {
	o := Options{Sizes: []int{16, 64, 256, 1024, 4096}}
	for _, tc := range []struct {
		scenario string
		quick    bool
		want     []int
	}{
		{Latency, false, []int{256}},
		{Scale, true, []int{256}},
		{Saturation, false, o.Sizes},
		{Saturation, true, []int{16, 64}},
		{Drain, true, o.Sizes},
		{RoundTrip, false, o.Sizes},
	} {
		o.Quick = tc.quick
		if got := o.sizesFor(tc.scenario); !slices.Equal(got, tc.want) {
			t.Errorf("%s, quick %v: sizes %v, want %v", tc.scenario, tc.quick, got, tc.want)
		}
	}
	// Quick, but none of the sizes asked for is small: saturation at them all.
	if got := (Options{Sizes: []int{256, 1024}, Quick: true}).sizesFor(Saturation); !slices.Equal(got, []int{256, 1024}) {
		t.Errorf("quick saturation at large sizes only: %v", got)
	}

	o = Options{Sizes: []int{64}, Records: 5, MaxTime: time.Minute, Duration: time.Minute, Pings: 7}
	o.SetQuick(map[string]bool{"size": true, "pings": true})
	if !o.Quick || !slices.Equal(o.Sizes, []int{64}) || o.Pings != 7 || o.Records != 1<<20 ||
		o.MaxTime != time.Second || o.Duration != 300*time.Millisecond {
		t.Errorf("SetQuick with --size and --pings given: %+v", o)
	}

	o = Options{Scenarios: []string{Latency}, Rates: []int{1000, 1_000_000}, Duration: 101 * time.Second}
	if rate, n := o.LatencyOverflow(); rate != 1_000_000 || n != 101e6 {
		t.Errorf("LatencyOverflow: %d, %.0f; want 1000000, 101000000", rate, n)
	}
	o.Scenarios = []string{Saturation}
	if rate, _ := o.LatencyOverflow(); rate != 0 {
		t.Errorf("LatencyOverflow without the latency scenario: %d", rate)
	}
}
