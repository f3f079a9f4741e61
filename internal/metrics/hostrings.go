package metrics

import (
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringwatch/ringwatch/pkg/hostrings"
)

// RingSampler is what the host ring collector reads at each scrape: a
// [hostrings.Census] implements it.
type RingSampler interface {
	Sample(now time.Time) []hostrings.Ring
}

var (
	hostRingLabels = []string{"map_id", "map_name"}

	hostRingCapacityDesc = prometheus.NewDesc("ringwatch_host_ring_capacity_bytes",
		"Data size of a ring on the host, whoever loaded it.", hostRingLabels, nil)
	hostRingProducedDesc = prometheus.NewDesc("ringwatch_host_ring_produced_bytes_total",
		"Bytes ever produced into the ring: its producer position.", hostRingLabels, nil)
	hostRingConsumedDesc = prometheus.NewDesc("ringwatch_host_ring_consumed_bytes_total",
		"Bytes ever consumed from the ring: its consumer position.", hostRingLabels, nil)
	hostRingPendingDesc = prometheus.NewDesc("ringwatch_host_ring_pending_bytes",
		"Bytes produced into the ring and not yet consumed.", hostRingLabels, nil)
	hostRingFillDesc = prometheus.NewDesc("ringwatch_host_ring_fill_ratio",
		"Pending bytes as a fraction of the ring's capacity, sampled between scrapes.", hostRingLabels, nil)
	hostRingStalledDesc = prometheus.NewDesc("ringwatch_host_ring_stalled",
		"1 while bytes are pending and the consumer position stands still.", hostRingLabels, nil)
	hostRingInfoDesc = prometheus.NewDesc("ringwatch_host_ring_info",
		"Always 1: a ring on the host, with its kind, mode, owners and programs.",
		[]string{"map_id", "map_name", "type", "mode", "owner", "programs", "ours"}, nil)
	hostRingOverwrittenDesc = prometheus.NewDesc("ringwatch_host_ring_overwritten_bytes_total",
		"Bytes an overwrite-mode ring ever overwrote: its overwrite position.", hostRingLabels, nil)
	hostRingHistoryAtPeakDesc = prometheus.NewDesc("ringwatch_host_ring_history_at_peak_seconds",
		"How far back an overwrite-mode ring reaches at its peak rate.", hostRingLabels, nil)

	hostRingPeakRateDesc = prometheus.NewDesc("ringwatch_host_ring_peak_produced_bytes_per_second",
		"The highest rate the ring's producers wrote at over one census sample.", hostRingLabels, nil)
	hostRingToFullAtPeakDesc = prometheus.NewDesc("ringwatch_host_ring_time_to_full_at_peak_seconds",
		"How long the ring's free bytes last at its peak rate if its consumer stops.", hostRingLabels, nil)
	hostRingAdvisedDesc = prometheus.NewDesc("ringwatch_host_ring_advised_capacity_bytes",
		"The smallest ring that holds the advised consumer pause at the peak rate.", hostRingLabels, nil)
	hostRingAdvicePauseDesc = prometheus.NewDesc("ringwatch_host_ring_advice_pause_seconds",
		"The consumer pause the advised capacity is for.", nil, nil)
)

// HostRingOptions tune a [HostRingCollector]; zero values take the
// defaults.
type HostRingOptions struct {
	// Pause is the consumer pause the advised capacity is for:
	// hostrings.DefaultPause when 0.
	Pause time.Duration
}

// FillBuckets are the upper bounds of the fill ratio histogram.
var FillBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1}

// HostRingCollector exposes the host ring census: every ring buffer and
// user ring buffer on the host, by map ID and name. Each scrape reads the
// positions once; the fill ratio histogram and the peak rates
// ([hostrings.Peaks], over the last minute) are fed between scrapes by
// [HostRingCollector.Observe], from the census's own sampling loop, and
// each scrape gives the sizing advice ([hostrings.Advise]) at the peak. A
// ring that leaves the census leaves the metrics with it.
type HostRingCollector struct {
	rings RingSampler
	peaks *hostrings.Peaks
	pause time.Duration
	page  int
	now   func() time.Time // the clock the peak window moves by

	mu   sync.Mutex
	fill map[ebpf.MapID]*fillHistogram
}

type fillHistogram struct {
	counts []uint64 // per bucket of FillBuckets, not cumulative
	count  uint64
	sum    float64
}

var _ prometheus.Collector = (*HostRingCollector)(nil)

// NewHostRingCollector reads rings at each scrape.
func NewHostRingCollector(rings RingSampler, opts HostRingOptions) *HostRingCollector {
	if opts.Pause <= 0 {
		opts.Pause = hostrings.DefaultPause
	}
	return &HostRingCollector{rings: rings, fill: map[ebpf.MapID]*fillHistogram{}, pause: opts.Pause, page: os.Getpagesize(),
		peaks: hostrings.NewPeaks(hostrings.PeakOptions{Window: hostrings.DefaultPeakWindow}), now: time.Now}
}

// Observe adds each ring's fill ratio to its histogram and its positions
// to its peaks, and forgets the rings that are gone. It is the census's
// sample callback: each sample's spans are the census's sample periods.
func (c *HostRingCollector) Observe(rings []hostrings.Ring) {
	c.peaks.Observe(rings)
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := make(map[ebpf.MapID]bool, len(rings))
	for _, r := range rings {
		if !r.HasPositions() {
			continue
		}
		seen[r.ID] = true
		h := c.fill[r.ID]
		if h == nil {
			h = &fillHistogram{counts: make([]uint64, len(FillBuckets))}
			c.fill[r.ID] = h
		}
		f := r.Fill()
		if i, _ := slices.BinarySearch(FillBuckets, f); i < len(FillBuckets) {
			h.counts[i]++
		}
		h.count++
		h.sum += f
	}
	for id := range c.fill {
		if !seen[id] {
			delete(c.fill, id)
		}
	}
}

// Describe sends the descriptors of every metric Collect may send.
func (c *HostRingCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{hostRingCapacityDesc, hostRingProducedDesc, hostRingConsumedDesc,
		hostRingPendingDesc, hostRingFillDesc, hostRingStalledDesc, hostRingInfoDesc,
		hostRingPeakRateDesc, hostRingToFullAtPeakDesc, hostRingAdvisedDesc, hostRingAdvicePauseDesc,
		hostRingOverwrittenDesc, hostRingHistoryAtPeakDesc} {
		ch <- d
	}
}

// Collect reads every ring's positions once and sends them, with the
// sizing advice of each ring whose peak is known (one sample period after
// it was first observed).
func (c *HostRingCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	rings := c.rings.Sample(now)
	ch <- prometheus.MustNewConstMetric(hostRingAdvicePauseDesc, prometheus.GaugeValue, c.pause.Seconds())
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range rings {
		id := strconv.FormatUint(uint64(r.ID), 10)
		ch <- prometheus.MustNewConstMetric(hostRingInfoDesc, prometheus.GaugeValue, 1,
			id, r.Name, string(r.Kind), ringMode(r), ownerComms(r.Owners), programNames(r.Programs), strconv.FormatBool(r.Ours))
		if !r.HasPositions() {
			continue
		}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, id, r.Name)
		}
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), id, r.Name)
		}
		gauge(hostRingCapacityDesc, float64(r.Capacity))
		counter(hostRingProducedDesc, r.Producer)
		counter(hostRingConsumedDesc, r.Consumer)
		gauge(hostRingPendingDesc, float64(r.Pending()))
		if r.Overwrite {
			counter(hostRingOverwrittenDesc, r.OverwritePos)
		}
		stalled := 0.0
		if r.Stalled {
			stalled = 1
		}
		gauge(hostRingStalledDesc, stalled)
		buckets := make(map[float64]uint64, len(FillBuckets))
		var count uint64
		var sum float64
		if h := c.fill[r.ID]; h != nil {
			for i, bound := range FillBuckets {
				count += h.counts[i]
				buckets[bound] = count
			}
			count, sum = h.count, h.sum
		} else {
			for _, bound := range FillBuckets {
				buckets[bound] = 0
			}
		}
		ch <- prometheus.MustNewConstHistogram(hostRingFillDesc, count, sum, buckets, id, r.Name)
		if peak, ok := c.peaks.Peak(r.ID, now); ok {
			a := hostrings.Advise(r, peak, c.pause, c.page)
			gauge(hostRingPeakRateDesc, a.Rate)
			if r.Overwrite {
				// Its consumer is not meant to keep up: it is sized by
				// the history it keeps, not by a pause.
				gauge(hostRingHistoryAtPeakDesc, secondsOrInf(a.History))
				continue
			}
			gauge(hostRingToFullAtPeakDesc, secondsOrInf(a.ToFull))
			advised := math.Inf(1)
			if a.Capacity != 0 {
				advised = float64(a.Capacity)
			}
			gauge(hostRingAdvisedDesc, advised)
		}
	}
}

// ringMode is the info metric's mode label: "overwrite" for a ring buffer
// created with BPF_F_RB_OVERWRITE, "normal" for every other ring.
func ringMode(r hostrings.Ring) string {
	if r.Overwrite {
		return "overwrite"
	}
	return "normal"
}

// secondsOrInf is d in seconds, +Inf for hostrings.Forever.
func secondsOrInf(d time.Duration) float64 {
	if d == hostrings.Forever {
		return math.Inf(1)
	}
	return d.Seconds()
}

// ownerComms is the owners' command names, sorted, each once: a label
// with a bounded set of values, unlike their pids.
func ownerComms(owners []hostrings.Owner) string {
	comms := make([]string, 0, len(owners))
	for _, o := range owners {
		comms = append(comms, o.Comm)
	}
	slices.Sort(comms)
	return strings.Join(slices.Compact(comms), ",")
}

// programNames is the programs' names, sorted, each once.
func programNames(progs []hostrings.Program) string {
	names := make([]string, 0, len(progs))
	for _, p := range progs {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	return strings.Join(slices.Compact(names), ",")
}
