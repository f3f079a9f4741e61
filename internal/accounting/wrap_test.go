package accounting

import (
	"testing"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// TestTrackerFollowsSequenceAcrossWrap feeds one CPU's records whose
// sequence numbers run across 2^64: in order they count no gap and no
// reorder, a gap after the wrap or straddling it counts exactly what is
// missing, and a record behind the expected one across the wrap is
// reordered. A stream starts at 0, so each case first walks it to just
// below 2^64 in two gaps of less than 2^63 (2^63-1, then 2^63-3).
func TestTrackerFollowsSequenceAcrossWrap(t *testing.T) {
	const toNearWrap = 1<<63 - 1 + 1<<63 - 3 // the two gaps that reach 2^64-3
	for _, tc := range []struct {
		name            string
		seqs            []uint64 // after 2^63-1 and 2^64-3
		gaps, reordered uint64
	}{
		{"in order, then 2 and 3 lost", []uint64{1<<64 - 2, 1<<64 - 1, 0, 1, 4}, 2, 0},
		{"2^64-2, 2^64-1 and 0 lost", []uint64{1}, 3, 0},
		{"2^64-1 late", []uint64{0, 1<<64 - 1}, 2, 1},
	} {
		tr := NewTracker(1, 1)
		var recs [][]byte
		for _, seq := range append([]uint64{1<<63 - 1, 1<<64 - 3}, tc.seqs...) {
			recs = append(recs, syscallRecord(2, seq, 0))
		}
		tr.Shard(0).Observe(consumer.Batch{Ring: 0, Records: recs})
		src := tr.Source(abi.SourceSyscalls)
		if src.Records != uint64(len(recs)) || src.Gaps != toNearWrap+tc.gaps || src.Reordered != tc.reordered {
			t.Errorf("%s: tally %+v, want %d records, gaps 2^64-4 + %d, %d reordered",
				tc.name, src, len(recs), tc.gaps, tc.reordered)
		}
	}
}
