package metrics

import (
	"math/bits"
	"sync"

	"github.com/ringwatch/ringwatch/pkg/consumer"
	"github.com/ringwatch/ringwatch/pkg/loader"
)

// Latency buckets: upper bounds of 1µs << k for k in [0, latencyBuckets),
// so 1µs, 2µs, 4µs, … about 4.2s. Powers of two make the bucket of a value
// one bit count instead of a search.
const (
	latencyBase    = 1000 // ns
	latencyBuckets = 23
)

// latencyBucket is the index of the smallest bucket whose upper bound is at
// least ns, or latencyBuckets when ns is beyond them all.
func latencyBucket(ns uint64) int {
	if ns <= latencyBase {
		return 0
	}
	return min(bits.Len64((ns-1)/latencyBase), latencyBuckets)
}

// latencyBound is the upper bound of bucket k in seconds.
func latencyBound(k int) float64 { return float64(uint64(latencyBase)<<k) / 1e9 }

// Histogram is a delivery latency histogram: Buckets[k] counts deliveries
// in (bound k-1, bound k], not cumulatively; the last entry counts those
// beyond every bound.
type Histogram struct {
	Count   uint64
	SumNs   uint64
	Buckets [latencyBuckets + 1]uint64
}

// RingTally is what the Tracker saw on one ring.
type RingTally struct {
	Gaps    uint64 // sequence numbers skipped: records the producers could not write
	Invalid uint64 // records too short for their header or of an unknown type
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

// Tracker does the accounting that needs each record's header: sequence
// gaps per source and CPU, records per source, and delivery latency. It is
// fed batches by the consumer's goroutine and read from any goroutine.
type Tracker struct {
	mu      sync.Mutex
	rings   []RingTally
	sources [loader.RecordTypeLimit]SourceTally // by record type
	streams [loader.RecordTypeLimit][]stream    // by record type, then CPU
}

// NewTracker tracks records from rings rings.
func NewTracker(rings int) *Tracker {
	return &Tracker{rings: make([]RingTally, rings)}
}

// Observe accounts for every record of b. It is meant to be called from
// the consumer's callback, and keeps nothing of b.
func (t *Tracker) Observe(b consumer.Batch) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ring := &t.rings[b.Ring]
	for _, rec := range b.Records {
		h, err := loader.ParseHeader(rec)
		if err != nil || h.Type == 0 || int(h.Type) >= len(t.sources) {
			ring.Invalid++
			continue
		}
		src := &t.sources[h.Type]
		src.Records++
		src.Bytes += uint64(len(rec))

		streams := t.streams[h.Type]
		if int(h.Cpu) >= len(streams) {
			streams = append(streams, make([]stream, int(h.Cpu)+1-len(streams))...)
			t.streams[h.Type] = streams
		}
		s := &streams[h.Cpu]
		s.ring = b.Ring
		switch {
		case h.Seq >= s.next:
			gap := h.Seq - s.next
			src.Gaps += gap
			ring.Gaps += gap
			s.next = h.Seq + 1
		default:
			src.Reordered++
		}

		var latency uint64
		if b.ReadTime > int64(h.KtimeNs) {
			latency = uint64(b.ReadTime) - h.KtimeNs
		}
		ring.Latency.Count++
		ring.Latency.SumNs += latency
		ring.Latency.Buckets[latencyBucket(latency)]++
	}
}

// Finish accounts for records lost after the last one each CPU delivered,
// which no later record can reveal as a gap, from the producers' final
// attempt counts. Call it once, after the producers are detached and the
// rings drained; then every source's Gaps equals the kernel's Lost unless a
// record went missing between the kernel and the callback. ringOf names the
// ring each CPU writes to, for CPUs whose stream delivered nothing.
func (t *Tracker) Finish(counters []loader.Counters, ringOf func(cpu int) int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range counters {
		typ := sourceType(c.Source)
		if typ == 0 {
			continue
		}
		for cpu, pc := range c.PerCPU {
			s := stream{ring: ringOf(cpu)}
			if cpu < len(t.streams[typ]) && t.streams[typ][cpu].next > 0 {
				s = t.streams[typ][cpu]
			}
			if s.ring < 0 || s.ring >= len(t.rings) {
				s.ring = 0 // not a ring we track: still counted
			}
			if pc.Attempts > s.next {
				gap := pc.Attempts - s.next
				t.sources[typ].Gaps += gap
				t.rings[s.ring].Gaps += gap
			}
		}
	}
}

func sourceType(name string) loader.RecordType {
	for typ := loader.RecordType(1); typ < loader.RecordTypeLimit; typ++ {
		if loader.SourceOf(typ) == name {
			return typ
		}
	}
	return 0
}

// Rings returns a copy of the per-ring tallies, by ring index.
func (t *Tracker) Rings() []RingTally {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]RingTally(nil), t.rings...)
}

// Source returns the tally of the named source.
func (t *Tracker) Source(name string) SourceTally {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sources[sourceType(name)]
}
