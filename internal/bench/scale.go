package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/cpus"
	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/internal/session"
	"github.com/ringwatch/ringwatch/internal/transport"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// producerCPUs are the CPUs the scale scenario runs n producers on, of
// allowed, the CPUs this process may run on (cpus.Allowed): from
// the second of them on, leaving the first to the consumers while there
// are CPUs to spare, and wrapping around when there are not.
func producerCPUs(allowed []int, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = allowed[(1+i)%len(allowed)]
	}
	return out
}

// spareCPUs are the CPUs of allowed that no producer of cpus runs on.
func spareCPUs(allowed, cpus []int) []int {
	var spare []int
	for _, cpu := range allowed {
		if !slices.Contains(cpus, cpu) {
			spare = append(spare, cpu)
		}
	}
	return spare
}

// scale runs producers synthetic producers at full speed, each on a thread
// pinned to its own CPU, for opts.MaxTime, while the session's consumers
// (opts.Consumers of them) read, then stops and counts. Each consumer is
// pinned to a CPU of its own that runs no producer while there are enough
// of those; otherwise the scheduler places them among the producers.
func scale(ctx context.Context, opts Options, t abi.TransportName, size, producers int) (Result, error) {
	r := Result{Scenario: Scale, Transport: string(t), Consumer: Ringwatch, Wakeup: string(consumer.WakeupAdaptive),
		RecordSize: size, Producers: producers}
	consumers := opts.Consumers
	if consumers == 0 {
		consumers = transport.AutoConsumers
	}
	allowed, err := cpus.Allowed()
	if err != nil {
		return r, err
	}
	producerOn := producerCPUs(allowed, producers)
	so := session.Options{
		Sources:   []loader.Source{source(size)},
		Transport: t,
		Rings:     transport.Options{RingSize: opts.RingSize, Consumers: consumers},
		// The bench's records have no record header to account for.
		SkipAccounting: true,
	}
	s, err := session.Open(so)
	if err != nil {
		return r, err
	}
	defer s.Close()
	if spare := spareCPUs(allowed, producerOn); len(spare) >= len(s.ConsumerStats()) {
		s.Pin(spare)
	}
	p, err := newProducer(s.Producers())
	if err != nil {
		return r, err
	}
	r.Consumers = len(s.ConsumerStats())

	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	var readers sync.WaitGroup
	var readErr error
	readers.Go(func() { readErr = s.Read(readCtx, nil) })

	limit := opts.MaxTime
	if limit <= 0 {
		limit = time.Second
	}
	var wg sync.WaitGroup
	errs := make([]error, producers)
	took := make([]time.Duration, producers)
	for i, cpu := range producerOn {
		wg.Go(func() {
			errs[i] = cpus.RunOn(cpu, func() error {
				// Each producer runs for the limit from its own start: on
				// a loaded machine a thread can start late, and a shared
				// deadline could pass before it wrote anything.
				start := time.Now()
				deadline := start.Add(limit)
				defer func() { took[i] = time.Since(start) }()
				for time.Now().Before(deadline) && ctx.Err() == nil {
					if err := p.run(4096); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
	wg.Wait()
	// Let the consumers catch up with what is in the rings, then stop
	// them; what remains is drained below, outside their CPU time.
	time.Sleep(10 * time.Millisecond)
	stopReading()
	readers.Wait()
	for _, err := range errs {
		if err != nil {
			return r, err
		}
	}
	if readErr != nil {
		return r, readErr
	}
	var busy time.Duration
	for _, c := range s.ConsumerStats() {
		busy += c.Busy
	}
	if _, err := s.Finish(nil); err != nil {
		return r, err
	}
	attempts, lost, err := p.counts()
	if err != nil {
		return r, err
	}
	r.Attempted, r.Lost = attempts, lost
	for _, st := range s.Stats() {
		r.Delivered += st.Records
		r.Wakeups += st.Wakeups
	}
	if r.Delivered+r.Lost != r.Attempted {
		return r, fmt.Errorf("delivered %d + lost %d != attempted %d", r.Delivered, r.Lost, r.Attempted)
	}
	longest := time.Duration(0)
	for _, d := range took {
		longest = max(longest, d)
	}
	if r.Attempted > 0 {
		r.DeliveredRatio = float64(r.Delivered) / float64(r.Attempted)
	}
	r.ProducerRate = float64(r.Attempted) / longest.Seconds()
	r.PerProducer = r.ProducerRate / float64(producers)
	r.ConsumerCPU = busy.Seconds()
	if r.Delivered > 0 {
		r.CPUPerMillion = busy.Seconds() / float64(r.Delivered) * 1e6
	}
	return r, nil
}
