package hostrings

import (
	"math"
	"time"
)

// Rates is what two samples of one ring, some time apart, say about it.
type Rates struct {
	In, Out float64 // bytes produced and consumed per second
	// Overwritten is the bytes an overwrite-mode ring overwrote per
	// second: how fast its overwrite position moved. 0 for other rings.
	Overwritten float64
	// ToFull is how long until the ring is full if both rates hold: its
	// free bytes over In-Out. +Inf when it is not filling, and for an
	// overwrite-mode ring, which loses nothing it did not mean to when full.
	ToFull time.Duration
	// ConsumerGrace is how long the consumer may pause, from empty, before
	// the producers fill the ring: capacity over In. +Inf when nothing is
	// produced, and for an overwrite-mode ring (see History).
	ConsumerGrace time.Duration
	// History is how far back an overwrite-mode ring reaches at the
	// producers' rate: capacity over In, the seconds of records it keeps.
	// +Inf when nothing is produced; 0 for other rings.
	History time.Duration
	// Stalled: bytes were pending at both samples and the consumer did not
	// move between them. Never for an overwrite-mode ring.
	Stalled bool
}

// Forever is the duration that stands for "never" in [Rates].
const Forever = time.Duration(math.MaxInt64)

// RatesBetween compares prev and cur, two samples of the same ring taken dt
// apart. It returns zero Rates for a ring without positions or for dt <= 0.
func RatesBetween(prev, cur Ring, dt time.Duration) Rates {
	if !cur.HasPositions() || dt <= 0 {
		return Rates{ToFull: Forever, ConsumerGrace: Forever}
	}
	secs := dt.Seconds()
	r := Rates{
		In:            float64(cur.Producer-min(prev.Producer, cur.Producer)) / secs,
		Out:           float64(cur.Consumer-min(prev.Consumer, cur.Consumer)) / secs,
		ToFull:        Forever,
		ConsumerGrace: Forever,
		Stalled:       prev.Pending() > 0 && cur.Pending() > 0 && cur.Consumer == prev.Consumer,
	}
	if cur.Overwrite {
		r.Overwritten = float64(cur.OverwritePos-min(prev.OverwritePos, cur.OverwritePos)) / secs
		r.Stalled = false
		r.History = Forever
		if r.In > 0 {
			r.History = seconds(float64(cur.Capacity) / r.In)
		}
		return r
	}
	if net := r.In - r.Out; net > 0 {
		r.ToFull = seconds(float64(cur.Capacity-min(cur.Pending(), cur.Capacity)) / net)
	}
	if r.In > 0 {
		r.ConsumerGrace = seconds(float64(cur.Capacity) / r.In)
	}
	return r
}

func seconds(s float64) time.Duration {
	if s >= Forever.Seconds() {
		return Forever
	}
	return time.Duration(s * float64(time.Second))
}
