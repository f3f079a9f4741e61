// Package bench measures the transports and consumers side by side, in one
// run, with one synthetic producer: the bench program of bpf/ringwatch.c,
// run with BPF_PROG_TEST_RUN from a thread pinned to one CPU, while the
// consumer reads on a thread pinned to another. It is what `ringwatch
// bench` prints.
//
// Scenarios:
//   - drain: fill the ring with nobody reading, then time the drain alone.
//   - saturation: a producer at full speed for N records, read as they
//     come: delivered fraction, losses, producer rate, consumer CPU.
//   - latency: a fixed rate for a while: delivery latency percentiles
//     (kernel timestamp at produce, CLOCK_MONOTONIC at consume) and
//     consumer CPU per million records.
//   - roundtrip: pings through the user ring and back.
//   - scale: P producers, each on its own CPU, read by C consumers.
//   - producer: the producer's own cost per record with nobody reading,
//     in a normal ring, the same ring in overwrite mode (Linux 6.19) and
//     a per-CPU ring: what a flight recorder costs the events it keeps.
//
// Consumers: ringwatch's, and the peers cilium/ebpf ringbuf.Reader
// (ReadInto) on the ringbuf transport and perf.Reader on perfbuf, each a
// session.Reader, driven by the same internal/session lifecycle. With the
// libbpf build tag (cgo), libbpf's ring_buffer joins drain and saturation
// as a peer of the ringbuf transport; its C callback counts each record,
// so no call into Go per record handicaps it.
//
// The synthetic producer is a loader.Source that is run, never attached.
// [Options] hold each scenario's rules (the sizes it runs at, the options
// it uses, the quick run), and [WriteTables] prints the results as
// `ringwatch bench` shows them.
package bench
