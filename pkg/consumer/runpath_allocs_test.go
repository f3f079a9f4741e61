package consumer_test

import (
	"testing"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/accounting"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// TestRunPathAllocatesNothing: what run does with every batch, the walk of
// Consumer.Drain handing each batch to Shard.Observe, allocates nothing
// once the shard has seen the CPUs, for either source's records.
func TestRunPathAllocatesNothing(t *testing.T) {
	for _, typ := range []abi.RecordType{abi.RecordSyscall, abi.RecordExec} {
		m := consumer.NewMemoryRing(64 << 10)
		c, err := m.Consumer()
		if err != nil {
			t.Fatal(err)
		}
		tr := accounting.NewTracker(1, 1)
		p := newRunPathProducer(typ, 2)
		drain := func() {
			n := p.fill(m)
			if got, err := c.Drain(tr.Shard(0).Observe); err != nil || got != n {
				t.Fatalf("drained %d of %d: %v", got, n, err)
			}
		}
		drain() // the shard grows its per-CPU state once
		if allocs := testing.AllocsPerRun(50, drain); allocs != 0 {
			t.Errorf("%v: %v allocations per drain of a full ring", typ, allocs)
		}
		if s := tr.Source(abi.SourceOf(typ)); s.Records != p.written() || s.Gaps != 0 || s.Reordered != 0 {
			t.Errorf("%v: tally %+v, want %d records in order", typ, s, p.written())
		}
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}
}
