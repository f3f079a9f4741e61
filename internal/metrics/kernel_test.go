package metrics

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/accounting"
	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/internal/session"
	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/internal/testenv/ringchild"
	tpt "github.com/ringwatch/ringwatch/internal/transport"
)

func TestMain(m *testing.M) { ringchild.Main(m) }

// pipeline is the run command's wiring: a session (producers, a consumer
// of their rings, the tracker) and the collector over it.
type pipeline struct {
	*session.Session
	tracker   *accounting.Tracker
	collector *Collector
}

func openPipeline(t *testing.T, sources []string, opts session.Options) *pipeline {
	t.Helper()
	var err error
	if opts.Sources, err = loader.ParseSources(sources); err != nil {
		t.Fatal(err)
	}
	s, err := session.Open(opts)
	if err != nil {
		t.Fatalf("session.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close session: %v", err)
		}
	})
	return &pipeline{s, s.Tracker(), NewCollector("test", string(s.Transport().Name()), s.RingNames(),
		s.Producers().Sources(), s, s.Tracker())}
}

func (pl *pipeline) drain(t *testing.T) {
	t.Helper()
	if err := pl.Drain(nil); err != nil {
		t.Fatalf("Drain: %v", err)
	}
}

// TestOverloadAccountsForEveryRecord floods a 4-page ring while nobody
// reads it, five times over, draining in between, so records are lost in
// the middle of the sequence as well as at its end. Every attempt must be
// either delivered or counted lost by the kernel, and the gaps the tracker
// finds in the sequence numbers must be exactly the kernel's losses.
func TestOverloadAccountsForEveryRecord(t *testing.T) {
	for _, tc := range []struct {
		transport              abi.TransportName
		cpusPerRing, consumers int
	}{
		{abi.Ringbuf, 0, 0},
		{abi.PercpuRingbuf, 0, 0},
		{abi.PercpuRingbuf, 2, 0},
		{abi.Perfbuf, 0, 0},
		{abi.SPSC, 0, 0},
		// A consumer per ring: the books add up per consumer too.
		{abi.PercpuRingbuf, 0, runtime.NumCPU()},
		{abi.Perfbuf, 0, runtime.NumCPU()},
		{abi.SPSC, 0, runtime.NumCPU()},
	} {
		name := string(tc.transport)
		if tc.cpusPerRing > 1 {
			name += "-grouped"
		}
		if tc.consumers > 1 {
			name += "-consumer-per-ring"
		}
		t.Run(name, func(t *testing.T) { testOverload(t, tc.transport, tc.cpusPerRing, tc.consumers) })
	}
}

func testOverload(t *testing.T, transport abi.TransportName, cpusPerRing, consumers int) {
	testenv.RequireBPF(t)
	child := testenv.StartSyscallChild(t)
	pl := openPipeline(t, []string{abi.SourceSyscalls}, session.Options{
		Transport:   transport,
		Rings:       tpt.Options{CPUsPerRing: cpusPerRing, RingSize: 4 * os.Getpagesize(), Consumers: consumers},
		SyscallPIDs: []uint32{uint32(child.Pid)},
	})

	for range 5 {
		child.Getpid(t, 20_000) // about 20 times what the ring holds
		pl.drain(t)
	}
	streamGaps := pl.tracker.Source(abi.SourceSyscalls).Gaps
	// Finish detaches, drains, reads the counters and closes the tracker's
	// books with them.
	counters, err := pl.Finish(nil)
	if err != nil {
		t.Fatal(err)
	}

	k := counters[0]
	var delivered, kernelLost, ringLost, ringGaps uint64
	for _, st := range pl.Stats() {
		delivered += st.Records
		kernelLost += st.KernelLost
	}
	for _, r := range pl.tracker.Rings() {
		ringGaps += r.Gaps
	}
	families := gather(t, pl.collector)
	for _, name := range pl.RingNames() {
		ringLost += value(t, families, "ringwatch_ring_lost_records_total",
			map[string]string{"ring": name, "transport": string(transport)})
	}
	tally := pl.tracker.Source(abi.SourceSyscalls)
	t.Logf("attempted %d, delivered %d, lost %d, gaps %d (%d found mid-stream)", k.Attempts, delivered, k.Lost, tally.Gaps, streamGaps)
	if k.Lost == 0 || streamGaps == 0 {
		t.Fatalf("the flood lost nothing mid-stream (lost %d, gaps %d): the test proves nothing", k.Lost, streamGaps)
	}
	if delivered+k.Lost != k.Attempts {
		t.Errorf("delivered %d + lost %d = %d, attempted %d", delivered, k.Lost, delivered+k.Lost, k.Attempts)
	}
	if tally.Gaps != k.Lost {
		t.Errorf("sequence gaps %d, kernel-counted losses %d", tally.Gaps, k.Lost)
	}
	if tally.Records != delivered || tally.Reordered != 0 {
		t.Errorf("tracker saw %d records (%d out of order), consumer delivered %d", tally.Records, tally.Reordered, delivered)
	}
	// Per ring, summed: the losses are put on the rings they happened on.
	if ringLost != k.Lost || ringGaps != k.Lost {
		t.Errorf("rings: %d lost, %d gaps; source lost %d", ringLost, ringGaps, k.Lost)
	}
	// The attempts are shown per ring and per source, so a scrape alone
	// proves delivered + lost = attempted and gaps = lost.
	for i, name := range pl.RingNames() {
		labels := map[string]string{"ring": name, "transport": string(transport)}
		attempted := value(t, families, "ringwatch_ring_attempted_records_total", labels)
		records := value(t, families, "ringwatch_ring_records_total", labels)
		lost := value(t, families, "ringwatch_ring_lost_records_total", labels)
		if records+lost != attempted || pl.tracker.Rings()[i].Gaps != lost {
			t.Errorf("ring %s: %d records + %d lost, %d attempted, %d gaps", name, records, lost, attempted, pl.tracker.Rings()[i].Gaps)
		}
	}
	source := map[string]string{"source": abi.SourceSyscalls}
	if a, g := value(t, families, "ringwatch_source_attempted_records_total", source),
		value(t, families, "ringwatch_source_sequence_gaps_total", source); a != k.Attempts || g != tally.Gaps {
		t.Errorf("source metrics: %d attempted, %d gaps; kernel attempted %d, tracker gaps %d", a, g, k.Attempts, tally.Gaps)
	}
	// Per consumer: each consumer's rings' gaps are exactly the losses the
	// producers counted on those rings.
	rings := pl.RingNames()
	tallies := pl.tracker.Rings()
	for c, cs := range pl.ConsumerStats() {
		var lost, gaps uint64
		for _, r := range cs.Rings {
			lost += value(t, families, "ringwatch_ring_lost_records_total",
				map[string]string{"ring": rings[r], "transport": string(transport)})
			gaps += tallies[r].Gaps
		}
		if lost != gaps {
			t.Errorf("consumer %d (rings %v): %d lost, %d gaps", c, cs.Rings, lost, gaps)
		}
	}
	if consumers > 1 && len(pl.ConsumerStats()) < 2 {
		t.Errorf("%d consumers, asked for one per ring", len(pl.ConsumerStats()))
	}
	// A perf buffer reports its drops itself too, with the next sample that
	// fits: never more than the producers counted, and some here.
	if transport == abi.Perfbuf && (kernelLost == 0 || kernelLost > k.Lost) {
		t.Errorf("perf buffers reported %d lost, producers counted %d", kernelLost, k.Lost)
	}
	if transport != abi.Perfbuf && kernelLost != 0 {
		t.Errorf("%s reported %d kernel losses, only perf buffers report any", transport, kernelLost)
	}
}

// gather collects c's metrics as a scrape would parse them.
func gather(t *testing.T, c prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	byName := make(map[string]*dto.MetricFamily, len(families))
	for _, f := range families {
		byName[f.GetName()] = f
	}
	return byName
}

// TestMetricsOverHTTPMatchTheConsumer scrapes /metrics while records flow,
// and compares what it serves with the consumer's and producers' own counts.
func TestMetricsOverHTTPMatchTheConsumer(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	pl := openPipeline(t, []string{abi.SourceExec}, session.Options{})

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(pl.collector)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := pl.Read(ctx, nil); err != nil {
			t.Errorf("Read: %v", err)
		}
	})
	defer func() { cancel(); wg.Wait() }()

	const n = 50
	for range n {
		if err := exec.Command("/bin/true").Run(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for pl.tracker.Source(abi.SourceExec).Records < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d exec records arrived", pl.tracker.Source(abi.SourceExec).Records, n)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Other processes may exec at any moment; compare a scrape only with
	// counts that did not move while it was taken.
	for try := 0; ; try++ {
		before := pl.Stats()[0]
		sourceBefore := pl.tracker.Source(abi.SourceExec)
		families := scrape(t, srv.URL)
		after := pl.Stats()[0]
		if before.Records != after.Records || pl.tracker.Source(abi.SourceExec) != sourceBefore {
			if try == 200 {
				t.Fatal("records kept arriving during every scrape")
			}
			time.Sleep(time.Millisecond)
			continue
		}
		counters, err := pl.Counters()
		if err != nil {
			t.Fatal(err)
		}
		ring := map[string]string{"ring": "events", "transport": "ringbuf"}
		events := map[string]string{"ring": "events"}
		for _, c := range []struct {
			name   string
			labels map[string]string
			want   uint64
		}{
			{"ringwatch_ring_records_total", ring, before.Records},
			{"ringwatch_ring_bytes_total", ring, before.Bytes},
			{"ringwatch_ring_lost_records_total", ring, counters[0].Lost},
			{"ringwatch_ring_sequence_gaps_total", ring, pl.tracker.Rings()[0].Gaps},
			{"ringwatch_ring_capacity_bytes", events, tpt.DefaultRingSize},
			{"ringwatch_consumer_batches_total", events, before.Batches},
			{"ringwatch_consumer_wakeups_total", events, before.Wakeups},
			{"ringwatch_source_events_total", map[string]string{"source": "exec"}, sourceBefore.Records},
			{"ringwatch_source_lost_records_total", map[string]string{"source": "exec"}, counters[0].Lost},
			{"ringwatch_source_missed_events_total", map[string]string{"source": "exec"}, counters[0].Missed},
			{"ringwatch_delivery_latency_seconds", events, before.Records},
		} {
			if got := value(t, families, c.name, c.labels); got != c.want {
				t.Errorf("%s%v = %d, want %d", c.name, c.labels, got, c.want)
			}
		}
		if value(t, families, "ringwatch_ring_records_total", ring) < n {
			t.Errorf("scrape shows fewer records than the %d execs", n)
		}
		// One consumer reads the one ring, and reading took it some CPU.
		if got := value(t, families, "ringwatch_ring_consumer_info", map[string]string{"ring": "events", "consumer": "0"}); got != 1 {
			t.Errorf("ringwatch_ring_consumer_info = %d, want 1", got)
		}
		if busy := families["ringwatch_consumer_busy_seconds_total"].GetMetric()[0].GetCounter().GetValue(); busy <= 0 {
			t.Errorf("ringwatch_consumer_busy_seconds_total = %v after %d records", busy, before.Records)
		}
		break
	}

	if problems, err := testutil.CollectAndLint(pl.collector); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("promlint on the served metrics: %v %+v", err, problems)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	return families
}

// value is the counter, gauge, or histogram sample count of the metric
// with exactly these labels.
func value(t *testing.T, families map[string]*dto.MetricFamily, name string, labels map[string]string) uint64 {
	t.Helper()
	f, ok := families[name]
	if !ok {
		t.Fatalf("%s not served", name)
	}
next:
	for _, m := range f.Metric {
		if len(m.Label) != len(labels) {
			continue
		}
		for _, l := range m.Label {
			if labels[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return uint64(m.Counter.GetValue())
		case m.Gauge != nil:
			return uint64(m.Gauge.GetValue())
		case m.Histogram != nil:
			return m.Histogram.GetSampleCount()
		}
	}
	t.Fatalf("%s%v not served", name, labels)
	return 0
}
