package transport

import (
	"strconv"

	"github.com/cilium/ebpf"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/cpus"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// perfbuf is a perf buffer per online CPU, "cpuN", of the
// BPF_MAP_TYPE_PERF_EVENT_ARRAY "perf_events": for kernels before 5.8, or
// tools that already use perf buffers. The consumer opens each CPU's perf
// event and stores it in the array.
type perfbuf struct{ base }

func init() {
	register(abi.Perfbuf, func(b base) (Transport, error) { return &perfbuf{b}, nil })
}

// perfHeader is a sample's perf_event_header and raw-size word: the kernel
// pads header, size word and data together to 8 bytes.
const perfHeader = 12

// MaxRecord is bounded by perf's 16-bit record size, by the scratch buffer
// the programs build records in (struct perf_scratch), and by the buffer.
func (t *perfbuf) MaxRecord() int {
	return min(consumer.MaxPerfRecord, abi.PerfScratchSize, t.opts.RingSize-16)
}

// Fits: perf writes a sample only while it leaves at least one byte of the
// buffer free (kernel/events/ring_buffer.c: ring_buffer_has_space, with
// CIRC_SPACE), as a ring buffer does.
func (t *perfbuf) Fits(size int) int { return (t.opts.RingSize - 1) / ((perfHeader + size + 7) &^ 7) }

func (t *perfbuf) Plan(spec *ebpf.CollectionSpec, _ int) error {
	spec.Maps[abi.MapPerfEvents].MaxEntries = uint32(t.cpus)
	return t.planConsumers(spec, t.cpus) // a ring's id is its CPU
}

func (t *perfbuf) Bind(coll *ebpf.Collection) error {
	online, err := cpus.Online(t.cpus)
	if err != nil {
		return err
	}
	t.bindWake(coll)
	t.rings, t.ids = t.rings[:0], t.ids[:0]
	array := coll.Maps[abi.MapPerfEvents]
	for i, cpu := range online {
		t.rings = append(t.rings, consumer.PerfBuffer("cpu"+strconv.Itoa(cpu), array, cpu, t.opts.RingSize))
		t.ids = append(t.ids, cpu)
		t.ringOf[cpu] = i
	}
	return nil
}

func (t *perfbuf) Settings() abi.TransportConfig { return t.settings() }
