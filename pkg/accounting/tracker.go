package accounting

import (
	"math/bits"
	"sync"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/pkg/consumer"
	"github.com/ringwatch/ringwatch/pkg/loader"
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
	streams [abi.RecordTypeLimit][]stream    // by record type, then CPU
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

// Observe accounts for every record of b. It is meant to be called from
// the consumer's callback, and keeps nothing of b.
func (t *Shard) Observe(b consumer.Batch) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ring := &t.rings[b.Ring]
	for _, rec := range b.Records {
		h, err := abi.ParseHeader(rec)
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
				if cpu < len(sh.streams[typ]) && sh.streams[typ][cpu].next > 0 {
					owner, s = sh, sh.streams[typ][cpu]
					break
				}
			}
			if s.ring < 0 || s.ring >= t.rings {
				s.ring = 0 // not a ring we track: still counted
			}
			if pc.Attempts > s.next {
				gap := pc.Attempts - s.next
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
