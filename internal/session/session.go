package session

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/accounting"
	"github.com/ringwatch/ringwatch/internal/cpus"
	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/internal/transport"
	"github.com/ringwatch/ringwatch/pkg/consumer"
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
	Transport abi.TransportName
	// Rings sizes the rings and says how many consumers read them.
	Rings transport.Options
	// ConsumerCPUs, if not empty, pins consumer k's thread to CPU
	// ConsumerCPUs[k % len(ConsumerCPUs)].
	ConsumerCPUs []int
	// Wakeup is the producers' and the consumers' mode; "" means adaptive.
	Wakeup consumer.Wakeup
	// Recorder, if not 0, is the size of the flight recorder the
	// producers also copy every record into (loader.Options.Recorder).
	Recorder int
	// MaxDelay bounds an adaptive consumer's lazy sleep; 0 means
	// consumer.DefaultMaxDelay.
	MaxDelay    time.Duration
	SyscallPIDs []uint32
	TraceSelf   bool
	// SkipAccounting leaves out the per-record accounting, for producers
	// whose records are not ringwatch's (the bench's): Tracker is then nil.
	SkipAccounting bool
	// NewReader, if not nil, opens the one reader of every ring instead of
	// the session's consumers: the session then keeps no accounting
	// (Tracker is nil), and has Stats only if the reader is a
	// *consumer.Consumer.
	NewReader func(transport.Transport) (Reader, error)
}

// Session is one run of producers and their readers. Read, Drain and
// Finish are for one goroutine at a time; the other methods are safe from
// any.
type Session struct {
	opts      Options
	transport transport.Transport
	producers *loader.Producers
	reader    Reader    // with Options.NewReader
	own       *member   // reader, when it is a *consumer.Consumer
	members   []*member // the session's own consumers
	tracker   *accounting.Tracker
}

// member is one of the session's consumers: its rings are the session's
// rings from first on, its accounting is its own shard, and it reads on an
// OS thread of its own.
type member struct {
	c     *consumer.Consumer
	first int // its first ring's index in the session
	rings int // how many rings it reads
	shard *accounting.Shard
	cpu   int // to pin the thread to; -1: none

	// The thread's CPU time: busy holds what finished reads used; while a
	// read runs, tid is its thread and start its CPU clock at the start.
	busy  atomic.Int64
	tid   atomic.Int64
	start atomic.Int64
}

// Open loads the producers of opts, opens the readers of their rings and
// attaches the producers: records flow from its return on. On error,
// nothing stays loaded or open.
func Open(opts Options) (_ *Session, err error) {
	t, err := transport.New(opts.Transport, opts.Rings)
	if err != nil {
		return nil, err
	}
	s := &Session{opts: opts, transport: t}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
		}
	}()
	if s.opts.Wakeup == "" {
		s.opts.Wakeup = consumer.WakeupAdaptive
	}
	s.producers, err = loader.Open(loader.Options{Sources: opts.Sources, Transport: t, Wakeup: s.opts.Wakeup,
		SyscallPIDs: opts.SyscallPIDs, TraceSelf: opts.TraceSelf, Recorder: opts.Recorder})
	if err != nil {
		return nil, err
	}
	if opts.NewReader != nil {
		if s.reader, err = opts.NewReader(t); err != nil {
			return nil, err
		}
		// Its counters still show, without the session's accounting.
		if c, ok := s.reader.(*consumer.Consumer); ok {
			s.own = &member{c: c, rings: len(t.Rings()), cpu: -1}
		}
	} else if err := s.openConsumers(); err != nil {
		return nil, err
	}
	if err := s.producers.Attach(); err != nil {
		return nil, err
	}
	return s, nil
}

// openConsumers opens one consumer per reader config of the transport.
func (s *Session) openConsumers() error {
	configs := s.transport.ReaderConfigs(s.opts.Wakeup, s.opts.MaxDelay)
	if !s.opts.SkipAccounting {
		s.tracker = accounting.NewTracker(len(s.transport.Rings()), len(configs))
	}
	first := 0
	for k, cfg := range configs {
		c, err := consumer.OpenConfig(cfg)
		if err != nil {
			return fmt.Errorf("open consumer %d of %d: %w", k, len(configs), err)
		}
		m := &member{c: c, first: first, rings: len(cfg.Rings), cpu: -1}
		if s.tracker != nil {
			m.shard = s.tracker.Shard(k)
		}
		if n := len(s.opts.ConsumerCPUs); n > 0 {
			m.cpu = s.opts.ConsumerCPUs[k%n]
		}
		s.members = append(s.members, m)
		first += len(cfg.Rings)
	}
	return nil
}

// handler is what happens to each of m's batches: its ring index made the
// session's, the accounting, then fn.
func (m *member) handler(fn func(consumer.Batch)) func(consumer.Batch) {
	switch {
	case m.shard == nil && fn == nil:
		return func(consumer.Batch) {}
	case m.shard == nil:
		return func(b consumer.Batch) {
			b.Ring += m.first
			fn(b)
		}
	}
	return func(b consumer.Batch) {
		b.Ring += m.first
		m.shard.Observe(b)
		if fn != nil {
			fn(b)
		}
	}
}

// Read passes every batch to fn (which may be nil) until ctx is done, and
// returns nil then; any other error ends it. Each consumer reads on an OS
// thread of its own, pinned if Options.ConsumerCPUs says so: with several
// consumers, fn is called from several goroutines at once, each batch's
// records valid until that call returns.
func (s *Session) Read(ctx context.Context, fn func(consumer.Batch)) error {
	if s.reader != nil {
		for ctx.Err() == nil {
			if _, err := s.reader.Read(ctx, fn); err != nil && ctx.Err() == nil {
				return err
			}
		}
		return nil
	}
	// The first consumer to fail stops the others.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(s.members))
	var wg sync.WaitGroup
	for k, m := range s.members {
		wg.Go(func() {
			if err := m.read(ctx, m.handler(fn)); err != nil {
				errs[k] = fmt.Errorf("consumer %d: %w", k, err)
				cancel()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// read is one consumer's loop, on a thread that no other goroutine uses
// (locked, and ended with the goroutine), so that its CPU clock is the
// consumer's busy time.
func (m *member) read(ctx context.Context, handle func(consumer.Batch)) error {
	runtime.LockOSThread() // not unlocked: the thread exits with us
	if m.cpu >= 0 {
		if err := cpus.PinThread(m.cpu); err != nil {
			return fmt.Errorf("pin to CPU %d: %w", m.cpu, err)
		}
	}
	tid := unix.Gettid()
	start, _ := cpus.ThreadTime(tid)
	m.start.Store(int64(start))
	m.tid.Store(int64(tid))
	defer func() {
		end, _ := cpus.ThreadTime(tid)
		m.busy.Add(int64(end - start))
		m.tid.Store(0)
	}()
	for ctx.Err() == nil {
		if _, err := m.c.Read(ctx, handle); err != nil && ctx.Err() == nil {
			return err
		}
	}
	return nil
}

// busyTime is the CPU time m's reads have used so far.
func (m *member) busyTime() time.Duration {
	busy := m.busy.Load()
	if tid := m.tid.Load(); tid != 0 {
		start := m.start.Load()
		if now, err := cpus.ThreadTime(int(tid)); err == nil {
			return time.Duration(busy + int64(now) - start)
		}
		return time.Duration(m.busy.Load()) // the read just ended
	}
	return time.Duration(busy)
}

// Drain passes what the rings hold now to fn, without waiting, one
// consumer after the other on the calling goroutine.
func (s *Session) Drain(fn func(consumer.Batch)) error {
	if s.reader != nil {
		_, err := s.reader.Drain(fn)
		return err
	}
	for k, m := range s.members {
		if _, err := m.c.Drain(m.handler(fn)); err != nil {
			return fmt.Errorf("consumer %d: %w", k, err)
		}
	}
	return nil
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
		s.tracker.Finish(kernelCounts(counters), s.transport.RingOf)
	}
	return counters, nil
}

// kernelCounts is the part of the loader's counters that the accounting
// reads: each source's per-CPU counts, shared, not copied.
func kernelCounts(counters []loader.Counters) []accounting.KernelCounts {
	out := make([]accounting.KernelCounts, len(counters))
	for i, c := range counters {
		out[i] = accounting.KernelCounts{Source: c.Source, PerCPU: c.PerCPU}
	}
	return out
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

// Tracker is the accounting of the session's consumers; nil with a reader
// of Options.NewReader or with Options.SkipAccounting.
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

// readers are the consumers whose counters the session reports.
func (s *Session) readers() []*member {
	if s.own != nil {
		return []*member{s.own}
	}
	return s.members
}

// Stats are the consumers' counters of every ring, in ring order; nil with
// a reader of Options.NewReader other than a *consumer.Consumer.
func (s *Session) Stats() []consumer.RingStats {
	var stats []consumer.RingStats
	for _, m := range s.readers() {
		stats = append(stats, m.c.Stats()...)
	}
	return stats
}

// ConsumerStats are what one consumer did.
type ConsumerStats struct {
	// Rings are the indexes of the rings it reads, in ring order.
	Rings []int
	// Busy is the CPU time its thread has used reading: near a second per
	// second, it cannot keep up, and more consumers would help.
	Busy time.Duration
	// CPU is the CPU its thread is pinned to, or -1.
	CPU int
	// Woken counts the sleeps its producers ended ([consumer.Consumer.Woken]).
	Woken uint64
}

// ConsumerStats says what each of the session's consumers did, in ring
// order; nil with a reader of Options.NewReader other than a
// *consumer.Consumer.
func (s *Session) ConsumerStats() []ConsumerStats {
	var out []ConsumerStats
	for _, m := range s.readers() {
		st := ConsumerStats{Busy: m.busyTime(), CPU: m.cpu, Woken: m.c.Woken()}
		for i := range m.rings {
			st.Rings = append(st.Rings, m.first+i)
		}
		out = append(out, st)
	}
	return out
}

// Pin pins consumer k to CPU cpus[k % len(cpus)] from its next Read on,
// as Options.ConsumerCPUs does; an empty cpus unpins them.
func (s *Session) Pin(cpus []int) {
	for k, m := range s.members {
		m.cpu = -1
		if len(cpus) > 0 {
			m.cpu = cpus[k%len(cpus)]
		}
	}
}

// consumerOf is the index of the consumer that reads ring r.
func (s *Session) consumerOf(r int) int {
	for k, m := range s.readers() {
		if r >= m.first && r < m.first+m.rings {
			return k
		}
	}
	return -1
}

// Counters reads the producers' counters from the kernel.
func (s *Session) Counters() ([]loader.Counters, error) { return s.producers.Counters() }

// RingOf is the index of the ring CPU cpu writes to.
func (s *Session) RingOf(cpu int) int { return s.transport.RingOf(cpu) }

// Close closes the readers, the producers and the transport, in that
// order: afterwards none of the session's BPF objects remains. Idempotent.
func (s *Session) Close() error {
	var errs []error
	if s.reader != nil {
		errs = append(errs, s.reader.Close())
	}
	for _, m := range s.members {
		errs = append(errs, m.c.Close())
	}
	if s.producers != nil {
		errs = append(errs, s.producers.Close())
	}
	if err := s.transport.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close transport: %w", err))
	}
	return errors.Join(errs...)
}
