package userring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// memRing is a user ring buffer in plain Go memory, with a reader that
// drains it the way the kernel does (kernel/bpf/ringbuf.c:
// __bpf_user_ringbuf_peek and __bpf_user_ringbuf_sample_release), so the
// writer's ring walk is tested without root. The data area is twice the
// ring's size, as the kernel's double mapping shows it; here the two halves
// are not the same memory, but writer and reader both address a sample as
// data[off : off+len] with off below the size, so they agree.
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

func (m *memRing) ring() *ring { return newRing(&m.pos[0], &m.pos[1], m.data) }

// writer wraps the ring in a Writer without file descriptors: enough for
// everything but ReserveWait.
func (m *memRing) writer() *Writer {
	return &Writer{ring: m.ring()}
}

// errEmpty and errFormat are what the kernel's peek would return.
var (
	errEmpty  = errors.New("no data (ENODATA)")
	errFormat = errors.New("bad format (EINVAL or E2BIG)")
)

// drainOne reads the next sample as the kernel does: it returns the
// sample's bytes, or skips a discarded one (nil, nil), or stops at a busy
// one or at the producer position (errEmpty).
func (m *memRing) drainOne() ([]byte, error) {
	prod := atomic.LoadUint64(&m.pos[1])
	if prod%8 != 0 {
		return nil, errFormat
	}
	cons := atomic.LoadUint64(&m.pos[0])
	if cons >= prod {
		return nil, errEmpty
	}
	off := cons & (m.size - 1)
	h := atomic.LoadUint32((*uint32)(unsafe.Pointer(&m.data[off])))
	length := uint64(h &^ (unix.BPF_RINGBUF_BUSY_BIT | unix.BPF_RINGBUF_DISCARD_BIT))
	total := (length + unix.BPF_RINGBUF_HDR_SZ + 7) &^ 7
	if total > prod-cons || total > m.size || length > maxDynptrSize {
		return nil, errFormat
	}
	if h&unix.BPF_RINGBUF_BUSY_BIT != 0 {
		return nil, errEmpty
	}
	var sample []byte
	if h&unix.BPF_RINGBUF_DISCARD_BIT == 0 {
		sample = bytes.Clone(m.data[off+unix.BPF_RINGBUF_HDR_SZ : off+unix.BPF_RINGBUF_HDR_SZ+length])
	}
	atomic.StoreUint64(&m.pos[0], cons+total)
	return sample, nil
}

// drainAll reads every sample up to the first busy one; discarded samples
// are skipped.
func (m *memRing) drainAll(t testing.TB) [][]byte {
	t.Helper()
	var got [][]byte
	for {
		s, err := m.drainOne()
		if errors.Is(err, errEmpty) {
			return got
		}
		if err != nil {
			t.Fatalf("kernel model refused the ring: %v", err)
		}
		if s != nil {
			got = append(got, s)
		}
	}
}

func sample(i, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*7 + j + 1)
	}
	if n >= 8 {
		binary.LittleEndian.PutUint64(b, uint64(i))
	}
	return b
}

func TestWriteAlignsAndReadsBackInOrder(t *testing.T) {
	m := newMemRing(4096)
	w := m.writer()
	var want [][]byte
	for i := range 6 {
		s := sample(i, 1+i*5) // odd lengths exercise the 8-byte padding
		want = append(want, s)
		if err := w.Write(s); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if p := m.pos[1]; p%8 != 0 {
			t.Fatalf("producer position %d after sample %d is not 8-byte aligned", p, i)
		}
	}
	got := m.drainAll(t)
	if len(got) != len(want) {
		t.Fatalf("kernel model read %d samples, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("sample %d = %x, want %x", i, got[i], want[i])
		}
	}
	if st := w.Stats(); st.Submitted != 6 || st.Pending != 0 || st.Capacity != 4096 {
		t.Errorf("stats after drain: %+v", st)
	}
}

func TestFullRingReturnsErrFullAndLosesNothing(t *testing.T) {
	m := newMemRing(4096)
	w := m.writer()
	// 24-byte samples take 32 bytes: exactly 128 fit, with no room to spare.
	n := 0
	for ; ; n++ {
		err := w.Write(sample(n, 24))
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n != 4096/32 {
		t.Fatalf("%d samples fit before ErrFull, want %d", n, 4096/32)
	}
	if st := w.Stats(); st.Full != 1 || st.Pending != 4096 {
		t.Fatalf("stats when full: %+v", st)
	}
	// The kernel drains one sample: exactly one more fits.
	if _, err := m.drainOne(); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(sample(n, 24)); err != nil {
		t.Fatalf("write after one drained: %v", err)
	}
	if err := w.Write(sample(n+1, 24)); !errors.Is(err, ErrFull) {
		t.Fatalf("second write after one drained: %v, want ErrFull", err)
	}
	got := m.drainAll(t)
	if len(got) != n || binary.LittleEndian.Uint64(got[0]) != 1 || binary.LittleEndian.Uint64(got[n-1]) != uint64(n) {
		t.Fatalf("after the refill the ring held %d samples, %d to %d", len(got),
			binary.LittleEndian.Uint64(got[0]), binary.LittleEndian.Uint64(got[len(got)-1]))
	}
}

func TestTooLargeSampleIsRefusedWithTheLimit(t *testing.T) {
	m := newMemRing(4096)
	w := m.writer()
	if got := w.MaxSample(); got != 4096-8 {
		t.Fatalf("MaxSample = %d, want %d", got, 4096-8)
	}
	if err := w.Write(make([]byte, 4096-8)); err != nil {
		t.Fatalf("largest sample: %v", err)
	}
	if got := m.drainAll(t); len(got) != 1 || len(got[0]) != 4096-8 {
		t.Fatalf("largest sample read back as %d samples", len(got))
	}
	for _, size := range []int{4096 - 7, 1 << 20, -1} {
		_, err := w.Reserve(size)
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("Reserve(%d) = %v, want ErrTooLarge", size, err)
		}
	}
	_, err := w.Reserve(5000)
	if want := "a 4096-byte user ring takes at most 4088"; err == nil || !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if st := w.Stats(); st.Full != 0 {
		t.Errorf("a too-large sample counted as full: %+v", st)
	}
}

func TestMaxSampleIsBoundedByDynptr(t *testing.T) {
	r := &ring{mask: 64<<20 - 1} // a 64 MiB ring
	if got := r.maxSample(); got != maxDynptrSize {
		t.Fatalf("maxSample of a 64 MiB ring = %d, want %d", got, maxDynptrSize)
	}
}

func TestWrapAroundKeepsSamplesWhole(t *testing.T) {
	const size = 4096
	m := newMemRing(size)
	w := m.writer()
	// A sample size that does not divide the ring makes samples straddle
	// the end of the data at many offsets.
	for i := range 3 * size / 100 {
		s := sample(i, 93)
		if err := w.Write(s); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		got := m.drainAll(t)
		if len(got) != 1 || !bytes.Equal(got[0], s) {
			t.Fatalf("sample %d at position %d read back as %x", i, m.pos[1]-104, got)
		}
	}
	if m.pos[1] < 2*size {
		t.Fatalf("producer reached only position %d; the test did not wrap", m.pos[1])
	}
}

func TestBusySampleHoldsBackLaterOnes(t *testing.T) {
	m := newMemRing(4096)
	w := m.writer()
	first, err := w.Reserve(16)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(sample(2, 16)); err != nil { // reserved later, submitted first
		t.Fatal(err)
	}
	if got := m.drainAll(t); len(got) != 0 {
		t.Fatalf("kernel model read %d samples past a busy one", len(got))
	}
	copy(first.Data, sample(1, 16))
	w.Submit(first)
	got := m.drainAll(t)
	if len(got) != 2 || !bytes.Equal(got[0], sample(1, 16)) || !bytes.Equal(got[1], sample(2, 16)) {
		t.Fatalf("after submit: %x, want samples 1 and 2 in reservation order", got)
	}
}

func TestDiscardedSampleIsSkipped(t *testing.T) {
	m := newMemRing(4096)
	w := m.writer()
	s, err := w.Reserve(40)
	if err != nil {
		t.Fatal(err)
	}
	copy(s.Data, sample(0, 40))
	w.Discard(s)
	if err := w.Write(sample(1, 8)); err != nil {
		t.Fatal(err)
	}
	got := m.drainAll(t)
	if len(got) != 1 || !bytes.Equal(got[0], sample(1, 8)) {
		t.Fatalf("got %x, want only sample 1", got)
	}
	if m.pos[0] != m.pos[1] {
		t.Fatalf("consumer position %d did not pass the discarded sample to %d", m.pos[0], m.pos[1])
	}
	if st := w.Stats(); st.Discarded != 1 || st.Submitted != 1 || st.Bytes != 8 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestZeroLengthSampleIsLegal(t *testing.T) {
	m := newMemRing(4096)
	w := m.writer()
	if err := w.Write(nil); err != nil {
		t.Fatal(err)
	}
	if m.pos[1] != 8 {
		t.Fatalf("an empty sample moved the producer to %d, want 8 (its header)", m.pos[1])
	}
	if got := m.drainAll(t); len(got) != 1 || len(got[0]) != 0 {
		t.Fatalf("read back %d samples", len(got))
	}
}

func TestCloseWaitsForOutstandingSamples(t *testing.T) {
	m := newMemRing(4096)
	w := m.writer()
	s, err := w.Reserve(8)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Reserve(8); !errors.Is(err, ErrClosed) {
		t.Fatalf("Reserve after Close: %v, want ErrClosed", err)
	}
	if w.freed {
		t.Fatal("Close unmapped the ring while a sample was reserved")
	}
	copy(s.Data, sample(0, 8)) // still valid memory
	w.Submit(s)
	if !w.freed {
		t.Fatal("the last Submit after Close did not release the ring")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := m.drainAll(t); len(got) != 1 {
		t.Fatalf("the sample submitted after Close was not in the ring: %d", len(got))
	}
}

// TestConcurrentWritersAndDrain runs reserving goroutines against a
// draining one on plain memory; run under -race it checks that the
// atomics order every sample's bytes before its header.
func TestConcurrentWritersAndDrain(t *testing.T) {
	const writers, each = 4, 5000
	m := newMemRing(8192)
	w := m.writer()
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				for {
					s, err := w.Reserve(16)
					if errors.Is(err, ErrFull) {
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					binary.LittleEndian.PutUint64(s.Data, uint64(g))
					binary.LittleEndian.PutUint64(s.Data[8:], uint64(i))
					w.Submit(s)
					break
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	next := make([]uint64, writers) // each writer's samples arrive in its order
	total := 0
	for total < writers*each {
		s, err := m.drainOne()
		if errors.Is(err, errEmpty) {
			select {
			case <-done:
				if m.pos[0] == atomic.LoadUint64(&m.pos[1]) {
					t.Fatalf("writers finished but only %d of %d samples arrived", total, writers*each)
				}
			default:
			}
			continue
		}
		if err != nil {
			t.Fatalf("kernel model refused the ring after %d samples: %v", total, err)
		}
		g, i := binary.LittleEndian.Uint64(s), binary.LittleEndian.Uint64(s[8:])
		if g >= writers || i != next[g] {
			t.Fatalf("sample %d of writer %d arrived where %d was due", i, g, next[g%writers])
		}
		next[g]++
		total++
	}
	<-done
	if st := w.Stats(); st.Submitted != writers*each || st.Pending != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// BenchmarkReserveSubmit times what a writer pays per message: Reserve,
// fill 24 bytes, Submit, on plain memory, with a drain (not timed) each
// time the ring is full. It must allocate nothing.
func BenchmarkReserveSubmit(b *testing.B) {
	for _, size := range []int{24, 64, 256} {
		b.Run(fmt.Sprintf("sample=%dB", size), func(b *testing.B) {
			m := newMemRing(1 << 20)
			w := m.writer()
			payload := sample(1, size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				s, err := w.Reserve(size)
				if errors.Is(err, ErrFull) {
					b.StopTimer()
					m.pos[0] = m.pos[1] // the kernel drained everything
					b.StartTimer()
					s, err = w.Reserve(size)
				}
				if err != nil {
					b.Fatal(err)
				}
				copy(s.Data, payload)
				binary.LittleEndian.PutUint64(s.Data, uint64(i))
				w.Submit(s)
			}
		})
	}
}
