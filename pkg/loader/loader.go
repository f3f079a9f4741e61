package loader

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// Source names, as --source takes them.
const (
	SourceExec     = "exec"
	SourceSyscalls = "syscalls"
)

// DefaultRingSize is the ring buffer size when Options.RingSize is 0.
const DefaultRingSize = 4 << 20

// MaxSyscallPIDs is how many pids the syscalls source's allow-list holds.
const MaxSyscallPIDs = 1024

// source is one kind of kernel event ringwatch can carry.
type source struct {
	name       string
	recordType RecordType
	program    string
	tracefs    bool // attached through tracefs
	attach     func(*ebpf.Program) (link.Link, error)
}

var sources = []source{
	{
		name:       SourceExec,
		recordType: RecordExec,
		program:    ringwatchProgHandleExec,
		tracefs:    true,
		attach: func(p *ebpf.Program) (link.Link, error) {
			return link.Tracepoint("sched", "sched_process_exec", p, nil)
		},
	},
	{
		name:       SourceSyscalls,
		recordType: RecordSyscall,
		program:    ringwatchProgHandleSysEnter,
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
	// RingSize is the ring buffer's data size in bytes: a power-of-two
	// multiple of the page size. 0 means DefaultRingSize.
	RingSize int
	// SyscallPIDs, if not empty, limits the syscalls source to these
	// processes (thread group ids). At most MaxSyscallPIDs.
	SyscallPIDs []uint32
	// TraceSelf makes the syscalls source record this process too. By
	// default it is left out, so that a consumer in this process does not
	// record the syscalls of its own reading. An explicit SyscallPIDs entry
	// for this process overrides it.
	TraceSelf bool
}

// A Ring is a kernel-to-user ring the producers write to.
type Ring struct {
	Name      string    // a stable name, for metrics labels
	Transport string    // how records travel: "ringbuf"
	Map       *ebpf.Map // owned by Producers: do not close it
}

// Producers are the loaded BPF programs and maps, and the links that attach
// the programs to their kernel events. All methods are safe for concurrent
// use.
type Producers struct {
	mu      sync.Mutex
	coll    *ebpf.Collection
	links   []link.Link
	sources []source
	rings   []Ring
}

// Open checks that this machine can run the producers, loads them and
// attaches the chosen sources. The checks come first, so a missing
// privilege or kernel feature fails with an error that says what to do
// (see ErrPrivileges, ErrNoBTF, ErrNoTracefs, ErrInvalidOption) before
// anything reaches the kernel. On error, nothing stays loaded.
//
// The ring may already hold records when Open returns: hand Rings to a
// consumer promptly, or records will be lost once the ring is full.
func Open(opts Options) (_ *Producers, err error) {
	chosen, err := resolveSources(opts.Sources)
	if err != nil {
		return nil, err
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
	spec.Maps[ringwatchMapEvents].MaxEntries = uint32(ringSize)
	// Load only the chosen sources' programs.
	for name := range spec.Programs {
		if !slices.ContainsFunc(chosen, func(s source) bool { return s.program == name }) {
			delete(spec.Programs, name)
		}
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, explainLoadError(err)
	}
	p := &Producers{coll: coll, sources: chosen}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.Close())
		}
	}()
	p.rings = []Ring{{Name: ringwatchMapEvents, Transport: "ringbuf", Map: coll.Maps[ringwatchMapEvents]}}

	if err := p.setSyscallFilter(opts.SyscallPIDs, opts.TraceSelf); err != nil {
		return nil, err
	}
	for _, s := range chosen {
		l, err := s.attach(coll.Programs[s.program])
		if err != nil {
			return nil, fmt.Errorf("attach source %s: %w", s.name, explainLoadError(err))
		}
		p.links = append(p.links, l)
	}
	return p, nil
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

// Rings lists the rings the producers write to. They stay valid until
// Close.
func (p *Producers) Rings() []Ring { return slices.Clone(p.rings) }

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
	Ring   string // name of the ring the source writes to
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
		var perCPU []SourceCounters
		if err := p.coll.Maps[ringwatchMapCounters].Lookup(uint32(s.recordType), &perCPU); err != nil {
			return nil, fmt.Errorf("read counters of source %s: %w", s.name, err)
		}
		c := Counters{Source: s.name, Ring: ringwatchMapEvents, PerCPU: perCPU}
		for _, cpu := range perCPU {
			c.Attempts += cpu.Attempts
			c.Lost += cpu.Lost
			c.Skipped += cpu.Skipped
		}
		stats, err := p.coll.Programs[s.program].Stats()
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
	return err
}
