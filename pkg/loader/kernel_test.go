package loader

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// openProducers loads the producers and a consumer of their rings, both
// closed when t ends.
func openProducers(t *testing.T, opts Options) (*Producers, *consumer.Consumer) {
	t.Helper()
	p, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close producers: %v", err)
		}
	})
	c, err := consumer.OpenConfig(p.ConsumerConfig())
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
	name string
	opts Options
}{
	{"ringbuf", Options{Transport: consumer.Ringbuf}},
	{"percpu-ringbuf", Options{Transport: consumer.PercpuRingbuf}},
	{"percpu-ringbuf-grouped", Options{Transport: consumer.PercpuRingbuf, CPUsPerRing: 2}},
	{"perfbuf", Options{Transport: consumer.Perfbuf}},
	{"spsc", Options{Transport: consumer.SPSC}},
	{"ringbuf-every", Options{Transport: consumer.Ringbuf, Wakeup: consumer.WakeupEvery}},
	{"ringbuf-busy", Options{Transport: consumer.Ringbuf, Wakeup: consumer.WakeupBusy}},
	{"spsc-every", Options{Transport: consumer.SPSC, Wakeup: consumer.WakeupEvery}},
}

// forEachTransport runs test once per transport, with opts's transport
// settings filled in.
func forEachTransport(t *testing.T, opts Options, test func(t *testing.T, opts Options)) {
	for _, tc := range transportCases {
		t.Run(tc.name, func(t *testing.T) {
			o := opts
			o.Transport, o.CPUsPerRing, o.Wakeup = tc.opts.Transport, tc.opts.CPUsPerRing, tc.opts.Wakeup
			test(t, o)
		})
	}
}

func TestExecEventsArriveExactly(t *testing.T) {
	forEachTransport(t, Options{Sources: []string{SourceExec}}, testExecEventsArriveExactly)
}

func testExecEventsArriveExactly(t *testing.T, opts Options) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	p, c := openProducers(t, opts)

	self := uint32(os.Getpid())
	ours := map[uint32]ExecRecord{} // exec events of our children, by pid
	finish := consume(t, p, c, func(rec []byte) {
		e, err := DecodeExec(rec)
		if err != nil || e.Hdr.Type != RecordExec {
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

// TestWakeupsDeliverEachRecordAlone runs one process at a time and waits
// for its exec record before running the next: the consumer sleeps in
// between, and each record must wake it. A lost wakeup would leave the
// record waiting for a later one, and the wait would only end at the
// deadline, which is there to fail instead of hang.
func TestWakeupsDeliverEachRecordAlone(t *testing.T) {
	forEachTransport(t, Options{Sources: []string{SourceExec}}, testWakeupsDeliverEachRecordAlone)
}

func testWakeupsDeliverEachRecordAlone(t *testing.T, opts Options) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	p, c := openProducers(t, opts)
	arrived := make(chan uint32, 100)
	self := uint32(os.Getpid())
	finish := consume(t, p, c, func(rec []byte) {
		if e, err := DecodeExec(rec); err == nil && e.Ppid == self {
			arrived <- e.Pid
		}
	})
	defer finish()
	for round := range 50 {
		cmd := exec.Command("/bin/true")
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		select {
		case pid := <-arrived:
			if pid != uint32(cmd.Process.Pid) {
				t.Fatalf("round %d: exec record of pid %d, want %d", round, pid, cmd.Process.Pid)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the exec record of pid %d never woke the consumer", round, cmd.Process.Pid)
		}
	}
	var wakeups uint64
	for _, st := range c.Stats() {
		wakeups += st.Wakeups
	}
	switch {
	case opts.Wakeup == consumer.WakeupBusy && wakeups != 0:
		t.Errorf("a polling consumer was woken %d times", wakeups)
	case opts.Wakeup != consumer.WakeupBusy && wakeups == 0:
		t.Error("50 records arrived without one wakeup: the consumer never slept")
	}
}

func TestSyscallsWithPIDFilterArriveExactly(t *testing.T) {
	// 100,000 records of 40 bytes (48 in a ring, a perf buffer or an SPSC
	// slot) fit 8 MiB even if the reader fell behind, so any loss here is a
	// bug, not load.
	forEachTransport(t, Options{Sources: []string{SourceSyscalls}, RingSize: 8 << 20},
		testSyscallsWithPIDFilterArriveExactly)
}

func testSyscallsWithPIDFilterArriveExactly(t *testing.T, opts Options) {
	testenv.RequireBPF(t)
	child := testenv.StartSyscallChild(t)
	opts.SyscallPIDs = []uint32{uint32(child.Pid)}
	p, c := openProducers(t, opts)

	getpids, others := 0, 0
	finish := consume(t, p, c, func(rec []byte) {
		s, err := DecodeSyscall(rec)
		if err != nil || s.Hdr.Type != RecordSyscall {
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
	p, c := openProducers(t, Options{Sources: []string{SourceSyscalls}})
	self, fromSelf, fromChild := uint32(os.Getpid()), 0, 0
	finish := consume(t, p, c, func(rec []byte) {
		s, err := DecodeSyscall(rec)
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
	forEachTransport(t, Options{Sources: SourceNames()}, testCloseLeavesNoBPFObjects)
}

func testCloseLeavesNoBPFObjects(t *testing.T, opts Options) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	before := testenv.Snapshot(t)

	p, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := consumer.OpenConfig(p.ConsumerConfig())
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
	if err := errors.Join(c.Close(), p.Close()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	testenv.WaitForObjects(t, before)
}

func TestOpenRejectsBadOptionsFirst(t *testing.T) {
	// Option errors come before any privilege or kernel check, so these
	// hold for any user on any kernel.
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"unknown source", Options{Sources: []string{"exec", "forks"}}, `unknown source "forks": choose from exec, syscalls`},
		{"ring size", Options{RingSize: 3 << 20}, "ring size 3MiB is not a power-of-two multiple of the page size"},
		{"too many pids", Options{Sources: []string{SourceSyscalls}, SyscallPIDs: make([]uint32, MaxSyscallPIDs+1)}, "at most 1024 fit"},
		{"unknown transport", Options{Transport: "pigeon"}, `unknown transport "pigeon": choose from ringbuf, percpu-ringbuf, perfbuf, spsc`},
		{"cpus per ring elsewhere", Options{Transport: consumer.Perfbuf, CPUsPerRing: 2}, "only for the percpu-ringbuf transport"},
		{"negative cpus per ring", Options{Transport: consumer.PercpuRingbuf, CPUsPerRing: -1}, "a positive number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Open(tc.opts)
			if err == nil {
				p.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalidOption saying %q", err, tc.want)
			}
		})
	}
}
