package consumer

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/ringmap"
)

// rbOverwrite is BPF_F_RB_OVERWRITE, (1U << 19) in include/uapi/linux/bpf.h
// since Linux 6.19 (commit feeaf1346f80, "bpf: Add overwrite mode for BPF
// ring buffer"). golang.org/x/sys/unix does not have it yet.
const rbOverwrite = 1 << 19

// The kernel's rules for a ring buffer created with BPF_F_RB_OVERWRITE, as
// kernel/bpf/ringbuf.c has them since commit feeaf1346f80 (Linux 6.19). The
// reader below relies on each; the citations are to that file.
//
//   - Where the positions live. struct bpf_ringbuf declares producer_pos
//     page-aligned, then pending_pos, then overwrite_pos, so overwrite_pos is
//     the third word of the producer page that ringbuf_map_mmap_kern maps
//     read-only to user space (internal/ringmap.Mapping.OverwritePos says
//     how it got there; TestOverwriteRecorderUnderALiveProducer checks it
//     against the kernel's own answer). BPF programs read it with
//     bpf_ringbuf_query(map, BPF_RB_OVERWRITE_POS), an smp_load_acquire;
//     user space reads the page. It is the position of the oldest record
//     not overwritten, always a record boundary.
//   - How a reserve advances it. __bpf_ringbuf_reserve, under the ring's
//     spinlock, first moves pending_pos past committed records, then checks
//     bpf_ringbuf_has_space: in overwrite mode only that new_prod_pos -
//     pending_pos <= mask, never the consumer position. It then steps
//     overwrite_pos over whole records (each header's length, discard bit
//     cleared, plus the 8-byte header, rounded up to 8) while new_prod_pos -
//     overwrite_pos > mask, stores it with WRITE_ONCE, writes the new
//     record's header (length | BPF_RINGBUF_BUSY_BIT, page offset), and
//     publishes producer_pos with smp_store_release. Its comment: a consumer
//     that reads overwrite_pos after smp_load_acquire(producer_pos) sees an
//     overwrite_pos at least as new as that producer_pos.
//   - The busy bit, and when a reserve still fails. A reserved record is
//     busy until bpf_ringbuf_commit xchg's its header. pending_pos is the
//     oldest busy record, and has_space refuses (the reserve returns NULL) a
//     record that would reach it: overwrite_pos never passes a record still
//     being written, so a busy record's header and length stay valid.
//   - The consumer position. In overwrite mode it does not limit the
//     producer. It is still read by ringbuf_avail_data_sz (prod_pos -
//     max(cons_pos, over_pos): what poll reports) and by bpf_ringbuf_commit's
//     wakeup test, so a snapshot leaves it alone: reading does not consume,
//     and the next snapshot sees the same records if none were overwritten.
//
// What the kernel does not give: the producer writes overwrite_pos before
// the header and payload of the record that overwrites, but orders them only
// through the release of producer_pos, after which the BPF program writes
// the payload. Where stores become visible in program order (amd64), a
// record still at or past overwrite_pos after it was copied was copied
// whole. On arm64 a store made after the release may be seen before
// overwrite_pos: the check below narrows that to a store buffer's drain,
// and no reader can do better without a barrier in the producer.

// RecorderSupported reports whether the kernel has overwrite-mode ring
// buffers, by creating a one-page ring with BPF_F_RB_OVERWRITE: a kernel
// without them refuses the flag with EINVAL (ringbuf_map_alloc's
// RINGBUF_CREATE_FLAG_MASK). Where they are missing the error wraps
// [errors.ErrUnsupported] and is one line naming the kernel needed; any
// other error is the probe's own (no privilege, say).
func RecorderSupported() error {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: uint32(os.Getpagesize()), Flags: rbOverwrite})
	if errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("overwrite-mode ring buffers (BPF_F_RB_OVERWRITE) need Linux 6.19 or later; this kernel refuses them: %w",
			errors.ErrUnsupported)
	}
	if err != nil {
		return fmt.Errorf("probe overwrite-mode ring buffers: %w", err)
	}
	return m.Close()
}

// A Recorder reads a BPF ring buffer created with BPF_F_RB_OVERWRITE (Linux
// 6.19): a flight recorder, whose producers overwrite the oldest records
// when it is full. It does not consume: [Recorder.Snapshot] copies out what
// the ring holds now, as often as wanted, while the producers keep writing.
// One goroutine at a time may call its methods.
type Recorder struct {
	r   overwriteRing
	mem *ringmap.Mapping
}

// OpenRecorder maps m, a BPF_MAP_TYPE_RINGBUF created with
// BPF_F_RB_OVERWRITE. m must stay open until the Recorder is closed. On
// failure nothing stays mapped.
func OpenRecorder(m *ebpf.Map) (*Recorder, error) {
	if m == nil || m.Type() != ebpf.RingBuf || m.Flags()&rbOverwrite == 0 {
		return nil, fmt.Errorf("map %v is not a ring buffer created with BPF_F_RB_OVERWRITE", m)
	}
	mem, err := ringmap.Map(m, false)
	if err != nil {
		return nil, err
	}
	return &Recorder{r: newOverwriteRing(mem.ProducerPos, mem.OverwritePos, mem.Data), mem: mem}, nil
}

// Snapshot fills s with the records the ring holds now, oldest first,
// reusing s's memory: the records s held before are gone.
//
// It returns an error wrapping [ErrCorrupt] where the ring breaks the
// kernel's format, and an error when the producers overwrote the whole ring
// again and again while it read: s then holds no records.
func (r *Recorder) Snapshot(s *Snapshot) error { return r.r.snapshot(s) }

// Held counts the records the ring holds now without copying them, as
// [Recorder.Snapshot] would find them: whole records, and those reserved
// and not yet submitted. It is cheap enough for every metrics scrape.
func (r *Recorder) Held() (records, pending int, err error) {
	var s Snapshot
	if err := r.r.held(&s); err != nil {
		return 0, 0, err
	}
	return s.held, int(s.Pending), nil
}

// Close unmaps the ring; the map belongs to the caller. It is idempotent.
func (r *Recorder) Close() error {
	if r.mem == nil {
		return nil
	}
	err := r.mem.Close()
	r.mem, r.r = nil, overwriteRing{}
	return err
}

// A Snapshot is what a [Recorder] found in its ring: the records from the
// overwrite position to the producer position, copied out, each whole. Every
// record the kernel placed in [Start, End) is counted once: in Records,
// Overwritten, Pending or Discarded.
type Snapshot struct {
	// Records are the payloads, oldest first, without the ring's headers.
	// They are copies, in memory the Snapshot owns: valid until it is
	// passed to Snapshot again.
	Records [][]byte
	// Start and End are the ring positions (bytes since the ring was made)
	// the snapshot covers: the overwrite position and the producer
	// position it read.
	Start, End uint64
	// Overwritten counts records copied and then dropped, because the
	// producer had overwritten them, or may have, before the copy was
	// known to be whole. They are the oldest of the window.
	Overwritten uint64
	// Pending counts records reserved and not yet submitted when read.
	Pending uint64
	// Discarded counts records their producer discarded.
	Discarded uint64

	buf  []byte
	ends []int    // Records[i] is buf[ends[i-1]:ends[i]]
	pos  []uint64 // the ring position of each copied record
	held int      // the committed records a walk without copies counted
}

// overwriteRing is the walk of an overwrite-mode ring, over memory it does
// not own: the producer page's two positions and the data mapped twice in a
// row, as for [ringbuf]. Tests give it plain Go memory.
type overwriteRing struct {
	producerPos  *uint64
	overwritePos *uint64
	data         []byte
	mask         uint64

	// fence is only written, to order the copies before the check (see
	// snapshot).
	fence uint64
	// afterHeader and afterCopy run, when set (in tests), after a header
	// is read and after the copies, so a test can move the producer there.
	afterHeader func(pos uint64)
	afterCopy   func()
}

func newOverwriteRing(producerPos, overwritePos *uint64, data []byte) overwriteRing {
	return overwriteRing{producerPos: producerPos, overwritePos: overwritePos, data: data, mask: uint64(len(data)/2 - 1)}
}

// maxLaps bounds the times one snapshot starts over because the producer
// overwrote the record it was reading.
const maxLaps = 64

// errLapped: the producer outran the reader maxLaps times.
var errLapped = errors.New("producer overwrote the ring faster than it could be read")

// snapshot walks from the overwrite position to the producer position,
// copying each committed record, then drops the copies the producer may
// have overwritten meanwhile.
//
// A header is trusted only if the overwrite position, loaded after it, has
// not passed it: the producer moves overwrite_pos past a record before it
// writes anything there. When it has passed, the window starts again at the
// new overwrite position (the records read so far are all behind it). A
// copy is trusted only if the overwrite position loaded after all the copies
// has not passed its record: those that fail are the oldest, and are
// counted in Overwritten.
func (r *overwriteRing) snapshot(s *Snapshot) error {
	if err := r.window(s, true); err != nil {
		return err
	}
	if r.afterCopy != nil {
		r.afterCopy()
	}
	// The copies are plain loads; an atomic read-modify-write orders them
	// before the load of overwrite_pos below (on arm64 it is a
	// store-release, and a later load-acquire is not reordered before it;
	// on amd64 a locked instruction).
	atomic.AddUint64(&r.fence, 1)
	over := atomic.LoadUint64(r.overwritePos)
	drop := 0
	for drop < len(s.pos) && int64(over-s.pos[drop]) > 0 {
		drop++
	}
	s.Overwritten = uint64(drop)
	for i := drop; i < len(s.pos); i++ {
		from := 0
		if i > 0 {
			from = s.ends[i-1]
		}
		s.Records = append(s.Records, s.buf[from:s.ends[i]:s.ends[i]])
	}
	return nil
}

// held walks the window as snapshot does, reading only the headers: it
// counts the committed records (s.held), the busy ones and the discarded
// ones, and copies nothing. A record counted may be overwritten the moment
// after: the counts are of the window as the walk found it.
func (r *overwriteRing) held(s *Snapshot) error { return r.window(s, false) }

// window finds the window, from the overwrite position to the producer
// position, and walks it into s, copying the records if copying is set.
func (r *overwriteRing) window(s *Snapshot, copying bool) error {
	if r.data == nil {
		return ErrClosed
	}
	size := r.mask + 1
	base := unsafe.Pointer(unsafe.SliceData(r.data))
	s.reset()
	for laps := 0; ; laps++ {
		if laps == maxLaps {
			s.reset()
			return fmt.Errorf("snapshot a %d-byte ring: %w", size, errLapped)
		}
		// Acquire, producer position first: pairs with the
		// smp_store_release of producer_pos in __bpf_ringbuf_reserve, which
		// follows its WRITE_ONCE of overwrite_pos, so the overwrite
		// position loaded next is at least the one of this producer
		// position, and the headers before it are visible.
		end := atomic.LoadUint64(r.producerPos)
		start := atomic.LoadUint64(r.overwritePos)
		// Positions compare by difference, like the kernel's
		// new_prod_pos - over_pos > rb->mask. A start past end means the
		// producer moved on between the loads: read both again.
		if end-start > size {
			if int64(end-start) < 0 {
				continue
			}
			return fmt.Errorf("producer position %d is %d bytes past overwrite position %d in a %d-byte ring: %w",
				end, end-start, start, size, ErrCorrupt)
		}
		s.reset()
		s.Start, s.End = start, end
		reached, err := r.walk(s, base, start, end, copying)
		if err != nil {
			s.reset()
			return err
		}
		if reached {
			return nil
		}
	}
}

// walk reads the records in [start, end) into s, and reports whether it
// reached end; false means the producer overwrote a header before it was
// read, and the window must start again. The window's End stays end.
// Without copying it only counts the committed records, in s.held.
func (r *overwriteRing) walk(s *Snapshot, base unsafe.Pointer, start, end uint64, copying bool) (bool, error) {
	pos := start
	for pos != end {
		// Acquire: the kernel's xchg in bpf_ringbuf_commit clears the busy
		// bit after the sample is written, so a header read as not busy is
		// ordered after the whole sample, and the loads below after it.
		header := atomic.LoadUint32((*uint32)(unsafe.Add(base, pos&r.mask)))
		if r.afterHeader != nil {
			r.afterHeader(pos)
		}
		if over := atomic.LoadUint64(r.overwritePos); int64(over-pos) > 0 {
			// The header may be a later record's, or its payload. Every
			// record read so far is behind over too: start again there,
			// unless the producer went past the end as well.
			if int64(end-over) < 0 {
				return false, nil
			}
			s.reset()
			s.Start, s.End, pos = over, end, over
			continue
		}
		length := uint64(header &^ (unix.BPF_RINGBUF_BUSY_BIT | unix.BPF_RINGBUF_DISCARD_BIT))
		total := (length + unix.BPF_RINGBUF_HDR_SZ + 7) &^ 7
		if total > end-pos {
			// A genuine header (the check above) of a record that does not
			// end by the producer position: the format is broken.
			return false, fmt.Errorf("record at position %d claims %d bytes, only %d are produced from it: %w",
				pos, length, end-pos, ErrCorrupt)
		}
		switch {
		case header&unix.BPF_RINGBUF_BUSY_BIT != 0:
			s.Pending++
		case header&unix.BPF_RINGBUF_DISCARD_BIT != 0:
			s.Discarded++
		case !copying:
			s.held++
		default:
			// In bounds: pos&mask < size and total <= size, so the record
			// ends inside the doubled data.
			off := pos&r.mask + unix.BPF_RINGBUF_HDR_SZ
			s.buf = append(s.buf, unsafe.Slice((*byte)(unsafe.Add(base, off)), length)...)
			s.ends = append(s.ends, len(s.buf))
			s.pos = append(s.pos, pos)
		}
		pos += total
	}
	return true, nil
}

// reset empties s, keeping its memory.
func (s *Snapshot) reset() {
	*s = Snapshot{Records: s.Records[:0], buf: s.buf[:0], ends: s.ends[:0], pos: s.pos[:0]}
}
