package bench

import (
	"fmt"
	"slices"
	"time"

	"github.com/cilium/ebpf"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/cpus"
	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/internal/transport"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// RingbufOverwrite names, in the producer scenario's rows, the ringbuf
// transport's ring created with BPF_F_RB_OVERWRITE.
const RingbufOverwrite = "ringbuf-overwrite"

// NeedsOverwrite is the producer scenario's overwrite row on a kernel that
// refuses BPF_F_RB_OVERWRITE (consumer.RecorderSupported).
const NeedsOverwrite = "needs Linux 6.19"

// ProducerMethod says how the producer scenario measures, under its table.
const ProducerMethod = "producer: the same bench program writes each round a ring's worth of records with nothing reading," +
	" timed by the producer thread's CPU time (median round); between rounds the normal rings are drained, outside the" +
	" timing, and the overwrite ring is left full, as it never refuses a record"

// rbOverwrite is BPF_F_RB_OVERWRITE, (1U << 19) in include/uapi/linux/bpf.h
// (Linux 6.19).
const rbOverwrite = 1 << 19

// producerRounds is how many ring-fulls the producer scenario writes into
// each ring, of which it reports the median round; a quick run writes fewer.
func (o Options) producerRounds() int {
	if o.Quick {
		return 4
	}
	return 16
}

// producerRings are the producer scenario's rows at each size, in order:
// the ringbuf transport's ring, the same ring in overwrite mode, and the
// producer CPU's ring of the percpu-ringbuf transport.
var producerRings = []string{string(abi.Ringbuf), RingbufOverwrite, string(abi.PercpuRingbuf)}

// overwriting is the ringbuf transport with its ring created in overwrite
// mode, so that the ringbuf transport's own bench program writes into it.
type overwriting struct{ transport.Transport }

func (o overwriting) Plan(spec *ebpf.CollectionSpec, recordSize int) error {
	if err := o.Transport.Plan(spec, recordSize); err != nil {
		return err
	}
	spec.Maps[abi.MapEvents].Flags |= rbOverwrite
	return nil
}

// producerCost measures what the producer spends per record writing into
// ring, one of producerRings, with nobody reading while it writes: see
// ProducerMethod. The books: attempted = delivered (drained) + kept (in the
// overwrite ring at the end) + overwritten + lost.
func producerCost(opts Options, ring string, size int) (Result, error) {
	r := Result{Scenario: Producer, Transport: ring, Consumer: Ringwatch, RecordSize: size}
	name := abi.TransportName(ring)
	if ring == RingbufOverwrite {
		r.Consumer = "none"
		if consumer.RecorderSupported() != nil {
			r.Unsupported = NeedsOverwrite
			return r, nil
		}
		name = abi.Ringbuf
	}
	t, err := transport.New(name, transport.Options{RingSize: opts.RingSize})
	if err != nil {
		return r, err
	}
	defer t.Close()
	if ring == RingbufOverwrite {
		t = overwriting{t}
	}
	prods, err := loader.Open(loader.Options{Sources: []loader.Source{source(size)}, Transport: t, Wakeup: consumer.WakeupAdaptive})
	if err != nil {
		return r, err
	}
	defer prods.Close()
	p, err := newProducer(prods)
	if err != nil {
		return r, err
	}
	var c *consumer.Consumer
	if ring != RingbufOverwrite {
		if c, err = consumer.OpenConfig(t.ReaderConfig(consumer.WakeupAdaptive, 0)); err != nil {
			return r, err
		}
		defer c.Close()
	}
	n := t.Fits(size)
	perRecord := make([]float64, 0, opts.producerRounds())
	for range opts.producerRounds() {
		var took time.Duration
		err := cpus.RunOn(opts.ProducerCPU, func() error {
			before, err := cpus.ThreadTime(0)
			if err != nil {
				return err
			}
			if err := runProducer(p, n, 0, time.Time{}, nil); err != nil {
				return err
			}
			after, err := cpus.ThreadTime(0)
			took = after - before
			return err
		})
		if err != nil {
			return r, err
		}
		perRecord = append(perRecord, float64(took.Nanoseconds())/float64(n))
		if c != nil {
			err := cpus.RunOn(opts.ConsumerCPU, func() error {
				_, err := c.Drain(func(b consumer.Batch) { r.Delivered += uint64(len(b.Records)) })
				return err
			})
			if err != nil {
				return r, err
			}
		}
	}
	if r.Attempted, r.Lost, err = p.counts(); err != nil {
		return r, err
	}
	if c == nil {
		rec, err := consumer.OpenRecorder(prods.Map(abi.MapEvents))
		if err != nil {
			return r, err
		}
		defer rec.Close()
		var s consumer.Snapshot
		if err := rec.Snapshot(&s); err != nil {
			return r, err
		}
		r.Kept = uint64(len(s.Records))
		if r.Kept > r.Attempted-r.Lost {
			return r, fmt.Errorf("the overwrite ring keeps %d records of %d written", r.Kept, r.Attempted-r.Lost)
		}
		r.Overwritten = r.Attempted - r.Lost - r.Kept
	}
	if r.Delivered+r.Kept+r.Overwritten+r.Lost != r.Attempted {
		return r, fmt.Errorf("delivered %d + kept %d + overwritten %d + lost %d != attempted %d",
			r.Delivered, r.Kept, r.Overwritten, r.Lost, r.Attempted)
	}
	slices.Sort(perRecord)
	r.NsPerRecord = perRecord[len(perRecord)/2]
	if r.NsPerRecord > 0 {
		r.ProducerRate = 1e9 / r.NsPerRecord
	}
	return r, nil
}
