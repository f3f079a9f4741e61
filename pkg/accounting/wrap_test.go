package accounting

import (
	"testing"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// TestTrackerFollowsSequenceAcrossWrap feeds one CPU's records whose
// sequence numbers run across 2^64: in order they count no gap and no
// reorder, and a gap after the wrap counts exactly what is missing.
func TestTrackerFollowsSequenceAcrossWrap(t *testing.T) {
	tr := NewTracker(1, 1)
	var recs [][]byte
	// 2^64-3 .. 2^64-1, 0, 1, then 2 and 3 lost, then 4.
	for _, seq := range []uint64{1<<64 - 3, 1<<64 - 2, 1<<64 - 1, 0, 1, 4} {
		recs = append(recs, syscallRecord(2, seq, 0))
	}
	// A stream expects 0 first, so the 2^64-3 numbers before the first
	// record count as a gap too.
	tr.Shard(0).Observe(consumer.Batch{Ring: 0, Records: recs})
	src := tr.Source(abi.SourceSyscalls)
	if src.Records != 6 || src.Reordered != 0 || src.Gaps != 1<<64-3+2 {
		t.Fatalf("syscalls tally %+v, want 6 records, none reordered, and gaps 2^64-3 before the first plus 2", src)
	}
}
