// Package metrics accounts for what ringwatch carries and exposes it to
// Prometheus.
//
//   - tracker.go: [Tracker] reads each record's header as it is consumed:
//     sequence gaps per source and CPU (losses found independently of the
//     kernel's own count), records per source, and delivery latency.
//   - collector.go: [Collector], a prometheus.Collector that reads the
//     consumer's [consumer.RingStats], the producers' kernel counters and the
//     Tracker once per scrape, and the exit summary built from the same
//     reading.
//   - userring.go: [UserRingCollector], a separate prometheus.Collector for
//     the user-to-kernel direction: messages the kernel's control program
//     acted on and refused, a full user ring, ping round trips.
//
// Metric names follow ringwatch_<thing>_<unit>[_total]; labels are ring,
// transport, source and (user ring messages) type only, never a pid or a
// command name.
package metrics
