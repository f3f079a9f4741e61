package loader

import (
	"fmt"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// transport is what the loader needs to know of one way records travel.
type transport struct {
	name consumer.Transport
	// suffix ends the names of the transport's programs: every source has
	// one program per transport, <source program>_<suffix>.
	suffix string
	// maxRecord is the largest record the transport carries with rings of
	// ringSize bytes. (What each guarantees about record order is in
	// README.md, "Transports".)
	maxRecord func(ringSize int) int
}

var transports = []transport{
	{
		name:   consumer.Ringbuf,
		suffix: "ringbuf",
		// The kernel refuses a reservation larger than the ring minus the
		// record's 8-byte header (kernel/bpf/ringbuf.c, __bpf_ringbuf_reserve).
		maxRecord: func(ringSize int) int { return ringSize - 8 },
	},
	{
		name:      consumer.PercpuRingbuf,
		suffix:    "percpu_ringbuf",
		maxRecord: func(ringSize int) int { return ringSize - 8 },
	},
	{
		name:   consumer.Perfbuf,
		suffix: "perfbuf",
		// Also bounded by the scratch buffer the programs build records in
		// (PERF_SCRATCH_SIZE in bpf/ringwatch.c), and by the buffer.
		maxRecord: func(ringSize int) int { return min(consumer.MaxPerfRecord, perfScratchSize, ringSize-16) },
	},
	{
		name:   consumer.SPSC,
		suffix: "spsc",
		// Slots are sized for the chosen sources' largest record.
		maxRecord: func(int) int { return maxSPSCSlot - spscSlotHeader },
	},
}

const (
	perfScratchSize = 4096                                           // PERF_SCRATCH_SIZE
	spscSlotHeader  = int(unsafe.Offsetof(ringwatchSpscSlot{}.Data)) // the record starts at data
	maxSPSCSlot     = 64 << 10
)

// TransportNames lists every transport, default first.
func TransportNames() []string {
	names := make([]string, len(transports))
	for i, t := range transports {
		names[i] = string(t.name)
	}
	return names
}

func lookupTransport(name consumer.Transport) (transport, error) {
	if name == "" {
		name = consumer.Ringbuf
	}
	for _, t := range transports {
		if t.name == name {
			return t, nil
		}
	}
	return transport{}, problemf(ErrInvalidOption, "unknown transport %q: choose from %s",
		name, strings.Join(TransportNames(), ", "))
}

// layout is how many rings a transport has and which CPU writes to which.
type layout struct {
	rings  []consumer.Ring
	ringOf []int // by CPU: index into rings
	// spsc
	slotSize, slotsPerQueue int
}

// plan sizes the transport's maps in spec for this machine and returns the
// rings to read, without their maps, which exist only once loaded.
func plan(t transport, spec *ebpf.CollectionSpec, opts Options, recordSize int) (layout, error) {
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return layout{}, fmt.Errorf("count possible CPUs: %w", err)
	}
	l := layout{ringOf: make([]int, cpus)}
	switch t.name {
	case consumer.Ringbuf:
		spec.Maps[ringwatchMapEvents].MaxEntries = uint32(opts.RingSize)
		l.rings = []consumer.Ring{{Name: ringwatchMapEvents, Transport: t.name}}

	case consumer.PercpuRingbuf:
		per := max(opts.CPUsPerRing, 1)
		n := (cpus + per - 1) / per
		outer := spec.Maps[ringwatchMapPercpuEvents]
		outer.MaxEntries = uint32(n)
		outer.InnerMap.MaxEntries = uint32(opts.RingSize)
		for i := range n {
			name := "cpu" + strconv.Itoa(i)
			if last := min((i+1)*per, cpus) - 1; last > i*per {
				name = fmt.Sprintf("cpus%d-%d", i*per, last)
			}
			l.rings = append(l.rings, consumer.Ring{Name: name, Transport: t.name})
		}
		for cpu := range l.ringOf {
			l.ringOf[cpu] = cpu / per
		}

	case consumer.Perfbuf:
		online, err := onlineCPUs(cpus)
		if err != nil {
			return layout{}, err
		}
		spec.Maps[ringwatchMapPerfEvents].MaxEntries = uint32(cpus)
		for i, cpu := range online {
			l.rings = append(l.rings, consumer.Ring{
				Name: "cpu" + strconv.Itoa(cpu), Transport: t.name, CPU: cpu, PerfSize: opts.RingSize})
			l.ringOf[cpu] = i
		}

	case consumer.SPSC:
		l.slotSize = (spscSlotHeader + recordSize + 7) &^ 7
		perQueue := opts.RingSize / l.slotSize
		if perQueue < 2 {
			return layout{}, problemf(ErrInvalidOption, "a %s spsc queue holds fewer than 2 slots of %d bytes: choose a larger ring size",
				FormatSize(opts.RingSize), l.slotSize)
		}
		l.slotsPerQueue = 1 << (bits.Len(uint(perQueue)) - 1) // a power of two, at most the ring size
		if uint64(cpus)*uint64(l.slotsPerQueue) > 1<<31 {
			return layout{}, problemf(ErrInvalidOption, "%d CPUs * %d slots is too many array entries: choose a smaller ring size",
				cpus, l.slotsPerQueue)
		}
		spec.Maps[ringwatchMapSpscQueues].MaxEntries = uint32(cpus)
		slots := spec.Maps[ringwatchMapSpscSlots]
		slots.MaxEntries = uint32(cpus * l.slotsPerQueue)
		slots.ValueSize = uint32(l.slotSize)
		l.rings = []consumer.Ring{{Name: "spsc", Transport: t.name, SPSCSlots: l.slotsPerQueue}}
	}
	return l, nil
}

// attachMaps fills in the loaded maps of the rings l planned.
func (l *layout) attachMaps(coll *ebpf.Collection, inner []*ebpf.Map) {
	for i := range l.rings {
		r := &l.rings[i]
		switch r.Transport {
		case consumer.Ringbuf:
			r.Map = coll.Maps[ringwatchMapEvents]
		case consumer.PercpuRingbuf:
			r.Map = inner[i]
		case consumer.Perfbuf:
			r.Map = coll.Maps[ringwatchMapPerfEvents]
		case consumer.SPSC:
			r.Queues = coll.Maps[ringwatchMapSpscQueues]
			r.Slots = coll.Maps[ringwatchMapSpscSlots]
		}
	}
}

// onlineCPUs reads which of cpus possible CPUs are online: a perf event
// cannot be opened on an offline one.
func onlineCPUs(cpus int) ([]int, error) {
	raw, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, fmt.Errorf("read online CPUs: %w", err)
	}
	online, err := parseCPUList(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("read online CPUs: %w", err)
	}
	kept := online[:0]
	for _, cpu := range online {
		if cpu < cpus {
			kept = append(kept, cpu)
		}
	}
	return kept, nil
}

// parseCPUList parses the kernel's CPU list format, such as "0-3,8,10-11".
func parseCPUList(s string) ([]int, error) {
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		if err != nil || first < 0 {
			return nil, fmt.Errorf("bad CPU list %q", s)
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil || last < first {
				return nil, fmt.Errorf("bad CPU list %q", s)
			}
		}
		for cpu := first; cpu <= last; cpu++ {
			cpus = append(cpus, cpu)
		}
	}
	return cpus, nil
}

// pruneMaps drops from spec every map no remaining program uses, so that
// only the chosen transport's maps are created.
func pruneMaps(spec *ebpf.CollectionSpec) {
	used := make(map[string]bool)
	for _, p := range spec.Programs {
		for _, ins := range p.Instructions {
			if ref := ins.Reference(); ref != "" {
				used[ref] = true
			}
		}
	}
	for name := range spec.Maps {
		if !used[name] {
			delete(spec.Maps, name)
		}
	}
}
