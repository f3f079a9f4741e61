package accounting

import (
	"testing"
	"unsafe"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// syscallRecord is the memory of a syscalls record with the given header.
func syscallRecord(cpu uint32, seq, ktime uint64) []byte {
	r := &abi.SyscallRecord{Hdr: abi.Header{Type: abi.RecordSyscall, Cpu: cpu, Seq: seq, KtimeNs: ktime}}
	return unsafe.Slice((*byte)(unsafe.Pointer(r)), unsafe.Sizeof(*r))
}

func TestTrackerCountsGapsPerCPU(t *testing.T) {
	tr := NewTracker(1, 1)
	var recs [][]byte
	// CPU 0 delivers 0,1,4,5 (2 and 3 lost); CPU 3 delivers 2,3 (0 and 1
	// lost); interleaved as a shared ring would carry them.
	for _, r := range []struct {
		cpu uint32
		seq uint64
	}{{0, 0}, {3, 2}, {0, 1}, {0, 4}, {3, 3}, {0, 5}} {
		recs = append(recs, syscallRecord(r.cpu, r.seq, 0))
	}
	tr.Shard(0).Observe(consumer.Batch{Ring: 0, Records: recs})

	src := tr.Source(abi.SourceSyscalls)
	if src.Records != 6 || src.Gaps != 4 || src.Reordered != 0 {
		t.Fatalf("syscalls tally %+v, want 6 records and 4 gaps", src)
	}
	if g := tr.Rings()[0].Gaps; g != 4 {
		t.Fatalf("ring gaps %d, want 4", g)
	}

	// The producers attempted 8 on CPU 0 (6 and 7 lost after the last
	// delivered record) and 4 on CPU 3; CPU 1 attempted 2 and delivered none.
	tr.Finish([]KernelCounts{{
		Source: abi.SourceSyscalls,
		PerCPU: []abi.SourceCounters{{Attempts: 8}, {Attempts: 2}, {}, {Attempts: 4}},
	}}, func(int) int { return 0 })
	if g := tr.Source(abi.SourceSyscalls).Gaps; g != 4+2+2 {
		t.Fatalf("gaps after Finish %d, want 8", g)
	}
}

func TestTrackerCountsReorderedAndInvalid(t *testing.T) {
	tr := NewTracker(2, 1)
	tr.Shard(0).Observe(consumer.Batch{Ring: 1, Records: [][]byte{
		syscallRecord(0, 0, 0),
		syscallRecord(0, 1, 0),
		syscallRecord(0, 1, 0), // duplicate
		syscallRecord(0, 0, 0), // backwards
		make([]byte, 10),       // shorter than a header
		make([]byte, 64),       // type 0
	}})
	if src := tr.Source(abi.SourceSyscalls); src.Records != 4 || src.Reordered != 2 || src.Gaps != 0 {
		t.Fatalf("syscalls tally %+v, want 4 records, 2 reordered", src)
	}
	if r := tr.Rings(); r[1].Invalid != 2 || r[0].Invalid != 0 {
		t.Fatalf("invalid counts %d on ring 1, %d on ring 0; want 2 and 0", r[1].Invalid, r[0].Invalid)
	}
}

func TestLatencyBuckets(t *testing.T) {
	for _, tc := range []struct {
		ns   uint64
		want int
	}{
		{0, 0}, {1, 0}, {1000, 0}, {1001, 1}, {2000, 1}, {2001, 2}, {4000, 2}, {4001, 3},
		{1_000_000, 10}, {1_024_000, 10}, {1_024_001, 11},
		{1000 << 22, 22}, {1000<<22 + 1, LatencyBuckets}, {1 << 62, LatencyBuckets},
	} {
		if got := latencyBucket(tc.ns); got != tc.want {
			t.Errorf("latencyBucket(%d) = %d, want %d", tc.ns, got, tc.want)
		}
		// The bucket's bound holds the value and the one below does not.
		if k := latencyBucket(tc.ns); k < LatencyBuckets {
			if float64(tc.ns)/1e9 > LatencyBound(k) || (k > 0 && float64(tc.ns)/1e9 <= LatencyBound(k-1)) {
				t.Errorf("%d ns in bucket %d, bounds (%g, %g]", tc.ns, k, LatencyBound(k-1), LatencyBound(k))
			}
		}
	}
}

func TestTrackerLatency(t *testing.T) {
	tr := NewTracker(1, 1)
	const now = 10_000_000
	tr.Shard(0).Observe(consumer.Batch{ReadTime: now, Records: [][]byte{
		syscallRecord(0, 0, now-500),       // 500ns: first bucket
		syscallRecord(0, 1, now-3000),      // 3µs: bucket 2
		syscallRecord(0, 2, now+100),       // stamped after the read: counted as 0
		syscallRecord(0, 3, now-5_000_000), // 5ms: bucket 13 (8.192ms)
	}})
	h := tr.Rings()[0].Latency
	if h.Count != 4 || h.SumNs != 500+3000+0+5_000_000 {
		t.Fatalf("count %d sum %d", h.Count, h.SumNs)
	}
	if h.Buckets[0] != 2 || h.Buckets[2] != 1 || h.Buckets[13] != 1 {
		t.Fatalf("buckets %v", h.Buckets)
	}
}

// BenchmarkTrackerObserve is the per-record cost of the accounting the
// run command does on every record, on a batch of 1024 syscalls records from
// two CPUs. in-sequence is what run sees: each pass resets the shard's
// streams, so every record carries the sequence number its CPU's stream
// expects. replayed feeds the same batch again without a reset, so after
// the first pass every record is a duplicate: the out-of-sequence path.
func BenchmarkTrackerObserve(b *testing.B) {
	for _, inSequence := range []bool{true, false} {
		name := "replayed"
		if inSequence {
			name = "in-sequence"
		}
		b.Run(name, func(b *testing.B) {
			tr := NewTracker(1, 1)
			// Laid out as a ring lays them out: back to back, each after an
			// 8-byte ring header.
			const stride = 48
			mem := make([]byte, 1024*stride)
			recs := make([][]byte, 1024)
			for i := range recs {
				start := i*stride + 8
				recs[i] = mem[start : start+40 : start+40]
				copy(recs[i], syscallRecord(uint32(i%2), uint64(i/2), 1))
			}
			batch := consumer.Batch{Records: recs, ReadTime: 5000}
			sh := tr.Shard(0)
			b.ReportAllocs()
			for b.Loop() {
				if inSequence {
					clear(sh.streams)
				}
				sh.Observe(batch)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
		})
	}
}

// TestShardsMergeToWhatOneShardCounts feeds the same records to a tracker
// with one shard and to one with two, each shard reading the rings of its
// own CPUs as two consumers would: the merged tallies, and the gaps Finish
// adds, must be the same.
func TestShardsMergeToWhatOneShardCounts(t *testing.T) {
	one, two := NewTracker(2, 1), NewTracker(2, 2)
	// CPU k writes to ring k; ring k is read by consumer k.
	for _, r := range []struct {
		cpu uint32
		seq uint64
	}{{0, 0}, {1, 0}, {0, 2}, {1, 3}, {0, 3}} {
		b := consumer.Batch{Ring: int(r.cpu), ReadTime: 5000, Records: [][]byte{syscallRecord(r.cpu, r.seq, 1000)}}
		one.Shard(0).Observe(b)
		two.Shard(int(r.cpu)).Observe(b)
	}
	final := []KernelCounts{{Source: abi.SourceSyscalls,
		PerCPU: []abi.SourceCounters{{Attempts: 6}, {Attempts: 4}, {Attempts: 2}}}}
	ringOf := func(cpu int) int { return min(cpu, 1) }
	one.Finish(final, ringOf)
	two.Finish(final, ringOf)
	if a, b := one.Source(abi.SourceSyscalls), two.Source(abi.SourceSyscalls); a != b || a.Records != 5 || a.Gaps != 12-5 {
		t.Fatalf("one shard %+v, two shards %+v; want 5 records and 7 gaps in both", a, b)
	}
	if a, b := one.Rings(), two.Rings(); a[0] != b[0] || a[1] != b[1] || a[0].Gaps != 3 || a[1].Gaps != 4 {
		t.Fatalf("rings: one shard %+v, two shards %+v; want gaps 3 and 4", a, b)
	}
}

// TestCorruptCPUIsInvalid feeds a record whose CPU number no kernel has, as
// a corrupt ring would: it is counted invalid, and does not make the shard
// grow per-CPU state to four billion CPUs.
func TestCorruptCPUIsInvalid(t *testing.T) {
	tr := NewTracker(1, 1)
	batch := consumer.Batch{Records: [][]byte{syscallRecord(0xFFFFFFFF, 0, 0), syscallRecord(maxCPU, 0, 0), syscallRecord(1, 0, 0)}}
	if n := testing.AllocsPerRun(1, func() { tr.Shard(0).Observe(batch) }); n > 2 {
		t.Errorf("Observe allocated %v times for three records", n)
	}
	if r := tr.Rings()[0]; r.Invalid < 2 || tr.Source(abi.SourceSyscalls).Records == 0 {
		t.Fatalf("ring tally %+v: want the two corrupt records invalid and the sound one counted", r)
	}
}
