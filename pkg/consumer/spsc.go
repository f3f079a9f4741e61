package consumer

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/abi"
)

// The layout of bpf/ringwatch.h's SPSC queues, from the generated types.
const (
	spscQueueSize  = abi.SPSCQueueSize  // struct spsc_queue: two cache lines
	spscHeadOffset = abi.SPSCHeadOffset // spsc_queue.head, on the consumer's line
	spscTailOffset = abi.SPSCTailOffset // spsc_queue.tail, on the producer's line
	spscSlotHeader = abi.SPSCSlotHeader // struct spsc_slot: u32 len, u32 reserved, then data
)

// SPSCQueues are the single-producer single-consumer queues of ringwatch's
// spsc transport, read as one ring named name: queues holds a struct
// spsc_queue per CPU and slots their slotsPerQueue slots each, both
// BPF_F_MMAPABLE arrays (bpf/ringwatch.h). They have no descriptor to wait
// on: the Consumer is woken through [Config.Doorbell].
func SPSCQueues(name string, queues, slots *ebpf.Map, slotsPerQueue int) Ring {
	return SPSCQueueRange(name, queues, slots, slotsPerQueue, 0, -1)
}

// SPSCQueueRange is [SPSCQueues] for the n queues from first on (n < 0:
// to the last), so that several consumers can share the queues, each
// reading its own.
func SPSCQueueRange(name string, queues, slots *ebpf.Map, slotsPerQueue, first, n int) Ring {
	return Ring{Name: name, m: queues, doorbell: true, open: func(Wakeup) (ring, error) {
		return openSPSC(queues, slots, slotsPerQueue, first, n)
	}}
}

// spsc reads the single-producer single-consumer queues of every CPU, one
// queue per CPU, as one ring: the BPF producer side and the memory-ordering
// argument are in bpf/transport.h ("The SPSC queue").
//
// Queue k's head and tail count slots since the start; record i of queue k
// is in slot i mod slots, for i in [head, tail). A queue holds as many
// slots as fit its memory, not a power of two, so both sides keep the slot
// index of their count beside it and wrap it with a compare, never a
// division. The consumer reads tail (acquire) only when it has read every
// slot up to the tail it last saw, reads the slots, and stores head
// (release) once per batch: while records flow, the producer's line, which
// it writes for every record, crosses to the consumer once per pass, not
// once per record.
//
// The wakeup is an event, not polling, and the queues have no descriptor
// of their own to wait on: the Consumer's waker (wake.go) waits on the
// doorbell. Before waiting in epoll it stores consumer_sleeping and then
// reads every tail once more (ready); a producer publishes its tail with a
// fetch-and-add, a full barrier, and then reads consumer_sleeping, and if
// set clears it and rings the doorbell: a small BPF ring buffer submitted
// with BPF_RB_FORCE_WAKEUP. Both sides store, fence, then load (our atomic
// store is an XCHG), so at least one sees the other: either ready finds the
// new record and we do not sleep, or the producer finds the flag and wakes
// us. No record is left waiting for a later one.
var _ ring = (*spsc)(nil)

type spsc struct {
	queues   []spscQueue
	slotSize uint64 // bytes per slot, header included
	perQueue uint64 // slots per queue
	next     int    // queue the next batch starts at, so none starves

	mems [][]byte // mappings to unmap on close
}

type spscQueue struct {
	head, tail *uint64
	slots      []byte // this queue's perQueue slots
	read       uint64 // next slot to read, as a count; head trails it until release
	readSlot   uint64 // read mod perQueue: where that slot is
	seenTail   uint64 // the tail as the consumer last read it
	released   uint64
}

// openSPSC maps the queue headers and slots read-write, and reads the n
// queues from first on (n < 0: to the last).
func openSPSC(queueMap, slotMap *ebpf.Map, perQueue, first, n int) (_ *spsc, err error) {
	for _, m := range []*ebpf.Map{queueMap, slotMap} {
		if m == nil || m.Type() != ebpf.Array || m.Flags()&unix.BPF_F_MMAPABLE == 0 {
			return nil, fmt.Errorf("spsc map %v is not a BPF_F_MMAPABLE array", m)
		}
	}
	if int(queueMap.ValueSize()) != spscQueueSize {
		return nil, fmt.Errorf("spsc queue headers are %d bytes, this consumer knows %d",
			queueMap.ValueSize(), spscQueueSize)
	}
	queues := int(queueMap.MaxEntries())
	if perQueue <= 0 || slotMap.MaxEntries() != uint32(queues*perQueue) {
		return nil, fmt.Errorf("spsc slots: %d slots for %d queues of %d", slotMap.MaxEntries(), queues, perQueue)
	}
	slotSize := (int(slotMap.ValueSize()) + 7) &^ 7 // array elements are 8-byte aligned
	if slotSize <= spscSlotHeader {
		return nil, fmt.Errorf("spsc slots of %d bytes hold no record", slotSize)
	}
	if n < 0 {
		n = queues - first
	}
	if first < 0 || n <= 0 || first+n > queues {
		return nil, fmt.Errorf("spsc queues %d to %d of %d", first, first+n-1, queues)
	}

	var mems [][]byte
	defer func() {
		if err != nil {
			for _, m := range mems {
				err = errors.Join(err, unix.Munmap(m))
			}
		}
	}()
	mapArray := func(m *ebpf.Map, size int) ([]byte, error) {
		page := os.Getpagesize()
		mem, err := unix.Mmap(m.FD(), 0, (size+page-1)/page*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return nil, fmt.Errorf("mmap %v: %w", m, err)
		}
		mems = append(mems, mem)
		return mem[:size], nil
	}
	queueMem, err := mapArray(queueMap, queues*spscQueueSize)
	if err != nil {
		return nil, err
	}
	slotMem, err := mapArray(slotMap, queues*perQueue*slotSize)
	if err != nil {
		return nil, err
	}
	span := perQueue * slotSize
	s := newSPSC(queueMem[first*spscQueueSize:(first+n)*spscQueueSize], slotMem[first*span:(first+n)*span],
		uint64(slotSize), uint64(perQueue))
	s.mems = mems
	return s, nil
}

// newSPSC reads queues laid out in memory the caller owns: queueMem holds
// the struct spsc_queue of every queue, slotMem their slots. Tests use it on
// plain Go memory, whose queueMem must be 8-byte aligned.
func newSPSC(queueMem, slotMem []byte, slotSize, perQueue uint64) *spsc {
	n := len(queueMem) / spscQueueSize
	s := &spsc{
		queues:   make([]spscQueue, n),
		slotSize: slotSize,
		perQueue: perQueue,
	}
	span := perQueue * slotSize
	for k := range s.queues {
		q := &s.queues[k]
		hdr := queueMem[k*spscQueueSize:]
		q.head = (*uint64)(unsafe.Pointer(&hdr[spscHeadOffset]))
		q.tail = (*uint64)(unsafe.Pointer(&hdr[spscTailOffset]))
		q.slots = slotMem[uint64(k)*span : uint64(k+1)*span]
		q.read = atomic.LoadUint64(q.head)
		q.readSlot = q.read % perQueue // the one division, at open
		q.seenTail = q.read
		q.released = q.read
	}
	return s
}

// fd is -1: the Consumer waits on the doorbell instead.
func (s *spsc) fd() int { return -1 }

// capacity is one queue's: a queue is what its producer fills.
func (s *spsc) capacity() uint64 { return s.perQueue * s.slotSize }

// lost is 0: a full queue is counted by its producer.
func (s *spsc) lost() uint64 { return 0 }

// pending is the bytes of slots written and not yet released, in all the
// queues.
func (s *spsc) pending() uint64 {
	var n uint64
	for k := range s.queues {
		q := &s.queues[k]
		n += atomic.LoadUint64(q.tail) - atomic.LoadUint64(q.head)
	}
	return n * s.slotSize
}

// produced is the slots ever written to every queue, in bytes.
func (s *spsc) produced() uint64 {
	var n uint64
	for k := range s.queues {
		n += atomic.LoadUint64(s.queues[k].tail)
	}
	return n * s.slotSize
}

// room is what the fullest queue may still take, in bytes.
func (s *spsc) room() uint64 {
	room := s.perQueue
	for k := range s.queues {
		q := &s.queues[k]
		room = min(room, s.perQueue-min(atomic.LoadUint64(q.tail)-atomic.LoadUint64(q.head), s.perQueue))
	}
	return room * s.slotSize
}

// units: an SPSC producer counts pending slots (tail - head).
func (s *spsc) units(bytes uint64) uint64 { return bytes / s.slotSize }

// nextBatch appends to b the records of the queues, starting with the queue
// after the one the last batch started with, up to maxRecords and a quarter
// of each queue.
func (s *spsc) nextBatch(b *batch, maxRecords int) error {
	limit := max(s.perQueue/4, 1)
	const hdr = uint64(spscSlotHeader)
	records, bytes := b.records, b.bytes
	for i := range s.queues {
		k := (s.next + i) % len(s.queues)
		q := &s.queues[k]
		if q.read == q.seenTail {
			// Acquire: pairs with the producer's fetch-and-add of tail,
			// after its slot stores (bpf/transport.h, submit).
			tail := atomic.LoadUint64(q.tail)
			// Head and tail are uint64 slot counts that wrap to 0 only
			// after 2^64 slots; like the producer (tail - head >= slots),
			// the walk compares them only by their difference, which is
			// right across a wrap too, never by < on the counts
			// themselves.
			if tail-q.read > s.perQueue {
				b.records, b.bytes = records, bytes
				return fmt.Errorf("spsc queue %d: tail %d is %d slots ahead of head %d in a %d-slot queue: %w",
					k, tail, tail-q.read, q.read, s.perQueue, ErrCorrupt)
			}
			q.seenTail = tail
		}
		// q.read steps by one up to end, so != ends the loop exactly, across
		// a wrap too.
		end := q.read + min(q.seenTail-q.read, limit)
		base := unsafe.Pointer(unsafe.SliceData(q.slots))
		for q.read != end && len(records) < maxRecords {
			at := q.readSlot * s.slotSize
			n := uint64(*(*uint32)(unsafe.Add(base, at)))
			if n > s.slotSize-hdr {
				b.records, b.bytes = records, bytes
				return fmt.Errorf("spsc queue %d: slot %d claims %d bytes, a slot holds %d: %w",
					k, q.read, n, s.slotSize-hdr, ErrCorrupt)
			}
			// In bounds: readSlot < perQueue and hdr+n <= slotSize.
			records = append(records, unsafe.Slice((*byte)(unsafe.Add(base, at+hdr)), n))
			bytes += n
			q.read++
			if q.readSlot++; q.readSlot == s.perQueue {
				q.readSlot = 0
			}
		}
		if len(records) >= maxRecords {
			break
		}
	}
	b.records, b.bytes = records, bytes
	// More is there behind a bound when a queue still holds records it has
	// seen: the caller reads on.
	for k := range s.queues {
		if q := &s.queues[k]; q.read != q.seenTail {
			b.full = true
			break
		}
	}
	s.next = (s.next + 1) % len(s.queues)
	return nil
}

// release stores the head of every queue read from since the last release:
// one store per queue per batch.
func (s *spsc) release() bool {
	released := false
	for k := range s.queues {
		q := &s.queues[k]
		if q.read != q.released {
			// Release: the slot reads are done before the producer may
			// see the slots free.
			atomic.StoreUint64(q.head, q.read)
			q.released = q.read
			released = true
		}
	}
	return released
}

// ready reports whether a queue holds a record not yet read.
func (s *spsc) ready() bool {
	for k := range s.queues {
		if atomic.LoadUint64(s.queues[k].tail) != s.queues[k].read {
			return true
		}
	}
	return false
}

func (s *spsc) close() error {
	var errs []error
	for _, m := range s.mems {
		errs = append(errs, unix.Munmap(m))
	}
	*s = spsc{}
	return errors.Join(errs...)
}
