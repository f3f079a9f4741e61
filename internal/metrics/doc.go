// Package metrics exposes what ringwatch carries to Prometheus: it is the
// exporter at the top of a record's trip (ring walk -> batch -> accounting
// -> exporter), and reads the layers below without changing them.
//
// Four collectors, each a prometheus.Collector that reads once per scrape:
// [Collector], the carried records (the consumer's [consumer.RingStats], the
// producers' kernel counters through a session [Counts], and
// internal/accounting's Tracker), with the exit summary built from the same
// reading; [UserRingCollector], the user-to-kernel direction (messages the
// control program acted on and refused, a full user ring, ping round
// trips); [HostRingCollector], every ring on the host from a
// hostrings.Census, with a fill histogram fed by the census's sampling
// between scrapes; and [ProgramCollector], every BPF program on the host
// with the kernel's run statistics. docs/metrics.md says what each metric
// means.
//
// Metric names follow ringwatch_<thing>_<unit>[_total]; labels are ring,
// transport, source, (user ring messages) type, and for the host's rings
// and programs their IDs, names and types. Never a pid; a command name only
// in ringwatch_host_ring_info's owner.
package metrics
