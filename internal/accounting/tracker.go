package accounting

import (
	"encoding/binary"
	"math/bits"
	"sync"
	"unsafe"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// Latency buckets: upper bounds of 1µs << k for k in [0, LatencyBuckets),
// so 1µs, 2µs, 4µs, … about 4.2s. Powers of two make the bucket of a value
// one bit count instead of a search.
const (
	latencyBase = 1000 // ns
	// LatencyBuckets is how many bounded buckets a Histogram has.
	LatencyBuckets = 23
)

// latencyBucket is the index of the smallest bucket whose upper bound is at
// least ns, or LatencyBuckets when ns is beyond them all.
func latencyBucket(ns uint64) int {
	if ns <= latencyBase {
		return 0
	}
	return min(bits.Len64((ns-1)/latencyBase), LatencyBuckets)
}

// LatencyBound is the upper bound of bucket k in seconds, for k below
// LatencyBuckets.
func LatencyBound(k int) float64 { return float64(uint64(latencyBase)<<k) / 1e9 }

// Histogram is a delivery latency histogram: Buckets[k] counts deliveries
// in (bound k-1, bound k], not cumulatively; the last entry counts those
// beyond every bound.
type Histogram struct {
	Count   uint64
	SumNs   uint64
	Buckets [LatencyBuckets + 1]uint64
}

// RingTally is what the Tracker saw on one ring.
type RingTally struct {
	Gaps    uint64 // sequence numbers skipped: records the producers could not write
	Invalid uint64 // records too short for their header, of an unknown type, or from a CPU number no kernel has
	Latency Histogram
}

// SourceTally is what the Tracker saw of one source's records.
type SourceTally struct {
	Records   uint64
	Bytes     uint64
	Gaps      uint64
	Reordered uint64 // records whose sequence number was not above the last one seen
}

// stream follows one source's sequence numbers on one CPU.
type stream struct {
	next uint64 // the sequence number expected next
	ring int    // where the stream's records were last seen
}

// cpuStreams are one CPU's streams, by record type.
type cpuStreams [abi.RecordTypeLimit]stream

// Tracker does the accounting that needs each record's header: sequence
// gaps per source and CPU, records per source, and delivery latency. Each
// consumer feeds its own [Shard]; the Tracker's methods merge them and are
// safe from any goroutine.
type Tracker struct {
	rings  int
	shards []*Shard
}

// Shard is one consumer's part of a Tracker. Observe is for that
// consumer's goroutine; the Tracker reads the shard under its lock, which
// the consumer takes once per batch and nobody else holds for long.
type Shard struct {
	mu      sync.Mutex
	rings   []RingTally
	sources [abi.RecordTypeLimit]SourceTally // by record type
	// streams is by CPU, then record type: one flat slice, grown when a
	// record names a CPU beyond it, so the per-record path indexes it once.
	streams []cpuStreams
}

// NewTracker tracks records from rings rings, read by shards consumers.
func NewTracker(rings, shards int) *Tracker {
	t := &Tracker{rings: rings, shards: make([]*Shard, max(shards, 1))}
	for i := range t.shards {
		t.shards[i] = &Shard{rings: make([]RingTally, rings)}
	}
	return t
}

// Shard is the part of consumer i, in [0, shards).
func (t *Tracker) Shard(i int) *Shard { return t.shards[i] }

// Record header field offsets, from the generated type.
const (
	ktimeOff = unsafe.Offsetof(abi.Header{}.KtimeNs)
	seqOff   = unsafe.Offsetof(abi.Header{}.Seq)
	typeOff  = unsafe.Offsetof(abi.Header{}.Type)
	cpuOff   = unsafe.Offsetof(abi.Header{}.Cpu)
)

// Observe accounts for every record of b. It is meant to be called from
// the consumer's callback, and keeps nothing of b.
func (t *Shard) Observe(b consumer.Batch) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ring := &t.rings[b.Ring]
	recs := b.Records
	for len(recs) > 0 {
		recs = recs[t.observeTracked(ring, b, recs):]
		if len(recs) == 0 {
			break
		}
		// recs[0] is invalid, or the first record of a CPU beyond the
		// streams: count the one, make room for the other and go on.
		if !t.track(recs[0]) {
			ring.Invalid++
			recs = recs[1:]
		}
	}
}

// observeTracked accounts for the records at the start of recs that have a
// stream: of a known type, from a CPU within t.streams. It returns how many
// it accounted for, stopping at the first record without one.
//
// It runs on nearly every record run carries, so it is written for speed,
// measured by BenchmarkRunPath in pkg/consumer: the header's fields are
// read straight from the record, with one bounds check (abi.ParseHeader
// reads them the same way, but is a call); a record with the sequence
// number its stream expects, the common case, adds no gap; and the loop
// calls nothing, so the batch's sums stay in registers and reach the ring's
// tally once.
func (t *Shard) observeTracked(ring *RingTally, b consumer.Batch, recs [][]byte) int {
	var (
		streams        = t.streams
		sources        = &t.sources
		buckets        = &ring.Latency.Buckets
		readTime       = b.ReadTime
		n              int
		gaps           uint64
		latencies, sum uint64
	)
	for ; n < len(recs); n++ {
		rec := recs[n]
		if len(rec) < abi.HeaderSize {
			break
		}
		hdr := rec[:abi.HeaderSize]
		typ := abi.RecordType(binary.NativeEndian.Uint32(hdr[typeOff:]))
		cpu := binary.NativeEndian.Uint32(hdr[cpuOff:])
		if typ-1 >= abi.RecordTypeLimit-1 || uint64(cpu) >= uint64(len(streams)) {
			break // type 0, or beyond the known types; or a new CPU
		}
		seq := binary.NativeEndian.Uint64(hdr[seqOff:])
		ktime := binary.NativeEndian.Uint64(hdr[ktimeOff:])

		src := &sources[typ]
		src.Records++
		src.Bytes += uint64(len(rec))
		s := &streams[cpu][typ]
		s.ring = b.Ring
		// Sequence numbers are the producer's per-CPU u64 count of
		// attempts (bpf/ringwatch.c), which wraps to 0 only after 2^64
		// records, 584 years at 10^9 a second. They are compared by
		// distance, as the walks compare positions: a record less than
		// 2^63 ahead of the one expected is a gap, even one that straddles
		// the wrap; one behind it is reordered.
		switch {
		case seq == s.next: // nearly always
			s.next = seq + 1
		case seq-s.next < 1<<63:
			gap := seq - s.next
			src.Gaps += gap
			gaps += gap
			s.next = seq + 1
		default:
			src.Reordered++
		}

		var latency uint64
		if readTime > int64(ktime) {
			latency = uint64(readTime) - ktime
		}
		latencies++
		sum += latency
		buckets[latencyBucket(latency)]++
	}
	ring.Gaps += gaps
	ring.Latency.Count += latencies
	ring.Latency.SumNs += sum
	return n
}

// track reports whether rec is a record to account for: long enough for
// its header, of a known type. If it is, it makes room in t.streams for its
// CPU, so that observeTracked takes it.
// maxCPU bounds the CPU number a record may carry: the kernel's NR_CPUS is
// at most 8192, and a corrupt record with a CPU of 4 billion must count as
// invalid, not grow the per-CPU state to match.
const maxCPU = 1 << 16

func (t *Shard) track(rec []byte) bool {
	if len(rec) < abi.HeaderSize {
		return false
	}
	typ := abi.RecordType(binary.NativeEndian.Uint32(rec[typeOff:]))
	cpu := binary.NativeEndian.Uint32(rec[cpuOff:])
	if typ-1 >= abi.RecordTypeLimit-1 || cpu >= maxCPU {
		return false
	}
	if uint64(cpu) >= uint64(len(t.streams)) {
		t.streams = append(t.streams, make([]cpuStreams, uint64(cpu)+1-uint64(len(t.streams)))...)
	}
	return true
}

// KernelCounts is one source's counters as the kernel keeps them, per CPU
// by CPU number: of the producers' final counts, the part Finish reads. It
// is the kernel's layout rather than the loader's summary, so that the
// accounting depends on what a record is (internal/abi), not on what loads
// the programs; internal/session passes the loader's counts in.
type KernelCounts struct {
	Source string
	PerCPU []abi.SourceCounters
}

// Finish accounts for records lost after the last one each CPU delivered,
// which no later record can reveal as a gap, from the producers' final
// attempt counts. Call it once, after the producers are detached and the
// rings drained; then every source's Gaps equals the kernel's Lost unless a
// record went missing between the kernel and the callback. ringOf names the
// ring each CPU writes to, for CPUs whose stream delivered nothing.
func (t *Tracker) Finish(counters []KernelCounts, ringOf func(cpu int) int) {
	for _, sh := range t.shards {
		sh.mu.Lock()
		defer sh.mu.Unlock()
	}
	for _, c := range counters {
		typ := abi.RecordTypeOf(c.Source)
		if typ == 0 {
			continue
		}
		for cpu, pc := range c.PerCPU {
			// A CPU's stream is in the shard of the consumer that read its
			// ring; a CPU that delivered nothing is charged to the first.
			owner, s := t.shards[0], stream{ring: ringOf(cpu)}
			for _, sh := range t.shards {
				if cpu < len(sh.streams) && sh.streams[cpu][typ].next > 0 {
					owner, s = sh, sh.streams[cpu][typ]
					break
				}
			}
			if s.ring < 0 || s.ring >= t.rings {
				s.ring = 0 // not a ring we track: still counted
			}
			// Attempts and next are the same u64 count, compared by
			// distance across its wrap (see observeTracked).
			if gap := pc.Attempts - s.next; gap != 0 && gap < 1<<63 {
				owner.sources[typ].Gaps += gap
				owner.rings[s.ring].Gaps += gap
			}
		}
	}
}

// Rings returns the per-ring tallies, by ring index, merged over shards.
func (t *Tracker) Rings() []RingTally {
	out := make([]RingTally, t.rings)
	for _, sh := range t.shards {
		sh.mu.Lock()
		for i, r := range sh.rings {
			out[i].add(r)
		}
		sh.mu.Unlock()
	}
	return out
}

// Source returns the tally of the named source, merged over shards.
func (t *Tracker) Source(name string) SourceTally {
	var out SourceTally
	typ := abi.RecordTypeOf(name)
	for _, sh := range t.shards {
		sh.mu.Lock()
		s := sh.sources[typ]
		sh.mu.Unlock()
		out.Records += s.Records
		out.Bytes += s.Bytes
		out.Gaps += s.Gaps
		out.Reordered += s.Reordered
	}
	return out
}

func (r *RingTally) add(o RingTally) {
	r.Gaps += o.Gaps
	r.Invalid += o.Invalid
	r.Latency.Count += o.Latency.Count
	r.Latency.SumNs += o.Latency.SumNs
	for k, n := range o.Latency.Buckets {
		r.Latency.Buckets[k] += n
	}
}
