package hostrings_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/ringwatch/ringwatch/pkg/hostrings"
)

// The sizing model works on plain samples, so it runs anywhere: here two
// samples of a 64 KiB ring, 10 ms apart, as Census.Sample would return
// them, in which the producers wrote 10,000 bytes while the consumer took
// 8,000.
func ExampleAdvise() {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	before := hostrings.Ring{
		ID: 42, Name: "events", Kind: hostrings.RingBuf, Capacity: 64 << 10,
		Producer: 100_000, Consumer: 99_000, SampledAt: start,
	}
	after := before
	after.Producer += 10_000
	after.Consumer += 8_000
	after.SampledAt = start.Add(10 * time.Millisecond)

	peaks := hostrings.NewPeaks(hostrings.PeakOptions{})
	peaks.Observe([]hostrings.Ring{before})
	peaks.Observe([]hostrings.Ring{after})
	peak, ok := peaks.Peak(after.ID, after.SampledAt)
	if !ok {
		return
	}
	a := hostrings.Advise(after, peak, hostrings.DefaultPause, 4096)
	fmt.Printf("peak %.0f bytes/s; full in %v if the consumer stops now; holds a %v pause from empty\n",
		a.Rate, a.ToFull.Round(time.Millisecond), a.Grace.Round(time.Millisecond))
	fmt.Printf("a %v pause needs %d bytes: a ring of %d\n", a.Pause, a.Need, a.Capacity)
	// Output:
	// peak 1000000 bytes/s; full in 63ms if the consumer stops now; holds a 66ms pause from empty
	// a 100ms pause needs 101000 bytes: a ring of 131072
}

// RatesBetween says what two samples of one ring show: the throughput in
// and out, and how long the ring lasts if both rates hold.
func ExampleRatesBetween() {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	prev := hostrings.Ring{Kind: hostrings.RingBuf, Capacity: 1 << 20, SampledAt: start}
	cur := prev
	cur.Producer, cur.Consumer = 300_000, 200_000
	cur.SampledAt = start.Add(time.Second)

	r := hostrings.RatesBetween(prev, cur, cur.SampledAt.Sub(prev.SampledAt))
	fmt.Printf("in %.0f B/s, out %.0f B/s, full in %v\n", r.In, r.Out, r.ToFull.Round(time.Second))
	// Output:
	// in 300000 B/s, out 200000 B/s, full in 9s
}

// The census itself needs the kernel and CAP_SYS_ADMIN: it lists every
// ring on the host, then follows their positions.
func Example() {
	census, err := hostrings.Open(hostrings.Options{})
	if err != nil {
		fmt.Println(err) // wraps hostrings.ErrPermission without CAP_SYS_ADMIN
		return
	}
	defer census.Close()

	for _, r := range census.Sample(time.Now()) {
		fmt.Printf("%d %s %s: %d of %d bytes pending\n", r.ID, r.Name, r.Kind, r.Pending(), r.Capacity)
	}

	// Follow the peaks for a minute and advise a size for each ring.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	peaks := hostrings.NewPeaks(hostrings.PeakOptions{})
	var last []hostrings.Ring
	census.Run(ctx, func(rings []hostrings.Ring) {
		peaks.Observe(rings)
		last = rings
	}, func(err error) { fmt.Fprintln(os.Stderr, err) })
	for _, r := range last {
		if peak, ok := peaks.Peak(r.ID, time.Now()); ok {
			a := hostrings.Advise(r, peak, hostrings.DefaultPause, os.Getpagesize())
			fmt.Printf("%s: %d bytes would hold a %v pause\n", r.Name, a.Capacity, a.Pause)
		}
	}
}
