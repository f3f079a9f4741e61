package consumer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The fuzz targets below give each ring walk arbitrary positions (near
// 2^64 too), headers, lengths and flag bits, in plain memory laid out as
// the kernel lays it out, and compare what the walk returns with a
// reference walk: a few plain lines that read the ring one byte at a time
// by position modulo its size, the way the kernel's comments describe the
// format, with no doubled mapping, unsafe or batching. The walk must agree
// with it record for record: the same records, at the same addresses
// where they alias the ring, the same end position, and ErrCorrupt exactly
// where the reference finds the format broken. Every batch must stay within
// maxRecords, every record slice must lie inside the ring's data, the
// memory around the ring (guard bytes) and the data itself must be left
// as they were, the consumer position must never pass the producer's, and
// the walk must finish within fuzzBatchLimit batches.
//
// Run one with: go test -run '^$' -fuzz '^FuzzRingbufWalk$' -fuzztime 10m ./pkg/consumer

// fuzzBatchLimit bounds the batches of one fuzzed walk: every ring here
// holds fewer records than this, and each batch that is not the last makes
// progress.
const fuzzBatchLimit = 1024

const guardLen, guardByte = 64, 0xa5

// guarded is 8-byte aligned memory with guardLen bytes of guardByte on
// either side, to tell a walk that strays out of its memory.
type guarded struct{ all, mem []byte }

func newGuarded(n int) guarded {
	words := make([]uint64, (n+2*guardLen+7)/8)
	all := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)
	for i := range all {
		all[i] = guardByte
	}
	return guarded{all: all, mem: all[guardLen : guardLen+n : guardLen+n]}
}

// checkGuards fails t if anything outside mem changed.
func (g guarded) checkGuards(t *testing.T) {
	t.Helper()
	for i, c := range g.all {
		if (i < guardLen || i >= guardLen+len(g.mem)) && c != guardByte {
			t.Fatalf("guard byte %d (of %d around %d bytes) changed to %#x", i, 2*guardLen, len(g.mem), c)
		}
	}
}

// offset is where rec starts in mem, and whether all of rec lies in mem.
// A record that lies partly in mem fails t. (An empty record's address
// says little: Go gives s[i:i:i] the address of s[0].)
func (g guarded) offset(t *testing.T, rec []byte) (uint64, bool) {
	t.Helper()
	start := uintptr(unsafe.Pointer(unsafe.SliceData(g.mem)))
	end := start + uintptr(len(g.mem))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(rec)))
	q := p + uintptr(len(rec))
	switch {
	case p >= start && q <= end:
		return uint64(p - start), true
	case q <= start-guardLen || p >= end+guardLen:
		return 0, false
	}
	t.Fatalf("record of %d bytes at %#x strays outside the ring data [%#x, %#x)", len(rec), p, start, end)
	return 0, false
}

// ringBytes is the reference walk's view of ring memory: n bytes at
// position pos of a ring held once in data, wrapping at its end.
func ringBytes(data []byte, pos, n uint64) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = data[(pos+uint64(i))%uint64(len(data))]
	}
	return out
}

// refRecord is a record the reference walk finds: where its payload starts
// and its bytes.
type refRecord struct {
	pos  uint64
	data []byte
}

// refWalk is the reference walk's verdict on a whole ring.
type refWalk struct {
	records   []refRecord
	discarded uint64 // ring buffer records with the discard bit
	lost      uint64 // perf PERF_RECORD_LOST counts
	end       uint64 // position where the walk stops
	corrupt   bool   // the record at end breaks the format
}

// refRingbuf walks a BPF ring buffer as include/uapi/linux/bpf.h and
// kernel/bpf/ringbuf.c define it: from cons to prod, records of an 8-byte
// header (u32 length with the busy and discard bits, u32 page offset) and
// the payload, padded to 8 bytes; a busy record ends the walk.
func refRingbuf(data []byte, cons, prod uint64) refWalk {
	size := uint64(len(data))
	if prod-cons > size {
		return refWalk{end: cons, corrupt: true}
	}
	var w refWalk
	pos := cons
	for pos != prod {
		header := binary.LittleEndian.Uint32(ringBytes(data, pos, 4))
		if header&unix.BPF_RINGBUF_BUSY_BIT != 0 {
			break
		}
		n := uint64(header &^ (unix.BPF_RINGBUF_BUSY_BIT | unix.BPF_RINGBUF_DISCARD_BIT))
		total := (n + unix.BPF_RINGBUF_HDR_SZ + 7) &^ 7
		if total > prod-pos {
			return refWalk{records: w.records, discarded: w.discarded, end: pos, corrupt: true}
		}
		if header&unix.BPF_RINGBUF_DISCARD_BIT != 0 {
			w.discarded++
		} else {
			w.records = append(w.records, refRecord{pos + unix.BPF_RINGBUF_HDR_SZ, ringBytes(data, pos+unix.BPF_RINGBUF_HDR_SZ, n)})
		}
		pos += total
	}
	w.end = pos
	return w
}

// fuzzBatchSize is the maxRecords of a fuzzed walk: 1 to 256, small
// enough that batches end on it.
func fuzzBatchSize(n uint16) int { return int(n%256) + 1 }

// checkBatch fails t if the batch has more than max records.
func checkBatch(t *testing.T, b *batch, max int) {
	t.Helper()
	if len(b.records) > max {
		t.Fatalf("batch of %d records, at most %d asked for", len(b.records), max)
	}
	var sum uint64
	for _, rec := range b.records {
		sum += uint64(len(rec))
	}
	if sum != b.bytes {
		t.Fatalf("batch bytes %d, its records hold %d", b.bytes, sum)
	}
}

// checkEnd fails t unless the walk, stopped at end with err, agrees with
// the reference walk ref.
func checkEnd(t *testing.T, err error, end uint64, ref refWalk) {
	t.Helper()
	switch {
	case err != nil && !errors.Is(err, ErrCorrupt):
		t.Fatalf("walk failed with %v, not ErrCorrupt", err)
	case err != nil && !ref.corrupt:
		t.Fatalf("walk failed with %v at %d; the reference walk finds nothing wrong and stops at %d", err, end, ref.end)
	case err == nil && ref.corrupt:
		t.Fatalf("walk stopped cleanly at %d; the reference walk finds a corrupt record at %d", end, ref.end)
	case end != ref.end:
		t.Fatalf("walk stopped at %d (%v), the reference walk at %d", end, err, ref.end)
	}
}

func FuzzRingbufWalk(f *testing.F) {
	// Sound rings: two records and a discarded one from 0; a record that
	// wraps the ring's end; a busy record after a sound one; records that
	// cross position 2^64.
	ring := func(lengths ...uint32) []byte {
		var b []byte
		for i, n := range lengths {
			b = binary.LittleEndian.AppendUint32(b, n)
			b = binary.LittleEndian.AppendUint32(b, 0)
			for j := range (n&^(unix.BPF_RINGBUF_BUSY_BIT|unix.BPF_RINGBUF_DISCARD_BIT) + 7) &^ 7 {
				b = append(b, byte(i)+byte(j))
			}
		}
		return b
	}
	f.Add(uint8(0), uint16(255), uint64(0), uint64(64), ring(16, 5, 13|unix.BPF_RINGBUF_DISCARD_BIT))
	f.Add(uint8(1), uint16(1), uint64(96), uint64(152), ring(48))
	f.Add(uint8(0), uint16(255), uint64(8), uint64(48), ring(8, 16|unix.BPF_RINGBUF_BUSY_BIT))
	f.Add(uint8(2), uint16(255), nearWrap(48), uint64(48), ring(24, 16, 1, 8))
	// Corrupt: a length beyond the producer; a producer beyond the ring.
	f.Add(uint8(0), uint16(255), uint64(0), uint64(16), ring(64))
	f.Add(uint8(0), uint16(255), uint64(0), uint64(1<<20), ring(8))
	f.Fuzz(func(t *testing.T, sizeShift uint8, maxRecords uint16, cons, prod uint64, contents []byte) {
		size := uint64(64) << (sizeShift % 5) // 64 to 1024 bytes
		// The kernel's positions are 8-byte aligned, and openRingbuf
		// rejects a consumer position that is not.
		cons &^= 7
		once := make([]byte, size)
		for i, c := range contents[:min(uint64(len(contents)), size)] {
			once[(cons+uint64(i))%size] = c
		}
		g := newGuarded(int(2 * size)) // the data twice, as mapped
		copy(g.mem, once)
		copy(g.mem[size:], once)
		pos := [2]uint64{cons, prod}
		r := newRingbuf(&pos[0], &pos[1], g.mem)
		ref := refRingbuf(once, cons, prod)
		max := fuzzBatchSize(maxRecords)

		var got [][]byte
		var discarded uint64
		var err error
		for batches := 0; ; batches++ {
			if batches == fuzzBatchLimit {
				t.Fatalf("walk still going after %d batches", batches)
			}
			var b batch
			err = r.nextBatch(&b, max)
			checkBatch(t, &b, max)
			got = append(got, b.records...)
			discarded += b.discarded
			if r.cons-cons > prod-cons {
				t.Fatalf("read position %d passed the producer position %d (from %d)", r.cons, prod, cons)
			}
			if err != nil || !r.release() {
				break
			}
			if pos[0] != r.cons {
				t.Fatalf("released consumer position %d, read position %d", pos[0], r.cons)
			}
		}
		checkEnd(t, err, r.cons, ref)
		if len(got) != len(ref.records) || discarded != ref.discarded {
			t.Fatalf("walk read %d records and %d discarded; the reference walk %d and %d",
				len(got), discarded, len(ref.records), ref.discarded)
		}
		for i, rec := range got {
			want := ref.records[i]
			off, in := g.offset(t, rec)
			if !in || (len(rec) > 0 && off%size != want.pos%size) {
				t.Fatalf("record %d: at data offset %d (in the data: %v), want the ring's %d", i, off, in, want.pos%size)
			}
			if !bytes.Equal(rec, want.data) {
				t.Fatalf("record %d at position %d: %x, want %x", i, want.pos, rec, want.data)
			}
		}
		g.checkGuards(t)
		if !bytes.Equal(g.mem[:size], once) || !bytes.Equal(g.mem[size:], once) {
			t.Fatal("the walk wrote into the ring's data")
		}
	})
}

// refPerf walks a perf buffer as include/uapi/linux/perf_event.h defines
// it: from data_tail to data_head, records of a struct perf_event_header
// (u32 type, u16 misc, u16 size) and a body, wrapping at the end of the
// buffer. A PERF_RECORD_SAMPLE of a BPF output event has a u32 raw size and
// the raw data; a PERF_RECORD_LOST has a u64 id and a u64 count.
func refPerf(data []byte, tail, head uint64) refWalk {
	if head-tail > uint64(len(data)) {
		return refWalk{end: tail, corrupt: true}
	}
	var w refWalk
	pos := tail
	for pos != head {
		hdr := ringBytes(data, pos, perfHeaderSize)
		typ := binary.LittleEndian.Uint32(hdr)
		size := uint64(binary.LittleEndian.Uint16(hdr[6:]))
		if size < perfHeaderSize || size > head-pos {
			w.end, w.corrupt = pos, true
			return w
		}
		switch typ {
		case unix.PERF_RECORD_SAMPLE:
			if size < perfRawOffset {
				w.end, w.corrupt = pos, true
				return w
			}
			n := uint64(binary.LittleEndian.Uint32(ringBytes(data, pos+perfHeaderSize, 4)))
			if perfRawOffset+n > size {
				w.end, w.corrupt = pos, true
				return w
			}
			w.records = append(w.records, refRecord{pos + perfRawOffset, ringBytes(data, pos+perfRawOffset, n)})
		case unix.PERF_RECORD_LOST:
			if size >= perfLostOffset+8 {
				w.lost += binary.LittleEndian.Uint64(ringBytes(data, pos+perfLostOffset, 8))
			}
		}
		pos += size
	}
	w.end = pos
	return w
}

func FuzzPerfbufWalk(f *testing.F) {
	rec := func(typ uint32, body ...byte) []byte {
		size := (perfHeaderSize + len(body) + 7) &^ 7
		b := binary.LittleEndian.AppendUint32(nil, typ)
		b = binary.LittleEndian.AppendUint16(b, 0)
		b = binary.LittleEndian.AppendUint16(b, uint16(size))
		b = append(b, body...)
		return append(b, make([]byte, size-len(b))...)
	}
	sample := func(raw ...byte) []byte {
		n := (4+len(raw)+7)&^7 - 4
		return rec(unix.PERF_RECORD_SAMPLE, append(binary.LittleEndian.AppendUint32(nil, uint32(n)), raw...)...)
	}
	lost := rec(unix.PERF_RECORD_LOST, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0)
	join := func(recs ...[]byte) []byte { return bytes.Join(recs, nil) }
	// Sound buffers: samples and a lost record from 0; a sample whose
	// header wraps the end; samples across position 2^64; an unknown type.
	two := join(sample(1, 2, 3, 4, 5), lost, sample(6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17))
	f.Add(uint8(1), uint16(255), uint64(0), uint64(len(two)), two)
	wrapped := join(sample(make([]byte, 20)...), sample(1))
	f.Add(uint8(0), uint16(255), uint64(60), uint64(60+len(wrapped)), wrapped)
	f.Add(uint8(1), uint16(1), nearWrap(40), uint64(len(two)-40), two)
	unknown := join(rec(3, 1, 2, 3), sample(4))
	f.Add(uint8(0), uint16(255), uint64(8), uint64(8+len(unknown)), unknown)
	// Corrupt: a size beyond the head; a raw size beyond the record.
	f.Add(uint8(0), uint16(255), uint64(0), uint64(8), sample(1, 2, 3))
	f.Add(uint8(0), uint16(255), uint64(0), uint64(24), rec(unix.PERF_RECORD_SAMPLE, 200, 0, 0, 0, 1))
	f.Fuzz(func(t *testing.T, sizeShift uint8, maxRecords uint16, tail, head uint64, contents []byte) {
		// The kernel's buffers are pages; the walk only needs a power of
		// two, and small buffers let the fuzzer fill them.
		size := uint64(64) << (sizeShift % 5)
		g := newGuarded(int(size))
		for i, c := range contents[:min(uint64(len(contents)), size)] {
			g.mem[(tail+uint64(i))%size] = c
		}
		once := bytes.Clone(g.mem)
		var meta unix.PerfEventMmapPage
		meta.Data_head, meta.Data_tail = head, tail
		p := &perfbuf{eventFD: -1}
		p.init(&meta, g.mem)
		ref := refPerf(once, tail, head)
		max := fuzzBatchSize(maxRecords)

		var got [][]byte
		var err error
		for batches := 0; ; batches++ {
			if batches == fuzzBatchLimit {
				t.Fatalf("walk still going after %d batches", batches)
			}
			var b batch
			err = p.nextBatch(&b, max)
			checkBatch(t, &b, max)
			// Copies: a wrapped record lives in scratch, reused by the
			// next batch.
			got = append(got, cloneAll(b.records)...)
			for i, rec := range b.records {
				// A record is a view of the buffer, or a copy: never
				// part one, part the other.
				if off, in := g.offset(t, rec); in {
					j := len(got) - len(b.records) + i
					if j >= len(ref.records) || (len(rec) > 0 && off != ref.records[j].pos%size) {
						t.Fatalf("record at buffer offset %d is not the one the reference walk finds next", off)
					}
				}
			}
			if p.tail-tail > head-tail {
				t.Fatalf("read position %d passed data_head %d (from %d)", p.tail, head, tail)
			}
			if err != nil || !p.release() {
				break
			}
			if meta.Data_tail != p.tail {
				t.Fatalf("released data_tail %d, read position %d", meta.Data_tail, p.tail)
			}
		}
		checkEnd(t, err, p.tail, ref)
		if len(got) != len(ref.records) || p.lost() != ref.lost {
			t.Fatalf("walk read %d samples and %d lost; the reference walk %d and %d",
				len(got), p.lost(), len(ref.records), ref.lost)
		}
		for i, rec := range got {
			if want := ref.records[i]; !bytes.Equal(rec, want.data) {
				t.Fatalf("sample %d at position %d: %x, want %x", i, want.pos, rec, want.data)
			}
		}
		g.checkGuards(t)
		if !bytes.Equal(g.mem, once) {
			t.Fatal("the walk wrote into the buffer's data")
		}
	})
}

// refQueue walks one SPSC queue as bpf/ringwatch.h defines it: slots head
// to tail, each a u32 length, a u32 reserved and the record. Record i is in
// slot i mod perQueue, counting on from head's slot: the same slot while
// the counts stay below 2^64, and the slot both sides step to across it.
func refQueue(slots []byte, slotSize, perQueue, head, tail uint64) refWalk {
	if tail-head > perQueue {
		return refWalk{end: head, corrupt: true}
	}
	const hdr = uint64(spscSlotHeader)
	var w refWalk
	for i := head; i != tail; i++ {
		at := ((head%perQueue + (i - head)) % perQueue) * slotSize
		n := uint64(binary.LittleEndian.Uint32(slots[at:]))
		if n > slotSize-hdr {
			w.end, w.corrupt = i, true
			return w
		}
		w.records = append(w.records, refRecord{at + hdr, slots[at+hdr : at+hdr+n]})
	}
	w.end = tail
	return w
}

func FuzzSPSCWalk(f *testing.F) {
	// layout: queues = 1 + layout%4, slots per queue = 1 << (layout>>2 %
	// 4), one fewer when bit 15 is set and that leaves 2 or more (a queue
	// need not hold a power of two), slot size = 16 + 8*(layout>>4 % 6).
	// contents fills the queue headers, then the slots; head0 and tail0
	// are queue 0's.
	queues := func(heads ...uint64) []byte { // headers of len(heads)/2 queues: head, tail pairs
		b := make([]byte, len(heads)/2*spscQueueSize)
		for k := 0; k < len(heads); k += 2 {
			binary.LittleEndian.PutUint64(b[k/2*spscQueueSize+spscHeadOffset:], heads[k])
			binary.LittleEndian.PutUint64(b[k/2*spscQueueSize+spscTailOffset:], heads[k+1])
		}
		return b
	}
	slot := func(size int, n uint32) []byte {
		b := make([]byte, size)
		binary.LittleEndian.PutUint32(b, n)
		for i := spscSlotHeader; i < size; i++ {
			b[i] = byte(n) + byte(i)
		}
		return b
	}
	// Two queues of 4 slots of 32 bytes (layout 1 | 2<<2 | 2<<4): queue
	// 0 full from 0, queue 1 with two records across slot count 2^64.
	two := bytes.Join([][]byte{queues(0, 4, nearWrap(1), 1),
		slot(32, 1), slot(32, 24), slot(32, 0), slot(32, 7),
		slot(32, 3), slot(32, 0), slot(32, 0), slot(32, 9)}, nil)
	f.Add(uint16(1|2<<2|2<<4), uint16(255), uint64(0), uint64(4), two)
	f.Add(uint16(1|2<<2|2<<4), uint16(1), nearWrap(2), uint64(2), two)
	// Corrupt: a length beyond the slot; a tail beyond the queue.
	f.Add(uint16(0|1<<2|0<<4), uint16(255), uint64(0), uint64(1), bytes.Join([][]byte{queues(0, 1), slot(16, 9)}, nil))
	f.Add(uint16(0|1<<2|0<<4), uint16(255), uint64(0), uint64(3), queues(0, 3))
	// Two queues of three slots (4 less one) of 32 bytes ((0x8000>>4) % 6
	// is 2), queue 0's counts across 2^64 and its slot index with them.
	three := bytes.Join([][]byte{queues(nearWrap(2), 2),
		slot(32, 5), slot(32, 6), slot(32, 7), slot(32, 1), slot(32, 2), slot(32, 3)}, nil)
	f.Add(uint16(1|2<<2|0x8000), uint16(2), nearWrap(2), uint64(2), three)
	f.Fuzz(func(t *testing.T, layout, maxRecords uint16, head0, tail0 uint64, contents []byte) {
		nq := 1 + int(layout%4)
		perQueue := uint64(1) << (layout >> 2 % 4)
		if layout&0x8000 != 0 && perQueue > 2 {
			perQueue--
		}
		slotSize := uint64(16 + 8*(layout>>4%6))
		qm := newGuarded(nq * spscQueueSize)
		sm := newGuarded(nq * int(perQueue*slotSize))
		n := copy(qm.mem, contents)
		copy(sm.mem, contents[n:])
		binary.LittleEndian.PutUint64(qm.mem[spscHeadOffset:], head0)
		binary.LittleEndian.PutUint64(qm.mem[spscTailOffset:], tail0)
		slots := bytes.Clone(sm.mem)
		span := perQueue * slotSize

		s := newSPSC(qm.mem, sm.mem, slotSize, perQueue)
		refs := make([]refWalk, nq)
		heads, tails := make([]uint64, nq), make([]uint64, nq)
		for k := range refs {
			heads[k] = binary.LittleEndian.Uint64(qm.mem[k*spscQueueSize+spscHeadOffset:])
			tails[k] = binary.LittleEndian.Uint64(qm.mem[k*spscQueueSize+spscTailOffset:])
			refs[k] = refQueue(slots[uint64(k)*span:uint64(k+1)*span], slotSize, perQueue, heads[k], tails[k])
		}
		max := fuzzBatchSize(maxRecords)

		type slotRecord struct{ off, n uint64 } // offset in the queue's slots, length
		got := make([][]slotRecord, nq)
		var err error
		for batches := 0; ; batches++ {
			if batches == fuzzBatchLimit {
				t.Fatalf("walk still going after %d batches", batches)
			}
			var b batch
			err = s.nextBatch(&b, max)
			checkBatch(t, &b, max)
			for _, rec := range b.records {
				off, in := sm.offset(t, rec)
				if !in {
					t.Fatalf("record of %d bytes outside the slots", len(rec))
				}
				k := off / span
				got[k] = append(got[k], slotRecord{off - k*span, uint64(len(rec))})
			}
			for k := range s.queues {
				if q := &s.queues[k]; q.read-heads[k] > tails[k]-heads[k] {
					t.Fatalf("queue %d: read position %d passed the tail %d (from %d)", k, q.read, tails[k], heads[k])
				}
			}
			if err != nil || !s.release() {
				break
			}
			for k := range s.queues {
				if q := &s.queues[k]; *q.head != q.read {
					t.Fatalf("queue %d: released head %d, read position %d", k, *q.head, q.read)
				}
			}
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("walk failed with %v, not ErrCorrupt", err)
		}
		corruptSeen := false
		for k, ref := range refs {
			q := &s.queues[k]
			done := q.read == ref.end && len(got[k]) == len(ref.records)
			switch {
			case err == nil && ref.corrupt:
				t.Fatalf("walk stopped cleanly; the reference walk finds queue %d corrupt at slot %d", k, ref.end)
			case err == nil && !done:
				t.Fatalf("queue %d: walk stopped at slot %d after %d records; the reference walk at %d after %d",
					k, q.read, len(got[k]), ref.end, len(ref.records))
			case ref.corrupt && done:
				corruptSeen = true
			}
			if len(got[k]) > len(ref.records) {
				t.Fatalf("queue %d: walk read %d records, the reference walk %d", k, len(got[k]), len(ref.records))
			}
			for i, rec := range got[k] {
				if want := ref.records[i]; (rec.n > 0 && rec.off != want.pos) || rec.n != uint64(len(want.data)) {
					t.Fatalf("queue %d, record %d: %d bytes at slot offset %d, want %d at %d",
						k, i, rec.n, rec.off, len(want.data), want.pos)
				}
			}
		}
		if err != nil && !corruptSeen {
			t.Fatalf("walk failed with %v; the reference walk finds no queue corrupt where the walk stopped", err)
		}
		qm.checkGuards(t)
		sm.checkGuards(t)
		if !bytes.Equal(sm.mem, slots) {
			t.Fatal("the walk wrote into the slots")
		}
	})
}
