package transport

import (
	"errors"
	"fmt"
	"math/bits"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// DefaultRingSize is the size of each ring when Options.RingSize is 0.
const DefaultRingSize = 4 << 20

// Options size a transport's rings.
type Options struct {
	// RingSize is the data size in bytes of each ring: the ring buffer,
	// each per-CPU ring buffer, each CPU's perf buffer, or each CPU's SPSC
	// queue (which holds as many slots as fit). A
	// power-of-two multiple of the page size; 0 means DefaultRingSize.
	RingSize int
	// CPUsPerRing groups CPUs onto one ring of the percpu-ringbuf
	// transport; 0 means 1, a ring per CPU.
	CPUsPerRing int
	// Consumers is how many consumers read the rings, each its own
	// contiguous range of them; 0 means 1, and AutoConsumers one per
	// RingsPerConsumer rings. Each consumer reads a power of two of rings,
	// so the count is rounded to what that allows (16 rings and 3
	// consumers: 2 consumers of 8), and there are never more consumers
	// than rings: the shared ringbuf has one.
	Consumers int
}

// AutoConsumers, as Options.Consumers, scales the consumers with the
// rings: one per RingsPerConsumer.
const AutoConsumers = -1

// RingsPerConsumer is how many rings one consumer reads by default. One
// consumer thread drains some 27 M records/s (measured on a 16-CPU machine
// with the syscalls source), and one CPU in a tight system call loop
// writes about 3.7 M/s into its ring: 4 such CPUs per consumer leave it
// half idle at their full speed, and a consumer costs nothing while its
// rings are quiet, since it sleeps.
const RingsPerConsumer = 4

// A Transport is one way records travel, sized for this machine. New makes
// one for one load of the producers: Plan, then Bind, then Rings and
// ReaderConfig; Close frees what it created. Its methods are not safe for
// concurrent use while it is being planned and bound.
type Transport interface {
	// Name is the transport's name, one of abi.Transports.
	Name() abi.TransportName
	// RingSize is the data size of each ring in bytes.
	RingSize() int
	// MaxRecord is the largest record the transport carries.
	MaxRecord() int
	// Fits is how many records of size bytes one ring holds.
	Fits(size int) int
	// Plan sizes the transport's maps in spec, the producers' object, for
	// records of up to recordSize bytes, and creates what the maps hold.
	Plan(spec *ebpf.CollectionSpec, recordSize int) error
	// Bind takes the transport's maps from coll, loaded from the planned
	// spec; they stay coll's.
	Bind(coll *ebpf.Collection) error
	// Settings are the transport's fields of the producers' settings.
	Settings() abi.TransportConfig
	// Rings are the rings to read, once bound, in ring order.
	Rings() []consumer.Ring
	// RingOf is the index in Rings of the ring CPU cpu writes to.
	RingOf(cpu int) int
	// Consumers is how many consumers read the rings, once planned.
	Consumers() int
	// ReaderConfigs are how each consumer reads its rings, whose
	// producers were loaded with wakeup ("" being adaptive, as for the
	// loader): one per consumer, in ring order, each with its own wake
	// state and doorbell.
	ReaderConfigs(wakeup consumer.Wakeup, maxDelay time.Duration) []consumer.Config
	// ReaderConfig is ReaderConfigs' first: all the rings, for a
	// transport planned for one consumer.
	ReaderConfig(wakeup consumer.Wakeup, maxDelay time.Duration) consumer.Config
	// Close frees what Plan created. It is idempotent.
	Close() error
}

// constructors holds each transport's constructor, registered by its file.
var constructors = map[abi.TransportName]func(base) (Transport, error){}

func register(name abi.TransportName, newT func(base) (Transport, error)) { constructors[name] = newT }

// ParseName checks a transport's name; "" is abi.Ringbuf, the default. An
// unknown name is an error wrapping abi.ErrInvalidOption that lists them.
func ParseName(name string) (abi.TransportName, error) {
	if name == "" {
		return abi.Ringbuf, nil
	}
	if _, ok := constructors[abi.TransportName(name)]; !ok {
		return "", abi.Choose("transport", name, abi.Transports())
	}
	return abi.TransportName(name), nil
}

// CheckOptions checks opts for the named transport. Its errors wrap
// abi.ErrInvalidOption and say what to choose; one about a field of opts
// is an *abi.OptionError that names it as Options does (Consumers,
// CPUsPerRing, and Transport for name), so a command can name its flags.
func CheckOptions(name abi.TransportName, opts Options) error {
	if opts.RingSize != 0 {
		if err := abi.CheckRingSize(opts.RingSize); err != nil {
			return err
		}
	}
	if opts.Consumers < AutoConsumers {
		return abi.RefuseOption(abi.ErrInvalidOption, "Consumers", opts.Consumers,
			"{Consumers} %d: give 1 or more, or 0 for one per %d rings", opts.Consumers, RingsPerConsumer)
	}
	if opts.CPUsPerRing < 0 {
		return abi.RefuseOption(abi.ErrInvalidOption, "CPUsPerRing", opts.CPUsPerRing,
			"{CPUsPerRing} %d: give 1 or more", opts.CPUsPerRing)
	}
	if opts.CPUsPerRing > 1 && name != abi.PercpuRingbuf {
		return abi.RefuseOption(abi.ErrInvalidOption, "CPUsPerRing", opts.CPUsPerRing,
			"{CPUsPerRing} %d applies only to {Transport} %s", opts.CPUsPerRing, abi.PercpuRingbuf)
	}
	return nil
}

// New checks opts and makes the named transport, "" being abi.Ringbuf. An
// error wraps abi.ErrInvalidOption for a name or size out of range, and
// says what to choose.
func New(name abi.TransportName, opts Options) (Transport, error) {
	name, err := ParseName(string(name))
	if err != nil {
		return nil, err
	}
	if err := CheckOptions(name, opts); err != nil {
		return nil, err
	}
	if opts.RingSize == 0 {
		opts.RingSize = DefaultRingSize
	}
	newT := constructors[name]
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("count possible CPUs: %w", err)
	}
	return newT(base{name: name, opts: opts, cpus: cpus, ringOf: make([]int, cpus)})
}

// base is what every transport has: its name and options, the machine's
// possible CPUs, which ring each writes to, which consumer reads which
// ring, and the sleep handshake's maps.
type base struct {
	name   abi.TransportName
	opts   Options
	cpus   int
	ringOf []int // by CPU: index into rings
	rings  []consumer.Ring
	// ids are the rings' indexes as the producers know them (see
	// transport_config.consumer_shift), parallel to rings and ascending.
	ids []int
	// Consumer k reads the rings whose id >> shift is k.
	shift     uint
	consumers int
	doorbells []*ebpf.Map // one per consumer, created by Plan
	state     *ebpf.Map
}

func (b *base) Name() abi.TransportName { return b.name }
func (b *base) RingSize() int           { return b.opts.RingSize }
func (b *base) Rings() []consumer.Ring  { return b.rings }
func (b *base) Consumers() int          { return b.consumers }

func (b *base) RingOf(cpu int) int {
	if cpu < 0 || cpu >= len(b.ringOf) {
		return 0
	}
	return b.ringOf[cpu]
}

// planConsumers divides ids 0 to ids-1 among the consumers Options asks
// for, a power of two each, and creates each consumer's doorbell, if the
// producers use the handshake at all.
func (b *base) planConsumers(spec *ebpf.CollectionSpec, ids int) error {
	want := b.opts.Consumers
	switch {
	case want == AutoConsumers:
		want = (ids + RingsPerConsumer - 1) / RingsPerConsumer
	case want == 0:
		want = 1
	}
	want = min(max(want, 1), ids)
	per := (ids + want - 1) / want
	b.shift = uint(bits.Len(uint(per - 1))) // per rounded up to a power of two
	b.consumers = (ids + 1<<b.shift - 1) >> b.shift

	outer := spec.Maps[abi.MapDoorbells]
	if outer == nil {
		return nil // no handshake: pruned with the programs that need it
	}
	spec.Maps[abi.MapConsumerState].MaxEntries = uint32(b.consumers)
	outer.MaxEntries = uint32(b.consumers)
	for i := range b.consumers {
		m, err := ebpf.NewMap(outer.InnerMap)
		if err != nil {
			return fmt.Errorf("create doorbell %d of %d: %w", i, b.consumers, err)
		}
		b.doorbells = append(b.doorbells, m)
		outer.Contents = append(outer.Contents, ebpf.MapKV{Key: uint32(i), Value: m})
	}
	return nil
}

// bindWake takes the wake states, which the producers load for adaptive
// wakeups and spsc rings.
func (b *base) bindWake(coll *ebpf.Collection) { b.state = coll.Maps[abi.MapConsumerState] }

func (b *base) ReaderConfigs(wakeup consumer.Wakeup, maxDelay time.Duration) []consumer.Config {
	if wakeup == "" {
		wakeup = consumer.WakeupAdaptive
	}
	var out []consumer.Config
	for i, r := range b.rings {
		k := b.ids[i] >> b.shift
		if len(out) == 0 || out[len(out)-1].StateIndex != k {
			cfg := consumer.Config{Wakeup: wakeup, State: b.state, StateIndex: k, MaxDelay: maxDelay}
			if k < len(b.doorbells) {
				cfg.Doorbell = b.doorbells[k]
			}
			out = append(out, cfg)
		}
		out[len(out)-1].Rings = append(out[len(out)-1].Rings, r)
	}
	return out
}

func (b *base) ReaderConfig(wakeup consumer.Wakeup, maxDelay time.Duration) consumer.Config {
	return b.ReaderConfigs(wakeup, maxDelay)[0]
}

// settings says which consumer reads which ring.
func (b *base) settings() abi.TransportConfig {
	return abi.TransportConfig{CpusPerRing: 1, ConsumerShift: uint32(b.shift)}
}

// Close frees the doorbells Plan created. Idempotent.
func (b *base) Close() error {
	var errs []error
	for _, m := range b.doorbells {
		errs = append(errs, m.Close())
	}
	b.doorbells = nil
	return errors.Join(errs...)
}

// ringbufSlots is how many records of size bytes a BPF ring buffer of
// ringSize bytes holds: each takes an 8-byte header (BPF_RINGBUF_HDR_SZ)
// and is padded to 8 bytes, and the producer position may run at most
// ringSize-1 bytes ahead of the consumer's (kernel/bpf/ringbuf.c:
// __bpf_ringbuf_reserve), so a ring is never filled to its last byte.
func ringbufSlots(ringSize, size int) int {
	return (ringSize - 1) / ((unix.BPF_RINGBUF_HDR_SZ + size + 7) &^ 7)
}
