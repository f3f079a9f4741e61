package bench

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/cpus"
	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestRunMeasuresEveryCombination runs every scenario briefly against the
// real kernel. Run itself fails a measurement whose delivered + lost is
// not what the producer attempted; this test checks that each combination
// was measured and that its figures are those of a real measurement.
func TestRunMeasuresEveryCombination(t *testing.T) {
	testenv.RequireUserRing(t) // the roundtrip scenario; the bench producer is a syscall program, which this implies
	testenv.RequireCPUs(t, 2)
	allowed, err := cpus.Allowed()
	if err != nil {
		t.Fatal(err)
	}
	results, err := Run(context.Background(), Options{
		Scenarios:   []string{Drain, Saturation, Latency, RoundTrip},
		Transports:  []abi.TransportName{abi.Ringbuf, abi.Perfbuf, abi.SPSC},
		Sizes:       []int{64},
		Wakeups:     []consumer.Wakeup{consumer.WakeupAdaptive, consumer.WakeupBusy},
		Peers:       true,
		RingSize:    64 << 10,
		Records:     20000,
		MaxTime:     5 * time.Second,
		Rates:       []int{2000},
		Duration:    100 * time.Millisecond,
		Pings:       50,
		ProducerCPU: allowed[0],
		ConsumerCPU: allowed[1],
	})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, r := range results {
		count[r.Scenario]++
		switch r.Scenario {
		case Drain:
			// The ring is filled to what fits: nothing may be lost.
			if r.Lost != 0 || r.Delivered == 0 || r.NsPerRecord <= 0 || r.GBPerSecond <= 0 {
				t.Errorf("drain %+v", r)
			}
		case Saturation:
			if r.Attempted == 0 || r.Delivered+r.Lost != r.Attempted || r.ProducerRate <= 0 || r.DeliveredRatio <= 0 {
				t.Errorf("saturation %+v", r)
			}
		case Latency:
			// Attempted is the producer's count (the BPF program's
			// counters, or the baseline's eventfd writes), Delivered the
			// reader's (records handed over, or the eventfd counts read).
			want := uint64(2000 * 0.1)
			if r.Attempted != want || r.Delivered != want || r.P50 <= 0 || r.P99 < r.P50 || r.Max < r.P999 {
				t.Errorf("latency %+v: want %d attempted and delivered, and ordered percentiles", r, want)
			}
		case RoundTrip:
			// Attempted is the user ring writer's count, Delivered the
			// kernel control program's count of pings it answered.
			if r.Attempted != 50 || r.Delivered != 50 || r.Lost != 0 || r.P50 <= 0 {
				t.Errorf("roundtrip %+v: want 50 pings written and 50 answered", r)
			}
		}
	}
	// drain: ringwatch on 3 transports + 2 peers; saturation and latency:
	// 2 wakeups on each of the 3 transports, + the peers that apply;
	// latency adds the baseline.
	peersIn := func(scenario string) int {
		n := 0
		for _, tr := range []abi.TransportName{abi.Ringbuf, abi.Perfbuf, abi.SPSC} {
			for _, p := range peersOf[tr] {
				if p.scenarios == nil || slices.Contains(p.scenarios, scenario) {
					n++
				}
			}
		}
		return n
	}
	want := map[string]int{Drain: 3 + peersIn(Drain), Saturation: 6 + peersIn(Saturation),
		Latency: 7 + peersIn(Latency), RoundTrip: 1}
	for scenario, n := range want {
		if count[scenario] != n {
			t.Errorf("%d %s results, want %d", count[scenario], scenario, n)
		}
	}
}

// TestScaleMeasuresEveryTransport runs the scale scenario briefly: every
// record the producers attempted is delivered or counted lost (scale fails
// the measurement otherwise), with the producers and consumers asked for.
func TestScaleMeasuresEveryTransport(t *testing.T) {
	testenv.RequireSyscallProgs(t) // the bench producer is a syscall program
	testenv.RequireCPUs(t, 2)
	results, err := Run(context.Background(), Options{
		Scenarios:  []string{Scale},
		Transports: []abi.TransportName{abi.Ringbuf, abi.PercpuRingbuf, abi.Perfbuf, abi.SPSC},
		Sizes:      []int{64},
		Producers:  []int{1},
		Consumers:  2,
		RingSize:   64 << 10,
		MaxTime:    200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 4 {
		t.Fatalf("%d results, want one per transport", len(results))
	}
	for _, r := range results {
		// One ring: one consumer; a ring per CPU: the two asked for.
		want := 2
		if r.Transport == string(abi.Ringbuf) {
			want = 1
		}
		if r.Attempted == 0 || r.Delivered == 0 || r.Delivered+r.Lost != r.Attempted || r.Producers != 1 ||
			r.Consumers != want || r.ProducerRate <= 0 || r.PerProducer != r.ProducerRate {
			t.Errorf("scale %+v: want %d consumers and figures that add up", r, want)
		}
	}
}
