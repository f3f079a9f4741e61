package consumer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/testenv"
)

// memPerf is a perf buffer in plain Go memory, written as the kernel
// writes a BPF output event's buffer.
type memPerf struct {
	meta unix.PerfEventMmapPage
	data []byte
	head uint64
}

func newMemPerf(size int) *memPerf { return &memPerf{data: make([]byte, size)} }

func (m *memPerf) reader() *perfbuf {
	p := &perfbuf{eventFD: -1}
	p.init(&m.meta, m.data)
	return p
}

// put writes one perf record of the given type whose body is the
// concatenation of parts and zero padding up to size, wrapping at the end
// of the buffer, and publishes it; it reports false if there is no room.
func (m *memPerf) put(typ uint32, size int, parts ...[]byte) bool {
	if m.head+uint64(size)-atomic.LoadUint64(&m.meta.Data_tail) > uint64(len(m.data)) {
		return false
	}
	var hdr [perfHeaderSize]byte
	binary.LittleEndian.PutUint32(hdr[:], typ)
	binary.LittleEndian.PutUint16(hdr[6:], uint16(size))
	pos := m.head
	write := func(b []byte) {
		for _, c := range b {
			m.data[pos%uint64(len(m.data))] = c
			pos++
		}
	}
	write(hdr[:])
	for _, part := range parts {
		write(part)
	}
	for pos < m.head+uint64(size) {
		write([]byte{0})
	}
	m.head += uint64(size)
	atomic.StoreUint64(&m.meta.Data_head, m.head)
	return true
}

// sample writes raw as a PERF_RECORD_SAMPLE, padded as the kernel pads it.
func (m *memPerf) sample(raw []byte) bool {
	padded := (4 + len(raw) + 7) &^ 7
	var size [4]byte
	binary.LittleEndian.PutUint32(size[:], uint32(padded-4))
	return m.put(unix.PERF_RECORD_SAMPLE, perfHeaderSize+padded, size[:], raw)
}

func (m *memPerf) lostRecord(n uint64) bool {
	var body [16]byte
	binary.LittleEndian.PutUint64(body[8:], n)
	return m.put(unix.PERF_RECORD_LOST, perfHeaderSize+16, body[:])
}

func drainPerf(t *testing.T, p *perfbuf) [][]byte {
	t.Helper()
	var out [][]byte
	for {
		var b batch
		if err := p.nextBatch(&b, 1000); err != nil {
			t.Fatal(err)
		}
		for _, rec := range b.records {
			out = append(out, append([]byte(nil), rec...))
		}
		if !p.release() {
			return out
		}
	}
}

func TestPerfbufReadsSamplesAcrossTheWrap(t *testing.T) {
	m := newMemPerf(256)
	p := m.reader()
	var want [][]byte
	// 44-byte samples take 56 bytes: the fifth starts at 224 and wraps.
	for round := range 3 {
		for i := range 4 {
			raw := make([]byte, 44)
			for j := range raw {
				raw[j] = byte(round*16 + i + j)
			}
			if !m.sample(raw) {
				t.Fatalf("round %d: no room for sample %d", round, i)
			}
			want = append(want, raw)
		}
		if round == 1 && !m.lostRecord(7) {
			t.Fatal("no room for the lost record")
		}
		got := drainPerf(t, p)
		for i, rec := range got {
			w := want[i]
			// The kernel's padding rides along: the slice may be longer.
			if len(rec) < len(w) || len(rec) > len(w)+7 || string(rec[:len(w)]) != string(w) {
				t.Fatalf("round %d, sample %d: got %x, want %x", round, i, rec, w)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("round %d: %d samples, want %d", round, len(got), len(want))
		}
		want = want[:0]
		if got := atomic.LoadUint64(&m.meta.Data_tail); got != m.head {
			t.Fatalf("data_tail %d after draining, head %d", got, m.head)
		}
	}
	if p.lost() != 7 {
		t.Fatalf("lost %d, want the 7 the lost record reported", p.lost())
	}
}

func TestPerfbufRejectsCorruptRecords(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(m *memPerf)
	}{
		{"size beyond head", func(m *memPerf) {
			m.sample(make([]byte, 4))
			binary.LittleEndian.PutUint16(m.data[6:], 200)
		}},
		{"size below a header", func(m *memPerf) {
			m.sample(make([]byte, 4))
			binary.LittleEndian.PutUint16(m.data[6:], 4)
		}},
		{"raw size beyond the record", func(m *memPerf) {
			m.sample(make([]byte, 4))
			binary.LittleEndian.PutUint32(m.data[8:], 100)
		}},
		{"head ahead by more than the buffer", func(m *memPerf) { atomic.StoreUint64(&m.meta.Data_head, 1000) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemPerf(256)
			p := m.reader()
			tc.write(m)
			var b batch
			if err := p.nextBatch(&b, 100); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("nextBatch = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestPerfbufWalkAllocatesNothing(t *testing.T) {
	m := newMemPerf(4096)
	p := m.reader()
	raw := make([]byte, 60)
	b := batch{records: make([][]byte, 0, 100)}
	records := 0
	allocs := testing.AllocsPerRun(100, func() {
		for m.sample(raw) {
		}
		for {
			b.records = b.records[:0]
			if err := p.nextBatch(&b, 100); err != nil {
				t.Fatal(err)
			}
			records += len(b.records)
			if !p.release() {
				break
			}
		}
	})
	if records == 0 || allocs != 0 {
		t.Fatalf("%v allocations per run of %d records", allocs, records)
	}
}

// TestPerfHeaderSize pins what golang.org/x/sys/unix lacks against the
// kernel's BTF: struct perf_event_header is 8 bytes, its type a u32 at 0
// and its size a u16 at 6, where the walk reads them.
func TestPerfHeaderSize(t *testing.T) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		testenv.Unavailable(t, fmt.Sprintf("no kernel BTF: %v", err))
	}
	var hdr *btf.Struct
	if err := spec.TypeByName("perf_event_header", &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr.Size != perfHeaderSize {
		t.Errorf("struct perf_event_header is %d bytes, perfHeaderSize %d", hdr.Size, perfHeaderSize)
	}
	want := map[string][2]uint32{"type": {0, 4}, "size": {6, 2}} // byte offset, size
	for _, m := range hdr.Members {
		w, ok := want[m.Name]
		if !ok {
			continue
		}
		delete(want, m.Name)
		size, err := btf.Sizeof(m.Type)
		if err != nil {
			t.Fatal(err)
		}
		if got := [2]uint32{m.Offset.Bytes(), uint32(size)}; got != w {
			t.Errorf("perf_event_header.%s at byte %d, %d bytes; the walk reads it at %d, %d bytes", m.Name, got[0], got[1], w[0], w[1])
		}
	}
	if len(want) > 0 {
		t.Errorf("perf_event_header has no %v", want)
	}
}
