package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	ciliumperf "github.com/cilium/ebpf/perf"
	ciliumringbuf "github.com/cilium/ebpf/ringbuf"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/session"
	"github.com/ringwatch/ringwatch/internal/transport"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// peersOf are the readers measured beside ringwatch's on a transport, with
// the wakeup rule each expects of the producers. A file built with a tag
// (libbpf.go) may add to it, and to peerOpeners, in its init.
var peersOf = map[abi.TransportName][]reader{
	abi.Ringbuf: {{name: CiliumRingbuf, wakeup: consumer.WakeupKernel}},
	abi.Perfbuf: {{name: CiliumPerf, wakeup: consumer.WakeupEvery}},
}

// peerOpeners open the peers that are not in this file, by name. timed
// says the scenario keeps each record's latency, so the reader must read
// the clock for each batch it hands over; otherwise ReadTime may be 0.
var peerOpeners = map[string]func(rd reader, t transport.Transport, timed bool) (session.Reader, error){}

// openReader opens the reader rd names over t's rings: each is a
// session.Reader, so every scenario drives them the same way. Only when
// timed does a peer read the clock for each record it hands over:
// ringwatch's consumer reads it once per batch, so a peer reading it per
// record where nobody uses it would pay for work ringwatch does not do.
func openReader(rd reader, t transport.Transport, timed bool) (session.Reader, error) {
	if open, ok := peerOpeners[rd.name]; ok {
		return open(rd, t, timed)
	}
	switch rd.name {
	case Ringwatch:
		return consumer.OpenConfig(t.ReaderConfig(rd.wakeup, 0))
	case CiliumRingbuf:
		r, err := ciliumringbuf.NewReader(t.ReaderConfig(rd.wakeup, 0).Rings[0].Map())
		if err != nil {
			return nil, err
		}
		p := &peer{flush: r.Flush, setDeadline: r.SetDeadline, close: r.Close, timed: timed}
		var rec ciliumringbuf.Record
		p.next = func() ([]byte, error) { err := r.ReadInto(&rec); return rec.RawSample, err }
		return p, nil
	case CiliumPerf:
		ring := t.ReaderConfig(rd.wakeup, 0).Rings[0]
		r, err := ciliumperf.NewReader(ring.Map(), t.RingSize())
		if err != nil {
			return nil, err
		}
		p := &peer{flush: r.Flush, setDeadline: r.SetDeadline, close: r.Close, timed: timed}
		var rec ciliumperf.Record
		p.next = func() ([]byte, error) { err := r.ReadInto(&rec); return rec.RawSample, err }
		return p, nil
	}
	return nil, fmt.Errorf("unknown consumer %q", rd.name)
}

// peer is a cilium/ebpf reader behind session.Reader: one ReadInto per
// record, as its documentation suggests, each handed over as a batch of
// one.
type peer struct {
	next        func() ([]byte, error)
	flush       func() error
	setDeadline func(t time.Time)
	close       func() error
	timed       bool // read the clock for each record
	one         [1][]byte
}

// Read reads until ctx is done. SetDeadline would wait for the blocked
// ReadInto's lock; Flush interrupts it, and ReadInto then returns what is
// pending, then ErrFlushed.
func (p *peer) Read(ctx context.Context, fn func(consumer.Batch)) (int, error) {
	stop := context.AfterFunc(ctx, func() { p.flush() })
	defer stop()
	n, err := p.readAll(fn)
	if err == nil {
		err = ctx.Err()
	}
	return n, err
}

// Drain reads what the rings hold now: with a deadline in the past, a
// peer returns once the rings are empty.
func (p *peer) Drain(fn func(consumer.Batch)) (int, error) {
	p.setDeadline(time.Now())
	return p.readAll(fn)
}

func (p *peer) readAll(fn func(consumer.Batch)) (int, error) {
	n := 0
	for {
		sample, err := p.next()
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ciliumringbuf.ErrFlushed) || errors.Is(err, ciliumperf.ErrFlushed) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if len(sample) > 0 {
			p.one[0] = sample
			b := consumer.Batch{Records: p.one[:], Bytes: uint64(len(sample))}
			if p.timed {
				b.ReadTime = consumer.MonotonicNow()
			}
			fn(b)
			n++
		}
	}
}

func (p *peer) Close() error { return p.close() }
