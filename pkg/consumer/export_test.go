package consumer

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"
)

// This file lends the external tests (package consumer_test, which may
// import pkg/accounting where this package's own tests may not: accounting
// imports consumer) a Consumer over plain Go memory. It is compiled into
// the tests only.

// NewMemoryConsumer is a Consumer of one BPF ring buffer laid out in memory
// the caller owns: the consumer and producer positions, and data holding
// the ring's size bytes twice in a row, as the kernel maps them. It sleeps
// as WakeupEvery does, with no handshake. Close it: it holds an epoll
// descriptor.
func NewMemoryConsumer(consumerPos, producerPos *uint64, data []byte) (*Consumer, error) {
	return newConsumer([]ring{newRingbuf(consumerPos, producerPos, data)}, &sleeper{mode: WakeupEvery})
}

// MemoryRing is a BPF ring buffer in plain Go memory, in the kernel's
// format (kernel/bpf/ringbuf.c): each record after an 8-byte header whose
// first word is its length, padded to 8 bytes, the data kept twice in a row
// as the kernel's double mapping shows it. One goroutine writes it.
type MemoryRing struct {
	pos  *[2]uint64 // consumer, producer
	data []byte     // 2*size, 8-byte aligned
	size uint64
}

// NewMemoryRing is an empty ring of size bytes, a power of two.
func NewMemoryRing(size int) *MemoryRing {
	words := make([]uint64, 2*size/8)
	return &MemoryRing{
		pos:  new([2]uint64),
		data: unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), 2*size),
		size: uint64(size),
	}
}

// Consumer is a Consumer of m; see [NewMemoryConsumer].
func (m *MemoryRing) Consumer() (*Consumer, error) {
	return NewMemoryConsumer(&m.pos[0], &m.pos[1], m.data)
}

// Put writes sample as the next record and submits it, or returns false
// when the ring is full, as the kernel decides it. The kernel marks a
// record busy between reserve and submit because the reader may see the
// producer position first; Put publishes the position last, with one
// atomic store, after the record and its header are written: a reader that
// loads the position, as the walk does, sees them whole.
func (m *MemoryRing) Put(sample []byte) bool {
	total := (uint64(len(sample)) + ringbufHeaderSize + 7) &^ 7
	prod := atomic.LoadUint64(&m.pos[1])
	if prod+total-atomic.LoadUint64(&m.pos[0]) > m.size-1 {
		return false
	}
	off := prod & (m.size - 1)
	binary.NativeEndian.PutUint32(m.data[off:], uint32(len(sample)))
	binary.NativeEndian.PutUint32(m.data[off+m.size:], uint32(len(sample)))
	m.write(off+ringbufHeaderSize, sample)
	atomic.StoreUint64(&m.pos[1], prod+total)
	return true
}

// write puts b at offset off of the first copy, off < 2*size, and at the
// same place in the other.
func (m *MemoryRing) write(off uint64, b []byte) {
	off &= m.size - 1
	if end := off + uint64(len(b)); end <= m.size {
		copy(m.data[off:end], b)
		copy(m.data[off+m.size:end+m.size], b)
		return
	}
	n := copy(m.data[off:m.size], b) // up to the end of the ring
	copy(m.data[off+m.size:], b[:n])
	copy(m.data, b[n:]) // what wrapped, at the start of the ring
	copy(m.data[m.size:], b[n:])
}
