// Package metrics exposes what ringwatch carries to Prometheus: it is the
// exporter at the top of a record's trip (ring walk -> batch -> accounting
// -> exporter), and reads the layers below without changing them.
//
//   - collector.go: [Collector], a prometheus.Collector that reads the
//     consumer's [consumer.RingStats] and the producers' kernel counters
//     (through a session, [Reader]) and pkg/accounting's Tracker once per
//     scrape, and the exit summary built from the same reading.
//   - userring.go: [UserRingCollector], a separate prometheus.Collector for
//     the user-to-kernel direction: messages the kernel's control program
//     acted on and refused, a full user ring, ping round trips.
//
// Metric names follow ringwatch_<thing>_<unit>[_total]; labels are ring,
// transport, source and (user ring messages) type only, never a pid or a
// command name.
package metrics
