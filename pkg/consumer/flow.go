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

func newFlow() flow { return flow{untilFull: math.Inf(1)} }

// look measures the rings at now, after a pass that delivered records.
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
	if dt < minInterval {
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
