package accounting

import (
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// referenceShard is the accounting Shard.Observe and Tracker.Finish do,
// written the plain way: every header decoded with abi.Decode, streams in a
// map, no short path. The randomized test holds the Tracker to it.
type referenceShard struct {
	rings   []RingTally
	sources [abi.RecordTypeLimit]SourceTally
	streams map[[2]uint64]*stream // by record type and CPU
}

func newReferenceShard(rings int) *referenceShard {
	return &referenceShard{rings: make([]RingTally, rings), streams: map[[2]uint64]*stream{}}
}

func (r *referenceShard) observe(b consumer.Batch) {
	ring := &r.rings[b.Ring]
	for _, rec := range b.Records {
		h, err := abi.Decode[abi.Header](rec)
		if err != nil || h.Type == 0 || h.Type >= abi.RecordTypeLimit {
			ring.Invalid++
			continue
		}
		src := &r.sources[h.Type]
		src.Records++
		src.Bytes += uint64(len(rec))
		key := [2]uint64{uint64(h.Type), uint64(h.Cpu)}
		s := r.streams[key]
		if s == nil {
			s = &stream{}
			r.streams[key] = s
		}
		s.ring = b.Ring
		// Ahead by less than 2^63, across the wrap too: a gap (of 0 for
		// the record expected); behind: reordered.
		if ahead := h.Seq - s.next; ahead < 1<<63 {
			src.Gaps += ahead
			ring.Gaps += ahead
			s.next = h.Seq + 1
		} else {
			src.Reordered++
		}
		var latency uint64
		if b.ReadTime > int64(h.KtimeNs) {
			latency = uint64(b.ReadTime) - h.KtimeNs
		}
		ring.Latency.Count++
		ring.Latency.SumNs += latency
		k := 0
		for k < LatencyBuckets && latency > uint64(latencyBase)<<k {
			k++
		}
		ring.Latency.Buckets[k]++
	}
}

func (r *referenceShard) finish(counters []KernelCounts, ringOf func(cpu int) int) {
	for _, c := range counters {
		typ := abi.RecordTypeOf(c.Source)
		if typ == 0 {
			continue
		}
		for cpu, pc := range c.PerCPU {
			next, ring := uint64(0), ringOf(cpu)
			if s := r.streams[[2]uint64{uint64(typ), uint64(cpu)}]; s != nil && s.next > 0 {
				next, ring = s.next, s.ring
			}
			if ring < 0 || ring >= len(r.rings) {
				ring = 0
			}
			if ahead := pc.Attempts - next; ahead < 1<<63 {
				r.sources[typ].Gaps += ahead
				r.rings[ring].Gaps += ahead
			}
		}
	}
}

// recordMaker writes random records: mostly each CPU's next in sequence, as
// run sees them, with every kind of trouble mixed in.
type recordMaker struct {
	rng  *rand.Rand
	next map[[2]uint64]uint64 // by type and CPU: the producer's next sequence number
	mem  []byte               // where records are written, at random alignments
}

func (m *recordMaker) record(readTime int64) []byte {
	rng := m.rng
	typ := abi.RecordType(1 + rng.IntN(int(abi.RecordTypeLimit)-1))
	cpu := uint32(rng.IntN(4))
	size := abi.HeaderSize + rng.IntN(300)
	switch p := rng.IntN(1000); {
	case p < 5: // too short for a header
		size = rng.IntN(abi.HeaderSize)
	case p < 10:
		typ = 0
	case p < 15:
		typ = abi.RecordTypeLimit + abi.RecordType(rng.IntN(3))
	case p < 17:
		typ = abi.RecordType(rng.Uint32())
	case p < 25: // a CPU seen rarely, perhaps far beyond the others
		cpu = uint32(4 + rng.IntN(300))
	}
	key := [2]uint64{uint64(typ), uint64(cpu)}
	seq := m.next[key]
	switch p := rng.IntN(1000); {
	case p < 40: // records lost before this one
		seq += 1 + uint64(rng.IntN(20))
	case p < 55: // a duplicate
		seq = max(seq, 1) - 1
	case p < 70: // from the past
		seq = rng.Uint64N(seq + 1)
	case p < 72: // from anywhere
		seq = rng.Uint64()
	case p < 73:
		seq = math.MaxUint64
	}
	if seq >= m.next[key] {
		m.next[key] = seq + 1
	}
	ktime := uint64(readTime) - rng.Uint64N(1<<uint(rng.IntN(34)))
	switch p := rng.IntN(100); {
	case p < 3: // stamped after the read
		ktime = uint64(readTime) + rng.Uint64N(1000)
	case p < 5: // negative as an int64
		ktime = rng.Uint64() | 1<<63
	}

	h := abi.Header{KtimeNs: ktime, Seq: seq, Type: typ, Cpu: cpu}
	hdr := unsafe.Slice((*byte)(unsafe.Pointer(&h)), abi.HeaderSize)
	if len(m.mem) < size+8 {
		m.mem = make([]byte, 64<<10)
	}
	skip := rng.IntN(8) // unaligned too: Observe must not care
	rec := m.mem[skip : skip+size : skip+size]
	m.mem = m.mem[skip+size:]
	for i := range rec {
		rec[i] = byte(rng.Uint32())
	}
	copy(rec, hdr)
	return rec
}

// TestObserveAgreesWithReference feeds random batches, on several rings,
// to a Tracker and to the plain reference, and then finishes both with
// random final counts: every tally must be the same. The records are
// mostly in sequence, taking Observe's short path, with gaps, duplicates,
// reordered records, short ones, unknown types and CPUs first seen late
// mixed in, so the short path and the long way alternate within a batch.
func TestObserveAgreesWithReference(t *testing.T) {
	const rings = 3
	trials := 200
	if testing.Short() {
		trials = 20
	}
	for trial := range trials {
		seed := uint64(trial)
		rng := rand.New(rand.NewPCG(seed, 0x5eed))
		tr, ref := NewTracker(rings, 1), newReferenceShard(rings)
		maker := &recordMaker{rng: rng, next: map[[2]uint64]uint64{}}
		readTime := int64(1 << 40)
		for range 1 + rng.IntN(40) {
			readTime += rng.Int64N(1 << 30)
			b := consumer.Batch{Ring: rng.IntN(rings), ReadTime: readTime}
			for range rng.IntN(300) {
				b.Records = append(b.Records, maker.record(readTime))
			}
			tr.Shard(0).Observe(b)
			ref.observe(b)
		}
		compareWithReference(t, seed, "after Observe", tr, ref)

		var counters []KernelCounts
		for _, name := range []string{abi.SourceExec, abi.SourceSyscalls, "no such source"} {
			c := KernelCounts{Source: name, PerCPU: make([]abi.SourceCounters, rng.IntN(310))}
			for cpu := range c.PerCPU {
				c.PerCPU[cpu].Attempts = maker.next[[2]uint64{uint64(abi.RecordTypeOf(name)), uint64(cpu)}] + rng.Uint64N(3)
			}
			counters = append(counters, c)
		}
		ringOf := func(cpu int) int { return cpu%(rings+2) - 1 } // some not a ring
		tr.Finish(counters, ringOf)
		ref.finish(counters, ringOf)
		compareWithReference(t, seed, "after Finish", tr, ref)
	}
}

func compareWithReference(t *testing.T, seed uint64, when string, tr *Tracker, ref *referenceShard) {
	t.Helper()
	for typ := abi.RecordType(1); typ < abi.RecordTypeLimit; typ++ {
		if got, want := tr.Source(abi.SourceOf(typ)), ref.sources[typ]; got != want {
			t.Fatalf("seed %d, %s: source %s tally %+v, reference %+v", seed, when, abi.SourceOf(typ), got, want)
		}
	}
	for i, got := range tr.Rings() {
		if want := ref.rings[i]; got != want {
			t.Fatalf("seed %d, %s: ring %d tally %+v, reference %+v", seed, when, i, got, want)
		}
	}
}

// TestObserveAllocatesNothing: once a Shard has seen a batch's CPUs, a batch
// costs no allocation, not even for invalid records.
func TestObserveAllocatesNothing(t *testing.T) {
	tr := NewTracker(1, 1)
	b := consumer.Batch{ReadTime: 5000, Records: [][]byte{
		syscallRecord(0, 0, 1000), syscallRecord(1, 5, 1000), syscallRecord(1, 2, 1000),
		make([]byte, 10), make([]byte, 64),
	}}
	tr.Shard(0).Observe(b)
	if n := testing.AllocsPerRun(100, func() { tr.Shard(0).Observe(b) }); n != 0 {
		t.Fatalf("Observe allocates %v times a batch", n)
	}
}
