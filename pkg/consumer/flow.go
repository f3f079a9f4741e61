package consumer

import (
	"math"
	"time"
)

// flow is what a Consumer knows of how fast its rings fill, measured after
// each pass: the model its sleeper paces and sleeps by. It reads only the
// producer positions, once per ring per pass, and the clock once.
type flow struct {
	at       int64    // CLOCK_MONOTONIC ns of the last look; 0 before the first
	produced []uint64 // each ring's producer position then
	// hold: a look that finds no records this soon after the last
	// measured interval leaves the rates as they were, and the next
	// look measures over both. One empty pass among records that still
	// flow then does not read as "nothing flows" (which would make an
	// adaptive consumer sleep deeply and its producers ring for each
	// record); a quiet hold does.
	hold int64

	// Of the last interval between two looks:
	recordRate float64 // records delivered per second
	// Of the ring that is full first at the rate it filled in the last
	// interval: its rate in bytes per second, the seconds until it is full
	// (+Inf while no ring fills), and its pending bytes and capacity.
	byteRate, untilFull float64
	pending, capacity   uint64
}

// minInterval is the shortest interval the flow measures a rate over: two
// passes closer than this leave the last rate in place.
const minInterval = time.Microsecond

func newFlow(hold time.Duration) flow { return flow{untilFull: math.Inf(1), hold: hold.Nanoseconds()} }

// holdSleeps is how many lazy sleeps an adaptive consumer's flow holds its
// last rate through without a record: past that it sleeps deeply.
const holdSleeps = 4

// look measures the rings at now, after a pass that delivered records
// (records may be 0).
func (f *flow) look(rings []ring, now int64, records int) {
	if len(f.produced) != len(rings) {
		f.produced = make([]uint64, len(rings))
		for i, r := range rings {
			f.produced[i] = r.produced()
		}
		f.at = now
		return
	}
	dt := time.Duration(now - f.at)
	if dt < minInterval || records == 0 && int64(dt) < f.hold {
		return
	}
	secs := dt.Seconds()
	f.recordRate = float64(records) / secs
	f.byteRate, f.untilFull, f.pending, f.capacity = 0, math.Inf(1), 0, 0
	for i, r := range rings {
		p := r.produced()
		rate := float64(p-f.produced[i]) / secs
		f.produced[i] = p
		if rate <= 0 {
			continue
		}
		room := r.room()
		if t := float64(room) / rate; t < f.untilFull {
			f.untilFull, f.byteRate = t, rate
			f.capacity = r.capacity()
			f.pending = f.capacity - room
		}
	}
	f.at = now
}

// seconds converts s to a Duration, saturating; +Inf is the longest.
func seconds(s float64) time.Duration {
	if s >= math.MaxInt64/1e9 {
		return math.MaxInt64
	}
	return time.Duration(s * 1e9)
}
