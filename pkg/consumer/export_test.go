package consumer

// This file lends the external tests (package consumer_test, which may
// import internal/accounting where this package's own tests may not: accounting
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
// format: the memRing this package's own tests write (ringbuf_test.go).
// One goroutine writes it.
type MemoryRing struct{ m *memRing }

// NewMemoryRing is an empty ring of size bytes, a power of two.
func NewMemoryRing(size int) *MemoryRing { return &MemoryRing{newMemRing(size)} }

// Consumer is a Consumer of the ring; see [NewMemoryConsumer].
func (r *MemoryRing) Consumer() (*Consumer, error) {
	return NewMemoryConsumer(&r.m.pos[0], &r.m.pos[1], r.m.data)
}

// Put reserves, writes and submits sample as the kernel does, or returns
// false when the ring is full, as the kernel decides it.
func (r *MemoryRing) Put(sample []byte) bool {
	pos, ok := r.m.reserve(len(sample))
	if ok {
		r.m.commit(pos, sample, false)
	}
	return ok
}
