package consumer

import (
	"context"
	"math"
	"sync/atomic"
	"testing"
	"time"
)

// The flow model on plain memory: a ring whose producer position the test
// moves at a rate it chooses, measured at times it chooses, so every
// figure the model gives is known in advance.

// fakeClock is the test's CLOCK_MONOTONIC, in ns.
type fakeClock struct{ now int64 }

func (c *fakeClock) advance(d time.Duration) int64 { c.now += d.Nanoseconds(); return c.now }

// flowRing is a 1 MiB ring buffer in plain memory whose producer position
// the test moves by hand: the flow reads only positions.
func flowRing(t *testing.T) (*memRing, *ringbuf) {
	t.Helper()
	m := newMemRing(1 << 20)
	return m, m.reader()
}

// produce moves the producer position n bytes on, as if records of that
// many bytes had been written.
func produce(m *memRing, n uint64) { atomic.AddUint64(&m.pos[1], n) }

// consume moves the consumer position to the producer's.
func consume(m *memRing) { atomic.StoreUint64(&m.pos[0], atomic.LoadUint64(&m.pos[1])) }

func near(got, want, tolerance float64) bool { return math.Abs(got-want) <= tolerance*math.Abs(want) }

func TestFlowMeasuresRateAndTimeToFull(t *testing.T) {
	m, r := flowRing(t)
	f := newFlow(0)
	var clock fakeClock
	rings := []ring{r}
	f.look(rings, clock.advance(time.Millisecond), 0) // the first look only sets the start
	if !math.IsInf(f.untilFull, 1) || f.recordRate != 0 {
		t.Fatalf("after the first look: untilFull %v, recordRate %v; want +Inf and 0", f.untilFull, f.recordRate)
	}
	// 1 GB/s for 100 µs: 100,000 bytes, read as 1,000 records, and 20,000
	// bytes left pending.
	produce(m, 100_000)
	atomic.StoreUint64(&m.pos[0], 80_000)
	f.look(rings, clock.advance(100*time.Microsecond), 1000)
	if !near(f.byteRate, 1e9, 1e-9) || !near(f.recordRate, 1e7, 1e-9) {
		t.Fatalf("rate %v B/s, %v records/s; want 1e9 and 1e7", f.byteRate, f.recordRate)
	}
	room := float64(1<<20 - 20_000)
	if !near(f.untilFull, room/1e9, 1e-9) || f.pending != 20_000 || f.capacity != 1<<20 {
		t.Fatalf("untilFull %v s, pending %d, capacity %d; want %v s, 20000, %d", f.untilFull, f.pending, f.capacity, room/1e9, 1<<20)
	}
	// Passes closer together than minInterval leave the rate as it was.
	produce(m, 1)
	f.look(rings, clock.advance(minInterval/2), 1)
	if !near(f.byteRate, 1e9, 1e-9) {
		t.Fatalf("a look %v after the last moved the rate to %v", minInterval/2, f.byteRate)
	}
	// The byte produced then counts in the next interval: 1 byte in 1 ms.
	f.look(rings, clock.advance(time.Millisecond-minInterval/2), 0)
	if !near(f.byteRate, 1000, 1e-9) {
		t.Fatalf("1 byte over 1 ms measured as %v B/s", f.byteRate)
	}
	// Nothing produced: no ring fills.
	consume(m)
	f.look(rings, clock.advance(time.Millisecond), 0)
	if !math.IsInf(f.untilFull, 1) || f.recordRate != 0 || f.byteRate != 0 {
		t.Fatalf("a quiet interval: untilFull %v, rates %v, %v; want +Inf, 0, 0", f.untilFull, f.recordRate, f.byteRate)
	}
}

// TestFlowTakesTheRingThatFillsFirst: of two rings, the one with the least
// time left decides, not the fastest or the fullest alone.
func TestFlowTakesTheRingThatFillsFirst(t *testing.T) {
	fast, fastR := flowRing(t)
	full, fullR := flowRing(t)
	// full holds all but 11,000 bytes before the first look.
	atomic.StoreUint64(&full.pos[1], 1<<20-11_000)
	f := newFlow(0)
	var clock fakeClock
	rings := []ring{fastR, fullR}
	f.look(rings, clock.advance(time.Millisecond), 0)
	// In 1 ms, fast takes 10,000 bytes (10 MB/s, read at once: 0.105 s to
	// full) and full 1,000 (1 MB/s, 10,000 bytes of room: 0.01 s).
	produce(fast, 10_000)
	consume(fast)
	produce(full, 1_000)
	f.look(rings, clock.advance(time.Millisecond), 10)
	if f.capacity != 1<<20 || f.pending != 1<<20-10_000 || !near(f.untilFull, 10_000/1e6, 1e-9) || !near(f.byteRate, 1e6, 1e-9) {
		t.Fatalf("untilFull %v s at %v B/s with %d pending; want the full ring's 0.01 s at 1e6 with %d",
			f.untilFull, f.byteRate, f.pending, 1<<20-10_000)
	}
}

// TestPaceIsAFractionOfTimeToFullBoundedByTheLazySleep holds the sleep
// model to its rules at rates the test sets: what pace returns for each
// mode, and the watermark a lazy sleep tells the producers.
func TestPaceIsAFractionOfTimeToFullBoundedByTheLazySleep(t *testing.T) {
	lazy := lazySleep(DefaultMaxDelay) // 800 µs
	cases := []struct {
		name       string
		mode       Wakeup
		byteRate   float64 // into a 1 MiB ring, empty
		recordRate float64
		want       time.Duration
	}{
		// 1 GB/s fills 1 MiB in 1.049 ms: a quarter of it.
		{"adaptive, ring fills in 1 ms", WakeupAdaptive, 1e9, 1e7, seconds(float64(1<<20) / 1e9 / paceFraction)},
		// 10 MB/s: 105 ms to full, so the lazy sleep bounds it.
		{"adaptive, ring fills in 105 ms", WakeupAdaptive, 1e7, 1e5, lazy},
		// One record every 2 ms: rarer than a lazy sleep, so no pace (the
		// consumer reads, then sleeps deeply until the next).
		{"adaptive, records rarer than a lazy sleep", WakeupAdaptive, 32_000, 500, 0},
		{"adaptive, nothing flowing", WakeupAdaptive, 0, 0, 0},
		// busy: busyBatch records at 10 M/s arrive in 25.6 µs.
		{"busy, 10 M records/s", WakeupBusy, 4e8, 1e7, seconds(busyBatch / 1e7)},
		// ...and take 256 µs at 1 M/s, past busyPaceMax: read each.
		{"busy, 1 M records/s", WakeupBusy, 4e7, 1e6, 0},
		// busy at 40 GB/s: a quarter of the ring's 26 µs comes first.
		{"busy, ring fills in 26 µs", WakeupBusy, 4e10, 1e7, seconds(float64(1<<20) / 4e10 / paceFraction)},
		{"every never paces", WakeupEvery, 1e9, 1e7, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &sleeper{mode: c.mode, lazyFor: lazy, flow: newFlow(0), paces: true}
			s.flow.byteRate, s.flow.recordRate, s.flow.capacity = c.byteRate, c.recordRate, 1<<20
			if c.byteRate > 0 {
				s.flow.untilFull = float64(1<<20) / c.byteRate
			}
			if got := s.pace(); got != c.want {
				t.Fatalf("pace %v, want %v", got, c.want)
			}
			s.paces = false // a perf buffer among the rings
			if got := s.pace(); got != 0 {
				t.Fatalf("a consumer that cannot pace paces %v", got)
			}
		})
	}
	t.Run("never lazy", func(t *testing.T) {
		s := &sleeper{mode: WakeupAdaptive, lazyFor: lazySleep(-1), flow: newFlow(0), paces: true}
		s.flow.byteRate, s.flow.recordRate, s.flow.untilFull = 1e9, 1e7, 0.001
		if got := s.pace(); got != 0 {
			t.Fatalf("a consumer with a negative MaxDelay paces %v", got)
		}
	})
}

func TestWatermarkIsTwiceTheExpectedFillBetweenAQuarterAndHalf(t *testing.T) {
	m, r := flowRing(t)
	var wm uint32
	s := &sleeper{mode: WakeupAdaptive, flow: newFlow(0), watermark: &wm}
	s.flow.capacity, s.flow.pending = 1<<20, 4096
	// 200 MB/s for 1 ms: 200,000 bytes expected, so 4096 + 400,000.
	s.flow.byteRate = 2e8
	s.setWatermark([]ring{r}, time.Millisecond)
	if wm != 4096+400_000 {
		t.Fatalf("watermark %d bytes, want %d", wm, 4096+400_000)
	}
	// 100 MB/s would be 204,096: a quarter of the ring instead.
	s.flow.byteRate = 1e8
	s.setWatermark([]ring{r}, time.Millisecond)
	if wm != 1<<18 {
		t.Fatalf("watermark %d bytes, want a quarter of the ring, %d", wm, 1<<18)
	}
	// 1 GB/s for 1 ms would be 2 MB: half the ring instead.
	s.flow.byteRate = 1e9
	s.setWatermark([]ring{r}, time.Millisecond)
	if wm != 1<<19 {
		t.Fatalf("watermark %d bytes, want half the ring, %d", wm, 1<<19)
	}
	// No rate measured and nothing pending: a quarter, not the first
	// record.
	s.flow = newFlow(0)
	s.setWatermark([]ring{r}, time.Millisecond)
	if wm != 1<<18 {
		t.Fatalf("watermark %d with no rate, want a quarter of the ring, %d", wm, 1<<18)
	}
	_ = m
	// SPSC producers count slots: the same level in 72-byte slots.
	q := newMemQueues(t, 1, 1000, 72)
	defer q.bell.close()
	sq := q.reader()
	s.flow = newFlow(0)
	s.flow.capacity, s.flow.byteRate = sq.capacity(), 108e6 // 1.5 M slots/s
	s.setWatermark([]ring{sq}, 100*time.Microsecond)
	if wm != 300 {
		t.Fatalf("spsc watermark %d slots, want 300", wm)
	}
	s.flow.byteRate = 72e9
	s.setWatermark([]ring{sq}, 100*time.Microsecond)
	if wm != 500 {
		t.Fatalf("spsc watermark %d slots, want half the queue, 500", wm)
	}
}

// TestReadPacesAFlowingRing: a busy consumer that measured records coming
// fast waits for them to gather before it reads, and one that measured
// nothing reads at once. The wait is a lower bound (the machine can only
// make it longer), so the test holds only to that.
func TestReadPacesAFlowingRing(t *testing.T) {
	m := newMemRing(1 << 16)
	c, err := newConsumer([]ring{m.reader()}, &sleeper{mode: WakeupBusy, flow: newFlow(0)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.sleeper.paces {
		t.Fatal("a consumer of a ring buffer does not pace")
	}
	for i := range 10 {
		m.put(t, sample(i, 24))
	}
	var got int
	count := func(b Batch) { got += len(b.Records) }
	// 256 records at 10 M/s: 25.6 µs.
	c.sleeper.flow.recordRate, c.sleeper.flow.untilFull = 1e7, 1
	start := time.Now()
	if _, err := c.Read(context.Background(), count); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 25*time.Microsecond || got != 10 {
		t.Fatalf("paced Read returned %d records after %v; want 10 after at least 25µs", got, took)
	}
	// The Read measured the ring: 10 records over about the pace. Nothing
	// flows now: the next look sees a rate of 0, and Read does not wait.
	c.sleeper.flow.look(c.rings, MonotonicNow()+int64(time.Second), 0)
	if wait := c.sleeper.pace(); wait != 0 {
		t.Fatalf("pace %v after a second with nothing", wait)
	}
}

// TestFlowHoldsItsRateAcrossAnEmptyPass: an adaptive consumer's empty pass
// among records that still flow leaves the rate in place, and the next
// pass with records measures over both; a quiet hold makes the rate 0.
func TestFlowHoldsItsRateAcrossAnEmptyPass(t *testing.T) {
	m, r := flowRing(t)
	lazy := lazySleep(DefaultMaxDelay)
	s := &sleeper{mode: WakeupAdaptive, lazyFor: lazy, flow: newFlow(holdSleeps * lazy), paces: true}
	f := &s.flow
	var clock fakeClock
	rings := []ring{r}
	f.look(rings, clock.advance(time.Millisecond), 0)
	// One record of 64 bytes per millisecond: 0.8 per lazy sleep, enough
	// for a lazy sleep (lazyFrom) though not for a pace.
	produce(m, 64)
	consume(m)
	f.look(rings, clock.advance(time.Millisecond), 1)
	if !near(f.recordRate, 1000, 1e-9) || !s.flowing() || s.pace() != 0 {
		t.Fatalf("1 record/ms: rate %v, flowing %v, pace %v; want 1000, true, 0", f.recordRate, s.flowing(), s.pace())
	}
	// An empty pass half a millisecond later holds the rate.
	f.look(rings, clock.advance(500*time.Microsecond), 0)
	if !near(f.recordRate, 1000, 1e-9) || !s.flowing() {
		t.Fatalf("after an empty pass: rate %v, flowing %v; want 1000 held", f.recordRate, s.flowing())
	}
	// The next record, 1.5 ms after the last: measured over 1.5 ms.
	produce(m, 64)
	consume(m)
	f.look(rings, clock.advance(time.Millisecond), 1)
	if !near(f.recordRate, 1000/1.5, 1e-9) || !near(f.byteRate, 64000/1.5, 1e-9) {
		t.Fatalf("over an empty pass: %v records/s, %v B/s; want %v and %v", f.recordRate, f.byteRate, 1000/1.5, 64000/1.5)
	}
	// A hold's length with nothing: nothing flows, and it sleeps deeply.
	f.look(rings, clock.advance(holdSleeps*lazy), 0)
	if f.recordRate != 0 || s.flowing() {
		t.Fatalf("after a quiet hold: rate %v, flowing %v; want 0, false", f.recordRate, s.flowing())
	}
	// Half a record per sleep is still lazy; less is deep.
	f.recordRate = lazyFrom / lazy.Seconds()
	if !s.flowing() {
		t.Fatalf("%v records/s (%v per lazy sleep) is not flowing", f.recordRate, lazyFrom)
	}
	f.recordRate *= 0.99
	if s.flowing() {
		t.Fatalf("%v records/s is flowing", f.recordRate)
	}
}
