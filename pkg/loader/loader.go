package loader

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"

	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// Source names, as --source takes them.
const (
	SourceExec     = "exec"
	SourceSyscalls = "syscalls"
)

// DefaultRingSize is the size of each ring when Options.RingSize is 0.
const DefaultRingSize = 4 << 20

// MaxSyscallPIDs is how many pids the syscalls source's allow-list holds.
const MaxSyscallPIDs = 1024

// source is one kind of kernel event ringwatch can carry.
type source struct {
	name       string
	recordType RecordType
	recordSize int
	program    string // the program's name without its transport suffix
	benchSize  int    // the bench producer: its record size
	tracefs    bool   // attached through tracefs
	attach     func(*ebpf.Program) (link.Link, error)
}

var sources = []source{
	{
		name:       SourceExec,
		recordType: RecordExec,
		recordSize: int(unsafe.Sizeof(ExecRecord{})),
		program:    "exec",
		tracefs:    true,
		attach: func(p *ebpf.Program) (link.Link, error) {
			return link.Tracepoint("sched", "sched_process_exec", p, nil)
		},
	},
	{
		name:       SourceSyscalls,
		recordType: RecordSyscall,
		recordSize: int(unsafe.Sizeof(SyscallRecord{})),
		program:    "sys_enter",
		attach: func(p *ebpf.Program) (link.Link, error) {
			return link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sys_enter", Program: p})
		},
	},
}

// SourceNames lists every source ringwatch knows, in a fixed order.
func SourceNames() []string {
	names := make([]string, len(sources))
	for i, s := range sources {
		names[i] = s.name
	}
	return names
}

// SourceOf names the source that writes records of type t, or "" if none.
func SourceOf(t RecordType) string {
	for _, s := range sources {
		if s.recordType == t {
			return s.name
		}
	}
	return ""
}

func lookupSource(name string) (source, error) {
	for _, s := range sources {
		if s.name == name {
			return s, nil
		}
	}
	return source{}, problemf(ErrInvalidOption, "unknown source %q: choose from %s",
		name, strings.Join(SourceNames(), ", "))
}

// Options choose what Open loads and attaches.
type Options struct {
	// Sources to attach, by name; nil means exec alone.
	Sources []string
	// Transport is how records travel; "" means consumer.Ringbuf.
	Transport consumer.Transport
	// RingSize is the data size in bytes of each ring: the ring buffer,
	// each per-CPU ring buffer, each CPU's perf buffer, or each CPU's SPSC
	// queue (which holds the largest power of two of slots that fits). A
	// power-of-two multiple of the page size; 0 means DefaultRingSize.
	RingSize int
	// CPUsPerRing groups CPUs onto one ring of the percpu-ringbuf
	// transport; 0 means 1, a ring per CPU.
	CPUsPerRing int
	// SyscallPIDs, if not empty, limits the syscalls source to these
	// processes (thread group ids). At most MaxSyscallPIDs.
	SyscallPIDs []uint32
	// TraceSelf makes the syscalls source record this process too. By
	// default it is left out, so that a consumer in this process does not
	// record the syscalls of its own reading. An explicit SyscallPIDs entry
	// for this process overrides it.
	TraceSelf bool
	// Wakeup says when producers wake the consumer; "" means
	// consumer.WakeupAdaptive. A perf buffer wakes its consumer for every
	// sample whatever the mode, except consumer.WakeupBusy.
	Wakeup consumer.Wakeup
	// Watermark is, for adaptive wakeups, how many bytes pending in a
	// ring wake a lazily sleeping consumer; 0 means an eighth of the ring.
	Watermark int
	// BenchRecordSize, if not 0, loads the synthetic producer of
	// `ringwatch bench` instead of any source: a program that
	// Producers.RunBench runs to write records of this size (16, 64, 256,
	// 1024 or 4096 bytes).
	BenchRecordSize int
}

// BenchRecordSizes are the record sizes the synthetic producer writes.
var BenchRecordSizes = []int{16, 64, 256, 1024, 4096}

// programFor names s's program for transport t.
func (s source) programFor(t transport) string {
	if s.benchSize > 0 {
		return fmt.Sprintf("bench_%s_%d", t.suffix, s.benchSize)
	}
	return s.program + "_" + t.suffix
}

// Producers are the loaded BPF programs and maps, and the links that attach
// the programs to their kernel events. All methods are safe for concurrent
// use.
type Producers struct {
	mu        sync.Mutex
	coll      *ebpf.Collection
	inner     []*ebpf.Map // percpu-ringbuf's rings
	links     []link.Link
	sources   []source
	transport transport
	layout    layout
	wakeup    consumer.Wakeup
}

// WakeupKernel, for Options.Wakeup only, submits ring buffer records with
// the kernel's own wakeup rule (flags 0: wake the consumer when a commit
// finds it caught up), which libbpf's and cilium/ebpf's readers expect.
// pkg/bench uses it for those peers; ringwatch's consumer reads it as
// consumer.WakeupEvery.
const WakeupKernel consumer.Wakeup = "kernel"

var wakeupModes = map[consumer.Wakeup]ringwatchWakeupMode{
	consumer.WakeupAdaptive: ringwatchWakeupModeWAKEUP_ADAPTIVE,
	consumer.WakeupEvery:    ringwatchWakeupModeWAKEUP_EVERY,
	consumer.WakeupBusy:     ringwatchWakeupModeWAKEUP_BUSY,
	WakeupKernel:            ringwatchWakeupModeWAKEUP_KERNEL,
}

// ConsumerConfig is what consumer.OpenConfig needs to read the producers'
// rings with the wakeups they were loaded with.
func (p *Producers) ConsumerConfig() consumer.Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	cfg := consumer.Config{Rings: slices.Clone(p.layout.rings), Wakeup: p.wakeup}
	if (p.transport.name == consumer.Perfbuf && p.wakeup == consumer.WakeupAdaptive) || p.wakeup == WakeupKernel {
		cfg.Wakeup = consumer.WakeupEvery // perf wakes for every sample; the kernel rule needs no flag
	}
	if p.coll != nil {
		cfg.Doorbell = p.coll.Maps[ringwatchMapDoorbell]
		cfg.State = p.coll.Maps[ringwatchMapConsumerState]
	}
	return cfg
}

// Open checks that this machine can run the producers and loads them;
// [Producers.Attach] then attaches the chosen sources. The checks come
// first, so a missing privilege or kernel feature fails with an error that
// says what to do (see ErrPrivileges, ErrNoBTF, ErrNoTracefs,
// ErrInvalidOption) before anything reaches the kernel. On error, nothing
// stays loaded.
//
// Once attached, the rings fill: hand Rings to a consumer before
// attaching, or records will be lost once the rings are full.
func Open(opts Options) (_ *Producers, err error) {
	chosen, err := resolveSources(opts.Sources)
	if err != nil {
		return nil, err
	}
	if opts.BenchRecordSize != 0 {
		if !slices.Contains(BenchRecordSizes, opts.BenchRecordSize) {
			return nil, problemf(ErrInvalidOption, "bench records of %d bytes: choose 16, 64, 256, 1024 or 4096", opts.BenchRecordSize)
		}
		chosen = []source{{name: "bench", recordSize: opts.BenchRecordSize, benchSize: opts.BenchRecordSize}}
	}
	if opts.Wakeup == "" {
		opts.Wakeup = consumer.WakeupAdaptive
	}
	if _, ok := wakeupModes[opts.Wakeup]; !ok {
		return nil, problemf(ErrInvalidOption, "unknown wakeup mode %q: choose adaptive, every or busy", opts.Wakeup)
	}
	if opts.Watermark < 0 {
		return nil, problemf(ErrInvalidOption, "watermark %d is negative", opts.Watermark)
	}
	ringSize := opts.RingSize
	if ringSize == 0 {
		ringSize = DefaultRingSize
	}
	if err := CheckRingSize(ringSize); err != nil {
		return nil, err
	}
	if len(opts.SyscallPIDs) > MaxSyscallPIDs {
		return nil, problemf(ErrInvalidOption, "%d syscalls pids given, at most %d fit the filter",
			len(opts.SyscallPIDs), MaxSyscallPIDs)
	}
	t, err := lookupTransport(opts.Transport)
	if err != nil {
		return nil, err
	}
	if opts.CPUsPerRing < 0 || (opts.CPUsPerRing > 1 && t.name != consumer.PercpuRingbuf) {
		return nil, problemf(ErrInvalidOption, "%d CPUs per ring: a positive number, and only for the %s transport",
			opts.CPUsPerRing, consumer.PercpuRingbuf)
	}
	recordSize := 0
	for _, s := range chosen {
		if maxSize := t.maxRecord(ringSize); s.recordSize > maxSize {
			return nil, problemf(ErrInvalidOption, "source %s writes %d-byte records, the %s transport carries at most %d with %s rings: choose a larger ring size or another transport",
				s.name, s.recordSize, t.name, maxSize, FormatSize(ringSize))
		}
		recordSize = max(recordSize, s.recordSize)
	}
	if err := checkPrivileges(); err != nil {
		return nil, err
	}
	if err := checkBTF(btfPath); err != nil {
		return nil, err
	}
	if slices.ContainsFunc(chosen, func(s source) bool { return s.tracefs }) {
		if err := checkTracefs(tracefsPaths); err != nil {
			return nil, err
		}
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones
	// use memory cgroups and this does nothing.
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("remove the memlock limit for BPF maps: %w", err)
	}

	spec, err := loadRingwatch()
	if err != nil {
		return nil, err
	}
	// Load only the chosen sources' programs for the chosen transport, and
	// only the maps they use.
	for name := range spec.Programs {
		if !slices.ContainsFunc(chosen, func(s source) bool { return s.programFor(t) == name }) {
			delete(spec.Programs, name)
		}
	}
	pruneMaps(spec)
	opts.RingSize = ringSize
	l, err := plan(t, spec, opts, recordSize)
	if err != nil {
		return nil, err
	}

	p := &Producers{sources: chosen, transport: t, layout: l, wakeup: opts.Wakeup}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.Close())
		}
	}()
	if t.name == consumer.PercpuRingbuf {
		if err := p.createInnerRings(spec); err != nil {
			return nil, err
		}
	}
	if p.coll, err = ebpf.NewCollection(spec); err != nil {
		return nil, explainLoadError(err)
	}
	p.layout.attachMaps(p.coll, p.inner)
	if m := p.coll.Maps[ringwatchMapTransportSettings]; m != nil {
		watermark := opts.Watermark
		if watermark == 0 {
			watermark = ringSize / 8
		}
		if t.name == consumer.SPSC {
			// The producers count slots, and a queue's slots may fill
			// less than the ring size: an eighth of them by default.
			watermark = max(watermark/l.slotSize, 1)
			if opts.Watermark == 0 {
				watermark = max(l.slotsPerQueue/8, 1)
			}
		}
		settings := ringwatchTransportConfig{
			CpusPerRing: uint32(max(opts.CPUsPerRing, 1)),
			SpscSlots:   uint32(l.slotsPerQueue),
			Wakeup:      uint32(wakeupModes[opts.Wakeup]),
			Watermark:   uint32(min(watermark, math.MaxUint32)),
		}
		if err := m.Put(uint32(0), settings); err != nil {
			return nil, fmt.Errorf("set the transport settings: %w", err)
		}
	}
	if slices.ContainsFunc(chosen, func(s source) bool { return s.name == SourceSyscalls }) {
		if err := p.setSyscallFilter(opts.SyscallPIDs, opts.TraceSelf); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Attach attaches every chosen source to its kernel event: from now on the
// producers write records. Open a consumer of Rings first: a perf buffer
// exists only once its consumer has opened it, and a record with nowhere to
// go is lost. Attaching twice is an error.
func (p *Producers) Attach() (err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.coll == nil {
		return fmt.Errorf("attach: %w", os.ErrClosed)
	}
	if len(p.links) > 0 {
		return errors.New("attach: the sources are already attached")
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.detach())
		}
	}()
	for _, s := range p.sources {
		if s.attach == nil {
			continue // the bench producer runs on demand
		}
		l, err := s.attach(p.coll.Programs[s.programFor(p.transport)])
		if err != nil {
			return fmt.Errorf("attach source %s: %w", s.name, explainLoadError(err))
		}
		p.links = append(p.links, l)
	}
	return nil
}

// createInnerRings creates the ring buffers of the percpu-ringbuf
// transport and puts them in the array of maps that the programs look them
// up in.
func (p *Producers) createInnerRings(spec *ebpf.CollectionSpec) error {
	outer := spec.Maps[ringwatchMapPercpuEvents]
	for i := range p.layout.rings {
		m, err := ebpf.NewMap(outer.InnerMap)
		if err != nil {
			return fmt.Errorf("create ring buffer %d of %d: %w", i, len(p.layout.rings), explainLoadError(err))
		}
		p.inner = append(p.inner, m)
		outer.Contents = append(outer.Contents, ebpf.MapKV{Key: uint32(i), Value: m})
	}
	return nil
}

func resolveSources(names []string) ([]source, error) {
	if len(names) == 0 {
		names = []string{SourceExec}
	}
	var chosen []source
	for _, name := range names {
		s, err := lookupSource(strings.TrimSpace(name))
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(chosen, func(c source) bool { return c.name == s.name }) {
			chosen = append(chosen, s)
		}
	}
	return chosen, nil
}

// explainLoadError adds what to do to the kernel's refusals that the
// up-front checks cannot foresee, such as lockdown or a seccomp policy.
func explainLoadError(err error) error {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%w (%s; kernel lockdown or a seccomp profile can also refuse BPF)", err, privilegeHint)
	}
	return err
}

func (p *Producers) setSyscallFilter(pids []uint32, traceSelf bool) error {
	filter := ringwatchSyscallFilter{}
	if len(pids) > 0 {
		filter.AllowList = 1
		one := uint8(1)
		for _, pid := range pids {
			if err := p.coll.Maps[ringwatchMapSyscallPids].Put(pid, one); err != nil {
				return fmt.Errorf("add pid %d to the syscalls filter: %w", pid, err)
			}
		}
	} else if !traceSelf {
		filter.ExcludePid = uint32(os.Getpid())
	}
	if err := p.coll.Maps[ringwatchMapSyscallConfig].Put(uint32(0), filter); err != nil {
		return fmt.Errorf("set the syscalls filter: %w", err)
	}
	return nil
}

// Transport is how the producers' records travel.
func (p *Producers) Transport() consumer.Transport { return p.transport.name }

// Rings describes the rings the producers write to, for consumer.Open.
// Their maps stay valid until Close.
func (p *Producers) Rings() []consumer.Ring { return slices.Clone(p.layout.rings) }

// RingOf is the index in Rings of the ring that CPU cpu writes to.
func (p *Producers) RingOf(cpu int) int {
	if cpu < 0 || cpu >= len(p.layout.ringOf) {
		return 0
	}
	return p.layout.ringOf[cpu]
}

// Sources names the attached sources, in the order Options gave them.
func (p *Producers) Sources() []string {
	names := make([]string, len(p.sources))
	for i, s := range p.sources {
		names[i] = s.name
	}
	return names
}

// Counters are a source's producer-side counts.
type Counters struct {
	Source string
	// Attempts is how many records the source tried to write: the next
	// sequence number, summed over CPUs.
	Attempts uint64
	// Lost is how many of those the ring had no room for.
	Lost uint64
	// Skipped is how many events the source left out on purpose, while
	// paused or by sampling: they took no sequence number.
	Skipped uint64
	// Missed is how many events the kernel did not run the source's
	// program for at all, because another BPF program was running on the
	// same CPU (the program's recursion_misses). They took no sequence
	// number, so they are neither attempts nor gaps.
	Missed uint64
	// PerCPU holds the same counts for each possible CPU, by CPU number.
	PerCPU []SourceCounters
}

// Counters reads every attached source's counters from the kernel. Read
// after Detach, they are final.
func (p *Producers) Counters() ([]Counters, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.coll == nil {
		return nil, fmt.Errorf("read counters: %w", os.ErrClosed)
	}
	out := make([]Counters, 0, len(p.sources))
	for _, s := range p.sources {
		if s.benchSize > 0 {
			continue // see BenchCounters
		}
		var perCPU []SourceCounters
		if err := p.coll.Maps[ringwatchMapCounters].Lookup(uint32(s.recordType), &perCPU); err != nil {
			return nil, fmt.Errorf("read counters of source %s: %w", s.name, err)
		}
		c := Counters{Source: s.name, PerCPU: perCPU}
		for _, cpu := range perCPU {
			c.Attempts += cpu.Attempts
			c.Lost += cpu.Lost
			c.Skipped += cpu.Skipped
		}
		stats, err := p.coll.Programs[s.programFor(p.transport)].Stats()
		if err != nil {
			return nil, fmt.Errorf("read run statistics of source %s: %w", s.name, err)
		}
		c.Missed = stats.RecursionMisses
		out = append(out, c)
	}
	return out, nil
}

// Detach stops every source: after it returns, no new record is written.
// What the rings hold stays readable until Close. Detach is idempotent.
func (p *Producers) Detach() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.detach()
}

func (p *Producers) detach() error {
	var errs []error
	for _, l := range p.links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach: %w", err))
		}
	}
	p.links = nil
	return errors.Join(errs...)
}

// Close detaches every source and frees every program and map: afterwards
// none of ringwatch's BPF objects remains in the kernel, provided no
// consumer still maps a ring. Close is idempotent.
func (p *Producers) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.detach()
	if p.coll != nil {
		p.coll.Close()
		p.coll = nil
	}
	for _, m := range p.inner {
		err = errors.Join(err, m.Close())
	}
	p.inner = nil
	return err
}

// RunBench runs the synthetic producer once on the calling thread's CPU:
// it writes count records, or counts as lost those with no room. Only for
// Producers opened with Options.BenchRecordSize.
func (p *Producers) RunBench(count int) error {
	p.mu.Lock()
	prog := p.benchProgram()
	p.mu.Unlock()
	if prog == nil {
		return errors.New("run bench: no bench producer loaded")
	}
	var ctx any = ringwatchBenchArgs{Count: uint32(count)}
	if prog.Type() == ebpf.RawTracepoint {
		ctx = [1]uint64{uint64(count)} // the perfbuf producer: see bpf/ringwatch.c
	}
	if _, err := prog.Run(&ebpf.RunOptions{Context: ctx}); err != nil {
		return fmt.Errorf("run bench producer: %w", err)
	}
	return nil
}

// BenchCounters reads the synthetic producer's attempts and losses.
func (p *Producers) BenchCounters() (attempts, lost uint64, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.coll == nil || p.coll.Maps[ringwatchMapBenchCounters] == nil {
		return 0, 0, errors.New("read bench counters: no bench producer loaded")
	}
	var c ringwatchBenchCounters
	if err := p.coll.Maps[ringwatchMapBenchCounters].Lookup(uint32(0), &c); err != nil {
		return 0, 0, fmt.Errorf("read bench counters: %w", err)
	}
	return c.Attempts, c.Lost, nil
}

func (p *Producers) benchProgram() *ebpf.Program {
	if p.coll == nil || len(p.sources) != 1 || p.sources[0].benchSize == 0 {
		return nil
	}
	return p.coll.Programs[p.sources[0].programFor(p.transport)]
}
