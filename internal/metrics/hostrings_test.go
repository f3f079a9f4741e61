package metrics

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/ringwatch/ringwatch/internal/progstats"
	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/internal/testenv/ringchild"
	"github.com/ringwatch/ringwatch/pkg/hostrings"
)

// fixedRings is a census that always says the same.
type fixedRings []hostrings.Ring

func (f fixedRings) Sample(time.Time) []hostrings.Ring { return f }

// TestHostRingCollectorOnPlainRings checks every metric of the collector
// against rings given by hand, and that it lints clean.
func TestHostRingCollectorOnPlainRings(t *testing.T) {
	rings := fixedRings{
		{ID: 7, Name: "events", Kind: hostrings.RingBuf, Capacity: 4096, Producer: 10240, Consumer: 8192, Stalled: true,
			Programs: []hostrings.Program{{ID: 3, Name: "b"}, {ID: 2, Name: "a"}, {ID: 4, Name: "a"}},
			Owners:   []hostrings.Owner{{PID: 10, Comm: "y"}, {PID: 11, Comm: "x"}, {PID: 12, Comm: "y"}}, Ours: true},
		{ID: 9, Name: "perf", Kind: hostrings.PerfEventArray, CPUs: 2},
	}
	c := NewHostRingCollector(rings, HostRingOptions{})
	// Fills 0.5 (bucket 0.5), then 0 and 1 by hand.
	c.Observe(rings)
	empty, full := rings[0], rings[0]
	empty.Producer, full.Producer = empty.Consumer, empty.Consumer+4096
	c.Observe([]hostrings.Ring{empty})
	c.Observe([]hostrings.Ring{full})
	// All three samples at one moment: no span, so no peak and no advice
	// yet (see TestHostRingSizingOnPlainRings), only the pause it is for.
	want := `
# HELP ringwatch_host_ring_advice_pause_seconds The consumer pause the advised capacity is for.
# TYPE ringwatch_host_ring_advice_pause_seconds gauge
ringwatch_host_ring_advice_pause_seconds 0.1
# HELP ringwatch_host_ring_capacity_bytes Data size of a ring on the host, whoever loaded it.
# TYPE ringwatch_host_ring_capacity_bytes gauge
ringwatch_host_ring_capacity_bytes{map_id="7",map_name="events"} 4096
# HELP ringwatch_host_ring_consumed_bytes_total Bytes ever consumed from the ring: its consumer position.
# TYPE ringwatch_host_ring_consumed_bytes_total counter
ringwatch_host_ring_consumed_bytes_total{map_id="7",map_name="events"} 8192
# HELP ringwatch_host_ring_fill_ratio Pending bytes as a fraction of the ring's capacity, sampled between scrapes.
# TYPE ringwatch_host_ring_fill_ratio histogram
ringwatch_host_ring_fill_ratio_bucket{map_id="7",map_name="events",le="0.01"} 1
ringwatch_host_ring_fill_ratio_bucket{map_id="7",map_name="events",le="0.05"} 1
ringwatch_host_ring_fill_ratio_bucket{map_id="7",map_name="events",le="0.1"} 1
ringwatch_host_ring_fill_ratio_bucket{map_id="7",map_name="events",le="0.25"} 1
ringwatch_host_ring_fill_ratio_bucket{map_id="7",map_name="events",le="0.5"} 2
ringwatch_host_ring_fill_ratio_bucket{map_id="7",map_name="events",le="0.75"} 2
ringwatch_host_ring_fill_ratio_bucket{map_id="7",map_name="events",le="0.9"} 2
ringwatch_host_ring_fill_ratio_bucket{map_id="7",map_name="events",le="0.99"} 2
ringwatch_host_ring_fill_ratio_bucket{map_id="7",map_name="events",le="1"} 3
ringwatch_host_ring_fill_ratio_bucket{map_id="7",map_name="events",le="+Inf"} 3
ringwatch_host_ring_fill_ratio_sum{map_id="7",map_name="events"} 1.5
ringwatch_host_ring_fill_ratio_count{map_id="7",map_name="events"} 3
# HELP ringwatch_host_ring_info Always 1: a ring on the host, with its kind, mode, owners and programs.
# TYPE ringwatch_host_ring_info gauge
ringwatch_host_ring_info{map_id="7",map_name="events",mode="normal",ours="true",owner="x,y",programs="a,b",type="ringbuf"} 1
ringwatch_host_ring_info{map_id="9",map_name="perf",mode="normal",ours="false",owner="",programs="",type="perf_event_array"} 1
# HELP ringwatch_host_ring_pending_bytes Bytes produced into the ring and not yet consumed.
# TYPE ringwatch_host_ring_pending_bytes gauge
ringwatch_host_ring_pending_bytes{map_id="7",map_name="events"} 2048
# HELP ringwatch_host_ring_produced_bytes_total Bytes ever produced into the ring: its producer position.
# TYPE ringwatch_host_ring_produced_bytes_total counter
ringwatch_host_ring_produced_bytes_total{map_id="7",map_name="events"} 10240
# HELP ringwatch_host_ring_stalled 1 while bytes are pending and the consumer position stands still.
# TYPE ringwatch_host_ring_stalled gauge
ringwatch_host_ring_stalled{map_id="7",map_name="events"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
	// A ring that leaves the census takes its histogram with it.
	c.Observe(nil)
	if len(c.fill) != 0 {
		t.Errorf("histograms of rings gone are kept: %v", c.fill)
	}
}

// TestHostRingOverwriteModeOnPlainRings: an overwrite-mode ring shows its
// mode, its overwrite position as a counter and, at its peak, the history
// it keeps instead of a time to full and an advised capacity; it never
// stalls, its consumer never reading.
func TestHostRingOverwriteModeOnPlainRings(t *testing.T) {
	t0 := time.Unix(1000, 0)
	rings := fixedRings{{ID: 5, Name: "recorder", Kind: hostrings.RingBuf, Overwrite: true, Capacity: 4 << 20,
		Producer: 8 << 20, OverwritePos: 4 << 20}}
	c := NewHostRingCollector(rings, HostRingOptions{})
	c.now = func() time.Time { return t0.Add(time.Second) }
	rings[0].SampledAt = t0
	c.Observe(rings)
	rings[0].SampledAt = t0.Add(time.Second)
	rings[0].Producer += 1 << 20 // 1 MiB/s: 4 s of history
	rings[0].OverwritePos += 1 << 20
	c.Observe(rings)
	want := `
# HELP ringwatch_host_ring_history_at_peak_seconds How far back an overwrite-mode ring reaches at its peak rate.
# TYPE ringwatch_host_ring_history_at_peak_seconds gauge
ringwatch_host_ring_history_at_peak_seconds{map_id="5",map_name="recorder"} 4
# HELP ringwatch_host_ring_info Always 1: a ring on the host, with its kind, mode, owners and programs.
# TYPE ringwatch_host_ring_info gauge
ringwatch_host_ring_info{map_id="5",map_name="recorder",mode="overwrite",ours="false",owner="",programs="",type="ringbuf"} 1
# HELP ringwatch_host_ring_overwritten_bytes_total Bytes an overwrite-mode ring ever overwrote: its overwrite position.
# TYPE ringwatch_host_ring_overwritten_bytes_total counter
ringwatch_host_ring_overwritten_bytes_total{map_id="5",map_name="recorder"} 5.24288e+06
# HELP ringwatch_host_ring_pending_bytes Bytes produced into the ring and not yet consumed.
# TYPE ringwatch_host_ring_pending_bytes gauge
ringwatch_host_ring_pending_bytes{map_id="5",map_name="recorder"} 4.194304e+06
# HELP ringwatch_host_ring_stalled 1 while bytes are pending and the consumer position stands still.
# TYPE ringwatch_host_ring_stalled gauge
ringwatch_host_ring_stalled{map_id="5",map_name="recorder"} 0
`
	names := []string{"ringwatch_host_ring_history_at_peak_seconds", "ringwatch_host_ring_info",
		"ringwatch_host_ring_overwritten_bytes_total", "ringwatch_host_ring_pending_bytes", "ringwatch_host_ring_stalled",
		"ringwatch_host_ring_time_to_full_at_peak_seconds", "ringwatch_host_ring_advised_capacity_bytes"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

// TestHostRingSizingOnPlainRings feeds the collector samples by hand, on a
// clock of its own: a ring that bursts at 340 MB/s, one that is idle, one
// that no ring could hold a pause of, and a perf event array. The advice
// of each is served; a minute after the last sample, the peak has left
// the window and the advice with it.
func TestHostRingSizingOnPlainRings(t *testing.T) {
	t0 := time.Unix(1000, 0)
	rings := fixedRings{
		{ID: 1, Name: "bursty", Kind: hostrings.RingBuf, Capacity: 4 << 20},
		{ID: 2, Name: "idle", Kind: hostrings.RingBuf, Capacity: 64 << 10, Producer: 3200},
		{ID: 3, Name: "huge", Kind: hostrings.UserRingBuf, Capacity: 1 << 31},
		{ID: 4, Name: "perf", Kind: hostrings.PerfEventArray, CPUs: 2},
	}
	c := NewHostRingCollector(rings, HostRingOptions{})
	clock := t0
	c.now = func() time.Time { return clock }
	sample := func(at time.Duration, bursty, huge uint64) {
		for i := range rings {
			rings[i].SampledAt = t0.Add(at)
		}
		rings[0].Producer += bursty
		rings[0].Consumer += bursty // the consumer keeps up: nothing pending
		rings[2].Producer += huge
		rings[2].Consumer += huge
		c.Observe(rings)
	}
	sample(0, 0, 0)
	sample(10*time.Millisecond, 3_400_000, 300_000_000) // 340 MB/s, 30 GB/s
	sample(20*time.Millisecond, 10_000, 1000)
	clock = t0.Add(30 * time.Millisecond)

	families := gather(t, c)
	page := float64(max(os.Getpagesize(), 4096))
	for _, tc := range []struct {
		id                     ebpf.MapID
		rate, toFull, capacity float64
	}{
		{1, 340e6, float64(4<<20) / 340e6, 64 << 20},  // 34 MB in 100 ms: 64 MiB
		{2, 0, math.Inf(1), page},                     // the smallest ring, for 3200 pending
		{3, 30e9, float64(1<<31) / 30e9, math.Inf(1)}, // 3 GB in 100 ms: no ring holds it
	} {
		for name, want := range map[string]float64{
			"ringwatch_host_ring_peak_produced_bytes_per_second": tc.rate,
			"ringwatch_host_ring_time_to_full_at_peak_seconds":   tc.toFull,
			"ringwatch_host_ring_advised_capacity_bytes":         tc.capacity,
		} {
			got, _, ok := hostSeries(families, name, tc.id)
			if !ok || !(got == want || math.Abs(got-want) <= 1e-6*math.Abs(want)) {
				t.Errorf("map %d: %s %v (served: %v), want %v", tc.id, name, got, ok, want)
			}
		}
	}
	if _, _, ok := hostSeries(families, "ringwatch_host_ring_advised_capacity_bytes", 4); ok {
		t.Error("advice served for a perf event array")
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}

	// A minute on, with no sample since: no peak in the window.
	clock = t0.Add(time.Minute + time.Second)
	families = gather(t, c)
	if got, _, ok := hostSeries(families, "ringwatch_host_ring_peak_produced_bytes_per_second", 1); ok {
		t.Errorf("a peak (%v) served a minute after the last sample", got)
	}
	if _, ok := families["ringwatch_host_ring_advice_pause_seconds"]; !ok {
		t.Error("the pause is not served")
	}
}

// hostSeries returns the value (a histogram's sample count) of metric name
// for map id, and whether it was there; info also returns the info
// metric's labels.
func hostSeries(families map[string]*dto.MetricFamily, name string, id ebpf.MapID) (float64, map[string]string, bool) {
	f, ok := families[name]
	if !ok {
		return 0, nil, false
	}
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["map_id"] != strconv.FormatUint(uint64(id), 10) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), labels, true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), labels, true
		case m.Histogram != nil:
			// The fill of every sample: check each fell at or below 0.05.
			for _, b := range m.Histogram.Bucket {
				if b.GetUpperBound() == 0.05 && b.GetCumulativeCount() != m.Histogram.GetSampleCount() {
					return -1, labels, true
				}
			}
			return float64(m.Histogram.GetSampleCount()), labels, true
		}
	}
	return 0, nil, false
}

// TestHostRingMetricsOfAnotherProcess runs the census's loop and the
// collector over a child's ring: what it wrote, its owner and program, the
// fill histogram, stalled, and the ring leaving the metrics once the child
// exits. promtool checks the exposition.
func TestHostRingMetricsOfAnotherProcess(t *testing.T) {
	testenv.RequireBPF(t)
	child := ringchild.Start(t, ringchild.Ring)
	const records = 100
	child.Do(t, fmt.Sprintf("write %d", records))
	const walkEvery, stallAfter = 500 * time.Millisecond, time.Second
	census, err := hostrings.Open(hostrings.Options{WalkEvery: walkEvery, StallAfter: stallAfter})
	if err != nil {
		t.Fatal(err)
	}
	defer census.Close()
	c := NewHostRingCollector(census, HostRingOptions{Pause: 250 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		census.Run(ctx, c.Observe, func(err error) { t.Error(err) })
	}()
	defer wg.Wait()
	defer cancel()
	time.Sleep(200 * time.Millisecond) // some 20 samples of the fill

	families := gather(t, c)
	written := float64(records * ringchild.RecordBytes)
	for name, want := range map[string]float64{
		"ringwatch_host_ring_capacity_bytes":       ringchild.RingSize,
		"ringwatch_host_ring_produced_bytes_total": written,
		"ringwatch_host_ring_consumed_bytes_total": 0,
		"ringwatch_host_ring_pending_bytes":        written,
		"ringwatch_host_ring_stalled":              0,
	} {
		if got, _, ok := hostSeries(families, name, child.MapID); !ok || got != want {
			t.Errorf("%s: %v (served: %v), want %v", name, got, ok, want)
		}
	}
	// Nothing written since the census opened: a peak of 0, never full,
	// and the advice is the smallest ring, for the 3200 bytes pending.
	for name, want := range map[string]float64{
		"ringwatch_host_ring_peak_produced_bytes_per_second": 0,
		"ringwatch_host_ring_time_to_full_at_peak_seconds":   math.Inf(1),
		"ringwatch_host_ring_advised_capacity_bytes":         float64(max(os.Getpagesize(), 4096)),
	} {
		if got, _, ok := hostSeries(families, name, child.MapID); !ok || got != want {
			t.Errorf("%s: %v (served: %v), want %v", name, got, ok, want)
		}
	}
	if got := families["ringwatch_host_ring_advice_pause_seconds"].GetMetric()[0].GetGauge().GetValue(); got != 0.25 {
		t.Errorf("ringwatch_host_ring_advice_pause_seconds %v, want 0.25", got)
	}
	// 3200 of 65536 bytes: every sample is 0.049 full.
	if n, _, ok := hostSeries(families, "ringwatch_host_ring_fill_ratio", child.MapID); !ok || n < 1 {
		t.Errorf("fill ratio histogram: %v samples (served: %v), want some, all at or below 0.05", n, ok)
	}
	_, info, _ := hostSeries(families, "ringwatch_host_ring_info", child.MapID)
	if info["map_name"] != ringchild.RingName || info["type"] != "ringbuf" || info["owner"] != child.Comm() ||
		info["programs"] != ringchild.ProgName || info["ours"] != "false" {
		t.Errorf("info labels %v; want name %s, owner %s, programs %s, not ours", info, ringchild.RingName, child.Comm(), ringchild.ProgName)
	}

	// Unread for longer than the threshold: stalled.
	deadline := time.Now().Add(stallAfter + 3*time.Second)
	for {
		if v, _, _ := hostSeries(gather(t, c), "ringwatch_host_ring_stalled", child.MapID); v == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ringwatch_host_ring_stalled did not turn 1")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The exposition is valid for Prometheus itself.
	if promtool, err := exec.LookPath("promtool"); err == nil {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(c)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var text bytes.Buffer
		for _, mf := range mfs {
			if _, err := expfmt.MetricFamilyToText(&text, mf); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = &text
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	} else {
		t.Log("promtool not installed: only promlint checked the metrics")
	}

	// The child exits: its ring leaves the metrics within one walk (and
	// the RCU grace period after which the kernel frees a program's maps).
	exited := time.Now()
	child.Exit(t)
	for {
		if _, _, ok := hostSeries(gather(t, c), "ringwatch_host_ring_info", child.MapID); !ok {
			break
		}
		if time.Since(exited) > walkEvery+3*time.Second {
			t.Fatalf("the child's ring is still in the metrics %v after it exited", time.Since(exited))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the ring left the metrics %v after the child exited (walk period %v)", time.Since(exited).Round(time.Millisecond), walkEvery)
	if got, _, ok := hostSeries(gather(t, c), "ringwatch_host_ring_pending_bytes", child.MapID); ok {
		t.Errorf("pending bytes still served for the gone ring: %v", got)
	}
}

// TestProgramCollector lists a program that ran K times with statistics on.
func TestProgramCollector(t *testing.T) {
	testenv.RequireBPF(t)
	child := ringchild.Start(t, ringchild.Ring)
	stats, err := progstats.Enable()
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	const k = 500
	child.Do(t, fmt.Sprintf("write %d", k))
	families := gather(t, NewProgramCollector())
	id := strconv.FormatUint(uint64(child.ProgID), 10)
	labels := map[string]string{"prog_id": id, "prog_name": ringchild.ProgName, "prog_type": ebpf.SocketFilter.String()}
	if got := value(t, families, "ringwatch_bpf_program_runs_total", labels); got != k {
		t.Errorf("runs: %d, want %d", got, k)
	}
	labels["map_ids"] = strconv.FormatUint(uint64(child.MapID), 10)
	if got := value(t, families, "ringwatch_bpf_program_info", labels); got != 1 {
		t.Errorf("info with labels %v: %d, want 1", labels, got)
	}
	if problems, err := testutil.CollectAndLint(NewProgramCollector()); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

// TestHostMetricsInReadme holds the metric table of docs/metrics.md (README's
// metrics reference) to the host ring and
// program collectors: every metric they describe has a row.
func TestHostMetricsInReadme(t *testing.T) {
	readme, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	descs := make(chan *prometheus.Desc, 32)
	NewHostRingCollector(fixedRings{}, HostRingOptions{}).Describe(descs)
	NewProgramCollector().Describe(descs)
	close(descs)
	name := regexp.MustCompile(`fqName: "([^"]+)"`)
	n := 0
	for d := range descs {
		m := name.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no name in %v", d)
		}
		n++
		if !strings.Contains(string(readme), "\n| `"+m[1]+"` |") {
			t.Errorf("docs/metrics.md's metric table has no row for %s", m[1])
		}
	}
	if n != 16 {
		t.Errorf("%d metrics described, want 16", n)
	}
}
