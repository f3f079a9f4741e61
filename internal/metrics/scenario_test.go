package metrics

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/accounting"
	"github.com/ringwatch/ringwatch/internal/control"
	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/internal/session"
	"github.com/ringwatch/ringwatch/internal/testenv"
	tpt "github.com/ringwatch/ringwatch/internal/transport"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// counted is what a test's own callback saw of the records a drain handed
// over: a count kept apart from the consumer's and the tracker's.
type counted struct{ records, ringBytes uint64 }

func (pl *pipeline) drainCounting(t *testing.T) counted {
	t.Helper()
	var c counted
	if err := pl.Drain(func(b consumer.Batch) {
		for _, rec := range b.Records {
			c.records++
			c.ringBytes += uint64(8+len(rec)+7) &^ 7 // a BPF ring buffer's header and padding
		}
	}); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	return c
}

// syscallsPipeline carries the syscalls of a child pinned to CPU 0, so that
// all its records, and all its losses, are on that CPU, through transport
// with rings of ringSize bytes.
func syscallsPipeline(t *testing.T, transport abi.TransportName, ringSize int) (*pipeline, *testenv.SyscallChild) {
	t.Helper()
	testenv.RequireBPF(t)
	testenv.RequireCPUs(t, 2)
	child := testenv.StartSyscallChild(t)
	child.Pin(t, 0)
	pl := openPipeline(t, []string{abi.SourceSyscalls}, session.Options{
		Transport:   transport,
		Rings:       tpt.Options{RingSize: ringSize},
		SyscallPIDs: []uint32{uint32(child.Pid)},
	})
	return pl, child
}

// TestMetricsShowLossAsCountedOnEachSide floods a 4-page ring nobody reads,
// then lets a few records through, so that the loss is in the middle of the
// sequence. The scrape must show, each non-zero: the losses as the BPF
// producers counted them, the gaps as the consumer found them in the
// sequence numbers (equal, found independently), and the records as the
// test's own callback counted them.
func TestMetricsShowLossAsCountedOnEachSide(t *testing.T) {
	pl, child := syscallsPipeline(t, abi.Ringbuf, 4*os.Getpagesize())
	child.Getpid(t, 20_000)
	seen := pl.drainCounting(t)
	child.Getpid(t, 10)
	after := pl.drainCounting(t)
	seen.records += after.records
	if after.records < 10 {
		t.Fatalf("%d records after the flood, want the 10 getpids at least", after.records)
	}
	// The child's Go runtime makes system calls of its own at any moment:
	// drain until a drain finds the kernel's attempts where they were
	// before it, so that every attempt is either seen or lost.
	var k loader.Counters
	for try := 0; ; try++ {
		before, err := pl.Counters()
		if err != nil {
			t.Fatal(err)
		}
		seen.records += pl.drainCounting(t).records
		after, err := pl.Counters()
		if err != nil {
			t.Fatal(err)
		}
		if k = after[0]; before[0].Attempts == k.Attempts {
			break
		}
		if try == 200 {
			t.Fatal("records kept arriving during every drain")
		}
		time.Sleep(time.Millisecond) // for a moment the child's runtime is quiet
	}
	if k.Lost == 0 {
		t.Fatal("the flood lost nothing: the test proves nothing")
	}
	if seen.records+k.Lost != k.Attempts {
		t.Errorf("callback saw %d + kernel lost %d != %d attempted", seen.records, k.Lost, k.Attempts)
	}
	families := gather(t, pl.collector)
	ring := map[string]string{"ring": "events", "transport": "ringbuf"}
	source := map[string]string{"source": "syscalls"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   uint64
	}{
		{"ringwatch_ring_lost_records_total", ring, k.Lost},
		{"ringwatch_ring_sequence_gaps_total", ring, k.Lost},
		{"ringwatch_source_lost_records_total", source, k.Lost},
		{"ringwatch_source_sequence_gaps_total", source, k.Lost},
		{"ringwatch_ring_records_total", ring, seen.records},
		{"ringwatch_source_events_total", source, seen.records},
		{"ringwatch_ring_kernel_lost_records_total", ring, 0}, // only perf buffers report their own
	} {
		if got := value(t, families, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %d, want %d", c.name, c.labels, got, c.want)
		}
	}
	// The child may have made system calls since the counters were read:
	// attempted can only have grown, by records still in the ring.
	ringAttempted := value(t, families, "ringwatch_ring_attempted_records_total", ring)
	sourceAttempted := value(t, families, "ringwatch_source_attempted_records_total", source)
	if ringAttempted != sourceAttempted || ringAttempted < k.Attempts {
		t.Errorf("attempted: ring %d, source %d; the kernel counted %d before the scrape", ringAttempted, sourceAttempted, k.Attempts)
	}
}

// TestMetricsShowPendingBytes fills part of a ring nobody reads: the
// pending gauge must be the bytes the records then drained take in the
// ring, headers and padding included, as the test's callback adds them up.
func TestMetricsShowPendingBytes(t *testing.T) {
	pl, child := syscallsPipeline(t, abi.Ringbuf, 16*os.Getpagesize())
	for try := 0; ; try++ {
		child.Getpid(t, 100)
		before, err := pl.Counters()
		if err != nil {
			t.Fatal(err)
		}
		pending := value(t, gather(t, pl.collector), "ringwatch_ring_pending_bytes", map[string]string{"ring": "events"})
		seen := pl.drainCounting(t)
		after, err := pl.Counters()
		if err != nil {
			t.Fatal(err)
		}
		// The child's Go runtime makes system calls of its own at any
		// moment; compare only when none came between scrape and drain.
		if after[0].Attempts != before[0].Attempts {
			if try == 200 {
				t.Fatal("records kept arriving between every scrape and drain")
			}
			time.Sleep(time.Millisecond) // for a moment the child's runtime is quiet
			continue
		}
		if after[0].Lost != 0 || seen.records < 100 {
			t.Fatalf("%d records drained, %d lost: want the 100 getpids, none lost", seen.records, after[0].Lost)
		}
		if pending != seen.ringBytes {
			t.Errorf("ringwatch_ring_pending_bytes = %d; the %d records drained took %d bytes of the ring", pending, seen.records, seen.ringBytes)
		}
		if now := value(t, gather(t, pl.collector), "ringwatch_ring_pending_bytes", map[string]string{"ring": "events"}); now != 0 && after[0].Attempts == before[0].Attempts {
			// Records may come after the drain; only a quiet ring must read 0.
			if again, _ := pl.Counters(); again[0].Attempts == after[0].Attempts {
				t.Errorf("ringwatch_ring_pending_bytes = %d after a drain of a quiet ring", now)
			}
		}
		return
	}
}

// TestMetricsShowKernelReportedLoss floods a perf buffer: the kernel counts
// what it drops in the buffer itself (lost-sample records), apart from the
// producers' count of failed outputs. Once a sample fits again the two must
// agree, and the metric must show it.
func TestMetricsShowKernelReportedLoss(t *testing.T) {
	pl, child := syscallsPipeline(t, abi.Perfbuf, os.Getpagesize())
	child.Getpid(t, 20_000)
	pl.drainCounting(t)
	child.Getpid(t, 10) // the next sample that fits carries the lost count
	pl.drainCounting(t)
	counters, err := pl.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if counters[0].Lost == 0 {
		t.Fatal("the flood lost nothing: the test proves nothing")
	}
	families := gather(t, pl.collector)
	got := value(t, families, "ringwatch_ring_kernel_lost_records_total", map[string]string{"ring": "cpu0", "transport": "perfbuf"})
	if got != counters[0].Lost {
		t.Errorf("ringwatch_ring_kernel_lost_records_total{ring=cpu0} = %d, producers counted %d lost", got, counters[0].Lost)
	}
	if lost := value(t, families, "ringwatch_ring_lost_records_total", map[string]string{"ring": "cpu0", "transport": "perfbuf"}); lost != counters[0].Lost {
		t.Errorf("ringwatch_ring_lost_records_total{ring=cpu0} = %d, producers counted %d", lost, counters[0].Lost)
	}
}

// TestMetricsShowSkippedEvents pauses the syscalls source through the user
// ring: the child's getpid calls while paused must reach the consumer not
// at all, and the scrape must count them skipped, as the kernel did.
func TestMetricsShowSkippedEvents(t *testing.T) {
	testenv.RequireUserRing(t)
	pl, child := syscallsPipeline(t, abi.Ringbuf, 0)
	ctl, err := session.OpenControl(pl.Session, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ctl.Apply(ctx, control.AppendSource(nil, abi.MsgPause, abi.RecordSyscall, 0)); err != nil {
		t.Fatal(err)
	}
	pl.drainCounting(t)
	const n = 500
	child.Getpid(t, n)
	if seen := pl.drainCounting(t); seen.records != 0 {
		t.Errorf("%d records while the source was paused", seen.records)
	}
	// The child's Go runtime makes system calls of its own at any moment,
	// skipped too: compare a scrape only with a count that did not move
	// while it was taken.
	for try := 0; ; try++ {
		before, err := pl.Counters()
		if err != nil {
			t.Fatal(err)
		}
		skipped := value(t, gather(t, pl.collector), "ringwatch_source_skipped_events_total", map[string]string{"source": "syscalls"})
		after, err := pl.Counters()
		if err != nil {
			t.Fatal(err)
		}
		if after[0].Skipped != before[0].Skipped {
			if try == 200 {
				t.Fatal("the kernel's skipped count moved during every scrape")
			}
			time.Sleep(time.Millisecond) // for a moment the child's runtime is quiet
			continue
		}
		if skipped < n || skipped != after[0].Skipped {
			t.Errorf("ringwatch_source_skipped_events_total = %d; %d getpids were made while paused, the kernel counted %d skipped",
				skipped, n, after[0].Skipped)
		}
		return
	}
}

// TestMetricsShowInvalidAndDiscardedRecords writes, through the kernel's
// own helpers, a record too short for ringwatch's header and a reserved
// record that is then discarded, into the pipeline's ring: the scrape must
// count exactly one of each, and no record delivered.
func TestMetricsShowInvalidAndDiscardedRecords(t *testing.T) {
	testenv.RequireBPF(t)
	pl := openPipeline(t, []string{abi.SourceSyscalls}, session.Options{SyscallPIDs: []uint32{1}})
	ring := pl.Producers().Map(abi.MapEvents)
	if ring == nil {
		t.Fatal("no events ring")
	}
	pl.drainCounting(t)
	short := ringProgram(t, ring, false)
	discard := ringProgram(t, ring, true)
	for _, p := range []*ebpf.Program{short, discard} {
		ret, err := p.Run(&ebpf.RunOptions{Data: make([]byte, 14)})
		if err != nil || ret != 1 {
			t.Fatalf("ring writer: %d, %v; want 1, a record written", ret, err)
		}
	}
	seen := pl.drainCounting(t)
	families := gather(t, pl.collector)
	labels := map[string]string{"ring": "events", "transport": "ringbuf"}
	if got := value(t, families, "ringwatch_ring_invalid_records_total", labels); got != 1 || seen.records != 1 {
		t.Errorf("ringwatch_ring_invalid_records_total = %d, the callback saw %d records; want the short record, once", got, seen.records)
	}
	if got := value(t, families, "ringwatch_ring_discarded_records_total", labels); got != 1 {
		t.Errorf("ringwatch_ring_discarded_records_total = %d, want 1", got)
	}
}

// ringProgram is a socket filter that, each time it runs, writes into ring
// either an 8-byte record of zeros (bpf_ringbuf_output), too short for
// ringwatch's record header, or, with discard, a 64-byte reservation that
// it discards (bpf_ringbuf_reserve, bpf_ringbuf_discard). It returns 1 if
// it wrote.
func ringProgram(t *testing.T, ring *ebpf.Map, discard bool) *ebpf.Program {
	t.Helper()
	var insns asm.Instructions
	if discard {
		insns = asm.Instructions{
			asm.LoadMapPtr(asm.R1, ring.FD()),
			asm.Mov.Imm(asm.R2, 64),
			asm.Mov.Imm(asm.R3, 0),
			asm.FnRingbufReserve.Call(),
			asm.JEq.Imm(asm.R0, 0, "out"),
			asm.Mov.Reg(asm.R1, asm.R0),
			asm.Mov.Imm(asm.R2, 0),
			asm.FnRingbufDiscard.Call(),
			asm.Mov.Imm(asm.R0, 1),
			asm.Return(),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
			asm.Return(),
		}
	} else {
		insns = asm.Instructions{
			asm.Mov.Imm(asm.R1, 0),
			asm.StoreMem(asm.RFP, -8, asm.R1, asm.DWord),
			asm.LoadMapPtr(asm.R1, ring.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -8),
			asm.Mov.Imm(asm.R3, 8),
			asm.Mov.Imm(asm.R4, 0),
			asm.FnRingbufOutput.Call(),
			asm.JNE.Imm(asm.R0, 0, "failed"),
			asm.Mov.Imm(asm.R0, 1),
			asm.Return(),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("failed"),
			asm.Return(),
		}
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, Instructions: insns, License: "GPL"})
	if err != nil {
		t.Fatalf("load ring writer: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// TestBuildInfo: the build info gauge is 1, with the version the collector
// was given and the Go version of this build.
func TestBuildInfo(t *testing.T) {
	c := NewCollector("v9.8.7", "ringbuf", nil, nil, emptyReader{}, accounting.NewTracker(0, 1))
	f := gather(t, c)["ringwatch_build_info"]
	if f == nil || len(f.GetMetric()) != 1 {
		t.Fatalf("ringwatch_build_info: %v", f)
	}
	m := f.GetMetric()[0]
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if m.GetGauge().GetValue() != 1 || labels["version"] != "v9.8.7" || labels["goversion"] != runtime.Version() || len(labels) != 2 {
		t.Errorf("ringwatch_build_info%v = %v, want {version=v9.8.7, goversion=%s} 1", labels, m.GetGauge().GetValue(), runtime.Version())
	}
}

// emptyReader is a run with no rings and no sources.
type emptyReader struct{}

func (emptyReader) Stats() []consumer.RingStats            { return nil }
func (emptyReader) ConsumerStats() []session.ConsumerStats { return nil }
func (emptyReader) Counters() ([]loader.Counters, error)   { return nil, nil }
func (emptyReader) RingOf(int) int                         { return 0 }
