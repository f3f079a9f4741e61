package hostrings

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/progstats"
)

// Kind is the kind of a ring in the census.
type Kind string

// The kinds of map the census keeps.
const (
	RingBuf        Kind = "ringbuf"          // BPF_MAP_TYPE_RINGBUF: the kernel produces, user space consumes
	UserRingBuf    Kind = "user_ringbuf"     // BPF_MAP_TYPE_USER_RINGBUF: user space produces, the kernel consumes
	PerfEventArray Kind = "perf_event_array" // BPF_MAP_TYPE_PERF_EVENT_ARRAY: positions live in each owner's perf mmaps, not here
)

// flagOverwrite is BPF_F_RB_OVERWRITE, (1U << 19) in
// include/uapi/linux/bpf.h since Linux 6.19 (commit feeaf1346f80): a ring
// buffer created with it overwrites its oldest records when full instead of
// failing the reserve. bpf_map_info's map_flags carries it.
const flagOverwrite = 1 << 19

// Defaults of [Options].
const (
	// DefaultStallAfter is how long the consumer position may stand still
	// while bytes are pending before a ring counts as stalled.
	DefaultStallAfter = 5 * time.Second
	// DefaultWalkEvery is how often [Census.Run] walks the map IDs again.
	DefaultWalkEvery = 2 * time.Second
	// DefaultSampleEvery is how often [Census.Run] reads the positions.
	DefaultSampleEvery = 10 * time.Millisecond
)

// Options tune a [Census]; zero values take the defaults.
type Options struct {
	StallAfter  time.Duration // how long pending bytes may sit with the consumer unmoved before Ring.Stalled
	WalkEvery   time.Duration // how often Run walks the map IDs again
	SampleEvery time.Duration // how often Run reads the positions
}

// Program is a BPF program that uses a ring's map.
type Program struct {
	ID   ebpf.ProgramID
	Name string
	Type ebpf.ProgramType
}

// Ring is one ring on the host, as of the last sample.
type Ring struct {
	ID       ebpf.MapID
	Name     string // the map's name, at most 15 bytes; may be empty
	Kind     Kind
	Capacity uint64 // data bytes (max_entries); for a perf event array, 0
	CPUs     int    // perf event arrays: slots, one per CPU (max_entries); 0 otherwise

	// Overwrite: a ring buffer created with BPF_F_RB_OVERWRITE (Linux
	// 6.19), a flight recorder. A full one overwrites its oldest records
	// instead of refusing new ones, and its consumer may never read: it is
	// never Stalled, and what it loses by design is OverwritePos's advance.
	Overwrite bool

	// Producer and Consumer are the ring's positions: byte counters that
	// only grow, records' headers and padding included. 0 for perf event
	// arrays, whose positions the census cannot see.
	Producer, Consumer uint64
	// OverwritePos is an overwrite-mode ring's overwrite position, the
	// start of its oldest record not overwritten: a position like the
	// others, and the bytes ever overwritten. 0 unless Overwrite.
	OverwritePos uint64
	// SampledAt is when the positions were read: the now of
	// [Census.Sample].
	SampledAt time.Time

	// Stalled: bytes are pending and the consumer position has not moved
	// for longer than Options.StallAfter. Never for an overwrite-mode
	// ring, whose consumer reads only on demand.
	Stalled bool
	// ConsumerIdle is how long the consumer position has not moved, as far
	// as the census has watched it.
	ConsumerIdle time.Duration

	Programs []Program // programs that use the map, by ID
	Owners   []Owner   // processes holding a descriptor of the map, by pid
	// Ours: ringwatch's own ring, held by this process or by a process
	// named ringwatch.
	Ours bool
}

// Pending is the bytes produced and not yet consumed. For an overwrite-mode
// ring, the bytes a reader can still read: producer - max(consumer,
// overwrite), as the kernel's ringbuf_avail_data_sz counts them.
func (r Ring) Pending() uint64 {
	start := r.Consumer
	if r.Overwrite {
		start = max(start, r.OverwritePos)
	}
	if r.Producer < start {
		// Only a broken user ring writer can do this, or an overwrite
		// position read after the producer moved on.
		return 0
	}
	return r.Producer - start
}

// Fill is Pending as a fraction of Capacity, from 0 to 1. For an
// overwrite-mode ring it is the share of the ring that holds history, and
// full is its normal state once it has wrapped.
func (r Ring) Fill() float64 {
	if r.Capacity == 0 {
		return 0
	}
	return min(float64(r.Pending())/float64(r.Capacity), 1)
}

// HasPositions reports whether the census can read the ring's positions.
func (r Ring) HasPositions() bool { return r.Kind == RingBuf || r.Kind == UserRingBuf }

// Census is the host's rings: every BPF ring buffer, user ring buffer and
// perf event array, found by walking the kernel's map IDs, with their
// positions mapped read-only. It is safe for concurrent use.
//
// The census holds a read-only mapping of every ring it lists (and no
// descriptor), which keeps the map alive until the next walk: a ring whose owner
// has gone leaves the census at the next [Census.Walk], when the census
// lets go of everything before walking again.
type Census struct {
	opts Options
	self int

	mu     sync.Mutex
	rings  []*held
	motion map[ebpf.MapID]*motion // survives walks
	closed bool
}

type held struct {
	ring Ring       // everything but the positions and stall state
	pos  *positions // nil for perf event arrays
}

// motion is when a ring's consumer position last moved.
type motion struct {
	consumer uint64
	movedAt  time.Time
}

// ErrPermission is wrapped by the error of a census that lacks
// CAP_SYS_ADMIN.
var ErrPermission = os.ErrPermission

// Open walks the host's maps once. Without CAP_SYS_ADMIN it returns an
// error wrapping [ErrPermission].
func Open(opts Options) (*Census, error) {
	if opts.StallAfter <= 0 {
		opts.StallAfter = DefaultStallAfter
	}
	if opts.WalkEvery <= 0 {
		opts.WalkEvery = DefaultWalkEvery
	}
	if opts.SampleEvery <= 0 {
		opts.SampleEvery = DefaultSampleEvery
	}
	c := &Census{opts: opts, self: os.Getpid(), motion: map[ebpf.MapID]*motion{}}
	if err := c.Walk(); err != nil {
		return nil, err
	}
	return c, nil
}

// Options returns the options in force, defaults filled in.
func (c *Census) Options() Options { return c.opts }

// Walk lets go of every ring, then lists the host's maps again, keeps the
// rings, maps their positions, and finds the programs that use them and the
// processes that hold them.
func (c *Census) Walk() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("walk the host's rings: %w", os.ErrClosed)
	}
	// Let go first: a ring only the census still holds is freed now, and
	// its ID is gone before the walk below (kernel/bpf/syscall.c,
	// bpf_map_put frees the ID as the last reference drops).
	err := c.release()

	progs, perr := progstats.List()
	if perr != nil {
		return errors.Join(err, fmt.Errorf("walk the host's rings: %w", perr))
	}
	users := map[ebpf.MapID][]Program{}
	for _, p := range progs {
		for _, id := range p.Maps {
			users[id] = append(users[id], Program{ID: p.ID, Name: p.Name, Type: p.Type})
		}
	}

	for id := ebpf.MapID(0); ; {
		next, nerr := ebpf.MapGetNextID(id)
		if errors.Is(nerr, os.ErrNotExist) {
			break
		}
		if nerr != nil {
			err = errors.Join(err, explain("list BPF maps", nerr))
			c.release()
			return err
		}
		id = next
		h, herr := open(id)
		if errors.Is(herr, os.ErrNotExist) || h == nil && herr == nil {
			continue // freed since it was listed, or not a ring
		}
		if herr != nil {
			err = errors.Join(err, fmt.Errorf("map %d: %w", id, herr))
			continue
		}
		h.ring.Programs = users[id]
		c.rings = append(c.rings, h)
	}

	want := map[ebpf.MapID]bool{}
	for _, h := range c.rings {
		want[h.ring.ID] = true
	}
	owners := scanOwners("/proc", want)
	for _, h := range c.rings {
		h.ring.Owners = owners[h.ring.ID]
		for _, o := range h.ring.Owners {
			if o.PID == c.self || o.Comm == "ringwatch" {
				h.ring.Ours = true
			}
		}
	}
	for id := range c.motion {
		if !want[id] {
			delete(c.motion, id)
		}
	}
	return err
}

// open returns the map of id as a held ring with its positions mapped, nil
// if it is not a ring, or an error wrapping os.ErrNotExist if it is gone.
// The census keeps no descriptor of the map: once the pages are mapped it
// closes the one it opened, and holds the ring by its two read-only pages
// alone.
func open(id ebpf.MapID) (*held, error) {
	// A descriptor opened read-only (BPF_F_RDONLY) would be safer still,
	// but it cannot be mapped at all: mmap drops VM_SHARED from a shared
	// mapping of a file not open for writing (mm/mmap.c, do_mmap), and
	// bpf_map_mmap refuses a mapping without VM_SHARED with -EINVAL.
	m, err := ebpf.NewMapFromID(id)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	var kind Kind
	switch m.Type() {
	case ebpf.RingBuf:
		kind = RingBuf
	case ebpf.UserRingbuf:
		kind = UserRingBuf
	case ebpf.PerfEventArray:
		kind = PerfEventArray
	default:
		return nil, nil
	}
	info, err := m.Info()
	if err != nil {
		return nil, fmt.Errorf("read map info: %w", err)
	}
	h := &held{ring: Ring{ID: id, Name: info.Name, Kind: kind, Overwrite: kind == RingBuf && info.Flags&flagOverwrite != 0}}
	if kind == PerfEventArray {
		h.ring.CPUs = int(m.MaxEntries())
		return h, nil
	}
	h.ring.Capacity = uint64(m.MaxEntries())
	if h.pos, err = mapPositions(m.FD()); err != nil {
		return nil, err
	}
	return h, nil
}

func (c *Census) release() error {
	var errs []error
	for _, h := range c.rings {
		if h.pos != nil {
			errs = append(errs, h.pos.close())
		}
	}
	c.rings = nil
	return errors.Join(errs...)
}

// Sample reads every ring's positions once, at now, and returns the rings,
// in map ID order. Reading costs two loads per ring (three in overwrite
// mode); the returned rings' Programs and Owners are shared between calls
// and must not be modified.
func (c *Census) Sample(now time.Time) []Ring {
	c.mu.Lock()
	defer c.mu.Unlock()
	rings := make([]Ring, 0, len(c.rings))
	for _, h := range c.rings {
		r := h.ring
		r.SampledAt = now
		if h.pos != nil {
			r.Producer, r.Consumer = h.pos.load()
			if r.Overwrite {
				r.OverwritePos = h.pos.loadOverwrite()
			}
			mo := c.motion[r.ID]
			if mo == nil || mo.consumer != r.Consumer || now.Before(mo.movedAt) {
				mo = &motion{consumer: r.Consumer, movedAt: now}
				c.motion[r.ID] = mo
			}
			r.ConsumerIdle = now.Sub(mo.movedAt)
			r.Stalled = !r.Overwrite && r.Pending() > 0 && r.ConsumerIdle > c.opts.StallAfter
		}
		rings = append(rings, r)
	}
	return rings
}

// Run samples the positions every Options.SampleEvery, handing each sample
// to onSample (which may be nil), and walks the maps again every
// Options.WalkEvery, until ctx is done. A failed walk is handed to onError
// (which may be nil), and the census carries on with the next.
func (c *Census) Run(ctx context.Context, onSample func([]Ring), onError func(error)) {
	sample := time.NewTicker(c.opts.SampleEvery)
	defer sample.Stop()
	walk := time.NewTicker(c.opts.WalkEvery)
	defer walk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sample.C:
			// The time of the reading, not of the tick: a tick read
			// late carries the time it fired, and a span stamped with it
			// would hold more bytes than its length says (the peaks
			// take rates from these times).
			rings := c.Sample(time.Now())
			if onSample != nil {
				onSample(rings)
			}
		case <-walk.C:
			if err := c.Walk(); err != nil && onError != nil {
				onError(err)
			}
		}
	}
}

// Close lets go of every ring. It is idempotent.
func (c *Census) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return c.release()
}

func explain(what string, err error) error {
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("%s: %w (the host ring census needs CAP_SYS_ADMIN: run as root)", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
