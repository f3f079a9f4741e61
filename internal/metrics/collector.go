package metrics

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringwatch/ringwatch/internal/accounting"
	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/internal/session"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// Counts is what the collector reads at each scrape: a
// [session.Session] gives the consumer's ring counters, the kernel
// producers' counters, and which ring each CPU writes to.
//
// [session.Session]: https://pkg.go.dev/github.com/ringwatch/ringwatch/internal/session#Session
type Counts interface {
	Stats() []consumer.RingStats
	ConsumerStats() []session.ConsumerStats
	Counters() ([]loader.Counters, error)
	RingOf(cpu int) int
}

var (
	ringLabels     = []string{"ring", "transport"}
	ringOnlyLabels = []string{"ring"}

	ringRecordsDesc = prometheus.NewDesc("ringwatch_ring_records_total",
		"Records the consumer read from the ring.", ringLabels, nil)
	ringBytesDesc = prometheus.NewDesc("ringwatch_ring_bytes_total",
		"Record payload bytes the consumer read from the ring.", ringLabels, nil)
	ringLostDesc = prometheus.NewDesc("ringwatch_ring_lost_records_total",
		"Records the producers could not write because the ring was full.", ringLabels, nil)
	ringKernelLostDesc = prometheus.NewDesc("ringwatch_ring_kernel_lost_records_total",
		"Records the kernel itself reported dropped on the ring.", ringLabels, nil)
	ringAttemptedDesc = prometheus.NewDesc("ringwatch_ring_attempted_records_total",
		"Records the producers tried to write to the ring.", ringLabels, nil)
	ringGapsDesc = prometheus.NewDesc("ringwatch_ring_sequence_gaps_total",
		"Records missing from the per-CPU sequence numbers the consumer saw.", ringLabels, nil)
	ringDiscardedDesc = prometheus.NewDesc("ringwatch_ring_discarded_records_total",
		"Records a producer reserved and then discarded.", ringLabels, nil)
	ringInvalidDesc = prometheus.NewDesc("ringwatch_ring_invalid_records_total",
		"Records too short for their header or of an unknown type.", ringLabels, nil)
	ringCapacityDesc = prometheus.NewDesc("ringwatch_ring_capacity_bytes",
		"Size of the ring's data area in bytes.", ringOnlyLabels, nil)
	ringPendingDesc = prometheus.NewDesc("ringwatch_ring_pending_bytes",
		"Bytes reserved in the ring and not yet released by the consumer.", ringOnlyLabels, nil)
	wakeupsDesc = prometheus.NewDesc("ringwatch_consumer_wakeups_total",
		"Times epoll woke the consumer for the ring.", ringOnlyLabels, nil)
	batchesDesc = prometheus.NewDesc("ringwatch_consumer_batches_total",
		"Batches of records the consumer read from the ring.", ringOnlyLabels, nil)
	latencyDesc = prometheus.NewDesc("ringwatch_delivery_latency_seconds",
		"Time from a record's kernel timestamp to the consumer reading it.", ringOnlyLabels, nil)
	sourceEventsDesc = prometheus.NewDesc("ringwatch_source_events_total",
		"Records of the source the consumer received.", []string{"source"}, nil)
	sourceLostDesc = prometheus.NewDesc("ringwatch_source_lost_records_total",
		"Records of the source lost to a full ring.", []string{"source"}, nil)
	sourceAttemptedDesc = prometheus.NewDesc("ringwatch_source_attempted_records_total",
		"Records of the source the producers tried to write.", []string{"source"}, nil)
	sourceGapsDesc = prometheus.NewDesc("ringwatch_source_sequence_gaps_total",
		"Records of the source missing from its per-CPU sequence numbers.", []string{"source"}, nil)
	sourceMissedDesc = prometheus.NewDesc("ringwatch_source_missed_events_total",
		"Events the kernel did not run the source's BPF program for.", []string{"source"}, nil)
	sourceSkippedDesc = prometheus.NewDesc("ringwatch_source_skipped_events_total",
		"Events the source left out on purpose, while paused or by sampling.", []string{"source"}, nil)
	consumerBusyDesc = prometheus.NewDesc("ringwatch_consumer_busy_seconds_total",
		"CPU time the consumer's thread spent reading its rings.", []string{"consumer"}, nil)
	consumerInfoDesc = prometheus.NewDesc("ringwatch_ring_consumer_info",
		"Always 1: which consumer reads the ring.", []string{"ring", "consumer"}, nil)
	buildInfoDesc = prometheus.NewDesc("ringwatch_build_info",
		"Always 1, labelled with the ringwatch and Go versions.", []string{"version", "goversion"}, nil)
)

// Collector exposes ringwatch's transport metrics. Each scrape reads the
// consumer's counters, the kernel producers' counters (one map lookup per
// source) and the Tracker once, and sends constant metrics; every metric
// exists, at zero, from the first scrape.
type Collector struct {
	version   string
	transport string
	rings     []string
	sources   []string
	reader    Counts
	tracker   *accounting.Tracker
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector describes the rings of transport (by name, in ring order)
// and the sources, reading from r and t at each scrape.
func NewCollector(version, transport string, rings, sources []string, r Counts, t *accounting.Tracker) *Collector {
	return &Collector{version: version, transport: transport, rings: rings, sources: sources, reader: r, tracker: t}
}

// Describe sends the descriptors of every metric Collect may send.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		ringRecordsDesc, ringBytesDesc, ringLostDesc, ringAttemptedDesc, ringKernelLostDesc, ringGapsDesc, ringDiscardedDesc, ringInvalidDesc,
		ringCapacityDesc, ringPendingDesc, wakeupsDesc, batchesDesc, latencyDesc,
		sourceEventsDesc, sourceLostDesc, sourceAttemptedDesc, sourceGapsDesc, sourceMissedDesc, sourceSkippedDesc, consumerBusyDesc, consumerInfoDesc,
		buildInfoDesc,
	} {
		ch <- d
	}
}

// Collect reads everything once and sends it.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(buildInfoDesc, prometheus.GaugeValue, 1, c.version, runtime.Version())

	snap, err := c.snapshot()
	if err != nil {
		// Without the kernel's counts the lost metrics would lie; report
		// the failure on those and send everything else.
		ch <- prometheus.NewInvalidMetric(ringLostDesc, err)
		ch <- prometheus.NewInvalidMetric(ringAttemptedDesc, err)
		ch <- prometheus.NewInvalidMetric(sourceLostDesc, err)
		ch <- prometheus.NewInvalidMetric(sourceAttemptedDesc, err)
		ch <- prometheus.NewInvalidMetric(sourceMissedDesc, err)
		ch <- prometheus.NewInvalidMetric(sourceSkippedDesc, err)
	}
	for i, name := range c.rings {
		st, tally := snap.stats[i], snap.tallies[i]
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), name, c.transport)
		}
		counter(ringRecordsDesc, st.Records)
		counter(ringBytesDesc, st.Bytes)
		counter(ringDiscardedDesc, st.Discarded)
		counter(ringKernelLostDesc, st.KernelLost)
		counter(ringGapsDesc, tally.Gaps)
		counter(ringInvalidDesc, tally.Invalid)
		if err == nil {
			counter(ringLostDesc, snap.ringLost[i])
			counter(ringAttemptedDesc, snap.ringAttempted[i])
		}
		ch <- prometheus.MustNewConstMetric(ringCapacityDesc, prometheus.GaugeValue, float64(st.Capacity), name)
		ch <- prometheus.MustNewConstMetric(ringPendingDesc, prometheus.GaugeValue, float64(st.Pending), name)
		ch <- prometheus.MustNewConstMetric(wakeupsDesc, prometheus.CounterValue, float64(st.Wakeups), name)
		ch <- prometheus.MustNewConstMetric(batchesDesc, prometheus.CounterValue, float64(st.Batches), name)
		ch <- latencyMetric(tally.Latency, name)
	}
	for k, st := range c.reader.ConsumerStats() {
		consumer := strconv.Itoa(k)
		ch <- prometheus.MustNewConstMetric(consumerBusyDesc, prometheus.CounterValue, st.Busy.Seconds(), consumer)
		for _, r := range st.Rings {
			if r < len(c.rings) {
				ch <- prometheus.MustNewConstMetric(consumerInfoDesc, prometheus.GaugeValue, 1, c.rings[r], consumer)
			}
		}
	}
	for i, name := range c.sources {
		src := snap.sources[i]
		ch <- prometheus.MustNewConstMetric(sourceEventsDesc, prometheus.CounterValue, float64(src.Records), name)
		ch <- prometheus.MustNewConstMetric(sourceGapsDesc, prometheus.CounterValue, float64(src.Gaps), name)
		if err == nil {
			k := snap.source(name)
			ch <- prometheus.MustNewConstMetric(sourceLostDesc, prometheus.CounterValue, float64(k.Lost), name)
			ch <- prometheus.MustNewConstMetric(sourceAttemptedDesc, prometheus.CounterValue, float64(k.Attempts), name)
			ch <- prometheus.MustNewConstMetric(sourceMissedDesc, prometheus.CounterValue, float64(k.Missed), name)
			ch <- prometheus.MustNewConstMetric(sourceSkippedDesc, prometheus.CounterValue, float64(k.Skipped), name)
		}
	}
}

func latencyMetric(h accounting.Histogram, ring string) prometheus.Metric {
	buckets := make(map[float64]uint64, accounting.LatencyBuckets)
	var cumulative uint64
	for k := range accounting.LatencyBuckets {
		cumulative += h.Buckets[k]
		buckets[accounting.LatencyBound(k)] = cumulative
	}
	return prometheus.MustNewConstHistogram(latencyDesc, h.Count, float64(h.SumNs)/1e9, buckets, ring)
}

// snapshot is one reading of everything the metrics and the summary show.
type snapshot struct {
	stats   []consumer.RingStats   // by ring index
	tallies []accounting.RingTally // by ring index
	// sources is the tracker's tally of each source, in c.sources' order.
	sources  []accounting.SourceTally
	counters []loader.Counters
	ringLost []uint64 // by ring index
	// ringAttempted is the attempts of the CPUs writing to each ring, by
	// ring index.
	ringAttempted []uint64
}

// source is the named source's kernel counters, zero if not read.
func (s snapshot) source(name string) loader.Counters {
	if i := slices.IndexFunc(s.counters, func(k loader.Counters) bool { return k.Source == name }); i >= 0 {
		return s.counters[i]
	}
	return loader.Counters{Source: name}
}

// snapshot reads the consumer, the tracker and the kernel. On a failure to
// read the kernel's counters it returns the rest and the error.
func (c *Collector) snapshot() (snapshot, error) {
	s := snapshot{
		stats:         c.reader.Stats(),
		tallies:       c.tracker.Rings(),
		ringLost:      make([]uint64, len(c.rings)),
		ringAttempted: make([]uint64, len(c.rings)),
	}
	// The consumer's counts are read before the kernel's, so that a
	// scrape never shows more delivered and lost than attempted.
	for _, name := range c.sources {
		s.sources = append(s.sources, c.tracker.Source(name))
	}
	// Stats after Close, or a consumer over fewer rings, reads as zero.
	for len(s.stats) < len(c.rings) {
		s.stats = append(s.stats, consumer.RingStats{})
	}
	counters, err := c.reader.Counters()
	if err != nil {
		return s, fmt.Errorf("read producer counters: %w", err)
	}
	s.counters = counters
	for _, k := range counters {
		for cpu, pc := range k.PerCPU {
			if ring := c.reader.RingOf(cpu); ring < len(s.ringLost) {
				s.ringLost[ring] += pc.Lost
				s.ringAttempted[ring] += pc.Attempts
			}
		}
	}
	return s, nil
}

// WriteSummary writes, one line per ring and per source, what was carried
// and lost: the summary ringwatch prints on exit.
func (c *Collector) WriteSummary(w io.Writer) error {
	snap, err := c.snapshot()
	if err != nil {
		return err
	}
	for i, name := range c.rings {
		st, tally := snap.stats[i], snap.tallies[i]
		line := fmt.Sprintf("ring %s (%s): %d records, %d bytes, %d lost, %d attempted, %d sequence gaps, %d invalid, %d batches, %d wakeups",
			name, c.transport, st.Records, st.Bytes, snap.ringLost[i], snap.ringAttempted[i], tally.Gaps, tally.Invalid, st.Batches, st.Wakeups)
		if st.KernelLost > 0 {
			line += fmt.Sprintf(", %d reported lost by the kernel", st.KernelLost)
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	for k, st := range c.reader.ConsumerStats() {
		names := make([]string, 0, len(st.Rings))
		for _, r := range st.Rings {
			if r < len(c.rings) {
				names = append(names, c.rings[r])
			}
		}
		if _, err := fmt.Fprintf(w, "consumer %d (%s): %.3fs busy, woken %d times\n",
			k, strings.Join(names, ","), st.Busy.Seconds(), st.Woken); err != nil {
			return err
		}
	}
	for _, name := range c.sources {
		src, k := c.tracker.Source(name), snap.source(name)
		line := fmt.Sprintf("source %s: %d records, %d bytes, %d lost, %d attempted, %d sequence gaps, %d missed",
			name, src.Records, src.Bytes, k.Lost, k.Attempts, src.Gaps, k.Missed)
		if k.Skipped > 0 {
			line += fmt.Sprintf(", %d skipped (paused or sampled out)", k.Skipped)
		}
		if src.Reordered > 0 {
			line += fmt.Sprintf(", %d out of order", src.Reordered)
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}
