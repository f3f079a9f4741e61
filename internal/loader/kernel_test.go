package loader

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/internal/transport"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// setup is what a kernel test loads: the producers' options, and the
// transport they write to.
type setup struct {
	Options   // Transport is left to openTransport
	kind      abi.TransportName
	ringSizes transport.Options
}

// openTransport makes the transport of cfg, closed when t ends: after
// what is opened later, since cleanups run last first. It returns cfg's
// options bound to it, with the wakeup spelled out: "" is adaptive to the
// loader but every to the consumer, and the two must agree.
func openTransport(t *testing.T, cfg setup) (transport.Transport, Options) {
	t.Helper()
	tr, err := transport.New(cfg.kind, cfg.ringSizes)
	if err != nil {
		t.Fatalf("transport.New: %v", err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Errorf("close transport: %v", err)
		}
	})
	opts := cfg.Options
	opts.Transport = tr
	opts.Wakeup = cmp.Or(opts.Wakeup, consumer.WakeupAdaptive)
	return tr, opts
}

// openProducers loads the producers and a consumer of their rings, closed
// when t ends: the consumer, the producers, then the transport.
func openProducers(t *testing.T, cfg setup) (*Producers, *consumer.Consumer) {
	t.Helper()
	tr, opts := openTransport(t, cfg)
	p, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close producers: %v", err)
		}
	})
	c, err := consumer.OpenConfig(tr.ReaderConfig(opts.Wakeup, 0))
	if err != nil {
		t.Fatalf("consumer.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close consumer: %v", err)
		}
	})
	if err := p.Attach(); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	return p, c
}

// sourcesNamed looks up sources by name.
func sourcesNamed(t *testing.T, names ...string) []Source {
	t.Helper()
	chosen, err := ParseSources(names)
	if err != nil {
		t.Fatalf("ParseSources: %v", err)
	}
	return chosen
}

// consume hands every record to fn from a reading goroutine until the
// returned finish is called; finish detaches the producers, stops the
// reader, drains the rest into fn and returns the producers' final
// counters. fn never runs concurrently with itself or after finish.
func consume(t *testing.T, p *Producers, c *consumer.Consumer, fn func(rec []byte)) (finish func() []Counters) {
	t.Helper()
	handle := func(b consumer.Batch) {
		for _, rec := range b.Records {
			fn(rec)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var readErr error
	wg.Go(func() {
		for ctx.Err() == nil {
			if _, err := c.Read(ctx, handle); err != nil && ctx.Err() == nil {
				readErr = err
				return
			}
		}
	})
	return func() []Counters {
		t.Helper()
		if err := p.Detach(); err != nil {
			t.Fatalf("Detach: %v", err)
		}
		cancel()
		wg.Wait()
		if readErr != nil {
			t.Fatalf("Read: %v", readErr)
		}
		if _, err := c.Drain(handle); err != nil {
			t.Fatalf("Drain: %v", err)
		}
		counters, err := p.Counters()
		if err != nil {
			t.Fatalf("Counters: %v", err)
		}
		return counters
	}
}

// transportCases are the transports every kernel test runs on, with the
// percpu-ringbuf transport also grouping both of a 2-CPU machine's CPUs on
// one ring, and the wakeup modes beside the default adaptive one.
var transportCases = []struct {
	name        string
	kind        abi.TransportName
	cpusPerRing int
	wakeup      consumer.Wakeup
}{
	{"ringbuf", abi.Ringbuf, 0, ""},
	{"percpu-ringbuf", abi.PercpuRingbuf, 0, ""},
	{"percpu-ringbuf-grouped", abi.PercpuRingbuf, 2, ""},
	{"perfbuf", abi.Perfbuf, 0, ""},
	{"spsc", abi.SPSC, 0, ""},
	{"ringbuf-every", abi.Ringbuf, 0, consumer.WakeupEvery},
	{"ringbuf-busy", abi.Ringbuf, 0, consumer.WakeupBusy},
	{"spsc-every", abi.SPSC, 0, consumer.WakeupEvery},
}

// forEachTransport runs test once per transport, with cfg's transport
// settings filled in.
func forEachTransport(t *testing.T, cfg setup, test func(t *testing.T, cfg setup)) {
	for _, tc := range transportCases {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			c.kind, c.ringSizes.CPUsPerRing, c.Wakeup = tc.kind, tc.cpusPerRing, tc.wakeup
			test(t, c)
		})
	}
}

func TestExecEventsArriveExactly(t *testing.T) {
	forEachTransport(t, setup{Options: Options{Sources: sourcesNamed(t, abi.SourceExec)}}, testExecEventsArriveExactly)
}

func testExecEventsArriveExactly(t *testing.T, cfg setup) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	p, c := openProducers(t, cfg)

	self := uint32(os.Getpid())
	ours := map[uint32]abi.ExecRecord{} // exec events of our children, by pid
	finish := consume(t, p, c, func(rec []byte) {
		e, err := abi.DecodeExec(rec)
		if err != nil || e.Hdr.Type != abi.RecordExec {
			t.Errorf("exec source wrote a record of type %d (%v)", e.Hdr.Type, err)
			return
		}
		if e.Ppid != self {
			return // another process on the machine
		}
		if _, dup := ours[e.Pid]; dup {
			t.Errorf("pid %d exec'd twice", e.Pid)
		}
		ours[e.Pid] = e
	})

	const n = 200
	var pids []uint32
	for range n {
		cmd := exec.Command("/bin/true")
		if err := cmd.Run(); err != nil {
			t.Fatalf("run /bin/true: %v", err)
		}
		pids = append(pids, uint32(cmd.Process.Pid))
	}
	counters := finish()

	if len(ours) != n {
		t.Errorf("got %d exec events from our children, want %d", len(ours), n)
	}
	for _, pid := range pids {
		e, ok := ours[pid]
		switch {
		case !ok:
			t.Errorf("no exec event for pid %d", pid)
		case e.CommString() != "true" || e.FilenameString() != "/bin/true" || e.Uid != uint32(os.Getuid()):
			t.Errorf("pid %d: comm %q, filename %q, uid %d; want true, /bin/true, %d",
				pid, e.CommString(), e.FilenameString(), e.Uid, os.Getuid())
		}
	}
	if counters[0].Lost != 0 || counters[0].Attempts < n {
		t.Errorf("exec counters: %d attempted, %d lost; want at least %d and 0", counters[0].Attempts, counters[0].Lost, n)
	}
}

// perfRawSize is the length a perf buffer hands over for a record of n
// bytes: the kernel rounds the raw data up so that it and its u32 size
// make a multiple of 8 bytes (kernel/events/core.c, perf_prepare_sample).
func perfRawSize(n int) int { return (n+4+7)&^7 - 4 }

// TestExecRecordsAreAsLongAsTheirFilename execs /bin/true through paths of
// several lengths, one longer than the record holds, on every transport:
// each record must be exactly as long as bpf/ringwatch.h's rule says for
// its filename (abi.ExecRecordSize; a perf buffer adds its padding), zero
// from the filename's NUL to its end, with filename, comm and the
// truncation flag what the exec gave.
func TestExecRecordsAreAsLongAsTheirFilename(t *testing.T) {
	forEachTransport(t, setup{Options: Options{Sources: sourcesNamed(t, abi.SourceExec)}}, testExecRecordsAreAsLongAsTheirFilename)
}

func testExecRecordsAreAsLongAsTheirFilename(t *testing.T, cfg setup) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	paths := testenv.ExecPaths(t, t.TempDir())
	p, c := openProducers(t, cfg)

	self := uint32(os.Getpid())
	type arrival struct {
		rec  abi.ExecRecord
		size int
		tail []byte // from the filename's NUL to the end of the record
	}
	ours := map[uint32]arrival{}
	finish := consume(t, p, c, func(rec []byte) {
		e, err := abi.DecodeExec(rec)
		if err != nil || e.Hdr.Type != abi.RecordExec {
			t.Errorf("exec source wrote a %d-byte record of type %d (%v)", len(rec), e.Hdr.Type, err)
			return
		}
		if e.Ppid != self {
			return // another process on the machine
		}
		end := min(len(rec), abi.ExecFilenameOffset+len(e.FilenameString()))
		ours[e.Pid] = arrival{e, len(rec), bytes.Clone(rec[end:])}
	})
	const rounds = 3
	want := map[uint32]string{} // filename, by pid
	for range rounds {
		for _, path := range paths {
			cmd := testenv.TrueAt(path)
			if err := cmd.Run(); err != nil {
				t.Fatalf("run %s: %v", path, err)
			}
			want[uint32(cmd.Process.Pid)] = path
		}
	}
	counters := finish()

	for pid, path := range want {
		got, ok := ours[pid]
		if !ok {
			t.Errorf("no exec record for pid %d (%s)", pid, path)
			continue
		}
		filename, truncated := path, false
		if max := abi.ExecMaxSize - abi.ExecFilenameOffset - 1; len(path) > max {
			filename, truncated = path[:max], true
		}
		size := abi.ExecRecordSize(path)
		if cfg.kind == abi.Perfbuf {
			size = perfRawSize(size)
		}
		comm := filepath.Base(path)
		comm = comm[:min(len(comm), 15)]
		e := got.rec
		switch {
		case got.size != size:
			t.Errorf("%d-byte path: %d-byte record, want %d", len(path), got.size, size)
		case e.FilenameString() != filename:
			t.Errorf("%d-byte path: filename %q, want %q", len(path), e.FilenameString(), filename)
		case e.CommString() != comm:
			t.Errorf("%d-byte path: comm %q, want %q", len(path), e.CommString(), comm)
		case (e.Flags&abi.ExecFilenameTruncated != 0) != truncated:
			t.Errorf("%d-byte path: flags %#x, want truncated %v", len(path), e.Flags, truncated)
		}
		// The bytes a perf buffer pads with are not the producer's.
		if tail := got.tail[:min(len(got.tail), abi.ExecRecordSize(path)-abi.ExecFilenameOffset-len(filename))]; !bytes.Equal(tail, make([]byte, len(tail))) {
			t.Errorf("%d-byte path: record ends % x after the filename, want zeros", len(path), tail)
		}
	}
	if counters[0].Lost != 0 {
		t.Errorf("exec counters: %d lost, want 0", counters[0].Lost)
	}
}

// TestWakeupsDeliverEachRecordAlone runs one process at a time and waits
// for its exec record before running the next. The consumer sleeps deeply
// (no timer of its own can deliver a record), and each round waits until
// it is asleep in epoll before the exec: so each record must wake it, and
// the test requires a wakeup counted in every round. A lost wakeup would
// leave the record waiting for a later one, and the wait would only end at
// the deadline, which is there to fail instead of hang. (Other processes'
// exec records land in the same ring and may wake the consumer first;
// TestSleepHandshakeManyRounds and TestDiscardThenSubmitWakesTheConsumer
// run the same handshake on rings only the test writes.)
func TestWakeupsDeliverEachRecordAlone(t *testing.T) {
	forEachTransport(t, setup{Options: Options{Sources: sourcesNamed(t, abi.SourceExec)}}, testWakeupsDeliverEachRecordAlone)
}

func testWakeupsDeliverEachRecordAlone(t *testing.T, cfg setup) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	arrived := make(chan uint32, 100)
	self := uint32(os.Getpid())
	r := openRig(t, rigConfig{kind: cfg.kind, mode: cfg.Wakeup, cpusPerRing: cfg.ringSizes.CPUsPerRing,
		sources: cfg.Sources, attach: true, each: func(rec []byte) {
			if e, err := abi.DecodeExec(rec); err == nil && e.Ppid == self {
				arrived <- e.Pid
			}
		}})
	const rounds = 50
	for round := range rounds {
		before := r.c.Woken()
		if r.mode != consumer.WakeupBusy {
			r.awaitSleep(t)
		}
		cmd := exec.Command("/bin/true")
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		select {
		case pid := <-arrived:
			if pid != uint32(cmd.Process.Pid) {
				t.Fatalf("round %d: exec record of pid %d, want %d", round, pid, cmd.Process.Pid)
			}
		case <-time.After(deadline):
			t.Fatalf("round %d: the exec record of pid %d never woke the consumer", round, cmd.Process.Pid)
		}
		switch woken := r.c.Woken(); {
		case r.mode == consumer.WakeupBusy && woken != 0:
			t.Fatalf("round %d: a polling consumer was woken %d times", round, woken)
		case r.mode != consumer.WakeupBusy && woken == before:
			t.Fatalf("round %d: the record arrived, but no wakeup was counted since the consumer fell asleep", round)
		}
	}
	var wakeups uint64
	for _, st := range r.c.Stats() {
		wakeups += st.Wakeups
	}
	if r.mode != consumer.WakeupBusy && wakeups < rounds {
		t.Errorf("%d ring wakeups in %d rounds, want one a round at least", wakeups, rounds)
	}
}

func TestSyscallsWithPIDFilterArriveExactly(t *testing.T) {
	// 100,000 records of 40 bytes (48 in a ring, a perf buffer or an SPSC
	// slot) fit 8 MiB even if the reader fell behind, so any loss here is a
	// bug, not load.
	forEachTransport(t, setup{Options: Options{Sources: sourcesNamed(t, abi.SourceSyscalls)}, ringSizes: transport.Options{RingSize: 8 << 20}},
		testSyscallsWithPIDFilterArriveExactly)
}

func testSyscallsWithPIDFilterArriveExactly(t *testing.T, cfg setup) {
	testenv.RequireBPF(t)
	child := testenv.StartSyscallChild(t)
	cfg.SyscallPIDs = []uint32{uint32(child.Pid)}
	p, c := openProducers(t, cfg)

	getpids, others := 0, 0
	finish := consume(t, p, c, func(rec []byte) {
		s, err := abi.DecodeSyscall(rec)
		if err != nil || s.Hdr.Type != abi.RecordSyscall {
			t.Errorf("syscalls source wrote a record of type %d (%v)", s.Hdr.Type, err)
			return
		}
		if s.Pid != uint32(child.Pid) {
			others++
			return
		}
		if s.Nr == unix.SYS_GETPID && s.Tid == uint32(child.Tid) {
			getpids++
		}
	})
	const n = 100_000
	child.Getpid(t, n)
	counters := finish()

	if getpids != n {
		t.Errorf("got %d getpid records from thread %d, want %d", getpids, child.Tid, n)
	}
	if others != 0 {
		t.Errorf("%d records from processes outside the pid filter", others)
	}
	if counters[0].Lost != 0 {
		t.Errorf("%d records lost", counters[0].Lost)
	}
}

func TestSyscallsLeaveOutRingwatchItself(t *testing.T) {
	testenv.RequireBPF(t)
	child := testenv.StartSyscallChild(t)
	p, c := openProducers(t, setup{Options: Options{Sources: sourcesNamed(t, abi.SourceSyscalls)}})
	self, fromSelf, fromChild := uint32(os.Getpid()), 0, 0
	finish := consume(t, p, c, func(rec []byte) {
		s, err := abi.DecodeSyscall(rec)
		switch {
		case err != nil:
			t.Errorf("decode: %v", err)
		case s.Pid == self:
			fromSelf++
		case s.Pid == uint32(child.Pid):
			fromChild++
		}
	})
	for range 1000 {
		unix.Getpid()
	}
	child.Getpid(t, 1000)
	finish()
	if fromSelf != 0 {
		t.Errorf("%d records of ringwatch's own syscalls", fromSelf)
	}
	// The same source, unfiltered, must see another process's calls.
	if fromChild < 1000 {
		t.Errorf("%d records from the child's 1000 getpid calls", fromChild)
	}
}

func TestCloseLeavesNoBPFObjects(t *testing.T) {
	forEachTransport(t, setup{Options: Options{Sources: sourcesNamed(t, SourceNames()...)}}, testCloseLeavesNoBPFObjects)
}

func testCloseLeavesNoBPFObjects(t *testing.T, cfg setup) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	before := testenv.Snapshot(t)

	tr, opts := openTransport(t, cfg)
	p, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := consumer.OpenConfig(tr.ReaderConfig(opts.Wakeup, 0))
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	if err := p.Attach(); err != nil {
		t.Error(err)
	}
	if err := exec.Command("/bin/true").Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Drain(func(consumer.Batch) {}); err != nil {
		t.Fatal(err)
	}

	// Two programs, their two links, and at least a ring, the counters,
	// the source settings and the pid filter maps: the check below must
	// have something to find.
	ours := testenv.Snapshot(t).Added(before)
	if len(ours.Programs) < 2 || len(ours.Links) < 2 || len(ours.Maps) < 4 {
		t.Fatalf("while open, only these BPF objects are new: %+v", ours)
	}

	if err := c.Close(); err != nil {
		t.Errorf("close consumer: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("close producers: %v", err)
	}
	// The percpu-ringbuf transport's rings are its own, not the producers'.
	if err := tr.Close(); err != nil {
		t.Errorf("close transport: %v", err)
	}
	if err := errors.Join(c.Close(), p.Close(), tr.Close()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	testenv.WaitForObjects(t, before)
}

func TestOpenRejectsBadOptionsFirst(t *testing.T) {
	// Option errors come before any privilege or kernel check, so these
	// hold for any user on any kernel. Each case goes the way a command
	// does: sources by name, then the transport, then the producers, and
	// the first error ends it.
	for _, tc := range []struct {
		name      string
		sources   []string
		pids      []uint32
		kind      abi.TransportName
		ringSizes transport.Options
		want      string
	}{
		{"unknown source", []string{"exec", "forks"}, nil, "", transport.Options{}, `unknown source "forks": choose from exec, syscalls`},
		{"ring size", nil, nil, "", transport.Options{RingSize: 3 << 20}, "ring size 3MiB is not a power-of-two multiple of the page size"},
		{"too many pids", []string{abi.SourceSyscalls}, make([]uint32, MaxSyscallPIDs+1), "", transport.Options{}, "at most 1024 fit"},
		{"unknown transport", nil, nil, "pigeon", transport.Options{}, `unknown transport "pigeon": choose from ringbuf, percpu-ringbuf, perfbuf, spsc`},
		{"cpus per ring elsewhere", nil, nil, abi.Perfbuf, transport.Options{CPUsPerRing: 2}, "CPUsPerRing 2 applies only to Transport percpu-ringbuf"},
		{"negative cpus per ring", nil, nil, abi.PercpuRingbuf, transport.Options{CPUsPerRing: -1}, "CPUsPerRing -1: give 1 or more"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := func() error {
				names := tc.sources
				if names == nil {
					names = []string{abi.SourceExec} // what Options' nil Sources mean
				}
				chosen, err := ParseSources(names)
				if err != nil {
					return err
				}
				tr, err := transport.New(tc.kind, tc.ringSizes)
				if err != nil {
					return err
				}
				defer tr.Close()
				p, err := Open(Options{Sources: chosen, Transport: tr, SyscallPIDs: tc.pids})
				if err == nil {
					p.Close()
				}
				return err
			}()
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalidOption saying %q", err, tc.want)
			}
		})
	}
}
