//go:build libbpf

package bench

/*
#cgo pkg-config: libbpf
#include <stdlib.h>
#include <bpf/libbpf.h>

// rw_counts is what the libbpf peer keeps of each record: what the bench's
// Go sink keeps of each record ringwatch hands over, and nothing else.
struct rw_counts {
	unsigned long long records;
	unsigned long long bytes;
};

// rw_count is the sample callback: C, so that libbpf pays no cgo call per
// record. size is the record's length without the ring's header, as
// ringwatch's consumer gives it (kernel/bpf/ringbuf.c, BPF_RINGBUF_HDR_SZ).
static int rw_count(void *ctx, void *data, size_t size)
{
	struct rw_counts *c = ctx;

	(void)data;
	c->records++;
	c->bytes += size;
	return 0;
}

static struct ring_buffer *rw_ring_buffer_new(int map_fd, struct rw_counts *counts)
{
	return ring_buffer__new(map_fd, rw_count, counts, NULL);
}
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/session"
	"github.com/ringwatch/ringwatch/internal/transport"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// Libbpf is libbpf's ring_buffer (Debian's libbpf-dev, through cgo), the C
// reader every other consumer of a BPF ring buffer is judged against. It is
// built only with the libbpf tag: `go build -tags libbpf`.
const Libbpf = "libbpf"

func init() {
	// Drain and saturation only: libbpf hands no batch to Go, so there is
	// no read time to measure latency from.
	peersOf[abi.Ringbuf] = append(peersOf[abi.Ringbuf],
		reader{name: Libbpf, wakeup: consumer.WakeupKernel, scenarios: []string{Drain, Saturation}})
	peerOpeners[Libbpf] = openLibbpf
}

// libbpfPollTimeout bounds, in milliseconds, how long Read waits in
// ring_buffer__poll before it looks at its context again. libbpf's epoll
// set has room for its rings alone, so nothing else can interrupt the
// wait; a timeout costs a wakeup every so often, nothing per record.
const libbpfPollTimeout = 10

// openLibbpf opens libbpf's ring_buffer on the ring of t. timed is
// ignored: the peer is measured in drain and saturation alone, which keep
// no latencies.
func openLibbpf(rd reader, t transport.Transport, timed bool) (session.Reader, error) {
	rings := t.ReaderConfig(rd.wakeup, 0).Rings
	if len(rings) != 1 {
		return nil, fmt.Errorf("open %s reader: transport %s has %d rings, want 1", Libbpf, t.Name(), len(rings))
	}
	return newLibbpfReader(rings[0].Map())
}

// libbpfReader is libbpf's ring_buffer behind session.Reader. Its callback
// counts records and bytes in C memory and hands nothing to Go: fn is
// never called, and the bench reads the counts with Counts, once per
// Read or Drain, instead of once per record. Read, Drain, Counts and Close
// are for one goroutine at a time.
type libbpfReader struct {
	rb     *C.struct_ring_buffer
	counts *C.struct_rw_counts // C memory: libbpf keeps a pointer to it
	// records and bytes are the counts once Close has freed counts.
	records, bytes uint64
}

// The bench's sink takes the counts of a reader with Counts, and the
// reader is a session.Reader like any other.
var _ session.Reader = (*libbpfReader)(nil)
var _ interface {
	Counts() (records, bytes uint64)
} = (*libbpfReader)(nil)

// newLibbpfReader opens libbpf's ring_buffer on m, a BPF ring buffer
// map, which must stay open until the reader is closed.
func newLibbpfReader(m *ebpf.Map) (*libbpfReader, error) {
	counts := (*C.struct_rw_counts)(C.calloc(1, C.sizeof_struct_rw_counts))
	if counts == nil {
		return nil, fmt.Errorf("open %s reader: out of memory", Libbpf)
	}
	rb, err := C.rw_ring_buffer_new(C.int(m.FD()), counts)
	if rb == nil {
		C.free(unsafe.Pointer(counts))
		if err == nil {
			err = errors.New("unknown error")
		}
		return nil, fmt.Errorf("open %s ring_buffer on map %v: %w", Libbpf, m, err)
	}
	return &libbpfReader{rb: rb, counts: counts}, nil
}

// Read polls the ring until ctx is done, and then returns ctx.Err() and
// the records read. fn is not called: see [libbpfReader.Counts].
func (r *libbpfReader) Read(ctx context.Context, _ func(consumer.Batch)) (int, error) {
	if r.rb == nil {
		return 0, consumer.ErrClosed
	}
	before := r.counts.records
	for ctx.Err() == nil {
		// The wait and the callbacks are one cgo call, as in a C program:
		// an epoll_wait, then every record there is.
		if n := C.ring_buffer__poll(r.rb, libbpfPollTimeout); n < 0 && syscall.Errno(-n) != syscall.EINTR {
			return int(r.counts.records - before), fmt.Errorf("poll %s ring_buffer: %w", Libbpf, syscall.Errno(-n))
		}
	}
	return int(r.counts.records - before), ctx.Err()
}

// Drain reads what the ring holds now, without waiting. fn is not called:
// see [libbpfReader.Counts].
func (r *libbpfReader) Drain(_ func(consumer.Batch)) (int, error) {
	if r.rb == nil {
		return 0, consumer.ErrClosed
	}
	before := r.counts.records
	// ring_buffer__consume reads until it finds the ring empty; a second
	// call that finds nothing ends the drain, as it ends ringwatch's.
	for {
		n := C.ring_buffer__consume(r.rb)
		if n < 0 {
			return int(r.counts.records - before), fmt.Errorf("consume %s ring_buffer: %w", Libbpf, syscall.Errno(-n))
		}
		if n == 0 {
			return int(r.counts.records - before), nil
		}
	}
}

// Counts are the records and their bytes read since the reader was
// opened: what the bench's sink counts from the batches of the readers
// that hand them over. Valid after Close too.
func (r *libbpfReader) Counts() (records, bytes uint64) {
	if r.counts == nil {
		return r.records, r.bytes
	}
	return uint64(r.counts.records), uint64(r.counts.bytes)
}

// epollFD is libbpf's epoll set, for tests that watch Read sleep in it.
func (r *libbpfReader) epollFD() int { return int(C.ring_buffer__epoll_fd(r.rb)) }

// Close frees the ring_buffer (its mappings and epoll set; the map stays
// its owner's). Idempotent.
func (r *libbpfReader) Close() error {
	if r.rb == nil {
		return nil
	}
	r.records, r.bytes = r.Counts()
	C.ring_buffer__free(r.rb)
	C.free(unsafe.Pointer(r.counts))
	r.rb, r.counts = nil, nil
	return nil
}
