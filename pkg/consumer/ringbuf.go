package consumer

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/ringmap"
)

// RingBuffer is a BPF_MAP_TYPE_RINGBUF to read, named name.
func RingBuffer(name string, m *ebpf.Map) Ring {
	return Ring{Name: name, m: m, open: func(Wakeup) (ring, error) { return openRingbuf(m) }}
}

// ringbuf reads one BPF_MAP_TYPE_RINGBUF, mapped by internal/ringmap (the
// drawing of its pages is there): the consumer page read-write, the
// producer page and the data, mapped twice in a row, read-only. A record
// that wraps past the end of the ring is still contiguous in memory.
//
// Positions only grow; a position's offset in the ring is pos & mask. The
// kernel advances the producer position when a record is reserved, and marks
// the record's header busy until it is submitted or discarded.
var _ ring = (*ringbuf)(nil)

type ringbuf struct {
	consumerPos *uint64 // in the consumer page; only we write it
	producerPos *uint64 // in the producer page; only the kernel writes it
	data        []byte  // 2*size bytes: the data pages, twice
	mask        uint64  // size - 1; size is a power of two

	// cons is the position of the next record to read. The shared
	// consumerPos trails it until release publishes it, once per batch.
	cons     uint64
	released uint64

	mapFD int
	mem   *ringmap.Mapping // nil for a ring over plain memory
}

// openRingbuf maps m, which must be a BPF_MAP_TYPE_RINGBUF. The consumer
// keeps using m's file descriptor, so m must stay open until the ring is
// closed. On failure nothing stays mapped.
func openRingbuf(m *ebpf.Map) (*ringbuf, error) {
	mem, err := ringmap.Map(m, false)
	if err != nil {
		return nil, err
	}
	r := newRingbuf(mem.ConsumerPos, mem.ProducerPos, mem.Data)
	r.mapFD = m.FD()
	r.mem = mem
	if r.cons%8 != 0 {
		return nil, errors.Join(
			fmt.Errorf("consumer position %d is not 8-byte aligned: %w", r.cons, ErrCorrupt),
			r.close())
	}
	return r, nil
}

// newRingbuf reads a ring laid out in memory the caller owns: data holds the
// ring's size bytes twice in a row. Tests use it on plain Go memory.
func newRingbuf(consumerPos, producerPos *uint64, data []byte) *ringbuf {
	cons := atomic.LoadUint64(consumerPos)
	return &ringbuf{
		consumerPos: consumerPos,
		producerPos: producerPos,
		data:        data,
		mask:        uint64(len(data)/2 - 1),
		cons:        cons,
		released:    cons,
		mapFD:       -1,
	}
}

func (r *ringbuf) fd() int { return r.mapFD }

func (r *ringbuf) capacity() uint64 { return r.mask + 1 }

// ready reports whether the next record is committed: not a record the
// producer is still writing, whose commit will find the consumer's flag.
func (r *ringbuf) ready() bool {
	if atomic.LoadUint64(r.producerPos) == r.cons {
		return false
	}
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[r.cons&r.mask])))&unix.BPF_RINGBUF_BUSY_BIT == 0
}

// lost is 0: only the producers see a full ring buffer.
func (r *ringbuf) lost() uint64 { return 0 }

// pending is the number of bytes reserved by producers and not yet
// released by the consumer, record headers and padding included.
func (r *ringbuf) pending() uint64 {
	return atomic.LoadUint64(r.producerPos) - atomic.LoadUint64(r.consumerPos)
}

// produced is the producer position.
func (r *ringbuf) produced() uint64 { return atomic.LoadUint64(r.producerPos) }

// room is what the producers may still reserve before the ring is full.
func (r *ringbuf) room() uint64 { return r.capacity() - min(r.pending(), r.capacity()) }

// units: producers count a ring buffer's pending data in bytes
// (bpf_ringbuf_query(BPF_RB_AVAIL_DATA)).
func (r *ringbuf) units(bytes uint64) uint64 { return bytes }

// nextBatch appends to b the records after the read position, up to
// maxRecords of them and about a quarter of the ring, and moves the read
// position past them. It stops early at a record the producer has reserved
// but not yet submitted. Nothing is handed back to the producer until
// release.
//
// The returned slices alias ring memory: they stay valid until release.
// An error wrapping ErrCorrupt leaves in b the sound records before the
// corrupt one, and the read position at it.
func (r *ringbuf) nextBatch(b *batch, maxRecords int) error {
	cons := r.cons
	// Acquire: pairs with the kernel's smp_store_release of producer_pos in
	// __bpf_ringbuf_reserve, so the header the kernel wrote before it is
	// visible. (Go's atomics are sequentially consistent, which is stronger.)
	prod := atomic.LoadUint64(r.producerPos)
	// Positions are uint64 and wrap to 0 only after 2^64 bytes, which no
	// ring lives to see; still, like the kernel (new_prod_pos - cons_pos >
	// rb->mask in __bpf_ringbuf_reserve), the walk compares positions only
	// by their difference, which is the distance between them across a wrap
	// too, never by < on the positions themselves.
	if prod-cons > r.capacity() {
		return fmt.Errorf("producer position %d is %d bytes ahead of consumer position %d in a %d-byte ring: %w",
			prod, prod-cons, cons, r.capacity(), ErrCorrupt)
	}
	// A batch of at most a quarter of the ring gives space back to the
	// producer before the ring is full, even when records are small.
	// end-cons is the distance left: it stays within a ring's size of 0
	// (below it once a record ends past end), so its sign is right across
	// a wrap too.
	end := cons + min(prod-cons, r.capacity()/4)

	// The loop keeps what it updates in locals, and reads the data through
	// a base pointer: the bounds are proven once per record by the check
	// against prod-cons below, not by the slice expressions.
	base := unsafe.Pointer(unsafe.SliceData(r.data))
	mask := r.mask
	records, bytes := b.records, b.bytes
	// The walk is a chain of dependent loads (each header's length gives
	// the next header's address), which the hardware prefetcher streams
	// once the consumer reads a stretch behind its producers, as a paced
	// consumer does. Touching the batch's lines ahead of the chain was
	// measured and left out: it made every walk slower (see README, The
	// live path).
	for int64(end-cons) > 0 && len(records) < maxRecords {
		off := cons & mask
		// Acquire: the kernel's xchg in bpf_ringbuf_commit clears the busy
		// bit after the sample is written, so a header read as not busy is
		// ordered after the whole sample.
		header := atomic.LoadUint32((*uint32)(unsafe.Add(base, off)))
		if header&unix.BPF_RINGBUF_BUSY_BIT != 0 {
			break
		}
		length := uint64(header &^ (unix.BPF_RINGBUF_BUSY_BIT | unix.BPF_RINGBUF_DISCARD_BIT))
		total := (length + unix.BPF_RINGBUF_HDR_SZ + 7) &^ 7
		if total > prod-cons {
			// The records before this one are sound: keep them.
			b.records, b.bytes, r.cons = records, bytes, cons
			return fmt.Errorf("record at position %d claims %d bytes, only %d are produced: %w",
				cons, length, prod-cons-unix.BPF_RINGBUF_HDR_SZ, ErrCorrupt)
		}
		if header&unix.BPF_RINGBUF_DISCARD_BIT != 0 {
			b.discarded++
		} else {
			// In bounds: off < size and total <= prod-cons <= size, so the
			// record ends inside the doubled data (2*size bytes).
			records = append(records, unsafe.Slice((*byte)(unsafe.Add(base, off+unix.BPF_RINGBUF_HDR_SZ)), length))
			bytes += length
		}
		cons += total
	}
	b.records, b.bytes = records, bytes
	// More is committed behind a bound: the caller reads on. A stop at a
	// busy record, or at prod, leaves the rest for the next pass.
	b.full = prod != cons && (len(records) >= maxRecords || int64(end-cons) <= 0)
	r.cons = cons
	return nil
}

// release hands the space of every record read so far back to the producer,
// with one store, and reports whether there was any.
func (r *ringbuf) release() bool {
	if r.cons == r.released {
		return false
	}
	// Release: pairs with the kernel's smp_load_acquire of consumer_pos in
	// __bpf_ringbuf_reserve, so the producer cannot overwrite a record
	// before we are done with it. On amd64 this store is an XCHG, a full
	// barrier, so the consumer's next load of a record header cannot be
	// reordered before it: either we see the producer's commit, or the
	// producer's bpf_ringbuf_commit sees our position equal to its record
	// and wakes us. That is why a consumer about to sleep releases first
	// and looks once more.
	atomic.StoreUint64(r.consumerPos, r.cons)
	r.released = r.cons
	return true
}

// close unmaps the ring. The map's file descriptor belongs to the caller.
func (r *ringbuf) close() error {
	var err error
	if r.mem != nil {
		err = r.mem.Close()
	}
	*r = ringbuf{mapFD: -1}
	return err
}
