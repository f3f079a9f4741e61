package userring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/ringmap"
)

// maxDynptrSize is the largest sample the kernel hands to a BPF program:
// bpf_user_ringbuf_drain wraps each sample in a dynptr, and
// __bpf_user_ringbuf_peek refuses, with -E2BIG and forever, a sample above
// DYNPTR_MAX_SIZE (kernel/bpf/helpers.c: (1 << 24) - 1). The writer must
// never let one into the ring.
const maxDynptrSize = 1<<24 - 1

// ring is the producer side of one BPF_MAP_TYPE_USER_RINGBUF, mapped by
// internal/ringmap: the kernel's consumer page read-only, the producer page
// and the data (mapped twice in a row) read-write. The permissions are the
// reverse of a kernel-to-user ring's: user space owns the producer position
// and writes the data.
//
// Each sample has the 8-byte header of a kernel-to-user ring's record
// (unix.BPF_RINGBUF_*), written here by user space. Positions only grow and
// stay multiples of 8; the kernel's drain refuses an unaligned producer
// position with -EINVAL (__bpf_user_ringbuf_peek).
type ring struct {
	consumerPos *uint64 // in the consumer page; only the kernel writes it
	producerPos *uint64 // in the producer page; only we write it
	data        []byte  // 2*size bytes: the data pages, twice
	mask        uint64  // size - 1; size is a power of two

	// prod is the producer position as we last published it: we are the
	// only producer, so it is never read back from the shared page.
	prod uint64

	mapFD int
	mem   *ringmap.Mapping // nil for a ring over plain memory
}

// openRing maps m, which must be a BPF_MAP_TYPE_USER_RINGBUF. The writer
// keeps using m's file descriptor, so m must stay open until the ring is
// closed. On failure nothing stays mapped.
func openRing(m *ebpf.Map) (*ring, error) {
	mem, err := ringmap.Map(m, true)
	if err != nil {
		return nil, err
	}
	r := newRing(mem.ConsumerPos, mem.ProducerPos, mem.Data)
	r.mapFD = m.FD()
	r.mem = mem
	cons := atomic.LoadUint64(r.consumerPos)
	if r.prod%8 != 0 || r.prod-cons > r.capacity() {
		return nil, errors.Join(
			fmt.Errorf("user ring positions are inconsistent (producer %d, consumer %d): %w", r.prod, cons, ErrCorrupt),
			r.close())
	}
	return r, nil
}

// newRing writes into a ring laid out in memory the caller owns: data holds
// the ring's size bytes twice in a row. Tests use it on plain Go memory.
func newRing(consumerPos, producerPos *uint64, data []byte) *ring {
	return &ring{
		consumerPos: consumerPos,
		producerPos: producerPos,
		data:        data,
		mask:        uint64(len(data)/2 - 1),
		prod:        atomic.LoadUint64(producerPos),
		mapFD:       -1,
	}
}

func (r *ring) fd() int { return r.mapFD }

func (r *ring) capacity() uint64 { return r.mask + 1 }

// maxSample is the largest sample the ring can ever take.
func (r *ring) maxSample() int {
	return int(min(r.capacity()-unix.BPF_RINGBUF_HDR_SZ, maxDynptrSize))
}

// pending is the number of bytes written and not yet drained by the
// kernel, headers and padding included.
func (r *ring) pending() uint64 {
	return atomic.LoadUint64(r.producerPos) - atomic.LoadUint64(r.consumerPos)
}

// reserve claims room for a sample of size bytes and returns the offset of
// its header in data, or false when the ring has no room now. The caller has
// checked size against maxSample and serialises reserve.
//
// The header is written busy before the producer position moves past it,
// so the kernel's drain, which reads the producer position and then the
// header, each with acquire ordering (__bpf_user_ringbuf_peek), stops at
// the sample until commit clears the bit. Samples reserved later may be
// committed first; the kernel still reads them in ring order.
func (r *ring) reserve(size int) (uint64, bool) {
	total := (uint64(size) + unix.BPF_RINGBUF_HDR_SZ + 7) &^ 7
	// Acquire: pairs with the kernel's smp_store_release of consumer_pos in
	// __bpf_user_ringbuf_sample_release, so the kernel is done with the
	// space we are about to overwrite. (Go's atomics are sequentially
	// consistent, which is stronger.)
	cons := atomic.LoadUint64(r.consumerPos)
	if r.prod+total-cons > r.capacity() {
		return 0, false
	}
	off := r.prod & r.mask
	// A plain store is enough for the busy header: the kernel looks at it
	// only after it has read the producer position published below. The
	// second word is the kernel's page offset in a kernel-to-user ring,
	// which a user ring's drain ignores; it is zeroed so no stale bytes
	// sit in a header.
	*r.header(off) = uint32(size) | unix.BPF_RINGBUF_BUSY_BIT
	*(*uint32)(unsafe.Pointer(&r.data[off+4])) = 0
	r.prod += total
	// Release: pairs with the kernel's smp_load_acquire of producer_pos in
	// __bpf_user_ringbuf_peek, so the busy header is visible first.
	atomic.StoreUint64(r.producerPos, r.prod)
	return off, true
}

// header is the record header at offset off of data.
func (r *ring) header(off uint64) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.data[off]))
}

// sample is the payload of the sample of size bytes whose header is at off.
func (r *ring) sample(off uint64, size int) []byte {
	start := off + unix.BPF_RINGBUF_HDR_SZ
	return r.data[start : start+uint64(size) : start+uint64(size)]
}

// commit publishes a reserved sample, or marks it discarded, by rewriting
// its header without the busy bit. Release: pairs with the kernel's
// smp_load_acquire of the header in __bpf_user_ringbuf_peek, so every byte
// written to the sample is visible to the BPF program that reads it. Safe
// to call concurrently with reserve and other commits: each touches only
// its own header.
func commit(header *uint32, size int, discard bool) {
	h := uint32(size)
	if discard {
		h |= unix.BPF_RINGBUF_DISCARD_BIT
	}
	atomic.StoreUint32(header, h)
}

// close unmaps the ring. The map's file descriptor belongs to the caller.
func (r *ring) close() error {
	var err error
	if r.mem != nil {
		err = r.mem.Close()
	}
	*r = ring{mapFD: -1}
	return err
}
