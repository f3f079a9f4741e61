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
//
// Consumers: ringwatch's, and the peers cilium/ebpf ringbuf.Reader
// (ReadInto) on the ringbuf transport and perf.Reader on perfbuf, each a
// session.Reader (readers.go), driven by the same pkg/session lifecycle.
//
//   - bench.go: [Run], [Options], [Result], the scenarios, and the
//     synthetic producer (a loader.Source that is run, never attached).
//   - readers.go: the cilium/ebpf readers behind session.Reader.
package bench
