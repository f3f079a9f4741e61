package consumer

import (
	"errors"

	"github.com/cilium/ebpf"
)

// ErrCorrupt is wrapped by errors about ring contents that break the
// kernel's ring contract, such as a record longer than what was produced. A
// corrupt ring cannot be read further: the position of the next record is
// unknown.
var ErrCorrupt = errors.New("corrupt ring")

// A Ring is one kernel-to-user ring for [Open]: a name and how to map it.
// Make one with [RingBuffer], [PerfBuffer] or [SPSCQueues]. The maps it
// names must stay open until the Consumer is closed; the Consumer does not
// close them.
type Ring struct {
	// Name is for errors, and for whoever labels the ring's stats.
	Name string
	m    *ebpf.Map // the ring buffer, or the perf event array
	// open maps the ring for a consumer whose producers wake it in mode.
	open func(mode Wakeup) (ring, error)
	// doorbell: woken through [Config.Doorbell], not its own descriptor.
	doorbell bool
}

// Map is the map r reads: the BPF_MAP_TYPE_RINGBUF of a [RingBuffer], the
// BPF_MAP_TYPE_PERF_EVENT_ARRAY of a [PerfBuffer], the queue headers of
// [SPSCQueues]. Another reader of the same map uses it.
func (r Ring) Map() *ebpf.Map { return r.m }

// ring is what the consumer needs of one kernel-to-user ring: the walk from
// the read position to the write position, over memory it has mapped. Each
// walk sees only memory and positions, so it is tested on plain Go memory.
type ring interface {
	// fd is what epoll waits on for the ring's records; -1 for a ring
	// woken through the doorbell.
	fd() int
	// nextBatch appends records after the read position to b, at most
	// maxRecords, and moves the read position past them. It sets b.full
	// when it stopped at a bound (maxRecords, or its share of the ring)
	// with more records committed behind: the caller then reads on, and
	// otherwise leaves what comes later for its next pass.
	nextBatch(b *batch, maxRecords int) error
	// release gives the space of every record read so far back to the
	// producers, and reports whether there was any.
	release() bool
	// ready reports whether a record can be read now. It is the look the
	// consumer takes after raising its sleep flag: see sleeper.prepare.
	ready() bool
	pending() uint64
	capacity() uint64
	// produced is the producer position in bytes, headers and padding
	// included: a counter that only grows, for the fill rate.
	produced() uint64
	// room is the bytes its producers may still write before a queue of
	// the ring is full: capacity less pending, of the fullest queue.
	room() uint64
	// units converts bytes of the ring into the unit its producers count
	// pending in for the doorbell's watermark (bytes, or SPSC slots).
	units(bytes uint64) uint64
	// lost counts records the kernel itself reported lost on the ring.
	lost() uint64
	close() error
}

// A Batch is a run of records from one ring, handed to the callback of
// [Consumer.Read] or [Consumer.Drain].
type Batch struct {
	// Ring is the index of the ring, in the order given to [Open].
	Ring int
	// Records are the records' payloads, in ring order, without the ring's
	// own headers. They alias the ring's memory, without a copy: they are
	// valid only until the callback returns, when their space goes back to
	// the producer. Copy what must outlive the callback.
	Records [][]byte
	// Bytes is the sum of the records' lengths, so that a caller who counts
	// bytes need not walk the records for it.
	Bytes uint64
	// ReadTime is CLOCK_MONOTONIC in nanoseconds, the clock of
	// bpf_ktime_get_ns(), taken after the batch was read from the ring:
	// every record in it was reserved by its producer before ReadTime.
	ReadTime int64
}

// batch is the reusable buffer behind [Batch].
type batch struct {
	records   [][]byte
	bytes     uint64
	discarded uint64
	full      bool // stopped at a bound, with more committed behind
}

// reset empties b for the next batch, keeping its memory.
func (b *batch) reset() { b.records, b.bytes, b.discarded, b.full = b.records[:0], 0, 0, false }
