package consumer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// memOverwrite is the reference model of an overwrite-mode ring buffer: a
// memRing whose reserve follows __bpf_ringbuf_reserve with
// BPF_F_RB_OVERWRITE (kernel/bpf/ringbuf.c since commit feeaf1346f80): it
// moves pending_pos past committed records, refuses a record that would
// reach the oldest busy one, and otherwise steps overwrite_pos over whole
// records until the new one fits. It logs every record it places, so a test
// can say what a snapshot should have found.
type memOverwrite struct {
	*memRing
	over *uint64 // overwrite_pos; the producer position is memRing's pos[1]
	pend uint64  // pending_pos, the kernel's private word
	log  []placed
}

// placed is a record the model reserved: its position, its sample's
// length and what became of it.
type placed struct {
	pos       uint64
	n         int
	committed bool
	discarded bool
}

func newMemOverwrite(size int, start uint64) *memOverwrite {
	m := &memOverwrite{memRing: newMemRing(size), over: new(uint64), pend: start}
	m.pos[0], m.pos[1], *m.over = start, start, start
	return m
}

func (m *memOverwrite) reader() *overwriteRing {
	r := newOverwriteRing(&m.pos[1], m.over, m.data)
	return &r
}

func (m *memOverwrite) header(pos uint64) uint32 {
	return binary.LittleEndian.Uint32(m.data[pos&(m.size-1):])
}

// recordTotal is bpf_ringbuf_round_up_hdr_len: the header's length with
// the discard bit cleared, plus the header, rounded up to 8.
func recordTotal(header uint32) uint64 {
	return (uint64(header&^unix.BPF_RINGBUF_DISCARD_BIT) + unix.BPF_RINGBUF_HDR_SZ + 7) &^ 7
}

// reserve places a busy record for a sample of n bytes and returns its
// index in the log, or false where the kernel's reserve returns NULL.
func (m *memOverwrite) reserve(n int) (int, bool) {
	mask := m.size - 1
	prod := atomic.LoadUint64(&m.pos[1])
	newProd := prod + (uint64(n)+unix.BPF_RINGBUF_HDR_SZ+7)&^7
	for m.pend != prod {
		h := m.header(m.pend)
		if h&unix.BPF_RINGBUF_BUSY_BIT != 0 {
			break
		}
		m.pend += recordTotal(h)
	}
	if newProd-m.pend > mask {
		return 0, false
	}
	over := atomic.LoadUint64(m.over)
	for newProd-over > mask {
		over += recordTotal(m.header(over))
	}
	atomic.StoreUint64(m.over, over)
	m.setHeader(prod, uint32(n)|unix.BPF_RINGBUF_BUSY_BIT)
	atomic.StoreUint64(&m.pos[1], newProd)
	m.log = append(m.log, placed{pos: prod, n: n})
	return len(m.log) - 1, true
}

// submit writes record i's sample (its log index, then a pattern) and
// commits it, or discards it.
func (m *memOverwrite) submit(i int, discard bool) {
	p := &m.log[i]
	m.memRing.commit(p.pos, sample(i, p.n), discard)
	p.committed, p.discarded = true, discard
}

// put reserves and submits a record of n bytes, and reports whether the
// reserve succeeded.
func (m *memOverwrite) put(n int) bool {
	i, ok := m.reserve(n)
	if ok {
		m.submit(i, false)
	}
	return ok
}

// committedNow is the set of records committed with data now.
func (m *memOverwrite) committedNow() map[int]bool {
	c := map[int]bool{}
	for i, p := range m.log {
		if p.committed && !p.discarded {
			c[i] = true
		}
	}
	return c
}

// checkSnapshot holds s to the model's log: each record whole (its sample,
// by the index in its first 8 bytes), in order, in the window, at or past
// the overwrite position the model has now; every record of the window
// counted once; and every record committed before the snapshot began
// (committed) and never overwritten, returned.
func checkSnapshot(t *testing.T, m *memOverwrite, s *Snapshot, committed map[int]bool) {
	t.Helper()
	over := atomic.LoadUint64(m.over)
	in := func(pos uint64) bool { return pos-s.Start < s.End-s.Start }
	returned := map[int]bool{}
	last := -1
	for k, rec := range s.Records {
		if len(rec) < 8 {
			t.Fatalf("record %d has %d bytes, every sample has 8 or more", k, len(rec))
		}
		i := int(binary.LittleEndian.Uint64(rec))
		if i < 0 || i >= len(m.log) {
			t.Fatalf("record %d says it is sample %d; %d were placed", k, i, len(m.log))
		}
		p := m.log[i]
		if want := sample(i, p.n); string(rec) != string(want) {
			t.Fatalf("record %d (sample %d, %d bytes) is torn:\n got %x\nwant %x", k, i, p.n, rec, want)
		}
		if i <= last {
			t.Fatalf("record %d is sample %d, after sample %d", k, i, last)
		}
		if !in(p.pos) || int64(p.pos-over) < 0 {
			t.Fatalf("sample %d at position %d returned; window [%d, %d), overwrite position now %d",
				i, p.pos, s.Start, s.End, over)
		}
		last = i
		returned[i] = true
	}
	var window uint64
	boundary := s.Start == s.End
	for i, p := range m.log {
		if p.pos == s.Start {
			boundary = true
		}
		if !in(p.pos) {
			continue
		}
		window++
		if committed[i] && int64(p.pos-over) >= 0 && !returned[i] {
			t.Errorf("sample %d at position %d, committed before the snapshot and not overwritten (overwrite position %d), is missing",
				i, p.pos, over)
		}
	}
	if !boundary {
		t.Errorf("window starts at %d, no record's position", s.Start)
	}
	if got := uint64(len(s.Records)) + s.Overwritten + s.Pending + s.Discarded; got != window {
		t.Errorf("%d records + %d overwritten + %d pending + %d discarded = %d, the window [%d, %d) holds %d",
			len(s.Records), s.Overwritten, s.Pending, s.Discarded, got, s.Start, s.End, window)
	}
}

// checkHeld holds Recorder.Held, on a quiet producer, to the model: the
// records committed with data from the overwrite position to the producer
// position, and the busy ones.
func checkHeld(t *testing.T, m *memOverwrite) {
	t.Helper()
	over, prod := atomic.LoadUint64(m.over), atomic.LoadUint64(&m.pos[1])
	var records, pending int
	for _, p := range m.log {
		switch {
		case p.pos-over >= prod-over:
		case !p.committed:
			pending++
		case !p.discarded:
			records++
		}
	}
	r := Recorder{r: *m.reader()}
	gotRecords, gotPending, err := r.Held()
	if err != nil || gotRecords != records || gotPending != pending {
		t.Fatalf("Held: %d records, %d pending, %v; the model holds %d and %d in [%d, %d)",
			gotRecords, gotPending, err, records, pending, over, prod)
	}
}

func snap(t *testing.T, m *memOverwrite, r *overwriteRing) *Snapshot {
	t.Helper()
	committed := m.committedNow()
	var s Snapshot
	if err := r.snapshot(&s); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	checkSnapshot(t, m, &s, committed)
	return &s
}

func TestOverwriteSnapshotBeforeTheRingIsFull(t *testing.T) {
	m := newMemOverwrite(4096, 0)
	for range 5 {
		m.put(8 + len(m.log)*3) // odd lengths exercise the padding
	}
	checkHeld(t, m)
	s := snap(t, m, m.reader())
	if len(s.Records) != 5 || s.Start != 0 || s.End != atomic.LoadUint64(&m.pos[1]) || s.Overwritten != 0 {
		t.Fatalf("got %d records in [%d, %d), %d overwritten; want 5 in [0, %d), none",
			len(s.Records), s.Start, s.End, s.Overwritten, m.pos[1])
	}
	// Reading does not consume: the next snapshot finds the same.
	if again := snap(t, m, m.reader()); len(again.Records) != 5 {
		t.Fatalf("second snapshot has %d records, want the same 5", len(again.Records))
	}
}

func TestOverwriteSnapshotAfterWraparound(t *testing.T) {
	for _, start := range []uint64{0, 1<<64 - 4096 - 64} { // the second crosses 2^64
		t.Run(fmt.Sprint(start), func(t *testing.T) {
			m := newMemOverwrite(4096, start)
			for range 1000 {
				if !m.put(8 + len(m.log)%57) {
					t.Fatal("reserve failed with nothing busy")
				}
			}
			checkHeld(t, m)
			s := snap(t, m, m.reader())
			if s.Start != *m.over || len(s.Records) == 0 || s.Overwritten != 0 {
				t.Fatalf("window starts at %d (overwrite position %d), %d records, %d overwritten",
					s.Start, *m.over, len(s.Records), s.Overwritten)
			}
			if s.End-s.Start > 4096 || s.End-s.Start < 4096-80 {
				t.Errorf("window [%d, %d) is %d bytes; a full 4096-byte ring holds within a record of that",
					s.Start, s.End, s.End-s.Start)
			}
			if first := binary.LittleEndian.Uint64(s.Records[0]); int(first)+len(s.Records) != len(m.log) {
				t.Errorf("records %d to %d returned, %d placed: the newest must be there, contiguous",
					first, int(first)+len(s.Records)-1, len(m.log))
			}
		})
	}
}

// A busy record stays in the ring (the producer may not pass it), is
// counted as pending, and does not hide the committed records after it; a
// discarded one is counted and skipped.
func TestOverwriteSnapshotBusyAndDiscarded(t *testing.T) {
	m := newMemOverwrite(4096, 0)
	for range 100 {
		m.put(40)
	}
	busy, _ := m.reserve(40)
	gone, _ := m.reserve(16)
	m.submit(gone, true)
	m.put(24)
	checkHeld(t, m)
	s := snap(t, m, m.reader())
	if s.Pending != 1 || s.Discarded != 1 {
		t.Fatalf("pending %d, discarded %d; want 1 and 1", s.Pending, s.Discarded)
	}
	if last := binary.LittleEndian.Uint64(s.Records[len(s.Records)-1]); int(last) != len(m.log)-1 {
		t.Fatalf("last record is sample %d, want %d, after the busy one", last, len(m.log)-1)
	}
	// The ring fills up to the busy record and no further: the kernel's
	// reserve fails rather than overwrite a record still being written.
	for m.put(40) {
	}
	if p := m.log[busy].pos; *m.over != p {
		t.Fatalf("overwrite position %d stopped short of the busy record at %d", *m.over, p)
	}
	checkHeld(t, m)
	s = snap(t, m, m.reader())
	if s.Start != m.log[busy].pos || s.Pending != 1 {
		t.Fatalf("window starts at %d with %d pending; want the busy record's %d, 1", s.Start, s.Pending, m.log[busy].pos)
	}
	m.submit(busy, false)
	if !m.put(40) {
		t.Fatal("reserve still fails once the busy record is submitted")
	}
}

// A record the producer overwrites after it was copied, before the copy is
// checked, is dropped and counted, though the copy looks whole: only the
// position can tell.
func TestOverwriteSnapshotDropsRecordsOverwrittenDuringTheCopy(t *testing.T) {
	for _, more := range []int{0, 1, 3, 20, 200} {
		t.Run(fmt.Sprint(more), func(t *testing.T) {
			m := newMemOverwrite(4096, 0)
			for range 300 {
				m.put(56) // 64 bytes a record; the ring keeps 63 of them
			}
			r := m.reader()
			before := m.committedNow()
			r.afterCopy = func() {
				for range more {
					m.put(56)
				}
			}
			var s Snapshot
			if err := r.snapshot(&s); err != nil {
				t.Fatal(err)
			}
			checkSnapshot(t, m, &s, before)
			// The window is at most size-1 bytes (new_prod_pos -
			// overwrite_pos <= rb->mask): 63 records.
			want := uint64(min(more, 63))
			if s.Overwritten != want || uint64(len(s.Records)) != 63-want {
				t.Fatalf("%d records, %d overwritten; %d more records overwrite %d of 63", len(s.Records), s.Overwritten, more, want)
			}
		})
	}
}

// A header the producer overwrites between reading it and checking it is
// not trusted: the window starts again at the new overwrite position.
func TestOverwriteSnapshotRestartsWhenAHeaderIsOverwritten(t *testing.T) {
	// The fifth header is overwritten by 5 more records or more; 62 leave
	// one record before the end, 100 overwrite past it (a new window).
	for _, lap := range []int{5, 10, 62, 100} {
		t.Run(fmt.Sprint(lap), func(t *testing.T) {
			m := newMemOverwrite(4096, 0)
			for range 300 {
				m.put(56)
			}
			r := m.reader()
			before := m.committedNow()
			headers := 0
			r.afterHeader = func(uint64) {
				if headers++; headers == 5 {
					for range lap {
						m.put(56)
					}
				}
			}
			var s Snapshot
			if err := r.snapshot(&s); err != nil {
				t.Fatal(err)
			}
			checkSnapshot(t, m, &s, before)
			if s.Start != *m.over || s.Overwritten != 0 {
				t.Fatalf("window [%d, %d), %d records, %d overwritten", s.Start, s.End, len(s.Records), s.Overwritten)
			}
		})
	}
}

func TestOverwriteSnapshotGivesUpWhenAlwaysLapped(t *testing.T) {
	m := newMemOverwrite(4096, 0)
	for range 100 {
		m.put(56)
	}
	r := m.reader()
	r.afterHeader = func(uint64) {
		for range 70 {
			m.put(56)
		}
	}
	var s Snapshot
	if err := r.snapshot(&s); !errors.Is(err, errLapped) || len(s.Records) != 0 {
		t.Fatalf("snapshot: %v with %d records, want errLapped and none", err, len(s.Records))
	}
}

func TestOverwriteSnapshotCorruptLength(t *testing.T) {
	m := newMemOverwrite(4096, 0)
	m.put(16)
	m.put(16)
	m.setHeader(24, 4000) // the second record claims more than was produced
	var s Snapshot
	if err := m.reader().snapshot(&s); !errors.Is(err, ErrCorrupt) || len(s.Records) != 0 {
		t.Fatalf("snapshot: %v with %d records, want ErrCorrupt and none", err, len(s.Records))
	}
}

func TestRecorderRefusesAClosedRing(t *testing.T) {
	var r Recorder
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Snapshot(&Snapshot{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Snapshot on a closed Recorder: %v, want ErrClosed", err)
	}
	if _, _, err := r.Held(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Held on a closed Recorder: %v, want ErrClosed", err)
	}
}

// FuzzOverwriteWalk drives the model with arbitrary reserves, submits and
// discards, from an arbitrary start position, holds Held's counts to it,
// quiet and with the producer writing at a header, then takes a snapshot while
// the producer writes more at an arbitrary header and after the copies,
// and holds the snapshot to the model (checkSnapshot): whole records, in
// order, every record of the window counted once, none past the overwrite
// position lost.
//
// Run it with: go test -run '^$' -fuzz '^FuzzOverwriteWalk$' -fuzztime 10m ./pkg/consumer
func FuzzOverwriteWalk(f *testing.F) {
	f.Add(uint8(0), uint64(0), []byte{1, 5, 9, 2, 3, 7, 11, 0, 4}, uint8(3), []byte{1, 1}, []byte{9, 9, 9})
	f.Add(uint8(1), uint64(1<<64-8192), slices.Repeat([]byte{0x41, 0x83, 0x12}, 200), uint8(0), []byte{0x41}, []byte{})
	f.Fuzz(func(t *testing.T, sizeShift uint8, start uint64, ops []byte, hookAt uint8, hookOps, copyOps []byte) {
		size := 4096 << (sizeShift % 3)
		m := newMemOverwrite(size, start&^7)
		var busy []int
		run := func(ops []byte) {
			for _, op := range ops {
				n := 8 + int(op>>2)*3
				switch op & 3 {
				case 0, 1: // a whole record
					m.put(n)
				case 2: // a reserve left busy
					if i, ok := m.reserve(n); ok {
						busy = append(busy, i)
					}
				case 3: // a busy record submitted, or discarded
					if len(busy) > 0 {
						k := int(op>>3) % len(busy)
						m.submit(busy[k], op&4 != 0)
						busy = slices.Delete(busy, k, k+1)
					}
				}
			}
		}
		run(ops)
		checkHeld(t, m)
		// Held's walk, with the producer writing at a header: every
		// record of the window it settled on counted once.
		h, hHeaders := m.reader(), 0
		h.afterHeader = func(uint64) {
			if hHeaders++; hHeaders == int(hookAt) {
				run(hookOps)
			}
		}
		var c Snapshot
		if err := h.held(&c); err != nil {
			t.Fatalf("held: %v", err)
		}
		var window int
		for _, p := range m.log {
			if p.pos-c.Start < c.End-c.Start {
				window++
			}
		}
		if got := c.held + int(c.Pending+c.Discarded); got != window || len(c.Records) != 0 {
			t.Fatalf("held counted %d + %d pending + %d discarded = %d, copied %d; the window [%d, %d) holds %d",
				c.held, c.Pending, c.Discarded, got, len(c.Records), c.Start, c.End, window)
		}
		r := m.reader()
		headers := 0
		r.afterHeader = func(uint64) {
			if headers++; headers == int(hookAt) {
				run(hookOps)
			}
		}
		r.afterCopy = func() { run(copyOps) }
		before := m.committedNow()
		var s Snapshot
		if err := r.snapshot(&s); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		checkSnapshot(t, m, &s, before)
	})
}
