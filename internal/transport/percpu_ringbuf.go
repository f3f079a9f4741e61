package transport

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/cilium/ebpf"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// percpuRingbuf is a BPF_MAP_TYPE_RINGBUF per CPU, or per CPUsPerRing
// CPUs, in the BPF_MAP_TYPE_ARRAY_OF_MAPS "percpu_events": no lock shared
// between CPUs, and one busy CPU filling its ring does not make the others
// lose. CPU k writes to ring k / CPUsPerRing.
type percpuRingbuf struct {
	base
	perRing int
	inner   []*ebpf.Map // the rings, created by Plan, closed by Close
}

func init() {
	register(abi.PercpuRingbuf, func(b base) (Transport, error) {
		return &percpuRingbuf{base: b, perRing: max(b.opts.CPUsPerRing, 1)}, nil
	})
}

func (t *percpuRingbuf) MaxRecord() int    { return t.opts.RingSize - 8 }
func (t *percpuRingbuf) Fits(size int) int { return ringbufSlots(t.opts.RingSize, size) }

// Plan creates the rings and puts them in the array of maps the programs
// look them up in.
func (t *percpuRingbuf) Plan(spec *ebpf.CollectionSpec, _ int) error {
	n := (t.cpus + t.perRing - 1) / t.perRing
	outer := spec.Maps[abi.MapPercpuEvents]
	outer.MaxEntries = uint32(n)
	outer.InnerMap.MaxEntries = uint32(t.opts.RingSize)
	for i := range n {
		m, err := ebpf.NewMap(outer.InnerMap)
		if err != nil {
			return fmt.Errorf("create ring buffer %d of %d: %w", i, n, err)
		}
		t.inner = append(t.inner, m)
		outer.Contents = append(outer.Contents, ebpf.MapKV{Key: uint32(i), Value: m})
	}
	for cpu := range t.ringOf {
		t.ringOf[cpu] = cpu / t.perRing
	}
	return t.planConsumers(spec, n)
}

func (t *percpuRingbuf) Bind(coll *ebpf.Collection) error {
	t.bindWake(coll)
	t.rings, t.ids = t.rings[:0], t.ids[:0]
	for i, m := range t.inner {
		name := "cpu" + strconv.Itoa(i)
		if last := min((i+1)*t.perRing, t.cpus) - 1; last > i*t.perRing {
			name = fmt.Sprintf("cpus%d-%d", i*t.perRing, last)
		}
		t.rings = append(t.rings, consumer.RingBuffer(name, m))
		t.ids = append(t.ids, i)
	}
	return nil
}

func (t *percpuRingbuf) Settings() abi.TransportConfig {
	s := t.settings()
	s.CpusPerRing = uint32(t.perRing)
	return s
}

func (t *percpuRingbuf) Close() error {
	errs := []error{t.base.Close()}
	for _, m := range t.inner {
		errs = append(errs, m.Close())
	}
	t.inner = nil
	return errors.Join(errs...)
}
