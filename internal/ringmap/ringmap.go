package ringmap

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Mapping is one ring buffer's memory, as the kernel lays it out for user
// space (kernel/bpf/ringbuf.c: struct bpf_ringbuf, ringbuf_map_mmap_kern and
// ringbuf_map_mmap_user), at offsets into the map's fd:
//
//	0          page       2*page                   2*page+size              2*page+2*size
//	+----------+----------+------------------------+------------------------+
//	| consumer | producer | data: size bytes       | data again: the same   |
//	| position | position |                        | pages, mapped twice    |
//	+----------+----------+------------------------+------------------------+
//	 one mapping            one mapping: the producer page and the data
//
// A kernel-to-user ring lets user space write only the consumer page; a
// user ring only the producer page and the data (ringbuf_map_mmap_user
// refuses a writable consumer page with -EPERM).
//
// Because the data pages appear twice in a row, a record that wraps past the
// end of the ring is still contiguous in memory: a record at offset off is
// always Data[off : off+len], with no special case for the wrap.
type Mapping struct {
	ConsumerPos *uint64 // in the consumer page
	ProducerPos *uint64 // in the producer page
	// OverwritePos is the producer page's third word, where Linux 6.19
	// (commit feeaf1346f80) keeps an overwrite-mode ring's overwrite_pos:
	// struct bpf_ringbuf declares producer_pos page-aligned, then
	// pending_pos, then overwrite_pos. (The series put it before
	// pending_pos; Andrii Nakryiko moved it after when he applied it,
	// "as all these fields are actually exposed to the user space", bpf
	// list, 2025-10-28.) It means nothing for a ring without
	// BPF_F_RB_OVERWRITE.
	OverwritePos *uint64
	Data         []byte // 2*size bytes: the data pages, twice

	consumerMem, producerMem []byte
}

// Map maps m, a BPF_MAP_TYPE_RINGBUF (userProduces false: user space
// consumes) or a BPF_MAP_TYPE_USER_RINGBUF (userProduces true). The caller
// keeps using m's file descriptor, so m must stay open until Close. On
// failure nothing stays mapped.
func Map(m *ebpf.Map, userProduces bool) (*Mapping, error) {
	want, what := ebpf.RingBuf, "ring buffer"
	consumerProt, producerProt := unix.PROT_READ|unix.PROT_WRITE, unix.PROT_READ
	if userProduces {
		want, what = ebpf.UserRingbuf, "user ring"
		consumerProt, producerProt = unix.PROT_READ, unix.PROT_READ|unix.PROT_WRITE
	}
	if m == nil || m.Type() != want {
		return nil, fmt.Errorf("map %v is not a %v", m, want)
	}
	page := os.Getpagesize()
	size := int(m.MaxEntries())
	if size <= 0 || size%page != 0 || size&(size-1) != 0 {
		return nil, fmt.Errorf("%s size %d is not a power-of-two multiple of the page size %d", what, size, page)
	}
	consumerMem, err := unix.Mmap(m.FD(), 0, page, consumerProt, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s consumer page: %w", what, err)
	}
	producerMem, err := unix.Mmap(m.FD(), int64(page), page+2*size, producerProt, unix.MAP_SHARED)
	if err != nil {
		return nil, errors.Join(
			fmt.Errorf("mmap %s producer page and data: %w", what, err),
			unix.Munmap(consumerMem))
	}
	return &Mapping{
		ConsumerPos:  (*uint64)(unsafe.Pointer(&consumerMem[0])),
		ProducerPos:  (*uint64)(unsafe.Pointer(&producerMem[0])),
		OverwritePos: (*uint64)(unsafe.Pointer(&producerMem[16])),
		Data:         producerMem[page:],
		consumerMem:  consumerMem,
		producerMem:  producerMem,
	}, nil
}

// Close unmaps the ring; the map's file descriptor belongs to the caller.
// It is idempotent, and returns every munmap's error.
func (m *Mapping) Close() error {
	var errs []error
	for _, mem := range []*[]byte{&m.consumerMem, &m.producerMem} {
		if *mem != nil {
			errs = append(errs, unix.Munmap(*mem))
			*mem = nil
		}
	}
	m.ConsumerPos, m.ProducerPos, m.OverwritePos, m.Data = nil, nil, nil, nil
	return errors.Join(errs...)
}
