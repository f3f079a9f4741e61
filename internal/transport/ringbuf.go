package transport

import (
	"github.com/cilium/ebpf"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// ringbuf is one BPF_MAP_TYPE_RINGBUF, "events", shared by every CPU: the
// least memory, and records from all CPUs in one order. Its reservations
// take a spin lock, so CPUs producing at once contend for it.
type ringbuf struct{ base }

func init() {
	register(abi.Ringbuf, func(b base) (Transport, error) { return &ringbuf{b}, nil })
}

// MaxRecord: the kernel refuses a reservation larger than the ring minus
// the record's 8-byte header (kernel/bpf/ringbuf.c, __bpf_ringbuf_reserve).
func (t *ringbuf) MaxRecord() int    { return t.opts.RingSize - 8 }
func (t *ringbuf) Fits(size int) int { return ringbufSlots(t.opts.RingSize, size) }

// Plan: one ring, so one consumer, however many are asked for.
func (t *ringbuf) Plan(spec *ebpf.CollectionSpec, _ int) error {
	spec.Maps[abi.MapEvents].MaxEntries = uint32(t.opts.RingSize)
	return t.planConsumers(spec, 1)
}

func (t *ringbuf) Bind(coll *ebpf.Collection) error {
	t.bindWake(coll)
	t.rings = []consumer.Ring{consumer.RingBuffer(abi.MapEvents, coll.Maps[abi.MapEvents])}
	t.ids = []int{0}
	return nil
}

func (t *ringbuf) Settings() abi.TransportConfig { return t.settings() }
