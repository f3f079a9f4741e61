package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// RecorderCounts are the flight recorder's books as its collector reads
// them.
type RecorderCounts struct {
	Attempted uint64 // records the producers tried to copy into it
	Lost      uint64 // copies it refused
	// Overwritten is records gone from its window, counted at this read:
	// never more than it overwrote, exact while the producers are quiet.
	Overwritten uint64
}

var (
	recorderRecordsDesc = prometheus.NewDesc("ringwatch_recorder_records_total",
		"Records the producers tried to copy into the flight recorder.", nil, nil)
	recorderLostDesc = prometheus.NewDesc("ringwatch_recorder_lost_records_total",
		"Records the flight recorder refused.", nil, nil)
	recorderOverwrittenDesc = prometheus.NewDesc("ringwatch_recorder_overwritten_records_total",
		"Records the flight recorder overwrote.", nil, nil)
)

// RecorderCollector serves the flight recorder's books, read at each
// scrape from counts.
type RecorderCollector struct {
	counts func() (RecorderCounts, error)

	// A count of overwritten records taken while the producers write may
	// lag the truth, and lag it less than the last: a counter serves the
	// most it has seen, so it never goes down.
	mu          sync.Mutex
	overwritten uint64
}

// NewRecorderCollector serves what counts returns.
func NewRecorderCollector(counts func() (RecorderCounts, error)) *RecorderCollector {
	return &RecorderCollector{counts: counts}
}

// Describe implements prometheus.Collector.
func (c *RecorderCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- recorderRecordsDesc
	ch <- recorderLostDesc
	ch <- recorderOverwrittenDesc
}

// Collect implements prometheus.Collector.
func (c *RecorderCollector) Collect(ch chan<- prometheus.Metric) {
	n, err := c.counts()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(recorderRecordsDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(recorderRecordsDesc, prometheus.CounterValue, float64(n.Attempted))
	ch <- prometheus.MustNewConstMetric(recorderLostDesc, prometheus.CounterValue, float64(n.Lost))
	c.mu.Lock()
	c.overwritten = max(c.overwritten, n.Overwritten)
	overwritten := c.overwritten
	c.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(recorderOverwrittenDesc, prometheus.CounterValue, float64(overwritten))
}
