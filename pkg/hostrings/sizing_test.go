package hostrings

import (
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/internal/testenv/ringchild"
)

func TestCapacityFor(t *testing.T) {
	if MaxCapacity != abi.MaxRingSize {
		t.Fatalf("MaxCapacity %d, ringwatch's own limit %d", MaxCapacity, abi.MaxRingSize)
	}
	const page = 4096
	for _, tc := range []struct {
		need, page uint64
		want       uint64
		ok         bool
	}{
		{0, page, page, true}, // nothing to hold: the smallest ring
		{1, page, page, true},
		{page, page, page, true},
		{page + 1, page, 2 * page, true},
		{3 << 20, page, 4 << 20, true},
		{4 << 20, page, 4 << 20, true},
		{4<<20 + 1, page, 8 << 20, true},
		{34_000_000, page, 64 << 20, true}, // 340 MB/s for 100 ms
		{1<<30 + 1, page, 1 << 31, true},
		{1 << 31, page, 1 << 31, true}, // the largest ring
		{1<<31 + 1, page, 0, false},    // more than any ring
		{math.MaxUint64, page, 0, false},
		{4096, 65536, 65536, true}, // 64 KiB pages (arm64, ppc64): one page is the least
		{65537, 65536, 131072, true},
	} {
		got, ok := CapacityFor(tc.need, int(tc.page))
		if got != tc.want || ok != tc.ok {
			t.Errorf("CapacityFor(%d, page %d) = %d, %v; want %d, %v", tc.need, tc.page, got, ok, tc.want, tc.ok)
		}
		if ok && tc.page == page {
			if err := abi.CheckRingSize(int(got)); err != nil {
				t.Errorf("CapacityFor(%d) = %d, which the kernel refuses: %v", tc.need, got, err)
			}
		}
	}
}

// series is a simulated ring, sampled by hand: the test says when, and
// how far the producer and consumer positions moved.
type series struct {
	peaks *Peaks
	ring  Ring
	at    time.Time
}

func newSeries(opts PeakOptions) *series {
	return &series{peaks: NewPeaks(opts), ring: Ring{ID: 1, Kind: RingBuf, Capacity: 4 << 20}, at: time.Unix(1000, 0)}
}

// step moves the clock by dt, the producer by in bytes and the consumer
// by out, and samples.
func (s *series) step(dt time.Duration, in, out uint64) {
	s.at = s.at.Add(dt)
	s.ring.Producer += in
	s.ring.Consumer += out
	s.ring.SampledAt = s.at
	s.peaks.Observe([]Ring{s.ring})
}

// TestPeaksOfABurstySeries: a second of 10 ms samples with a steady
// 100 KB/s, and one burst of 100,000 bytes in one period: the average over
// the second is 199 KB/s, the peak 10 MB/s, and the peak is that period,
// with the bytes that were pending as it began.
func TestPeaksOfABurstySeries(t *testing.T) {
	s := newSeries(PeakOptions{})
	s.step(0, 0, 0)
	var burstStart time.Time
	for i := range 100 {
		in, out := uint64(1000), uint64(1000)
		if i == 40 {
			burstStart = s.at
			in, out = 100_000, 0 // the consumer does not move during the burst
		}
		if i == 41 {
			out = 101_000 // and catches up after
		}
		s.step(10*time.Millisecond, in, out)
	}
	if avg := float64(s.ring.Producer) / 1.0; avg != 199_000 {
		t.Fatalf("the series wrote %v bytes in 1s, want 199000", avg)
	}
	peak, ok := s.peaks.Peak(1, s.at)
	if !ok {
		t.Fatal("no peak")
	}
	if peak.Bytes != 100_000 || peak.Duration() != 10*time.Millisecond || peak.Rate() != 10e6 || !peak.Start.Equal(burstStart) || peak.Pending != 0 {
		t.Errorf("peak %+v at %v B/s; want the 100000-byte period from %v at 10e6 B/s, nothing pending", peak, peak.Rate(), burstStart)
	}

	// A ring that runs behind: the burst finds 3000 bytes pending.
	s = newSeries(PeakOptions{})
	s.step(0, 0, 0)
	s.step(10*time.Millisecond, 3000, 0)
	s.step(10*time.Millisecond, 50_000, 0)
	s.step(10*time.Millisecond, 1000, 54_000)
	if peak, _ := s.peaks.Peak(1, s.at); peak.Bytes != 50_000 || peak.Pending != 3000 {
		t.Errorf("peak %+v; want 50000 bytes with 3000 pending as it began", peak)
	}
}

// TestPeaksSpanIsNeverAMoment: a sample that comes less than MinSpan after
// the last span's end extends the span: two samples 1 ms apart do not make
// a rate of 1 ms.
func TestPeaksSpanIsNeverAMoment(t *testing.T) {
	s := newSeries(PeakOptions{MinSpan: 5 * time.Millisecond})
	s.step(0, 0, 0)
	s.step(10*time.Millisecond, 10_000, 10_000) // 1 MB/s
	s.step(time.Millisecond, 4000, 4000)        // too soon: the span stays open
	if peak, _ := s.peaks.Peak(1, s.at); peak.Bytes != 10_000 || peak.Rate() != 1e6 {
		t.Errorf("after a sample 1ms later: peak %+v at %v B/s; want the first span, 1e6 B/s", peak, peak.Rate())
	}
	s.step(9*time.Millisecond, 6000, 6000) // closes the 10 ms span: 10000 bytes, 1 MB/s again
	peak, _ := s.peaks.Peak(1, s.at)
	if peak.Bytes != 10_000 || peak.Duration() != 10*time.Millisecond {
		t.Errorf("peak %+v; want a 10ms span of 10000 bytes", peak)
	}

	// No span closed yet: no peak.
	s = newSeries(PeakOptions{})
	s.step(0, 0, 0)
	s.step(time.Millisecond, 100, 0)
	if _, ok := s.peaks.Peak(1, s.at); ok {
		t.Error("a peak before one span of MinSpan closed")
	}
	if _, ok := s.peaks.Peak(2, s.at); ok {
		t.Error("a peak for a ring never observed")
	}
}

// TestPeaksIdleRing: a ring whose producer never moves has a peak of 0
// bytes per second, and the advice for it is the smallest ring that holds
// what is pending.
func TestPeaksIdleRing(t *testing.T) {
	s := newSeries(PeakOptions{})
	s.ring.Producer = 3200
	s.step(0, 0, 0)
	for range 10 {
		s.step(10*time.Millisecond, 0, 0)
	}
	peak, ok := s.peaks.Peak(1, s.at)
	if !ok || peak.Rate() != 0 || peak.Pending != 3200 {
		t.Fatalf("idle ring: peak %+v (found %v); want rate 0 with 3200 pending", peak, ok)
	}
	a := Advise(s.ring, peak, 100*time.Millisecond, 4096)
	if a.Rate != 0 || a.ToFull != Forever || a.Grace != Forever || a.Need != 3200 || a.Capacity != 4096 {
		t.Errorf("idle ring: %+v; want never full, need 3200, capacity 4096", a)
	}
}

// TestPeaksWindow: with a window, a peak older than the window leaves it,
// and the highest span within it is the peak.
func TestPeaksWindow(t *testing.T) {
	s := newSeries(PeakOptions{Window: time.Minute})
	s.step(0, 0, 0)
	s.step(10*time.Millisecond, 1_000_000, 1_000_000) // 100 MB/s
	burst := s.at
	for range 30 { // 30 s at 1 MB/s, one sample a second
		s.step(time.Second, 1_000_000, 1_000_000)
	}
	if peak, _ := s.peaks.Peak(1, s.at); !peak.End.Equal(burst) || peak.Rate() != 100e6 {
		t.Errorf("30s after the burst: peak %+v at %v B/s; want the burst at 100e6", peak, peak.Rate())
	}
	for range 31 {
		s.step(time.Second, 1_000_000, 1_000_000)
	}
	if peak, _ := s.peaks.Peak(1, s.at); peak.Rate() != 1e6 {
		t.Errorf("61s after the burst: peak %+v at %v B/s; want 1e6, the burst out of the window", peak, peak.Rate())
	}
	// Asked later still, with no samples since: nothing in the window.
	if peak, ok := s.peaks.Peak(1, s.at.Add(2*time.Minute)); ok {
		t.Errorf("2 minutes after the last sample: peak %+v, want none", peak)
	}
}

// TestPeaksForgetsAndRestarts: a ring that leaves the samples is
// forgotten, and a producer position that goes back (not the ring it was)
// starts a new span instead of a huge one.
func TestPeaksForgetsAndRestarts(t *testing.T) {
	s := newSeries(PeakOptions{})
	s.ring.Producer = 1 << 40
	s.step(0, 0, 0)
	s.step(10*time.Millisecond, 1000, 0)
	s.ring.Producer, s.ring.Consumer = 0, 0
	s.step(10*time.Millisecond, 0, 0) // went back: a new start
	s.step(10*time.Millisecond, 2000, 0)
	if peak, _ := s.peaks.Peak(1, s.at); peak.Bytes != 2000 {
		t.Errorf("peak %+v; want the 2000-byte span after the restart", peak)
	}
	s.peaks.Observe([]Ring{{ID: 2, Kind: PerfEventArray}})
	if _, ok := s.peaks.Peak(1, s.at); ok || len(s.peaks.rings) != 0 {
		t.Errorf("a ring gone from the samples is kept (%d rings), or a perf event array was taken", len(s.peaks.rings))
	}
}

func TestAdvise(t *testing.T) {
	const page = 4096
	ring := func(capacity, pending uint64) Ring {
		return Ring{ID: 1, Kind: RingBuf, Capacity: capacity, Producer: 1<<30 + pending, Consumer: 1 << 30}
	}
	span := func(bytes uint64, d time.Duration, pending uint64) Span {
		t0 := time.Unix(1000, 0)
		return Span{Start: t0, End: t0.Add(d), Bytes: bytes, Pending: pending}
	}

	// The README's example: a 4 MiB ring at 340 MB/s fills in 12.3 ms, and
	// 100 ms at that rate takes 34 MB, which 64 MiB holds.
	a := Advise(ring(4<<20, 0), span(3_400_000, 10*time.Millisecond, 0), 100*time.Millisecond, page)
	if a.Rate != 340e6 || a.Need != 34_000_000 || a.Capacity != 64<<20 || a.LargestHolds != 0 {
		t.Errorf("340 MB/s: %+v; want need 34000000, capacity 64MiB", a)
	}
	if want := 4194304 / 340e6; math.Abs(a.ToFull.Seconds()-want) > 1e-9 || math.Abs(a.Grace.Seconds()-want) > 1e-9 {
		t.Errorf("340 MB/s: full in %v, grace %v; want %vs for both", a.ToFull, a.Grace, want)
	}

	// Pending bytes: now, in the time to full; at the peak's start, in
	// the need.
	a = Advise(ring(1<<20, 1<<19), span(1<<20, time.Second, 1000), time.Second, page)
	if a.ToFull != 500*time.Millisecond || a.Grace != time.Second || a.Need != 1<<20+1000 || a.Capacity != 2<<20 {
		t.Errorf("1 MiB/s, half full: %+v; want full in 500ms, grace 1s, need 1MiB+1000, capacity 2MiB", a)
	}

	// Exactly what the largest ring holds, then one byte more.
	a = Advise(ring(1<<31, 0), span(1<<31, time.Second, 0), time.Second, page)
	if a.Need != 1<<31 || a.Capacity != 1<<31 || a.ToFull != time.Second {
		t.Errorf("2 GiB/s for 1s: %+v; want need and capacity 2GiB, full in 1s", a)
	}
	a = Advise(ring(1<<31, 0), span(1<<31, time.Second, 1), time.Second, page)
	if a.Need != 1<<31+1 || a.Capacity != 0 || a.LargestHolds != seconds(float64(1<<31-1)/(1<<31)) {
		t.Errorf("2 GiB/s for 1s, 1 byte pending: %+v; want no capacity, the largest ring holding just under 1s", a)
	}
	// 100 GB/s for an hour: more than 64 bits of need, saturated; the largest ring holds 21 ms.
	a = Advise(ring(1<<20, 0), span(1e9, 10*time.Millisecond, 0), 1<<62, page)
	if a.Need != math.MaxUint64 || a.Capacity != 0 || a.LargestHolds != seconds((1<<31)/1e11) {
		t.Errorf("100 GB/s for a long pause: %+v; want saturated need, no capacity, the largest ring holding 21.47ms", a)
	}

	// A perf event array gets no advice.
	if a := Advise(Ring{Kind: PerfEventArray}, span(1000, time.Second, 0), time.Second, page); a != (Advice{}) {
		t.Errorf("perf event array: %+v, want no advice", a)
	}

	// An overwrite-mode ring full of history, its consumer never reading:
	// no pause loses anything, so no capacity is advised; at 1 MiB/s a
	// 4 MiB ring keeps 4 s.
	ow := Ring{ID: 1, Kind: RingBuf, Overwrite: true, Capacity: 4 << 20, Producer: 1 << 30, OverwritePos: 1<<30 - 4<<20}
	peak := span(1<<20, time.Second, 4<<20)
	a = Advise(ow, peak, time.Second, page)
	if want := (Advice{Peak: peak, Rate: 1 << 20, ToFull: Forever, Grace: Forever, Pause: time.Second, History: 4 * time.Second}); a != want {
		t.Errorf("overwrite ring at 1 MiB/s: %+v, want %+v", a, want)
	}
	if a := Advise(ow, span(0, time.Second, 0), time.Second, page); a.History != Forever || a.Capacity != 0 || a.Need != 0 {
		t.Errorf("idle overwrite ring: %+v, want history forever and no capacity", a)
	}
}

// TestPeakOfAnotherProcesssBurst: a child writes a burst of known size
// into its ring while the test samples the census around it, so that
// the only span with bytes in it is the burst's. The peak must be that span,
// byte for byte, with what was pending as it began, and the advice must
// follow from it; how long the span lasted is the machine's business.
func TestPeakOfAnotherProcesssBurst(t *testing.T) {
	testenv.RequireBPF(t)
	child := ringchild.Start(t, ringchild.Ring)
	const before, burst = 5, 1000 // records: pending as the burst begins, and the burst
	child.Do(t, fmt.Sprintf("write %d", before))
	c := openCensus(t, Options{})
	peaks := NewPeaks(PeakOptions{})
	sample := func() Ring {
		t.Helper()
		time.Sleep(2 * DefaultMinSpan) // each span at least MinSpan long
		rings := c.Sample(time.Now())
		peaks.Observe(rings)
		r, ok := find(rings, child.MapID)
		if !ok {
			t.Fatalf("map %d is not in the census", child.MapID)
		}
		return r
	}
	sample()
	child.Do(t, fmt.Sprintf("write %d", burst))
	sample()
	if got := child.Do(t, "read"); got != fmt.Sprint(before+burst) {
		t.Fatalf("the child read %s records, want %d", got, before+burst)
	}
	sample()
	r := sample() // two spans with nothing produced

	peak, ok := peaks.Peak(child.MapID, time.Now())
	if !ok {
		t.Fatal("no peak after four samples")
	}
	if peak.Bytes != burst*ringchild.RecordBytes || peak.Pending != before*ringchild.RecordBytes || peak.Duration() < 2*DefaultMinSpan {
		t.Errorf("peak %+v over %v; want the burst's %d bytes, with %d pending as it began, over %v or more",
			peak, peak.Duration(), burst*ringchild.RecordBytes, before*ringchild.RecordBytes, 2*DefaultMinSpan)
	}
	rate := float64(burst*ringchild.RecordBytes) / peak.Duration().Seconds()
	const pause = 100 * time.Millisecond
	a := Advise(r, peak, pause, os.Getpagesize())
	need := uint64(math.Ceil(rate*pause.Seconds())) + before*ringchild.RecordBytes
	capacity := uint64(os.Getpagesize())
	for capacity < need {
		capacity *= 2
	}
	if a.Rate != rate || a.Need != need || a.Capacity != capacity || r.Pending() != 0 || a.ToFull != seconds(ringchild.RingSize/rate) {
		t.Errorf("advice %+v; want rate %v B/s, need %d, capacity %d, full in %v (read empty)", a, rate, need, capacity, seconds(ringchild.RingSize/rate))
	}
	t.Logf("burst of %d bytes over %v: %.0f B/s; %d bytes hold a %v pause", peak.Bytes, peak.Duration(), a.Rate, a.Capacity, pause)
}
