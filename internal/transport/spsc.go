package transport

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// spsc is a single-producer single-consumer queue per possible CPU in the
// BPF_F_MMAPABLE arrays "spsc_queues" and "spsc_slots", read as one ring
// "spsc" and woken through the doorbell: the lowest producer cost per
// record. Slots are sized for the chosen sources' largest record, and a
// queue holds as many of them as fit the ring size.
type spsc struct {
	base
	slotSize, slotsPerQueue int
}

func init() {
	register(abi.SPSC, func(b base) (Transport, error) { return &spsc{base: b}, nil })
}

// maxSPSCSlot bounds a slot, and so the largest record.
const maxSPSCSlot = 64 << 10

func (t *spsc) MaxRecord() int { return maxSPSCSlot - abi.SPSCSlotHeader }

func slotSize(record int) int { return (abi.SPSCSlotHeader + record + 7) &^ 7 }

// slotsIn is how many slots fit in ringSize bytes: a queue uses all the
// memory it is given, whatever the slot size (the producer and the
// consumer wrap their slot index with a compare, not a mask).
func slotsIn(ringSize, slot int) int { return ringSize / slot }

func (t *spsc) Fits(size int) int { return slotsIn(t.opts.RingSize, slotSize(size)) }

func (t *spsc) Plan(spec *ebpf.CollectionSpec, recordSize int) error {
	t.slotSize = slotSize(recordSize)
	t.slotsPerQueue = slotsIn(t.opts.RingSize, t.slotSize)
	if t.slotsPerQueue < 2 {
		return abi.Problemf(abi.ErrInvalidOption, "a %s spsc queue holds fewer than 2 slots of %d bytes: choose a larger ring size",
			abi.FormatSize(t.opts.RingSize), t.slotSize)
	}
	if uint64(t.cpus)*uint64(t.slotsPerQueue) > 1<<31 {
		return abi.Problemf(abi.ErrInvalidOption, "%d CPUs * %d slots is too many array entries: choose a smaller ring size",
			t.cpus, t.slotsPerQueue)
	}
	spec.Maps[abi.MapSPSCQueues].MaxEntries = uint32(t.cpus)
	slots := spec.Maps[abi.MapSPSCSlots]
	slots.MaxEntries = uint32(t.cpus * t.slotsPerQueue)
	slots.ValueSize = uint32(t.slotSize)
	return t.planConsumers(spec, t.cpus) // a queue's id is its CPU
}

// Bind: the queues of each consumer's CPUs are one ring, "spsc" when one
// consumer reads them all, "spsc-cpusA-B" when several share them.
func (t *spsc) Bind(coll *ebpf.Collection) error {
	t.bindWake(coll)
	t.rings, t.ids = t.rings[:0], t.ids[:0]
	per := 1 << t.shift
	for first := 0; first < t.cpus; first += per {
		n := min(per, t.cpus-first)
		name := "spsc"
		if t.consumers > 1 {
			name = fmt.Sprintf("spsc-cpus%d-%d", first, first+n-1)
		}
		t.rings = append(t.rings, consumer.SPSCQueueRange(name,
			coll.Maps[abi.MapSPSCQueues], coll.Maps[abi.MapSPSCSlots], t.slotsPerQueue, first, n))
		t.ids = append(t.ids, first)
		for cpu := first; cpu < first+n; cpu++ {
			t.ringOf[cpu] = len(t.rings) - 1
		}
	}
	return nil
}

// Settings: the slots of each queue.
func (t *spsc) Settings() abi.TransportConfig {
	s := t.settings()
	s.SpscSlots = uint32(t.slotsPerQueue)
	return s
}
