package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/pkg/accounting"
	"github.com/ringwatch/ringwatch/pkg/consumer"
	"github.com/ringwatch/ringwatch/pkg/loader"
	"github.com/ringwatch/ringwatch/pkg/transport"
)

// A Reader consumes the rings of a session's transport: ringwatch's
// [consumer.Consumer], or a peer under test in `ringwatch bench`.
type Reader interface {
	// Read waits for records and passes what is there to fn, in batches;
	// it returns ctx.Err() once ctx is done.
	Read(ctx context.Context, fn func(consumer.Batch)) (int, error)
	// Drain passes what is there now, without waiting.
	Drain(fn func(consumer.Batch)) (int, error)
	Close() error
}

// Options choose what a session carries and how.
type Options struct {
	// Sources to load; nil means exec alone.
	Sources   []loader.Source
	Transport abi.Transport
	Rings     transport.Options
	// Wakeup is the producers' and the consumer's mode; "" means adaptive.
	Wakeup abi.Wakeup
	// MaxDelay bounds an adaptive consumer's lazy sleep; 0 means
	// consumer.DefaultMaxDelay.
	MaxDelay    time.Duration
	Watermark   int
	SyscallPIDs []uint32
	TraceSelf   bool
	// NewReader, if not nil, opens the reader instead of the session: the
	// session then keeps no accounting (Tracker is nil), and has Stats only
	// if the reader is a *consumer.Consumer.
	NewReader func(transport.Transport) (Reader, error)
}

// Session is one run of producers and their reader. Read and Finish are
// for one goroutine; Stats, Counters, RingOf and Tracker are safe from any.
type Session struct {
	transport transport.Transport
	producers *loader.Producers
	reader    Reader
	consumer  *consumer.Consumer // nil with Options.NewReader
	tracker   *accounting.Tracker
	shard     *accounting.Shard
}

// Open loads the producers of opts, opens the reader of their rings and
// attaches the producers: records flow from its return on. On error,
// nothing stays loaded or open.
func Open(opts Options) (_ *Session, err error) {
	t, err := transport.New(opts.Transport, opts.Rings)
	if err != nil {
		return nil, err
	}
	s := &Session{transport: t}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
		}
	}()
	if opts.Wakeup == "" {
		opts.Wakeup = abi.WakeupAdaptive
	}
	s.producers, err = loader.Open(loader.Options{Sources: opts.Sources, Transport: t, Wakeup: opts.Wakeup,
		Watermark: opts.Watermark, SyscallPIDs: opts.SyscallPIDs, TraceSelf: opts.TraceSelf})
	if err != nil {
		return nil, err
	}
	if opts.NewReader != nil {
		if s.reader, err = opts.NewReader(t); err != nil {
			return nil, err
		}
		// Its counters still show, without the session's accounting.
		s.consumer, _ = s.reader.(*consumer.Consumer)
	} else {
		if s.consumer, err = consumer.OpenConfig(t.ReaderConfig(opts.Wakeup, opts.MaxDelay)); err != nil {
			return nil, err
		}
		s.reader = s.consumer
		s.tracker = accounting.NewTracker(len(t.Rings()), 1)
		s.shard = s.tracker.Shard(0)
	}
	if err := s.producers.Attach(); err != nil {
		return nil, err
	}
	return s, nil
}

// observe is what happens to each batch: the accounting first, then fn.
func (s *Session) observe(fn func(consumer.Batch)) func(consumer.Batch) {
	switch {
	case s.shard == nil:
		return fn
	case fn == nil:
		return s.shard.Observe
	}
	return func(b consumer.Batch) {
		s.shard.Observe(b)
		fn(b)
	}
}

// Read passes every batch to fn (which may be nil) until ctx is done, and
// returns nil then; any other error ends it.
func (s *Session) Read(ctx context.Context, fn func(consumer.Batch)) error {
	handle := s.observe(fn)
	for ctx.Err() == nil {
		if _, err := s.reader.Read(ctx, handle); err != nil && ctx.Err() == nil {
			return err
		}
	}
	return nil
}

// Drain passes what the rings hold now to fn, without waiting.
func (s *Session) Drain(fn func(consumer.Batch)) error {
	_, err := s.reader.Drain(s.observe(fn))
	return err
}

// Finish detaches the producers, so that what the rings hold is all there
// will be, drains it into fn, and returns the producers' final counters,
// with which the accounting closes its books.
func (s *Session) Finish(fn func(consumer.Batch)) ([]loader.Counters, error) {
	if err := s.producers.Detach(); err != nil {
		return nil, err
	}
	if err := s.Drain(fn); err != nil {
		return nil, err
	}
	counters, err := s.producers.Counters()
	if err != nil {
		return nil, err
	}
	if s.tracker != nil {
		s.tracker.Finish(counters, s.transport.RingOf)
	}
	return counters, nil
}

// Run reads until ctx is done, then finishes: the whole lifecycle after
// Open.
func (s *Session) Run(ctx context.Context, fn func(consumer.Batch)) ([]loader.Counters, error) {
	if err := s.Read(ctx, fn); err != nil {
		return nil, err
	}
	return s.Finish(fn)
}

// Transport is the session's transport, bound to the loaded maps.
func (s *Session) Transport() transport.Transport { return s.transport }

// Producers are the session's loaded producers.
func (s *Session) Producers() *loader.Producers { return s.producers }

// Tracker is the accounting of ringwatch's consumer; nil with a reader of
// Options.NewReader.
func (s *Session) Tracker() *accounting.Tracker { return s.tracker }

// RingNames names the rings, in ring order.
func (s *Session) RingNames() []string {
	rings := s.transport.Rings()
	names := make([]string, len(rings))
	for i, r := range rings {
		names[i] = r.Name
	}
	return names
}

// Stats are the consumer's counters of every ring, in ring order; nil with
// a reader of Options.NewReader other than a *consumer.Consumer.
func (s *Session) Stats() []consumer.RingStats {
	if s.consumer == nil {
		return nil
	}
	return s.consumer.Stats()
}

// Counters reads the producers' counters from the kernel.
func (s *Session) Counters() ([]loader.Counters, error) { return s.producers.Counters() }

// RingOf is the index of the ring CPU cpu writes to.
func (s *Session) RingOf(cpu int) int { return s.transport.RingOf(cpu) }

// Close closes the reader, the producers and the transport, in that order:
// afterwards none of the session's BPF objects remains. Idempotent.
func (s *Session) Close() error {
	var errs []error
	if s.reader != nil {
		errs = append(errs, s.reader.Close())
	}
	if s.producers != nil {
		errs = append(errs, s.producers.Close())
	}
	if err := s.transport.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close transport: %w", err))
	}
	return errors.Join(errs...)
}
