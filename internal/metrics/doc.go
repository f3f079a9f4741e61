// Package metrics exposes what ringwatch carries to Prometheus: it is the
// exporter at the top of a record's trip (ring walk -> batch -> accounting
// -> exporter), and reads the layers below without changing them.
//
//   - collector.go: [Collector], a prometheus.Collector that reads the
//     consumer's [consumer.RingStats] and the producers' kernel counters
//     (through a session, [Reader]) and internal/accounting's Tracker once per
//     scrape, and the exit summary built from the same reading.
//
//   - userring.go: [UserRingCollector], a separate prometheus.Collector for
//     the user-to-kernel direction: messages the kernel's control program
//     acted on and refused, a full user ring, ping round trips.
//
//   - hostrings.go: [HostRingCollector], every ring on the host from a
//     hostrings.Census, by map ID and name, with a fill histogram fed by the
//     census's own sampling between scrapes.
//
//   - progstats.go: [ProgramCollector], every BPF program on the host with
//     the kernel's run statistics.
//
// Metric names follow ringwatch_<thing>_<unit>[_total]; labels are ring,
// transport, source, (user ring messages) type, and for the host's rings
// and programs their IDs, names and types. Never a pid; a command name only
// in ringwatch_host_ring_info's owner.
package metrics
