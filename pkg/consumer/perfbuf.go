package consumer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"

	"golang.org/x/sys/unix"
)

// Perf record sizes (include/uapi/linux/perf_event.h): a record is a
// struct perf_event_header (u32 type, u16 misc, u16 size), whose size unix
// lacks (TestPerfHeaderSize pins it against the kernel's BTF), then its
// body. A PERF_RECORD_SAMPLE with PERF_SAMPLE_RAW only is
// { header; u32 size; u8 data[size]; }, a PERF_RECORD_LOST
// { header; u64 id; u64 lost; }.
const (
	perfHeaderSize = 8
	perfRawOffset  = perfHeaderSize + 4
	perfLostOffset = perfHeaderSize + 8
	// perfMaxRecord bounds a perf record: perf_event_header.size is a u16.
	perfMaxRecord = 1<<16 - 1
)

// MaxPerfRecord is the largest record a perf buffer carries: a perf record,
// header and raw-size word included, must fit perf_event_header's 16-bit
// size, and the kernel pads the raw data to 8 bytes.
const MaxPerfRecord = (perfMaxRecord &^ 7) - perfRawOffset

// PerfBuffer is the perf buffer of one CPU of a
// BPF_MAP_TYPE_PERF_EVENT_ARRAY, named name, of size data bytes (a
// power-of-two multiple of the page size). [Open] creates the CPU's
// PERF_COUNT_SW_BPF_OUTPUT event, maps its buffer, and stores it in array
// at index cpu, where bpf_perf_event_output(..., BPF_F_CURRENT_CPU, ...) on
// that CPU finds it; Close takes it out again.
func PerfBuffer(name string, array *ebpf.Map, cpu, size int) Ring {
	return Ring{Name: name, m: array, open: func(mode Wakeup) (ring, error) { return openPerfbuf(array, cpu, size, mode) }}
}

// perfbuf reads one CPU's perf buffer of a BPF_MAP_TYPE_PERF_EVENT_ARRAY.
//
// Its memory (include/uapi/linux/perf_event.h, struct perf_event_mmap_page):
// a metadata page, whose data_head the kernel advances and whose data_tail
// we advance, then data_size bytes of records. Unlike a BPF ring buffer the
// data is mapped once, so a record that runs past the end continues at the
// start: such a record, at most one per batch since a batch spans at most a
// quarter of the buffer, is copied into scratch to be handed out whole.
//
// A BPF program's bpf_perf_event_output becomes a PERF_RECORD_SAMPLE whose
// raw data is the record, padded by the kernel so that the perf record is a
// multiple of 8 bytes: the slices handed out may be up to 7 bytes longer
// than what the program wrote. When the buffer is full the kernel drops the
// sample, returns -ENOSPC to the program, and later writes a
// PERF_RECORD_LOST with how many it dropped; lost counts those.
var _ ring = (*perfbuf)(nil)

type perfbuf struct {
	meta *unix.PerfEventMmapPage
	data []byte
	mask uint64

	tail     uint64 // next record to read
	released uint64 // what data_tail says
	scratch  []byte
	dropped  atomic.Uint64 // from PERF_RECORD_LOST

	eventFD int
	mem     []byte // nil for a buffer over plain memory
	array   *ebpf.Map
	cpu     int
}

// openPerfbuf opens a BPF output perf event on cpu, maps its buffer of size
// data bytes, and stores it in array at index cpu, where
// bpf_perf_event_output(..., BPF_F_CURRENT_CPU, ...) on that CPU finds it.
func openPerfbuf(array *ebpf.Map, cpu, size int, mode Wakeup) (_ *perfbuf, err error) {
	if array == nil || array.Type() != ebpf.PerfEventArray {
		return nil, fmt.Errorf("map %v is not a PerfEventArray", array)
	}
	page := os.Getpagesize()
	if size <= 0 || size%page != 0 || size&(size-1) != 0 {
		return nil, fmt.Errorf("perf buffer size %d is not a power-of-two multiple of the page size %d", size, page)
	}
	attr := unix.PerfEventAttr{
		Type:        unix.PERF_TYPE_SOFTWARE,
		Config:      unix.PERF_COUNT_SW_BPF_OUTPUT,
		Sample_type: unix.PERF_SAMPLE_RAW,
		// Wake the consumer for every sample, as cilium/ebpf's perf.Reader
		// does by default: a larger batch would leave a quiet source's
		// records waiting until the batch filled.
		Wakeup: 1,
	}
	if mode == WakeupAdaptive || mode == WakeupBusy {
		// The producers ring the doorbell of a consumer asleep for the
		// next record, and a lazy sleeper wakes itself (or a busy one
		// never sleeps): perf need only wake it with half the buffer
		// full (wakeup_watermark, in bytes), instead of paying a wakeup
		// (an irq_work) for every sample.
		attr.Bits |= unix.PerfBitWatermark
		attr.Wakeup = uint32(size / 2)
	}
	attr.Size = uint32(unsafe.Sizeof(attr))
	fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("open BPF output perf event on CPU %d: %w", cpu, err)
	}
	p := &perfbuf{eventFD: fd, array: array, cpu: cpu}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.close())
		}
	}()
	p.mem, err = unix.Mmap(fd, 0, page+size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap perf buffer of CPU %d: %w", cpu, err)
	}
	meta := (*unix.PerfEventMmapPage)(unsafe.Pointer(&p.mem[0]))
	if meta.Data_offset != uint64(page) || meta.Data_size != uint64(size) {
		return nil, fmt.Errorf("perf buffer of CPU %d has data at %d, %d bytes; want %d, %d",
			cpu, meta.Data_offset, meta.Data_size, page, size)
	}
	p.init(meta, p.mem[page:])
	if err := array.Put(uint32(cpu), uint32(fd)); err != nil {
		return nil, fmt.Errorf("store the perf event of CPU %d in %v: %w", cpu, array, err)
	}
	return p, nil
}

// init reads a perf buffer laid out in memory the caller owns. Tests use it
// on plain Go memory.
func (p *perfbuf) init(meta *unix.PerfEventMmapPage, data []byte) {
	p.meta = meta
	p.data = data
	p.mask = uint64(len(data) - 1)
	p.tail = atomic.LoadUint64(&meta.Data_tail)
	p.released = p.tail
	p.scratch = make([]byte, 0, perfMaxRecord)
}

func (p *perfbuf) fd() int          { return p.eventFD }
func (p *perfbuf) capacity() uint64 { return p.mask + 1 }
func (p *perfbuf) lost() uint64     { return p.dropped.Load() }
func (p *perfbuf) ready() bool      { return atomic.LoadUint64(&p.meta.Data_head) != p.tail }

func (p *perfbuf) produced() uint64 { return atomic.LoadUint64(&p.meta.Data_head) }
func (p *perfbuf) room() uint64     { return p.capacity() - min(p.pending(), p.capacity()) }

// units: a perf buffer's producers do not look at pending; bytes serve.
func (p *perfbuf) units(bytes uint64) uint64 { return bytes }

func (p *perfbuf) pending() uint64 {
	return atomic.LoadUint64(&p.meta.Data_head) - atomic.LoadUint64(&p.meta.Data_tail)
}

// at returns n bytes at position pos, contiguous: a view of the buffer, or
// a copy appended to scratch when they wrap past its end.
func (p *perfbuf) at(pos, n uint64) []byte {
	off := pos & p.mask
	if off+n <= uint64(len(p.data)) {
		return p.data[off : off+n : off+n]
	}
	first := uint64(len(p.data)) - off
	start := len(p.scratch)
	p.scratch = append(p.scratch, p.data[off:]...)
	p.scratch = append(p.scratch, p.data[:n-first]...)
	return p.scratch[start : start+int(n) : start+int(n)]
}

// nextBatch appends the samples after the read position to b, up to
// maxRecords and about a quarter of the buffer, and counts lost-sample
// records. Nothing is handed back to the kernel until release.
func (p *perfbuf) nextBatch(b *batch, maxRecords int) error {
	// Acquire: pairs with the kernel's smp_store_release of data_head in
	// perf_output_put_handle, so the records before it are visible.
	head := atomic.LoadUint64(&p.meta.Data_head)
	tail := p.tail
	// data_head and data_tail are uint64 and wrap to 0 only after 2^64
	// bytes; as in the kernel (kernel/events/ring_buffer.c:
	// ring_buffer_has_space, CIRC_SPACE of head and tail), they are
	// compared only by their difference, which is right across a wrap too,
	// never by < on the positions themselves.
	if head-tail > p.capacity() {
		return fmt.Errorf("perf data_head %d is %d bytes ahead of data_tail %d in a %d-byte buffer: %w",
			head, head-tail, tail, p.capacity(), ErrCorrupt)
	}
	// end-tail is the distance left: it stays within a ring's size of 0
	// (below it once a record ends past end), so its sign is right across
	// a wrap too.
	end := tail + min(head-tail, p.capacity()/4)
	// The records between tail and head span at most the whole buffer, so
	// they cross its end at most once: scratch holds at most one record
	// and its header pieces, within its capacity.
	p.scratch = p.scratch[:0]
	var hdr [perfHeaderSize]byte
	for int64(end-tail) > 0 && len(b.records) < maxRecords {
		// The header may itself wrap; copy it out.
		copy(hdr[:], p.at(tail, perfHeaderSize))
		typ := binary.LittleEndian.Uint32(hdr[0:])
		size := uint64(binary.LittleEndian.Uint16(hdr[6:]))
		if size < perfHeaderSize || size > head-tail {
			p.tail = tail
			return fmt.Errorf("perf record at %d claims %d bytes, %d are produced: %w",
				tail, size, head-tail, ErrCorrupt)
		}
		switch typ {
		case unix.PERF_RECORD_SAMPLE:
			if size < perfRawOffset {
				p.tail = tail
				return fmt.Errorf("perf sample at %d is %d bytes, too short for its raw size: %w", tail, size, ErrCorrupt)
			}
			var raw [4]byte
			copy(raw[:], p.at(tail+perfHeaderSize, 4))
			n := uint64(binary.LittleEndian.Uint32(raw[:]))
			if perfRawOffset+n > size {
				p.tail = tail
				return fmt.Errorf("perf sample at %d claims %d raw bytes in a %d-byte record: %w", tail, n, size, ErrCorrupt)
			}
			b.records = append(b.records, p.at(tail+perfRawOffset, n))
			b.bytes += n
		case unix.PERF_RECORD_LOST:
			if size >= perfLostOffset+8 {
				var n [8]byte
				copy(n[:], p.at(tail+perfLostOffset, 8))
				p.dropped.Add(binary.LittleEndian.Uint64(n[:]))
			}
		default:
			// A BPF output event writes nothing else; skip what we do
			// not know, as perf's own tools do.
		}
		tail += size
	}
	p.tail = tail
	b.full = head != tail && (len(b.records) >= maxRecords || int64(end-tail) <= 0)
	return nil
}

// release hands the space of every record read so far back to the kernel
// with one store of data_tail, and reports whether there was any.
func (p *perfbuf) release() bool {
	if p.tail == p.released {
		return false
	}
	// On amd64 an XCHG: the full barrier perf's protocol asks for between
	// reading the records and moving data_tail (perf_event.h: "smp_mb()
	// ... then write data_tail").
	atomic.StoreUint64(&p.meta.Data_tail, p.tail)
	p.released = p.tail
	return true
}

// close takes the perf event out of the array, unmaps the buffer and closes
// the event. The array belongs to the caller.
func (p *perfbuf) close() error {
	var errs []error
	if p.array != nil && p.eventFD >= 0 {
		// The array keeps the event alive until its entry goes; a closed
		// array has already dropped it.
		if err := p.array.Delete(uint32(p.cpu)); err != nil &&
			!errors.Is(err, ebpf.ErrKeyNotExist) && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, fmt.Errorf("remove the perf event of CPU %d: %w", p.cpu, err))
		}
	}
	if p.mem != nil {
		errs = append(errs, unix.Munmap(p.mem))
	}
	if p.eventFD >= 0 {
		errs = append(errs, unix.Close(p.eventFD))
	}
	*p = perfbuf{eventFD: -1}
	return errors.Join(errs...)
}
