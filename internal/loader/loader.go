package loader

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// MaxSyscallPIDs is how many pids the syscalls source's allow-list holds.
const MaxSyscallPIDs = 1024

// A Source is one kind of producer: a program per transport in
// bpf/ringwatch.c, named <Program>_<transport>, and the kernel event it is
// attached to.
type Source struct {
	Name string
	// RecordType is the type of the records it writes, and the index of
	// its counters and settings; 0 for a producer outside the sources,
	// such as the bench's, which keeps counters of its own.
	RecordType abi.RecordType
	// RecordSize is the largest record it writes.
	RecordSize int
	// Program is its programs' name without the transport suffix.
	Program string
	// Tracefs says it is attached through tracefs.
	Tracefs bool
	// Attach attaches its program to its event; nil for a producer that
	// is never attached, only run on demand ([Producers.Program]).
	Attach func(*ebpf.Program) (link.Link, error)
}

var sources = []Source{
	{
		Name:       abi.SourceExec,
		RecordType: abi.RecordExec,
		RecordSize: int(unsafe.Sizeof(abi.ExecRecord{})),
		Program:    "exec",
		Tracefs:    true,
		Attach: func(p *ebpf.Program) (link.Link, error) {
			return link.Tracepoint("sched", "sched_process_exec", p, nil)
		},
	},
	{
		Name:       abi.SourceSyscalls,
		RecordType: abi.RecordSyscall,
		RecordSize: int(unsafe.Sizeof(abi.SyscallRecord{})),
		Program:    "sys_enter",
		Attach: func(p *ebpf.Program) (link.Link, error) {
			return link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sys_enter", Program: p})
		},
	},
}

// SourceNames lists every source ringwatch carries, in a fixed order.
func SourceNames() []string {
	names := make([]string, len(sources))
	for i, s := range sources {
		names[i] = s.Name
	}
	return names
}

// ParseSources looks up sources by name, each once, in the order given; an
// empty name is skipped. An unknown name is an error wrapping
// ErrInvalidOption that lists the known ones.
func ParseSources(names []string) ([]Source, error) {
	var chosen []Source
	for _, name := range names {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		i := slices.IndexFunc(sources, func(s Source) bool { return s.Name == name })
		if i < 0 {
			return nil, abi.Choose("source", name, SourceNames())
		}
		if !slices.ContainsFunc(chosen, func(c Source) bool { return c.Name == name }) {
			chosen = append(chosen, sources[i])
		}
	}
	if len(chosen) == 0 {
		return nil, problemf(ErrInvalidOption, "no source given: choose from %s", strings.Join(SourceNames(), ", "))
	}
	return chosen, nil
}

// MapOwner is the part of a transport the loader deals with: the maps
// records travel in, which it sizes (Plan) and takes (Bind) around the load.
// Each of internal/transport's Transports is one; the loader loads the
// programs of its name.
type MapOwner interface {
	Name() abi.TransportName
	RingSize() int
	MaxRecord() int
	Plan(spec *ebpf.CollectionSpec, recordSize int) error
	Bind(coll *ebpf.Collection) error
	Settings() abi.TransportConfig
}

// Options choose what Open loads and attaches.
type Options struct {
	// Sources to load; nil means exec alone.
	Sources []Source
	// Transport is how records travel. It stays the caller's: Open plans
	// and binds it, and the caller closes it after the Producers.
	Transport MapOwner
	// SyscallPIDs, if not empty, limits the syscalls source to these
	// processes (thread group ids). At most MaxSyscallPIDs.
	SyscallPIDs []uint32
	// TraceSelf makes the syscalls source record this process too. By
	// default it is left out, so that a consumer in this process does not
	// record the syscalls of its own reading. An explicit SyscallPIDs entry
	// for this process overrides it.
	TraceSelf bool
	// Wakeup says when producers wake the consumer; "" means
	// consumer.WakeupAdaptive. (An adaptive consumer sets the watermark that
	// wakes it from a lazy sleep itself, for each sleep: see
	// pkg/consumer.)
	Wakeup consumer.Wakeup
	// Recorder, if not 0, is the size in bytes of the flight recorder: an
	// overwrite-mode ring (Linux 6.19) that every record is also copied
	// into, read with [Producers.Recorder]. A power-of-two multiple of the
	// page size. 0 leaves it a one-page ring nothing writes.
	Recorder int
}

// rbOverwrite is BPF_F_RB_OVERWRITE (include/uapi/linux/bpf.h, Linux 6.19).
const rbOverwrite = 1 << 19

// programFor names s's program for transport t: every source has one
// program per transport, <source program>_<transport>, with '_' for '-'.
func programFor(s Source, t abi.TransportName) string {
	return s.Program + "_" + strings.ReplaceAll(string(t), "-", "_")
}

// Producers are the loaded BPF programs and maps, and the links that attach
// the programs to their kernel events. All methods are safe for concurrent
// use.
type Producers struct {
	mu        sync.Mutex
	coll      *ebpf.Collection
	links     []link.Link
	sources   []Source
	transport abi.TransportName
	recorder  bool // Options.Recorder was set
}

// Open checks that this machine can run the producers and loads them;
// [Producers.Attach] then attaches the chosen sources. The checks come
// first, so a missing privilege or kernel feature fails with an error that
// says what to do (see ErrPrivileges, ErrNoBTF, ErrNoTracefs,
// ErrInvalidOption) before anything reaches the kernel. On error, nothing
// stays loaded.
//
// Once attached, the rings fill: open a consumer of the transport's rings
// before attaching, or records will be lost once the rings are full.
func Open(opts Options) (_ *Producers, err error) {
	chosen := opts.Sources
	if len(chosen) == 0 {
		chosen = sources[:1]
	}
	t := opts.Transport
	if t == nil {
		return nil, problemf(ErrInvalidOption, "no transport given")
	}
	if opts.Wakeup == "" {
		opts.Wakeup = consumer.WakeupAdaptive
	}
	mode, ok := abi.WakeupModeOf(opts.Wakeup)
	if !ok {
		return nil, abi.Choose("wakeup mode", string(opts.Wakeup), consumer.Wakeups())
	}
	if len(opts.SyscallPIDs) > MaxSyscallPIDs {
		return nil, problemf(ErrInvalidOption, "%d syscalls pids given, at most %d fit the filter",
			len(opts.SyscallPIDs), MaxSyscallPIDs)
	}
	recordSize := 0
	for _, s := range chosen {
		if maxSize := t.MaxRecord(); s.RecordSize > maxSize {
			return nil, problemf(ErrInvalidOption, "source %s writes %d-byte records, the %s transport carries at most %d with %s rings: choose a larger ring size or another transport",
				s.Name, s.RecordSize, t.Name(), maxSize, abi.FormatSize(t.RingSize()))
		}
		recordSize = max(recordSize, s.RecordSize)
	}
	if err := checkPrivileges(); err != nil {
		return nil, err
	}
	if err := checkBTF(btfPath); err != nil {
		return nil, err
	}
	if slices.ContainsFunc(chosen, func(s Source) bool { return s.Tracefs }) {
		if err := checkTracefs(tracefsPaths); err != nil {
			return nil, err
		}
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones
	// use memory cgroups and this does nothing.
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("remove the memlock limit for BPF maps: %w", err)
	}

	spec, err := abi.LoadProducers()
	if err != nil {
		return nil, err
	}
	// Load only the chosen sources' programs for the chosen transport, and
	// only the maps they use.
	for name := range spec.Programs {
		if !slices.ContainsFunc(chosen, func(s Source) bool { return programFor(s, t.Name()) == name }) {
			delete(spec.Programs, name)
		}
	}
	pruneMaps(spec)
	if err := t.Plan(spec, recordSize); err != nil {
		return nil, explainLoadError(err)
	}
	if opts.Recorder != 0 {
		if m := spec.Maps[abi.MapRecorder]; m != nil {
			m.MaxEntries = uint32(opts.Recorder)
			m.Flags |= rbOverwrite
		}
	}

	p := &Producers{sources: chosen, transport: t.Name(), recorder: opts.Recorder != 0}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.Close())
		}
	}()
	if p.coll, err = ebpf.NewCollection(spec); err != nil {
		return nil, explainLoadError(err)
	}
	if err := t.Bind(p.coll); err != nil {
		return nil, err
	}
	if m := p.coll.Maps[abi.MapTransportSettings]; m != nil {
		settings := t.Settings()
		settings.Wakeup = uint32(mode)
		if opts.Recorder != 0 {
			settings.Recorder = 1
		}
		if err := m.Put(uint32(0), settings); err != nil {
			return nil, fmt.Errorf("set the transport settings: %w", err)
		}
	}
	if slices.ContainsFunc(chosen, func(s Source) bool { return s.RecordType == abi.RecordSyscall }) {
		if err := p.setSyscallFilter(opts.SyscallPIDs, opts.TraceSelf); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Attach attaches every chosen source to its kernel event: from now on the
// producers write records. Open a consumer of the transport's rings first:
// a perf buffer exists only once its consumer has opened it, and a record
// with nowhere to go is lost. Attaching twice is an error.
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
		if s.Attach == nil {
			continue // run on demand
		}
		l, err := s.Attach(p.coll.Programs[programFor(s, p.transport)])
		if err != nil {
			return fmt.Errorf("attach source %s: %w", s.Name, explainLoadError(err))
		}
		p.links = append(p.links, l)
	}
	return nil
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
	filter := abi.SyscallFilter{}
	if len(pids) > 0 {
		filter.AllowList = 1
		one := uint8(1)
		for _, pid := range pids {
			if err := p.coll.Maps[abi.MapSyscallPids].Put(pid, one); err != nil {
				return fmt.Errorf("add pid %d to the syscalls filter: %w", pid, err)
			}
		}
	} else if !traceSelf {
		filter.ExcludePid = uint32(os.Getpid())
	}
	if err := p.coll.Maps[abi.MapSyscallConfig].Put(uint32(0), filter); err != nil {
		return fmt.Errorf("set the syscalls filter: %w", err)
	}
	return nil
}

// Sources names the loaded sources, in the order Options gave them.
func (p *Producers) Sources() []string {
	names := make([]string, len(p.sources))
	for i, s := range p.sources {
		names[i] = s.Name
	}
	return names
}

// Program is the loaded program of the named source, for a producer that
// is run on demand rather than attached; nil if there is none or after
// Close.
func (p *Producers) Program(source string) *ebpf.Program {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.IndexFunc(p.sources, func(s Source) bool { return s.Name == source })
	if p.coll == nil || i < 0 {
		return nil
	}
	return p.coll.Programs[programFor(p.sources[i], p.transport)]
}

// Map is the loaded map of that name in bpf/ringwatch.c (abi.Map...), or
// nil if the chosen sources and transport do not use it. It stays valid
// until Close.
func (p *Producers) Map(name string) *ebpf.Map {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.coll == nil {
		return nil
	}
	return p.coll.Maps[name]
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
	PerCPU []abi.SourceCounters
}

// RecorderBooks are the flight recorder's producer-side counts, summed
// over CPUs.
type RecorderBooks struct {
	// Written is how many records were copied into the recorder.
	Written uint64
	// Failed is how many copies the recorder refused.
	Failed uint64
}

// Recorder returns the flight recorder's ring (nil unless Options.Recorder
// was set) for pkg/consumer.OpenRecorder.
func (p *Producers) Recorder() *ebpf.Map {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.coll == nil || !p.recorder {
		return nil
	}
	return p.coll.Maps[abi.MapRecorder]
}

// RecorderBooks reads the flight recorder's counts from the kernel.
func (p *Producers) RecorderBooks() (RecorderBooks, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b RecorderBooks
	if p.coll == nil {
		return b, fmt.Errorf("read recorder counters: %w", os.ErrClosed)
	}
	m := p.coll.Maps[abi.MapRecorderStats]
	if m == nil {
		return b, nil
	}
	var perCPU []abi.RecorderCounters
	if err := m.Lookup(uint32(0), &perCPU); err != nil {
		return b, fmt.Errorf("read recorder counters: %w", err)
	}
	for _, c := range perCPU {
		b.Written += c.Written
		b.Failed += c.Failed
	}
	return b, nil
}

// Counters reads every loaded source's counters from the kernel. Read
// after Detach, they are final.
func (p *Producers) Counters() ([]Counters, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.coll == nil {
		return nil, fmt.Errorf("read counters: %w", os.ErrClosed)
	}
	out := make([]Counters, 0, len(p.sources))
	for _, s := range p.sources {
		if s.RecordType == 0 {
			continue // keeps counters of its own
		}
		var perCPU []abi.SourceCounters
		if err := p.coll.Maps[abi.MapCounters].Lookup(uint32(s.RecordType), &perCPU); err != nil {
			return nil, fmt.Errorf("read counters of source %s: %w", s.Name, err)
		}
		c := Counters{Source: s.Name, PerCPU: perCPU}
		for _, cpu := range perCPU {
			c.Attempts += cpu.Attempts
			c.Lost += cpu.Lost
			c.Skipped += cpu.Skipped
		}
		stats, err := p.coll.Programs[programFor(s, p.transport)].Stats()
		if err != nil {
			return nil, fmt.Errorf("read run statistics of source %s: %w", s.Name, err)
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
// consumer still maps a ring and the transport is closed too. Close is
// idempotent.
func (p *Producers) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.detach()
	if p.coll != nil {
		p.coll.Close()
		p.coll = nil
	}
	return err
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
