package metrics

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/accounting"
	"github.com/ringwatch/ringwatch/pkg/userring"
)

// UserRingReader is what the user ring collector reads: a
// [control.Channel] implements it.
//
// [control.Channel]: https://pkg.go.dev/github.com/ringwatch/ringwatch/internal/control#Channel
type UserRingReader interface {
	WriterStats() userring.Stats
	DrainStats() (abi.DrainStats, error)
}

var (
	userRingMessagesDesc = prometheus.NewDesc("ringwatch_user_ring_messages_total",
		"Messages the kernel's control program acted on, by type.", []string{"type"}, nil)
	userRingRejectedDesc = prometheus.NewDesc("ringwatch_user_ring_rejected_total",
		"Messages the kernel's control program refused.", nil, nil)
	userRingFullDesc = prometheus.NewDesc("ringwatch_user_ring_full_total",
		"Messages that found the user ring full.", nil, nil)
)

// NewRoundTripHistogram makes the histogram of ping round trips, for
// [NewUserRingCollector]; feed it from the control channel's OnRoundTrip.
// Its buckets are the delivery latency's: 1µs to about 4.2s in powers of two.
func NewRoundTripHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ringwatch_roundtrip_latency_seconds",
		Help:    "Round trip of a ping through the user ring to the kernel and back.",
		Buckets: prometheus.ExponentialBuckets(accounting.LatencyBound(0), 2, accounting.LatencyBuckets),
	})
}

// UserRingCollector exposes the user-to-kernel direction: messages the
// kernel acted on and refused (read from the kernel once per scrape), how
// often the writer found the ring full, and ping round trips. Every metric
// exists, at zero, from the first scrape.
type UserRingCollector struct {
	src        UserRingReader
	roundTrips prometheus.Histogram
}

var _ prometheus.Collector = (*UserRingCollector)(nil)

// NewUserRingCollector reads src at each scrape and exposes roundTrips,
// made by [NewRoundTripHistogram].
func NewUserRingCollector(src UserRingReader, roundTrips prometheus.Histogram) *UserRingCollector {
	return &UserRingCollector{src: src, roundTrips: roundTrips}
}

// ObserveRoundTrip records one ping's round trip.
func (c *UserRingCollector) ObserveRoundTrip(d time.Duration) { c.roundTrips.Observe(d.Seconds()) }

// Describe sends the descriptors of every metric Collect may send.
func (c *UserRingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- userRingMessagesDesc
	ch <- userRingRejectedDesc
	ch <- userRingFullDesc
	c.roundTrips.Describe(ch)
}

// Collect reads the kernel's counters once and sends everything.
func (c *UserRingCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(userRingFullDesc, prometheus.CounterValue, float64(c.src.WriterStats().Full))
	c.roundTrips.Collect(ch)
	st, err := c.src.DrainStats()
	if err != nil {
		err = fmt.Errorf("read user ring counters: %w", err)
		ch <- prometheus.NewInvalidMetric(userRingMessagesDesc, err)
		ch <- prometheus.NewInvalidMetric(userRingRejectedDesc, err)
		return
	}
	for t := abi.MessageType(1); t < abi.MessageTypeLimit; t++ {
		ch <- prometheus.MustNewConstMetric(userRingMessagesDesc, prometheus.CounterValue, float64(st.Accepted[t]), t.String())
	}
	ch <- prometheus.MustNewConstMetric(userRingRejectedDesc, prometheus.CounterValue, float64(st.RejectedTotal()))
}

// WriteSummary writes one line on what the user ring carried, for the
// exit summary.
func (c *UserRingCollector) WriteSummary(w io.Writer) error {
	st, err := c.src.DrainStats()
	if err != nil {
		return fmt.Errorf("read user ring counters: %w", err)
	}
	var byType []string
	for t := abi.MessageType(1); t < abi.MessageTypeLimit; t++ {
		if n := st.Accepted[t]; n > 0 {
			byType = append(byType, fmt.Sprintf("%d %s", n, t))
		}
	}
	if len(byType) == 0 {
		byType = []string{"none"}
	}
	_, err = fmt.Fprintf(w, "user ring: %d messages (%s), %d rejected, %d times full\n",
		st.AcceptedTotal(), strings.Join(byType, ", "), st.RejectedTotal(), c.src.WriterStats().Full)
	return err
}
