package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// RecorderCounts are the flight recorder's books as its collector reads
// them.
type RecorderCounts struct {
	Attempted   uint64 // records the producers tried to copy into it
	Lost        uint64 // copies it refused
	Overwritten uint64 // records gone from its window, as of the latest dump
}

var (
	recorderRecordsDesc = prometheus.NewDesc("ringwatch_recorder_records_total",
		"Records the producers tried to copy into the flight recorder.", nil, nil)
	recorderLostDesc = prometheus.NewDesc("ringwatch_recorder_lost_records_total",
		"Records the flight recorder refused.", nil, nil)
	recorderOverwrittenDesc = prometheus.NewDesc("ringwatch_recorder_overwritten_records_total",
		"Records the flight recorder had overwritten by its latest dump.", nil, nil)
)

// RecorderCollector serves the flight recorder's books, read at each
// scrape from counts.
type RecorderCollector struct {
	counts func() (RecorderCounts, error)
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
	ch <- prometheus.MustNewConstMetric(recorderOverwrittenDesc, prometheus.CounterValue, float64(n.Overwritten))
}
