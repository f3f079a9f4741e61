package hostrings

import (
	"math"
	"math/bits"
	"sync"
	"time"

	"github.com/cilium/ebpf"
)

// The sizing model. Records are lost when the producers find the ring full,
// and that happens when the consumer pauses (it is descheduled, it sleeps,
// it is busy elsewhere) while the producers run at their fastest. So the
// model takes the producers' peak rate R, the highest rate over one short
// span between two samples, not the average over minutes, which hides the
// bursts that lose records. A ring of capacity C with P bytes pending is
// full in (C-P)/R if the consumer stops now; an empty one holds a consumer
// pause of C/R; and the ring that holds a pause T is the smallest size the
// kernel accepts that is at least R*T plus what was pending as the peak
// began (a pause that starts as the burst does finds those bytes already in
// the ring).

// MaxCapacity is the largest ring buffer or user ring buffer: max_entries
// is a 32-bit number and must be a power of two (kernel/bpf/ringbuf.c,
// ringbuf_map_alloc), so 2 GiB.
const MaxCapacity = 1 << 31

// CapacityFor returns the smallest data size the kernel accepts for a ring
// buffer or user ring buffer that holds need bytes: a power of two and a
// multiple of the page size (kernel/bpf/ringbuf.c, ringbuf_map_alloc:
// is_power_of_2 and PAGE_ALIGNED), so at least one page. It returns false
// when need is more than [MaxCapacity]. pageSize must be a power of two.
func CapacityFor(need uint64, pageSize int) (uint64, bool) {
	if need > MaxCapacity {
		return 0, false
	}
	size := max(uint64(pageSize), 1)
	if need > size {
		size = 1 << bits.Len64(need-1)
	}
	return size, true
}

// Span is a stretch of time between two samples of one ring, and what the
// producers wrote in it.
type Span struct {
	Start, End time.Time
	// Bytes is how far the producer position moved: bytes produced,
	// records' headers and padding included.
	Bytes uint64
	// Pending is the bytes pending as the span began.
	Pending uint64
}

// Duration is the span's length.
func (s Span) Duration() time.Duration { return s.End.Sub(s.Start) }

// Rate is the producers' rate over the span, in bytes per second; 0 for a
// span of no length.
func (s Span) Rate() float64 {
	if d := s.Duration(); d > 0 {
		return float64(s.Bytes) / d.Seconds()
	}
	return 0
}

// DefaultPause is the consumer pause the sizing advice is for when no
// other is asked: the worst moments of a loaded machine's scheduler, a
// garbage collection, a storm of page faults.
const DefaultPause = 100 * time.Millisecond

// Defaults of [PeakOptions].
const (
	// DefaultMinSpan is the shortest span a peak rate is taken over: half
	// of DefaultSampleEvery, so that a sample taken late, and the next one
	// taken on time, do not make a rate of a moment.
	DefaultMinSpan = DefaultSampleEvery / 2
	// DefaultPeakWindow is how far back a [Peaks] with no window of its
	// own looks for the peak in `ringwatch run`: a minute, longer than any
	// usual scrape interval, so that every peak is seen by a scrape.
	DefaultPeakWindow = time.Minute
)

// PeakOptions tune [Peaks].
type PeakOptions struct {
	// MinSpan is the shortest span a rate is taken over: a sample that
	// comes sooner after the last span's end extends the span instead.
	// 0 takes DefaultMinSpan.
	MinSpan time.Duration
	// Window is how far back the peak is kept: the highest span that ended
	// within the last Window, in 60 steps (so between 59/60 of Window and
	// Window). 0 keeps the highest of all.
	Window time.Duration
}

// peakSlots is how many steps a window moves in.
const peakSlots = 60

// Peaks follows the producer position of every ring in the samples it is
// given and keeps each ring's peak: the span with the highest producer
// rate. Fed with the census's samples, every 10 ms, the spans are the
// census's sample periods. It is safe for concurrent use.
type Peaks struct {
	opts PeakOptions
	slot time.Duration // Window / peakSlots

	mu    sync.Mutex
	rings map[ebpf.MapID]*ringPeaks
}

type ringPeaks struct {
	start Ring // the sample the open span began at
	slots []slotPeak
	best  Span // with no window: the highest span of all
	found bool
}

// slotPeak is the highest span that ended in one step of the window.
type slotPeak struct {
	n    int64 // the step: the span's end in nanoseconds / slot
	span Span
	ok   bool
}

// NewPeaks returns an empty tracker.
func NewPeaks(opts PeakOptions) *Peaks {
	if opts.MinSpan <= 0 {
		opts.MinSpan = DefaultMinSpan
	}
	p := &Peaks{opts: opts, rings: map[ebpf.MapID]*ringPeaks{}}
	if opts.Window > 0 {
		p.slot = max(opts.Window/peakSlots, 1)
	}
	return p
}

// Options returns the options in force, defaults filled in.
func (p *Peaks) Options() PeakOptions { return p.opts }

// Observe takes one sample of the rings, each read at its SampledAt,
// closes the span of each ring whose open span is at least MinSpan long,
// and forgets the rings that are not in it. Rings without positions are
// left out.
func (p *Peaks) Observe(rings []Ring) {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := make(map[ebpf.MapID]bool, len(rings))
	for _, r := range rings {
		if !r.HasPositions() {
			continue
		}
		seen[r.ID] = true
		st := p.rings[r.ID]
		if st == nil {
			st = &ringPeaks{start: r}
			if p.slot > 0 {
				st.slots = make([]slotPeak, peakSlots)
			}
			p.rings[r.ID] = st
			continue
		}
		if r.Producer < st.start.Producer || r.SampledAt.Before(st.start.SampledAt) {
			st.start = r // not the same ring's counter, or not in order: start again
			continue
		}
		if r.SampledAt.Sub(st.start.SampledAt) < p.opts.MinSpan {
			continue
		}
		st.record(p.slot, Span{Start: st.start.SampledAt, End: r.SampledAt,
			Bytes: r.Producer - st.start.Producer, Pending: st.start.Pending()})
		st.start = r
	}
	for id := range p.rings {
		if !seen[id] {
			delete(p.rings, id)
		}
	}
}

// record keeps s if it is the highest of its step, or of all without a
// window. Of equal rates, the earlier span stays.
func (st *ringPeaks) record(slot time.Duration, s Span) {
	if slot == 0 {
		if !st.found || s.Rate() > st.best.Rate() {
			st.best, st.found = s, true
		}
		return
	}
	n := s.End.UnixNano() / int64(slot)
	e := &st.slots[n%peakSlots]
	if !e.ok || e.n != n || s.Rate() > e.span.Rate() {
		*e = slotPeak{n: n, span: s, ok: true}
	}
}

// Peak returns the span of ring id with the highest producer rate: of
// every span observed, or, with a window, of those that ended in the
// window up to now. It returns false before one span of the ring has
// closed (or none is in the window).
func (p *Peaks) Peak(id ebpf.MapID, now time.Time) (Span, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.rings[id]
	if st == nil {
		return Span{}, false
	}
	if p.slot == 0 {
		return st.best, st.found
	}
	last := now.UnixNano() / int64(p.slot)
	var best Span
	found := false
	for _, e := range st.slots {
		if !e.ok || e.n <= last-peakSlots || e.n > last {
			continue
		}
		if !found || e.span.Rate() > best.Rate() || e.span.Rate() == best.Rate() && e.span.End.Before(best.End) {
			best, found = e.span, true
		}
	}
	return best, found
}

// Advice is the sizing model applied to one ring at its peak.
type Advice struct {
	Peak Span    // the span of the highest producer rate
	Rate float64 // its rate, bytes per second
	// ToFull is how long the ring's free bytes last at the peak rate if
	// the consumer stops now: (capacity - pending) / rate. Forever at rate 0.
	ToFull time.Duration
	// Grace is the consumer pause an empty ring holds at the peak rate:
	// capacity / rate. Forever at rate 0.
	Grace time.Duration
	// Pause is the consumer pause the advice is for.
	Pause time.Duration
	// Need is the bytes that pause takes at the peak rate, rounded up,
	// plus the bytes pending as the peak began.
	Need uint64
	// Capacity is the smallest size the kernel accepts for the ring that
	// holds Need (see [CapacityFor]); 0 when no ring can, Need being more
	// than MaxCapacity.
	Capacity uint64
	// LargestHolds, when Capacity is 0, is the pause the largest ring
	// (MaxCapacity) holds at the peak rate, with the peak's pending bytes
	// in it.
	LargestHolds time.Duration
	// History, for an overwrite-mode ring, is how far back it reaches at
	// the peak rate: capacity / rate, Forever at rate 0. Such a ring gets
	// no other advice: its consumer is not meant to keep up, so no pause
	// loses anything, and ToFull and Grace are Forever, Need and Capacity
	// 0. It is sized by the history it should keep.
	History time.Duration
}

// Advise applies the sizing model to ring r, whose peak is the span peak,
// for a consumer pause of pause, with pages of pageSize bytes. r gives the
// capacity and the bytes pending now; a ring without positions gets no
// advice (its zero value), and an overwrite-mode ring only its History.
func Advise(r Ring, peak Span, pause time.Duration, pageSize int) Advice {
	if !r.HasPositions() {
		return Advice{}
	}
	rate := peak.Rate()
	a := Advice{Peak: peak, Rate: rate, ToFull: Forever, Grace: Forever, Pause: pause}
	if r.Overwrite {
		a.History = Forever
		if rate > 0 {
			a.History = seconds(float64(r.Capacity) / rate)
		}
		return a
	}
	if rate > 0 {
		a.ToFull = seconds(float64(r.Capacity-min(r.Pending(), r.Capacity)) / rate)
		a.Grace = seconds(float64(r.Capacity) / rate)
	}
	a.Need = addSaturating(ceilBytes(rate*pause.Seconds()), peak.Pending)
	var ok bool
	if a.Capacity, ok = CapacityFor(a.Need, pageSize); !ok {
		a.LargestHolds = seconds(float64(MaxCapacity-min(peak.Pending, MaxCapacity)) / rate)
	}
	return a
}

// ceilBytes is x rounded up to a whole byte count, at most MaxUint64.
func ceilBytes(x float64) uint64 {
	x = math.Ceil(x)
	if x >= math.MaxUint64 {
		return math.MaxUint64
	}
	return uint64(x)
}

func addSaturating(a, b uint64) uint64 {
	if s, carry := bits.Add64(a, b, 0); carry == 0 {
		return s
	}
	return math.MaxUint64
}
