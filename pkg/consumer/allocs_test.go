package consumer

import "testing"

// The walks over each ring's layout allocate nothing per record: a full
// ring, walked in batches and released, costs no allocation at all. (The
// perf buffer's walk: TestPerfbufWalkAllocatesNothing.)

func TestRingbufWalkAllocatesNothing(t *testing.T) {
	m := newMemRing(64 << 10)
	c := &Consumer{
		rings:    []ring{m.reader()},
		counters: make([]ringCounters, 1),
		batch:    batch{records: make([][]byte, 0, maxBatchRecords)},
	}
	s := sample(0, 40)
	fn := func(Batch) {}
	records := 0
	allocs := testing.AllocsPerRun(50, func() {
		n := 0
		for {
			pos, ok := m.reserve(len(s))
			if !ok {
				break
			}
			m.commit(pos, s, false)
			n++
		}
		got, err := c.Drain(fn)
		if err != nil || got != n {
			t.Fatalf("drained %d of %d: %v", got, n, err)
		}
		records += got
	})
	if records == 0 || allocs != 0 {
		t.Fatalf("%v allocations per drain of a full ring (%d records in all)", allocs, records)
	}
}

func TestSPSCWalkAllocatesNothing(t *testing.T) {
	m := newMemQueues(t, 2, 1024, 40+spscSlotHeader)
	defer m.bell.close()
	s := m.reader()
	defer s.close()
	producers := []*producer{{m: m, k: 0}, {m: m, k: 1}}
	rec := make([]byte, 40)
	b := batch{records: make([][]byte, 0, maxBatchRecords)}
	records := 0
	allocs := testing.AllocsPerRun(50, func() {
		for _, p := range producers {
			for p.push(rec) {
			}
		}
		for {
			b.records = b.records[:0]
			if err := s.nextBatch(&b, maxBatchRecords); err != nil {
				t.Fatal(err)
			}
			records += len(b.records)
			if !s.release() {
				break
			}
		}
	})
	if records == 0 || allocs != 0 {
		t.Fatalf("%v allocations per walk of two full queues (%d records in all)", allocs, records)
	}
}
