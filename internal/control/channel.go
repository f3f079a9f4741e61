package control

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/pkg/consumer"
	"github.com/ringwatch/ringwatch/pkg/userring"
)

// ErrRejected is wrapped by [Channel.Apply]'s error when the kernel's
// control program refused one of the messages.
var ErrRejected = errors.New("the kernel's control program rejected messages")

// Pong is the outcome of one ping.
type Pong struct {
	ID uint64
	// RoundTrip is from just before the ping was written into the user
	// ring to just after its reply was read from the replies ring, on
	// CLOCK_MONOTONIC.
	RoundTrip time.Duration
	// ToKernel is the part of RoundTrip until the control program read the
	// ping (its bpf_ktime_get_ns), FromKernel the rest.
	ToKernel, FromKernel time.Duration
	// KernelNs is the control program's bpf_ktime_get_ns when it read the
	// ping: CLOCK_MONOTONIC, in nanoseconds.
	KernelNs int64
	// Accepted and Rejected are the control program's message counts when
	// it answered, this ping included.
	Accepted, Rejected uint64
}

// Options tune a Channel.
type Options struct {
	// OnRoundTrip, if set, is called with the round trip of every ping
	// that was answered, from the goroutine that sent it.
	OnRoundTrip func(time.Duration)
}

// A Channel sends messages to the kernel's control program through its
// user ring, rings the doorbell itself ([loader.ControlProgram.Doorbell], without
// wakeups: it reads the replies right after), and reads the answers to
// pings from the replies ring. It must be the only writer of the control
// program's user ring. Its methods are safe for concurrent use; exchanges take turns, so
// messages from one call are never interleaved with another's.
type Channel struct {
	mu      sync.Mutex
	kernel  *loader.ControlProgram
	w       *userring.Writer
	replies *consumer.Consumer
	opts    Options
	nextID  uint64

	// The reply being waited for, and what the replies ring gave for it;
	// handle is bound once, so reading a reply allocates nothing.
	wantID  uint64
	got     abi.Reply
	gotIt   bool
	handle  func(consumer.Batch)
	readErr error
}

// Open starts a Channel on ctl's rings. Close the Channel before ctl.
func Open(ctl *loader.ControlProgram, opts Options) (_ *Channel, err error) {
	c := &Channel{kernel: ctl, opts: opts}
	c.handle = c.onReplies
	if c.w, err = userring.Open(ctl.UserRing()); err != nil {
		return nil, fmt.Errorf("open the user ring: %w", err)
	}
	if c.replies, err = consumer.Open(consumer.RingBuffer("replies", ctl.Replies())); err != nil {
		return nil, errors.Join(fmt.Errorf("open the replies ring: %w", err), c.w.Close())
	}
	return c, nil
}

// Ping sends one ping and waits for its answer, until ctx is done.
func (c *Channel) Ping(ctx context.Context) (Pong, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exchange(ctx, nil)
}

// Apply sends msgs, each encoded by one of the Append functions
// ([AppendSetPIDs], [AppendSource]), in order, followed by a ping, and waits
// for the ping's answer: when Apply returns without error, the control
// program has acted on every message, and records produced from then on
// follow the new settings. An error wrapping [ErrRejected] says how many of
// msgs the kernel refused.
func (c *Channel) Apply(ctx context.Context, msgs ...[]byte) (Pong, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Read the counts before writing: a reply is cumulative, so the
	// difference is this exchange's, whatever earlier ones left behind.
	before, err := c.kernel.Stats()
	if err != nil {
		return Pong{}, err
	}
	pong, err := c.exchange(ctx, msgs)
	if err != nil {
		return pong, err
	}
	if rejected := pong.Rejected - before.RejectedTotal(); rejected > 0 {
		return pong, fmt.Errorf("%w: %d of %d, which changed nothing (ringwatch_user_ring_rejected_total counts them)",
			ErrRejected, rejected, len(msgs))
	}
	if accepted := pong.Accepted - before.AcceptedTotal(); accepted != uint64(len(msgs))+1 {
		return pong, fmt.Errorf("the kernel accepted %d messages where %d were sent: is another writer using the user ring?",
			accepted, len(msgs)+1)
	}
	return pong, nil
}

// exchange writes msgs and a ping, rings the doorbell and reads the reply.
// The caller holds c.mu.
func (c *Channel) exchange(ctx context.Context, msgs [][]byte) (Pong, error) {
	for _, m := range msgs {
		s, err := c.reserve(len(m))
		if err != nil {
			return Pong{}, fmt.Errorf("write a control message: %w", err)
		}
		copy(s.Data, m)
		c.w.Submit(s)
	}
	c.nextID++
	id := c.nextID
	s, err := c.reserve(PingSize)
	if err != nil {
		return Pong{}, fmt.Errorf("write a ping: %w", err)
	}
	sent := consumer.MonotonicNow()
	AppendPing(s.Data[:0], id, uint64(sent))
	c.w.Submit(s)

	if _, err := c.kernel.Doorbell(); err != nil {
		return Pong{}, err
	}
	reply, err := c.awaitReply(ctx, id)
	if err != nil {
		return Pong{}, err
	}
	now := consumer.MonotonicNow()
	pong := Pong{
		ID:         id,
		RoundTrip:  time.Duration(now - sent),
		ToKernel:   time.Duration(int64(reply.DrainedNs) - sent),
		FromKernel: time.Duration(now - int64(reply.DrainedNs)),
		KernelNs:   int64(reply.DrainedNs),
		Accepted:   reply.Accepted,
		Rejected:   reply.Rejected,
	}
	if c.opts.OnRoundTrip != nil {
		c.opts.OnRoundTrip(pong.RoundTrip)
	}
	return pong, nil
}

// reserve claims room in the user ring. This channel is the ring's only
// writer and drains it itself, so a full ring holds only messages it wrote
// earlier: it rings the doorbell to apply them, in order, and tries again.
func (c *Channel) reserve(size int) (userring.Sample, error) {
	s, err := c.w.Reserve(size)
	if !errors.Is(err, userring.ErrFull) {
		return s, err
	}
	if _, err := c.kernel.Doorbell(); err != nil {
		return userring.Sample{}, err
	}
	return c.w.Reserve(size)
}

// awaitReply reads the replies ring until the reply to ping id arrives.
// Replies to earlier pings whose callers gave up are passed over: those
// callers already had their error.
func (c *Channel) awaitReply(ctx context.Context, id uint64) (abi.Reply, error) {
	c.wantID, c.gotIt, c.readErr = id, false, nil
	for !c.gotIt {
		if _, err := c.replies.Read(ctx, c.handle); err != nil {
			return abi.Reply{}, c.noReply(id, err)
		}
		if c.readErr != nil {
			return abi.Reply{}, c.readErr
		}
	}
	return c.got, nil
}

func (c *Channel) onReplies(b consumer.Batch) {
	for _, rec := range b.Records {
		reply, err := ParseReply(rec)
		if err != nil {
			c.readErr = fmt.Errorf("read a ping reply: %w", err)
			return
		}
		if reply.Id == c.wantID {
			c.got, c.gotIt = reply, true
		}
	}
}

// noReply explains a ping that got no answer.
func (c *Channel) noReply(id uint64, err error) error {
	if st, serr := c.kernel.Stats(); serr == nil && st.RepliesLost > 0 {
		return fmt.Errorf("no reply to ping %d (%w); the kernel found the replies ring full %d times", id, err, st.RepliesLost)
	}
	return fmt.Errorf("no reply to ping %d: %w", id, err)
}

// WriterStats are the user ring writer's counters.
func (c *Channel) WriterStats() userring.Stats { return c.w.Stats() }

// DrainStats are the kernel control program's counters.
func (c *Channel) DrainStats() (abi.DrainStats, error) { return c.kernel.Stats() }

// Close closes the writer and the replies consumer; the Control stays
// open. Close is idempotent.
func (c *Channel) Close() error {
	// Not under mu: an exchange blocked in ReserveWait or Read must be
	// woken by these Closes, not waited for.
	return errors.Join(c.w.Close(), c.replies.Close())
}
