package hostrings

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// positions is a read-only view of a ring's two position pages. The kernel
// lays a BPF_MAP_TYPE_RINGBUF or BPF_MAP_TYPE_USER_RINGBUF out for user space
// at these offsets into the map's fd (kernel/bpf/ringbuf.c, struct
// bpf_ringbuf: consumer_pos and producer_pos each on a page of their own):
//
//	0          page       2*page
//	+----------+----------+----------------------------------+
//	| consumer | producer | data, twice (never mapped here)  |
//	| position | position |                                  |
//	+----------+----------+----------------------------------+
//	 mapped     mapped
//	 PROT_READ  PROT_READ
//
// The census maps the two position pages and nothing else, with PROT_READ
// only. bpf_map_mmap (kernel/bpf/syscall.c) clears VM_MAYWRITE on a mapping
// made without PROT_WRITE, so mprotect cannot make it writable later, and a
// store through it faults. The data pages, which hold other
// processes' records, are never mapped at all.
type positions struct {
	consumer, producer *uint64
	// overwrite is the producer page's third word: overwrite_pos, after
	// producer_pos and pending_pos in struct bpf_ringbuf (Linux 6.19,
	// commit feeaf1346f80). It means something only for a ring created
	// with BPF_F_RB_OVERWRITE, and is read only for those.
	overwrite   *uint64
	consumerMem []byte
	producerMem []byte
}

// mapPositions maps the consumer and producer pages of the ring whose map
// file descriptor is fd. On failure nothing stays mapped.
func mapPositions(fd int) (*positions, error) {
	page := os.Getpagesize()
	consumerMem, err := unix.Mmap(fd, 0, page, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap the consumer page read-only: %w", err)
	}
	producerMem, err := unix.Mmap(fd, int64(page), page, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("mmap the producer page read-only: %w", err), unix.Munmap(consumerMem))
	}
	return &positions{
		consumer:    (*uint64)(unsafe.Pointer(&consumerMem[0])),
		producer:    (*uint64)(unsafe.Pointer(&producerMem[0])),
		overwrite:   (*uint64)(unsafe.Pointer(&producerMem[16])),
		consumerMem: consumerMem,
		producerMem: producerMem,
	}, nil
}

// load reads both positions. The consumer position is read first: it never
// passes the producer position, so a producer read after it is at least as
// far, and their difference is never negative. The kernel stores both with
// release ordering (smp_store_release in kernel/bpf/ringbuf.c), and user
// rings' producers do the same.
func (p *positions) load() (producer, consumer uint64) {
	consumer = atomic.LoadUint64(p.consumer)
	producer = atomic.LoadUint64(p.producer)
	return producer, consumer
}

// loadOverwrite reads an overwrite-mode ring's overwrite position. It is
// read after the producer position: the kernel stores it with WRITE_ONCE
// before the smp_store_release of producer_pos that follows it
// (kernel/bpf/ringbuf.c, __bpf_ringbuf_reserve), so a reader that loads
// producer_pos first sees an overwrite_pos at least as new as that
// producer_pos.
func (p *positions) loadOverwrite() uint64 {
	return atomic.LoadUint64(p.overwrite)
}

// close unmaps both pages; it is idempotent.
func (p *positions) close() error {
	var errs []error
	for _, mem := range []*[]byte{&p.consumerMem, &p.producerMem} {
		if *mem != nil {
			errs = append(errs, unix.Munmap(*mem))
			*mem = nil
		}
	}
	p.consumer, p.producer, p.overwrite = nil, nil, nil
	return errors.Join(errs...)
}
