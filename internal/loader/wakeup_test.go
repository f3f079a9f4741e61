package loader

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/cpus"
	"github.com/ringwatch/ringwatch/internal/ringmap"
	"github.com/ringwatch/ringwatch/internal/testbpf"
	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/internal/transport"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// These tests drive real rings through the real BPF sleep handshake: the
// producers' own reserve() and submit() (bpf/transport.h), run with
// BPF_PROG_TEST_RUN, either as the bench's synthetic producer or as the
// test fillers of bpf/testfill.c (internal/testbpf), which also discard
// records and hold a reservation open. Every consumer here sleeps deeply
// (Config.MaxDelay < 0): no timer wakes it, so a record whose wakeup is
// lost waits until the test's deadline, which fails the test.

// The flags of bpf_ringbuf_submit and bpf_ringbuf_discard
// (include/uapi/linux/bpf.h).
const (
	rbNoWakeup    = 1 // BPF_RB_NO_WAKEUP
	rbForceWakeup = 2 // BPF_RB_FORCE_WAKEUP
)

// deadline only turns a hang into a failure; it is no statement about speed.
const deadline = 10 * time.Second

// benchSource is the bench's synthetic producer of 16-byte records
// (bpf/ringwatch.c, bench_16_<transport>): loaded, never attached, run on
// demand.
var benchSource = Source{Name: "bench", RecordSize: 16, Program: "bench_16"}

// rig is a transport's producers, loaded with the wakeup mode under test,
// and a consumer of their rings that sleeps deeply, reading on an OS thread
// of its own so that the test can see when it sleeps.
type rig struct {
	p    *Producers
	c    *consumer.Consumer
	kind abi.TransportName
	mode consumer.Wakeup

	tid       int           // the reading thread
	delivered atomic.Uint64 // records handed to the callback
	target    atomic.Uint64 // delivered count that signals arrived
	arrived   chan struct{}
	mu        sync.Mutex
	seqs      []uint64 // of the filler's records, in order of delivery
	each      func(rec []byte)
	stop      func() // stops the reader; idempotent
}

// rigConfig says what openRig loads.
type rigConfig struct {
	kind        abi.TransportName
	mode        consumer.Wakeup // "" is adaptive
	cpusPerRing int             // as transport.Options has it
	sources     []Source        // nil: benchSource
	attach      bool            // attach the sources
	// each, if set, sees every record delivered, on the reading thread.
	each func(rec []byte)
}

// openRig loads cfg's sources and a deeply sleeping consumer of every
// ring of the transport. The reader starts at once.
func openRig(t *testing.T, cfg rigConfig) *rig {
	t.Helper()
	testenv.RequireBPF(t)
	if cfg.sources == nil {
		cfg.sources = []Source{benchSource}
	}
	tr, opts := openTransport(t, setup{Options: Options{Sources: cfg.sources, Wakeup: cfg.mode}, kind: cfg.kind,
		ringSizes: transport.Options{CPUsPerRing: cfg.cpusPerRing}})
	p, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close producers: %v", err)
		}
	})
	c, err := consumer.OpenConfig(tr.ReaderConfig(opts.Wakeup, -1))
	if err != nil {
		t.Fatalf("consumer.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close consumer: %v", err)
		}
	})
	if cfg.attach {
		if err := p.Attach(); err != nil {
			t.Fatalf("Attach: %v", err)
		}
	}
	r := &rig{p: p, c: c, kind: cfg.kind, mode: opts.Wakeup, each: cfg.each, arrived: make(chan struct{}, 1)}
	r.start(t)
	return r
}

// start runs the reader on a locked thread until stop.
func (r *rig) start(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	tids := make(chan int)
	var wg sync.WaitGroup
	wg.Go(func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tids <- unix.Gettid()
		for ctx.Err() == nil {
			if _, err := r.c.Read(ctx, r.take); err != nil && ctx.Err() == nil {
				t.Errorf("Read: %v", err)
				return
			}
		}
	})
	r.tid = <-tids
	var once sync.Once
	r.stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(r.stop)
}

// take is the reader's callback: it keeps the seq of 16-byte records (the
// fillers' and the bench's), and signals arrived when target is reached.
func (r *rig) take(b consumer.Batch) {
	r.mu.Lock()
	for _, rec := range b.Records {
		if r.each != nil {
			r.each(rec)
		}
		if len(rec) == 16 {
			r.seqs = append(r.seqs, binary.LittleEndian.Uint64(rec[unsafe.Offsetof(abi.BenchRecord{}.Seq):]))
		}
	}
	r.mu.Unlock()
	if n := r.delivered.Add(uint64(len(b.Records))); n >= r.target.Load() && n-uint64(len(b.Records)) < r.target.Load() {
		select {
		case r.arrived <- struct{}{}:
		default:
		}
	}
}

// expect sets how many records in all must arrive before arrived signals.
func (r *rig) expect(total uint64) { r.target.Store(total) }

// await fails t unless the records expect named arrive before the deadline.
func (r *rig) await(t *testing.T, what string) {
	t.Helper()
	for r.delivered.Load() < r.target.Load() {
		select {
		case <-r.arrived:
		case <-time.After(deadline):
			t.Fatalf("%s: %d of %d records delivered after %v: a record is waiting for a later one",
				what, r.delivered.Load(), r.target.Load(), deadline)
		}
	}
}

// awaitSleep waits until the reader is blocked in epoll_wait or
// epoll_pwait2: asleep, so that only a wakeup can make it read again.
// /proc/<tid>/syscall names the system call a task is blocked in, and says
// "running" for a task that is not blocked (fs/proc/base.c,
// proc_pid_syscall).
func (r *rig) awaitSleep(t *testing.T) {
	t.Helper()
	path := fmt.Sprintf("/proc/self/task/%d/syscall", r.tid)
	start := time.Now()
	for {
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			testenv.Unavailable(t, fmt.Sprintf("needs %s (CONFIG_HAVE_ARCH_TRACEHOOK) to see the consumer sleep", path))
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		nr, _, _ := strings.Cut(string(b), " ")
		if n, err := strconv.ParseUint(strings.TrimSpace(nr), 10, 64); err == nil && testenv.IsEpollWait(n) {
			return
		}
		if time.Since(start) > deadline {
			t.Fatalf("the consumer never went to sleep (%s: %q)", path, b)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// fillers loads bpf/testfill.c's programs for the rig's transport, writing
// into its rings and waking its consumer through the producers' maps.
func (r *rig) fillers(t *testing.T) (fill, hold *ebpf.Program, control *ebpf.Map) {
	t.Helper()
	spec, err := testbpf.Load()
	if err != nil {
		t.Fatal(err)
	}
	suffix := strings.ReplaceAll(string(r.kind), "-", "_")
	for name := range spec.Programs {
		if name != "fill_"+suffix && name != "hold_"+suffix {
			delete(spec.Programs, name)
		}
	}
	pruneMaps(spec)
	replace := map[string]*ebpf.Map{}
	for name, ms := range spec.Maps {
		if m := r.p.Map(name); m != nil {
			// Sized by the transport when the producers were loaded.
			ms.MaxEntries, ms.ValueSize = m.MaxEntries(), m.ValueSize()
			replace[name] = m
		}
	}
	if len(replace) == 0 {
		t.Fatal("the fillers share no map with the producers")
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: replace})
	if err != nil {
		t.Fatalf("load the fillers: %v", err)
	}
	t.Cleanup(coll.Close)
	return coll.Programs["fill_"+suffix], coll.Programs["hold_"+suffix], coll.Maps[testbpf.MapHoldControl]
}

func runFill(t *testing.T, fill *ebpf.Program, args testbpf.FillArgs) {
	t.Helper()
	if _, err := fill.Run(&ebpf.RunOptions{Context: args}); err != nil {
		t.Fatalf("run %v: %v", fill, err)
	}
}

// discardFlags are what a discard may pass.
var discardFlags = []struct {
	name  string
	flags uint64
}{
	{"no-wakeup", rbNoWakeup},
	{"default", 0},
	{"force-wakeup", rbForceWakeup},
}

// wakeupModes are the modes a producer is loaded with: the user's, and the
// kernel's own rule that the bench's peers use.
func wakeupModes() []consumer.Wakeup { return append(consumer.Wakeups(), consumer.WakeupKernel) }

// TestDiscardThenSubmitWakesTheConsumer is the hazard the kernel documents
// for bpf_ringbuf_discard (commit f9a80c7ce49e): a discard with
// BPF_RB_NO_WAKEUP at the consumer's position, then a submit, may wake
// nobody. For every wakeup mode, ring buffer transport and discard flag,
// the consumer sleeps deeply, the filler discards one to three records and
// then submits one through the producers' submit(), and that record must
// arrive, woken (counted in Woken), before anything else is written. Only
// kernel mode with a no-wakeup discard misses, which
// TestKernelWakeupsMissASubmitBehindANoWakeupDiscard shows; perfbuf and
// spsc have no discard: a perf record is copied in whole
// (bpf_perf_event_output), and an spsc slot is published only by its
// submit, so nothing of an abandoned record stays in the queue.
func TestDiscardThenSubmitWakesTheConsumer(t *testing.T) {
	for _, kind := range []abi.TransportName{abi.Ringbuf, abi.PercpuRingbuf} {
		for _, mode := range wakeupModes() {
			for _, d := range discardFlags {
				if mode == consumer.WakeupKernel && d.flags == rbNoWakeup {
					continue
				}
				t.Run(fmt.Sprintf("%s/%s/discard-%s", kind, mode, d.name), func(t *testing.T) {
					testDiscardThenSubmit(t, kind, mode, d.flags)
				})
			}
		}
	}
}

func testDiscardThenSubmit(t *testing.T, kind abi.TransportName, mode consumer.Wakeup, discardFlags uint64) {
	r := openRig(t, rigConfig{kind: kind, mode: mode})
	fill, _, _ := r.fillers(t)
	const rounds = 10
	discarded := uint64(0)
	for round := range uint64(rounds) {
		before := r.c.Woken()
		if mode != consumer.WakeupBusy {
			r.awaitSleep(t)
		}
		discards := 1 + uint32(round%3)
		discarded += uint64(discards)
		r.expect(round + 1)
		runFill(t, fill, testbpf.FillArgs{Submits: 1, Discards: discards, DiscardFlags: discardFlags, FirstSeq: round})
		r.await(t, fmt.Sprintf("round %d", round))
		switch woken := r.c.Woken(); {
		case mode == consumer.WakeupBusy && woken != 0:
			t.Fatalf("round %d: a polling consumer was woken %d times", round, woken)
		case mode != consumer.WakeupBusy && woken == before:
			t.Fatalf("round %d: the record arrived, but no wakeup was counted", round)
		}
	}
	r.stop()
	if _, err := r.c.Drain(r.take); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if want := seqRange(0, rounds); !slices.Equal(r.seqs, want) {
		t.Errorf("delivered %v, want %v", r.seqs, want)
	}
	var got consumer.RingStats
	for _, st := range r.c.Stats() {
		got.Records += st.Records
		got.Discarded += st.Discarded
	}
	if got.Records != rounds || got.Discarded != discarded {
		t.Errorf("Stats: %d records and %d discarded, want %d and %d", got.Records, got.Discarded, rounds, discarded)
	}
}

func seqRange(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// TestKernelWakeupsMissASubmitBehindANoWakeupDiscard shows, on the running
// kernel, the hazard the other discard tests rule out, so that they are
// known to be able to catch it: with the kernel's own wakeup rule (flags 0,
// WAKEUP_KERNEL), a record submitted behind a BPF_RB_NO_WAKEUP discard at
// the consumer's position wakes nobody (kernel/bpf/ringbuf.c,
// bpf_ringbuf_commit: a flags-0 commit wakes only if the consumer position
// is the record's). The record is in the ring all the same: a Drain finds
// it. Should a kernel ever wake here, this test fails and says so; the
// rule in bpf/transport.h (discard with flags 0 in kernel mode) would then
// be a precaution only.
func TestKernelWakeupsMissASubmitBehindANoWakeupDiscard(t *testing.T) {
	for _, kind := range []abi.TransportName{abi.Ringbuf, abi.PercpuRingbuf} {
		t.Run(string(kind), func(t *testing.T) {
			r := openRig(t, rigConfig{kind: kind, mode: consumer.WakeupKernel})
			fill, _, _ := r.fillers(t)
			r.awaitSleep(t)
			r.expect(1)
			runFill(t, fill, testbpf.FillArgs{Submits: 1, Discards: 1, DiscardFlags: rbNoWakeup})
			// Only a wakeup could end this wait, and the kernel sends none:
			// however long the wait, nothing arrives.
			select {
			case <-r.arrived:
				t.Fatal("the consumer was woken for a record behind a no-wakeup discard: the kernel's rule changed")
			case <-time.After(200 * time.Millisecond):
			}
			if w := r.c.Woken(); w != 0 {
				t.Fatalf("woken %d times", w)
			}
			// Stopping the reader wakes it through its eventfd, and the
			// Read then reads once more before it returns.
			r.stop()
			if _, err := r.c.Drain(r.take); err != nil {
				t.Fatal(err)
			}
			if n := r.delivered.Load(); n != 1 {
				t.Fatalf("%d records read once the reader was woken otherwise; want the 1 waiting", n)
			}
			var discarded uint64
			for _, st := range r.c.Stats() {
				discarded += st.Discarded
			}
			if discarded != 1 {
				t.Errorf("%d records counted discarded, want 1", discarded)
			}
		})
	}
}

// TestHeldReservationStopsTheReader holds a record reserved, its header
// still busy, in a real ring while later records are committed behind it:
// the reader must deliver nothing past it (the kernel's ring is read in
// order, and a busy header is a record not yet written), and everything,
// in order, once it is submitted. hold_<transport> holds it for the length
// of its run, spinning on a flag in a map, on a thread of its own, while
// the test writes and reads on a second CPU (a kernel that does not
// preempt the spinning program would leave a single CPU to it until its
// timeout). percpu-ringbuf groups every CPU on one ring, so that both
// threads' records meet there wherever they run.
func TestHeldReservationStopsTheReader(t *testing.T) {
	for _, tc := range []struct {
		kind        abi.TransportName
		cpusPerRing int
	}{{abi.Ringbuf, 0}, {abi.PercpuRingbuf, runtime.NumCPU()}} {
		t.Run(string(tc.kind), func(t *testing.T) {
			testenv.RequireBPF(t)
			testenv.RequireCPUs(t, 2)
			tr, opts := openTransport(t, setup{Options: Options{Sources: []Source{benchSource}, Wakeup: consumer.WakeupEvery},
				kind: tc.kind, ringSizes: transport.Options{CPUsPerRing: tc.cpusPerRing}})
			p, err := Open(opts)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer p.Close()
			c, err := consumer.OpenConfig(tr.ReaderConfig(opts.Wakeup, -1))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r := &rig{p: p, c: c, kind: tc.kind}
			fill, hold, control := r.fillers(t)
			drain := func() []uint64 {
				t.Helper()
				r.mu.Lock()
				r.seqs = r.seqs[:0]
				r.mu.Unlock()
				if _, err := c.Drain(r.take); err != nil {
					t.Fatalf("Drain: %v", err)
				}
				return slices.Clone(r.seqs)
			}

			runFill(t, fill, testbpf.FillArgs{Submits: 2, FirstSeq: 0})
			if got := drain(); !slices.Equal(got, []uint64{0, 1}) {
				t.Fatalf("before the hold: %v", got)
			}

			held := make(chan error, 1)
			go func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				ret, err := hold.Run(&ebpf.RunOptions{Context: testbpf.HoldArgs{Seq: 2, TimeoutNs: uint64(deadline)}})
				if err == nil && ret != 1 {
					err = fmt.Errorf("hold returned %d: the ring had no room", ret)
				}
				held <- err
			}()
			var hs testbpf.HoldState
			for start := time.Now(); hs.Holding == 0; time.Sleep(100 * time.Microsecond) {
				if err := control.Lookup(uint32(0), &hs); err != nil {
					t.Fatal(err)
				}
				if time.Since(start) > deadline {
					t.Fatal("the hold program never reserved")
				}
			}
			// Behind the held record, on another thread (and maybe CPU).
			runFill(t, fill, testbpf.FillArgs{Submits: 3, Discards: 1, DiscardFlags: rbNoWakeup, FirstSeq: 3})
			if got := drain(); len(got) != 0 {
				t.Fatalf("delivered %v past a reserved, unsubmitted record", got)
			}
			var pending uint64
			for _, st := range c.Stats() {
				pending += st.Pending
			}
			// The held record, and three records each after a discarded
			// one: 7 records of 8 + 16 bytes.
			if pending != 7*24 {
				t.Errorf("%d bytes pending from the held record on, want %d", pending, 7*24)
			}

			hs.Release = 1
			if err := control.Put(uint32(0), hs); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-held:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(2 * deadline):
				t.Fatal("the hold program never returned")
			}
			if err := control.Lookup(uint32(0), &hs); err != nil {
				t.Fatal(err)
			}
			if hs.TimedOut != 0 {
				t.Fatal("the hold program timed out instead of seeing the release: the checks above proved nothing")
			}
			if got := drain(); !slices.Equal(got, []uint64{2, 3, 4, 5}) {
				t.Fatalf("after the release: %v, want [2 3 4 5]", got)
			}
			var discarded uint64
			for _, st := range c.Stats() {
				discarded += st.Discarded
			}
			if discarded != 3 {
				t.Errorf("%d records counted discarded, want 3", discarded)
			}
		})
	}
}

// TestSleepHandshakeManyRounds runs thousands of burst-then-idle rounds
// through the real producers (the bench's, bpf/ringwatch.c) and every
// transport, as TestSPSCHandshakeLeavesNoRecordWaiting does on the Go model
// of the SPSC queue: the consumer sleeps deeply between most bursts and
// must be woken by the handshake (adaptive: the doorbell; perfbuf: the
// perf buffer's own wakeup), and the test waits for every record of a
// burst before writing the next, so a lost wakeup hangs the round until
// its deadline fails it.
func TestSleepHandshakeManyRounds(t *testing.T) {
	rounds := 2000
	if testing.Short() {
		rounds = 200
	}
	for _, tc := range []struct {
		kind abi.TransportName
		mode consumer.Wakeup
	}{
		{abi.Ringbuf, consumer.WakeupAdaptive},
		{abi.PercpuRingbuf, consumer.WakeupAdaptive},
		{abi.Perfbuf, consumer.WakeupAdaptive},
		{abi.SPSC, consumer.WakeupAdaptive},
		{abi.SPSC, consumer.WakeupEvery},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.kind, tc.mode), func(t *testing.T) {
			r := openRig(t, rigConfig{kind: tc.kind, mode: tc.mode})
			prog := r.p.Program(benchSource.Name)
			if prog == nil {
				t.Fatal("no bench producer loaded")
			}
			rng := rand.New(rand.NewPCG(1, 2))
			var sent uint64
			var longest time.Duration
			start := time.Now()
			for round := range rounds {
				burst := 1 + rng.IntN(64)
				sent += uint64(burst)
				r.expect(sent)
				begin := time.Now()
				var ctx any = abi.BenchArgs{Count: uint32(burst)}
				if prog.Type() == ebpf.RawTracepoint {
					ctx = [1]uint64{uint64(burst)} // the perfbuf producer: see bpf/ringwatch.c
				}
				if _, err := prog.Run(&ebpf.RunOptions{Context: ctx}); err != nil {
					t.Fatalf("run the bench producer: %v", err)
				}
				r.await(t, fmt.Sprintf("round %d", round))
				longest = max(longest, time.Since(begin))
				// Idle long enough, most of the time, for the consumer to
				// reach epoll_wait; sometimes not at all, to race its arm.
				if rng.IntN(4) > 0 {
					time.Sleep(time.Duration(rng.IntN(50)) * time.Microsecond)
				}
			}
			took := time.Since(start)
			r.stop()
			var perCPU []abi.BenchCounters
			if err := r.p.Map(abi.MapBenchCounters).Lookup(uint32(0), &perCPU); err != nil {
				t.Fatal(err)
			}
			var attempts, lost uint64
			for _, c := range perCPU {
				attempts, lost = attempts+c.Attempts, lost+c.Lost
			}
			woken := r.c.Woken()
			t.Logf("%d rounds, %d records in %v: %d wakeups; longest burst-to-delivery %v", rounds, sent, took, woken, longest)
			if attempts != sent || lost != 0 || r.delivered.Load() != sent {
				t.Errorf("sent %d: the producer attempted %d and lost %d, the consumer got %d", sent, attempts, lost, r.delivered.Load())
			}
			// The test is about the sleep path: it must have been taken, often.
			if woken < uint64(rounds)/10 {
				t.Errorf("only %d wakeups in %d rounds: the consumer hardly slept", woken, rounds)
			}
		})
	}
}

// TestLazySleeperWokenAtItsWatermark holds the producers' side of a lazy
// sleep to the watermark the consumer sets for it in wake_state: with the
// consumer's flag at SLEEP_LAZY, the real producers write one record at a
// time, and the doorbell must stay silent until pending reaches the
// watermark, then ring once, with the flag cleared. The test plays the
// consumer: it writes the wake state and reads the doorbell's positions.
func TestLazySleeperWokenAtItsWatermark(t *testing.T) {
	for _, kind := range []abi.TransportName{abi.Ringbuf, abi.PercpuRingbuf, abi.SPSC} {
		t.Run(string(kind), func(t *testing.T) { testLazyWatermark(t, kind) })
	}
}

func testLazyWatermark(t *testing.T, kind abi.TransportName) {
	testenv.RequireBPF(t)
	tr, opts := openTransport(t, setup{Options: Options{Sources: []Source{benchSource}, Wakeup: consumer.WakeupAdaptive}, kind: kind})
	p, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	cfg := tr.ReaderConfig(consumer.WakeupAdaptive, 0)
	state, err := unix.Mmap(cfg.State.FD(), 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap the wake state: %v", err)
	}
	defer unix.Munmap(state)
	sleeping := (*uint32)(unsafe.Pointer(&state[abi.WakeSleepingOffset]))
	watermark := (*uint32)(unsafe.Pointer(&state[abi.WakeWatermarkOffset]))
	bell, err := ringmap.Map(cfg.Doorbell, false)
	if err != nil {
		t.Fatal(err)
	}
	defer bell.Close()
	rung := func() uint64 { return atomic.LoadUint64(bell.ProducerPos) - atomic.LoadUint64(bell.ConsumerPos) }

	// 16-byte records: 24 bytes in a ring buffer (header and padding), one
	// slot in a queue. The watermark is in the unit each producer counts.
	const records, wake = 10, 7
	unit := uint32(16 + 8)
	if kind == abi.SPSC {
		unit = 1
	}
	prog := p.Program("bench")
	run := func() {
		t.Helper()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cpus.PinThread(0); err != nil { // one CPU, so one ring or queue fills
			t.Fatal(err)
		}
		if _, err := prog.Run(&ebpf.RunOptions{Context: abi.BenchArgs{Count: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	atomic.StoreUint32(watermark, wake*unit)
	atomic.StoreUint32(sleeping, uint32(abi.SleepLazy))
	for i := 1; i <= records; i++ {
		run()
		switch {
		case i < wake && (rung() != 0 || atomic.LoadUint32(sleeping) != uint32(abi.SleepLazy)):
			t.Fatalf("record %d of a watermark of %d rang the doorbell (%d bytes) or cleared the flag (%d)",
				i, wake, rung(), atomic.LoadUint32(sleeping))
		case i >= wake && (rung() != 16 || atomic.LoadUint32(sleeping) != uint32(abi.SleepAwake)):
			t.Fatalf("after record %d of a watermark of %d: doorbell holds %d bytes, flag %d; want one doorbell (16 bytes) and the flag cleared",
				i, wake, rung(), atomic.LoadUint32(sleeping))
		}
	}
}
