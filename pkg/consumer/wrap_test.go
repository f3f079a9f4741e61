package consumer

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
)

// The walks' positions are uint64 and wrap to 0 after 2^64 bytes (ring
// buffer, perf buffer) or 2^64 slots (SPSC queues): never in practice, but
// the walks must compare positions by their difference, as the kernel does
// (kernel/bpf/ringbuf.c: new_prod_pos - cons_pos > rb->mask), so that the
// wrap is an ordinary step. These tests start a few records below 2^64 and
// read across it.

// nearWrap is the position span bytes (or slots) below 2^64.
func nearWrap(span uint64) uint64 { return -span }

func TestRingbufWalksAcrossPositionWrap(t *testing.T) {
	const size, sampleLen, span = 4096, 93, 104 // a 93-byte sample takes 104 bytes
	m := newMemRing(size)
	start := nearWrap(3 * span)
	m.pos[0], m.pos[1] = start, start
	r := m.reader()

	next := 0
	for round, n := range []int{10, 1, 30, 25} { // 10 cross the wrap on the first round
		prodBefore := m.pos[1]
		for i := range n {
			m.put(t, sample(next+i, sampleLen))
		}
		if got := r.pending(); got != uint64(n)*span {
			t.Fatalf("round %d: pending %d bytes with producer at %d and consumer at %d, want %d",
				round, got, m.pos[1], m.consumerPos(), n*span)
		}
		if !r.ready() {
			t.Fatalf("round %d: ready is false with %d records from position %d", round, n, prodBefore)
		}
		var got [][]byte
		for range n + 1 {
			got = append(got, cloneAll(read(t, r, 4))...)
			if !r.release() {
				break
			}
		}
		if len(got) != n {
			t.Fatalf("round %d: read %d records from position %d, want %d", round, len(got), prodBefore, n)
		}
		for i, rec := range got {
			if want := sample(next+i, sampleLen); !bytes.Equal(rec, want) {
				t.Fatalf("round %d: record %d = %x, want %x", round, next+i, rec, want)
			}
		}
		next += n
		if want := start + uint64(next)*span; m.consumerPos() != want || m.pos[1] != want {
			t.Fatalf("round %d: consumer at %d, producer at %d; want both at %d", round, m.consumerPos(), m.pos[1], want)
		}
		if r.ready() || r.pending() != 0 {
			t.Fatalf("round %d: ready %v, pending %d after reading everything", round, r.ready(), r.pending())
		}
	}
	if m.pos[1] >= start {
		t.Fatalf("producer at %d did not wrap past 2^64", m.pos[1])
	}
}

func TestPerfbufWalksAcrossPositionWrap(t *testing.T) {
	const size, rawLen, span = 256, 44, 56 // 8 header + 4 size + 44 raw = 56
	m := newMemPerf(size)
	start := nearWrap(3 * span)
	m.head = start
	m.meta.Data_head, m.meta.Data_tail = start, start
	p := m.reader()

	next := 0
	for round, n := range []int{4, 1, 4, 3, 4} {
		for i := range n {
			if !m.sample(sample(next+i, rawLen)) {
				t.Fatalf("round %d: no room for sample %d", round, next+i)
			}
		}
		if round == 1 && !m.lostRecord(5) {
			t.Fatalf("round %d: no room for the lost record", round)
		}
		if got, want := p.pending(), m.head-atomic.LoadUint64(&m.meta.Data_tail); got != want || got == 0 {
			t.Fatalf("round %d: pending %d, want %d", round, got, want)
		}
		got := drainPerf(t, p)
		if len(got) != n {
			t.Fatalf("round %d: read %d samples, want %d", round, len(got), n)
		}
		for i, rec := range got {
			if want := sample(next+i, rawLen); !bytes.Equal(rec, want) {
				t.Fatalf("round %d: sample %d = %x, want %x", round, next+i, rec, want)
			}
		}
		next += n
		if tail := atomic.LoadUint64(&m.meta.Data_tail); tail != m.head {
			t.Fatalf("round %d: data_tail %d, data_head %d after draining", round, tail, m.head)
		}
	}
	if want := start + uint64(next)*span + 24; m.head != want {
		t.Fatalf("data_head %d, want %d", m.head, want)
	}
	if m.head >= start {
		t.Fatalf("data_head %d did not wrap past 2^64", m.head)
	}
	if p.lost() != 5 {
		t.Fatalf("lost %d, want the 5 the lost record reported", p.lost())
	}
}

// TestSPSCWalksAcrossPositionWrap reads queues whose counts pass 2^64,
// with slots of a power of two and not: where a count's slot is its value
// mod perQueue, a count that wraps at 2^64 jumps to another slot unless
// perQueue divides 2^64, so both sides step their slot index by one instead.
func TestSPSCWalksAcrossPositionWrap(t *testing.T) {
	for _, perQueue := range []uint64{8, 7} {
		t.Run(fmt.Sprint(perQueue, "slots"), func(t *testing.T) { testSPSCWrap(t, perQueue) })
	}
}

func testSPSCWrap(t *testing.T, perQueue uint64) {
	const slotSize, maxLen = 32, 24
	m := newMemQueues(t, 2, int(perQueue), slotSize)
	defer m.bell.close()
	// Queue 0 wraps after 3 slots, queue 1 after 1.
	starts := []uint64{nearWrap(3), nearWrap(1)}
	prods := make([]*producer, len(starts))
	for k, start := range starts {
		*m.head(k), *m.tail(k) = start, start
		prods[k] = m.producer(k)
	}
	s := m.reader()
	defer s.close()

	var buf [maxLen]byte
	next := []uint64{0, 1000} // record numbers per queue
	for round := range 4 {
		for k, p := range prods {
			for i := range uint64(perQueue) {
				if !p.push(record(buf[:], next[k]+i, maxLen)) {
					t.Fatalf("round %d: queue %d full after %d of %d records", round, k, i, perQueue)
				}
			}
			if p.push(record(buf[:], 0, maxLen)) {
				t.Fatalf("round %d: queue %d took a record beyond its %d slots", round, k, perQueue)
			}
		}
		if got := s.pending(); got != 2*perQueue*slotSize {
			t.Fatalf("round %d: pending %d bytes, want %d", round, got, 2*perQueue*slotSize)
		}
		got := make([]uint64, 2) // records read per queue
		for range 4 * perQueue {
			var b batch
			if err := s.nextBatch(&b, 3); err != nil {
				t.Fatal(err)
			}
			for _, rec := range b.records {
				k := 0
				if len(rec) >= 8 && rec[1] != 0 { // queue 1's numbers start at 1000
					k = 1
				}
				if problem := checkRecord(rec, next[k]+got[k], maxLen); problem != "" {
					t.Fatalf("round %d: queue %d, record %d: %s", round, k, next[k]+got[k], problem)
				}
				got[k]++
			}
			if !s.release() {
				break
			}
		}
		for k := range prods {
			if got[k] != perQueue {
				t.Fatalf("round %d: read %d records of queue %d, want %d", round, got[k], k, perQueue)
			}
			next[k] += perQueue
			want := starts[k] + uint64(round+1)*perQueue
			if h := atomic.LoadUint64(m.head(k)); h != want {
				t.Fatalf("round %d: queue %d head %d, want %d", round, k, h, want)
			}
		}
		if s.ready() || s.pending() != 0 {
			t.Fatalf("round %d: ready %v, pending %d after reading everything", round, s.ready(), s.pending())
		}
	}
	for k, start := range starts {
		if *m.head(k) >= start {
			t.Fatalf("queue %d head %d did not wrap past 2^64", k, *m.head(k))
		}
	}
}

func cloneAll(recs [][]byte) [][]byte {
	out := make([][]byte, len(recs))
	for i, rec := range recs {
		out[i] = bytes.Clone(rec)
	}
	return out
}
