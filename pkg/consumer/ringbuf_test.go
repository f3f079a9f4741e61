package consumer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// memRing is a BPF ring buffer in plain Go memory, written the way the
// kernel writes one (kernel/bpf/ringbuf.c: __bpf_ringbuf_reserve and
// bpf_ringbuf_commit), so the walk can be tested without root. The data
// area is kept twice, as the kernel's double mapping shows it.
type memRing struct {
	pos  *[2]uint64 // consumer, producer
	data []byte     // 2*size, 8-byte aligned
	size uint64
}

func newMemRing(size int) *memRing {
	words := make([]uint64, 2*size/8)
	return &memRing{
		pos:  new([2]uint64),
		data: unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), 2*size),
		size: uint64(size),
	}
}

func (m *memRing) reader() *ringbuf { return newRingbuf(&m.pos[0], &m.pos[1], m.data) }

func (m *memRing) consumerPos() uint64 { return atomic.LoadUint64(&m.pos[0]) }

// write puts b at ring position pos in both copies of the data.
func (m *memRing) write(pos uint64, b []byte) {
	off := pos & (m.size - 1)
	if end := off + uint64(len(b)); end <= m.size {
		copy(m.data[off:end], b)
		copy(m.data[off+m.size:end+m.size], b)
		return
	}
	n := copy(m.data[off:m.size], b) // up to the end of the ring
	copy(m.data[off+m.size:], b[:n])
	copy(m.data, b[n:]) // what wrapped, at the start of the ring
	copy(m.data[m.size:], b[n:])
}

func (m *memRing) setHeader(pos uint64, header uint32) {
	off := pos & (m.size - 1)
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&m.data[off])), header)
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&m.data[off+m.size])), header)
}

// reserve claims space for a sample of n bytes, marks it busy and returns
// its position, or false when the ring is full, as the kernel decides it.
func (m *memRing) reserve(n int) (uint64, bool) {
	total := (uint64(n) + unix.BPF_RINGBUF_HDR_SZ + 7) &^ 7
	prod := atomic.LoadUint64(&m.pos[1])
	if prod+total-m.consumerPos() > m.size-1 {
		return 0, false
	}
	m.setHeader(prod, uint32(n)|unix.BPF_RINGBUF_BUSY_BIT)
	atomic.StoreUint64(&m.pos[1], prod+total)
	return prod, true
}

func (m *memRing) commit(pos uint64, sample []byte, discard bool) {
	m.write(pos+unix.BPF_RINGBUF_HDR_SZ, sample)
	header := uint32(len(sample))
	if discard {
		header |= unix.BPF_RINGBUF_DISCARD_BIT
	}
	m.setHeader(pos, header)
}

func (m *memRing) put(t testing.TB, sample []byte) {
	t.Helper()
	pos, ok := m.reserve(len(sample))
	if !ok {
		t.Fatalf("ring full putting %d bytes", len(sample))
	}
	m.commit(pos, sample, false)
}

func sample(i, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i + j)
	}
	if n >= 8 {
		binary.LittleEndian.PutUint64(b, uint64(i))
	}
	return b
}

func read(t *testing.T, r *ringbuf, max int) [][]byte {
	t.Helper()
	var b batch
	if err := r.nextBatch(&b, max); err != nil {
		t.Fatalf("nextBatch: %v", err)
	}
	return b.records
}

func TestRingbufReadsInOrderAndReleasesOncePerBatch(t *testing.T) {
	m := newMemRing(4096)
	r := m.reader()
	var want [][]byte
	for i := range 5 {
		s := sample(i, 8+i*3) // odd lengths exercise the 8-byte padding
		want = append(want, s)
		m.put(t, s)
	}
	got := read(t, r, maxBatchRecords)
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("record %d = %x, want %x", i, got[i], want[i])
		}
	}
	if m.consumerPos() != 0 {
		t.Fatalf("consumer position moved to %d before release", m.consumerPos())
	}
	if !r.release() {
		t.Fatal("release reported nothing to release")
	}
	if got, want := m.consumerPos(), m.pos[1]; got != want {
		t.Fatalf("consumer position after release = %d, want producer position %d", got, want)
	}
	if r.release() {
		t.Fatal("second release reported progress")
	}
}

func TestRingbufWrapsAround(t *testing.T) {
	const size = 4096
	m := newMemRing(size)
	r := m.reader()
	// Walk the positions past the end of the ring several times, with a
	// record size that does not divide the ring, so records straddle the
	// wrap at many different offsets.
	for i := range 3 * size / 100 {
		s := sample(i, 93)
		m.put(t, s)
		got := read(t, r, maxBatchRecords)
		if len(got) != 1 || !bytes.Equal(got[0], s) {
			t.Fatalf("record %d at position %d: got %x, want %x", i, m.pos[1]-104, got, s)
		}
		r.release()
	}
	if m.pos[1] < 2*size {
		t.Fatalf("producer only reached position %d; the test did not wrap", m.pos[1])
	}
}

func TestRingbufStopsAtBusyRecord(t *testing.T) {
	m := newMemRing(4096)
	r := m.reader()
	m.put(t, sample(0, 16))
	busy, _ := m.reserve(16) // reserved, not yet submitted
	m.put(t, sample(2, 16))  // submitted after the busy one

	got := read(t, r, maxBatchRecords)
	if len(got) != 1 || !bytes.Equal(got[0], sample(0, 16)) {
		t.Fatalf("before commit: got %x, want only record 0", got)
	}
	r.release()
	if got := read(t, r, maxBatchRecords); len(got) != 0 {
		t.Fatalf("read %d records past a busy one", len(got))
	}

	m.commit(busy, sample(1, 16), false)
	got = read(t, r, maxBatchRecords)
	if len(got) != 2 || !bytes.Equal(got[0], sample(1, 16)) || !bytes.Equal(got[1], sample(2, 16)) {
		t.Fatalf("after commit: got %x, want records 1 and 2", got)
	}
}

func TestRingbufSkipsDiscardedRecords(t *testing.T) {
	m := newMemRing(4096)
	r := m.reader()
	pos, _ := m.reserve(24)
	m.commit(pos, sample(0, 24), true)
	m.put(t, sample(1, 8))

	var b batch
	if err := r.nextBatch(&b, maxBatchRecords); err != nil {
		t.Fatal(err)
	}
	if len(b.records) != 1 || !bytes.Equal(b.records[0], sample(1, 8)) {
		t.Fatalf("got %x, want only record 1", b.records)
	}
	if b.discarded != 1 || b.bytes != 8 {
		t.Fatalf("discarded = %d, bytes = %d; want 1 and 8", b.discarded, b.bytes)
	}
	r.release()
	if m.consumerPos() != m.pos[1] {
		t.Fatalf("consumer position %d did not move past the discarded record to %d", m.consumerPos(), m.pos[1])
	}
}

func TestRingbufRejectsCorruptRing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(m *memRing)
	}{
		{"length beyond producer", func(m *memRing) { m.setHeader(0, 64) }},
		{"length beyond ring", func(m *memRing) { m.setHeader(0, 1<<29) }},
		{"producer beyond ring", func(m *memRing) { m.pos[1] = 2 * m.size }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemRing(4096)
			m.put(t, sample(0, 16))
			tc.corrupt(m)
			var b batch
			err := m.reader().nextBatch(&b, maxBatchRecords)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			if len(b.records) != 0 {
				t.Fatalf("returned %d records from a corrupt ring", len(b.records))
			}
		})
	}
}

func TestRingbufKeepsRecordsBeforeCorruption(t *testing.T) {
	m := newMemRing(4096)
	m.put(t, sample(0, 16))
	m.put(t, sample(1, 16))
	m.setHeader(24, 1000) // the second record now claims more than was produced
	c := &Consumer{rings: []ring{m.reader()}, counters: make([]ringCounters, 1)}
	var got [][]byte
	deliver := func(b Batch) {
		for _, rec := range b.Records {
			got = append(got, bytes.Clone(rec))
		}
	}
	for range 2 { // the second drain must not deliver record 0 again
		if _, err := c.Drain(deliver); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("drain: %v, want ErrCorrupt", err)
		}
	}
	if len(got) != 1 || !bytes.Equal(got[0], sample(0, 16)) {
		t.Fatalf("delivered %x, want record 0 once", got)
	}
	if m.consumerPos() != 24 {
		t.Fatalf("consumer position %d, want 24: just past the sound record", m.consumerPos())
	}
}

func TestRingbufBoundsBatch(t *testing.T) {
	m := newMemRing(64 << 10)
	r := m.reader()
	for i := range 2000 {
		m.put(t, sample(i, 8)) // 16 bytes each in the ring
	}
	if got := read(t, r, 10); len(got) != 10 {
		t.Fatalf("batch of at most 10 records had %d", len(got))
	}
	// A quarter of 64 KiB is 1024 records of 16 bytes.
	if got := read(t, r, 1<<20); len(got) != 1024 {
		t.Fatalf("batch bounded by a quarter of the ring had %d records, want 1024", len(got))
	}
}

// TestDrainDeliversEverythingAcrossBatches runs the consumer's drain loop
// over a ring in plain memory.
func TestDrainDeliversEverythingAcrossBatches(t *testing.T) {
	m := newMemRing(1 << 20)
	const n = 5000
	for i := range n {
		m.put(t, sample(i, 24))
	}
	c := &Consumer{rings: []ring{m.reader()}, counters: make([]ringCounters, 1)}
	next := 0
	got, err := c.Drain(func(b Batch) {
		if len(b.Records) > maxBatchRecords {
			t.Errorf("batch of %d records", len(b.Records))
		}
		for _, rec := range b.Records {
			if i := int(binary.LittleEndian.Uint64(rec)); i != next {
				t.Fatalf("record %d arrived where %d was due", i, next)
			}
			next++
		}
	})
	if err != nil || got != n || next != n {
		t.Fatalf("drain = %d, %v; callback saw %d; want %d", got, err, next, n)
	}
	s := &c.counters[0]
	if s.records.Load() != n || s.bytes.Load() != n*24 || s.batches.Load() < n/maxBatchRecords {
		t.Fatalf("counters: records %d bytes %d batches %d", s.records.Load(), s.bytes.Load(), s.batches.Load())
	}
	if m.consumerPos() != m.pos[1] {
		t.Fatalf("consumer position %d, producer %d after drain", m.consumerPos(), m.pos[1])
	}
}

// BenchmarkDrain times the walk alone: a full ring of records of each size,
// drained to a callback that touches nothing. It reports ns per record, and
// allocations, which must be 0 per drain and so per record.
func BenchmarkDrain(b *testing.B) {
	for _, size := range []int{16, 64, 256} {
		b.Run(fmt.Sprintf("record=%dB", size), func(b *testing.B) {
			m := newMemRing(4 << 20)
			c := &Consumer{
				rings:    []ring{m.reader()},
				counters: make([]ringCounters, 1),
				batch:    batch{records: make([][]byte, 0, maxBatchRecords)},
			}
			s := sample(0, size)
			fn := func(Batch) {}
			records := 0
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				n := 0
				for {
					pos, ok := m.reserve(size)
					if !ok {
						break
					}
					m.commit(pos, s, false)
					n++
				}
				b.StartTimer()
				got, err := c.Drain(fn)
				if err != nil || got != n {
					b.Fatalf("drained %d of %d: %v", got, n, err)
				}
				records += n
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
		})
	}
}
