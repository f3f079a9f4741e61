package session

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/internal/transport"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestRunCarriesEveryRecordAndLeavesNothing runs the whole lifecycle on
// every transport: a child makes 100,000 getpid calls while the session
// reads from 16-page rings; Run's Finish closes the books. Every attempt
// must be delivered or counted lost (some may be, on a small ring under
// the race detector), the sequence gaps must equal the losses, the
// callback and the accounting must see the same records, and Close must
// leave no BPF object of ours in the kernel.
func TestRunCarriesEveryRecordAndLeavesNothing(t *testing.T) {
	for _, tc := range transportCases() {
		name, consumers := tc.name, tc.consumers
		t.Run(tc.label, func(t *testing.T) {
			testenv.RequireBPF(t)
			before := testenv.Snapshot(t)
			child := testenv.StartSyscallChild(t)
			sources, err := loader.ParseSources([]string{abi.SourceSyscalls})
			if err != nil {
				t.Fatal(err)
			}
			s, err := Open(Options{Sources: sources, Transport: name, SyscallPIDs: []uint32{uint32(child.Pid)},
				Rings: transport.Options{RingSize: 16 * os.Getpagesize(), Consumers: consumers}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var seen atomic.Uint64 // several consumers call count at once
			count := func(b consumer.Batch) { seen.Add(uint64(len(b.Records))) }
			var wg sync.WaitGroup
			var counters []loader.Counters
			var runErr error
			wg.Go(func() { counters, runErr = s.Run(ctx, count) })
			const n = 100_000
			child.Getpid(t, n)
			time.Sleep(10 * time.Millisecond)
			cancel()
			wg.Wait()
			if runErr != nil {
				t.Fatal(runErr)
			}
			tally := s.Tracker().Source(abi.SourceSyscalls)
			var delivered uint64
			for _, st := range s.Stats() {
				delivered += st.Records
			}
			if len(counters) != 1 || counters[0].Attempts < n || delivered == 0 ||
				delivered+counters[0].Lost != counters[0].Attempts || tally.Gaps != counters[0].Lost ||
				seen.Load() != delivered || tally.Records != delivered {
				t.Errorf("counters %+v; consumer delivered %d, callback saw %d, accounting %+v", counters, delivered, seen.Load(), tally)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			testenv.WaitForObjects(t, before)
		})
	}
}

// transportCases are every transport with one consumer, and those with a
// ring per CPU with a consumer per ring as well (on a machine of 2 CPUs or
// more: a shared ring buffer always has one).
func transportCases() []struct {
	label     string
	name      abi.TransportName
	consumers int
} {
	type tc = struct {
		label     string
		name      abi.TransportName
		consumers int
	}
	var out []tc
	for _, name := range abi.Transports() {
		out = append(out, tc{string(name), name, 1})
		if name != abi.Ringbuf {
			out = append(out, tc{string(name) + "-per-ring", name, runtime.NumCPU()})
		}
	}
	return out
}

// TestEveryConsumerReadsItsOwnRings opens a consumer per ring and checks
// each reads exactly its rings: 200 execs (the exec source, on whatever
// CPUs they run) all arrive, each on the ring of the CPU that wrote it.
func TestEveryConsumerReadsItsOwnRings(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	testenv.RequireCPUs(t, 2)
	for _, name := range []abi.TransportName{abi.PercpuRingbuf, abi.Perfbuf, abi.SPSC} {
		t.Run(string(name), func(t *testing.T) {
			before := testenv.Snapshot(t)
			s, err := Open(Options{Transport: name, Rings: transport.Options{Consumers: runtime.NumCPU()}})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(s.ConsumerStats()); n < 2 {
				t.Fatalf("%d consumers, want one per ring", n)
			}
			var mu sync.Mutex
			wrongRing := 0
			check := func(b consumer.Batch) {
				for _, rec := range b.Records {
					h, err := abi.ParseHeader(rec)
					if err == nil && s.RingOf(int(h.Cpu)) != b.Ring {
						mu.Lock()
						wrongRing++
						mu.Unlock()
					}
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var counters []loader.Counters
			var runErr error
			wg.Go(func() { counters, runErr = s.Run(ctx, check) })
			const n = 200
			for range n {
				if err := exec.Command("/bin/true").Run(); err != nil {
					t.Fatal(err)
				}
			}
			cancel()
			wg.Wait()
			if runErr != nil {
				t.Fatal(runErr)
			}
			tally := s.Tracker().Source(abi.SourceExec)
			if wrongRing != 0 || counters[0].Lost != 0 || tally.Records < n || tally.Records != counters[0].Attempts || tally.Gaps != 0 {
				t.Errorf("%d records on the wrong ring; counters %+v, accounting %+v", wrongRing, counters, tally)
			}
			var rings []int
			for _, c := range s.ConsumerStats() {
				rings = append(rings, c.Rings...)
			}
			if len(rings) != len(s.RingNames()) {
				t.Errorf("consumers read rings %v of %d", rings, len(s.RingNames()))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			testenv.WaitForObjects(t, before)
		})
	}
}

// TestProducersWakeOnlyTheirConsumer floods the rings of CPU 0 while the
// consumer of CPU 1's rings sleeps: with adaptive wakeups the producers
// look only at their own consumer's sleep flag and ring only its doorbell,
// so the sleeper is never woken, and the reader of CPU 0 is.
func TestProducersWakeOnlyTheirConsumer(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireCPUs(t, 2)
	for _, name := range []abi.TransportName{abi.PercpuRingbuf, abi.SPSC} {
		t.Run(string(name), func(t *testing.T) {
			child := testenv.StartSyscallChild(t)
			child.Pin(t, 0)
			sources, _ := loader.ParseSources([]string{abi.SourceSyscalls})
			s, err := Open(Options{Sources: sources, Transport: name, SyscallPIDs: []uint32{uint32(child.Pid)},
				Rings: transport.Options{Consumers: runtime.NumCPU()}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var counters []loader.Counters
			var runErr error
			wg.Go(func() { counters, runErr = s.Run(ctx, nil) })
			// Between bursts, longer than an adaptive consumer's flow
			// holds its rate through empty passes (four lazy sleeps of
			// 0.8 ms), so consumer 0 sleeps deeply and the next burst's
			// first record rings its doorbell.
			for range 20 {
				child.Getpid(t, 5_000)
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			wg.Wait()
			if runErr != nil {
				t.Fatal(runErr)
			}
			stats, consumers := s.Stats(), s.ConsumerStats()
			mine := consumers[s.consumerOf(s.RingOf(0))]
			other := consumers[s.consumerOf(s.RingOf(1))]
			var otherRecords uint64
			for _, r := range other.Rings {
				otherRecords += stats[r].Records
			}
			t.Logf("CPU 0's consumer woken %d times; CPU 1's %d, with %d records", mine.Woken, other.Woken, otherRecords)
			if otherRecords != 0 {
				t.Fatalf("CPU 1's rings carried %d records of a child pinned to CPU 0: the test proves nothing", otherRecords)
			}
			if other.Woken != 0 {
				t.Errorf("the consumer of CPU 1's rings was woken %d times by producers on CPU 0", other.Woken)
			}
			if mine.Woken == 0 {
				t.Errorf("the consumer of CPU 0's rings was never woken: did it sleep?")
			}
			// Every ring: the child's runtime threads may make a few system
			// calls on other CPUs (68 of 101,676 at 16 CPUs).
			var records uint64
			for _, st := range stats {
				records += st.Records
			}
			if counters[0].Attempts != counters[0].Lost+records {
				t.Errorf("counters %+v, ring stats %+v", counters, stats)
			}
		})
	}
}

// TestOpenFailsCleanly gives options the transport refuses: Open must say
// so and leave nothing behind.
func TestOpenFailsCleanly(t *testing.T) {
	testenv.RequireBPF(t)
	before := testenv.Snapshot(t)
	if s, err := Open(Options{Transport: abi.Ringbuf, Rings: transport.Options{RingSize: 3 << 20}}); err == nil {
		s.Close()
		t.Fatal("Open accepted a 3MiB ring")
	}
	// The loader refuses more pids than its filter holds after the
	// transport was made: Open must close it again.
	tooMany := make([]uint32, loader.MaxSyscallPIDs+1)
	for i := range tooMany {
		tooMany[i] = uint32(i + 1)
	}
	if s, err := Open(Options{Transport: abi.PercpuRingbuf, SyscallPIDs: tooMany}); !errors.Is(err, abi.ErrInvalidOption) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open with %d pids: %v, want ErrInvalidOption", len(tooMany), err)
	}
	testenv.WaitForObjects(t, before)
}

// TestOwnReaderKeepsConsumerStats opens the session with a reader of the
// caller's, as the bench does: a ringwatch consumer given that way still
// reports its ring counters, and the session keeps no accounting of its
// own.
func TestOwnReaderKeepsConsumerStats(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	s, err := Open(Options{Transport: abi.PercpuRingbuf, NewReader: func(tr transport.Transport) (Reader, error) {
		return consumer.OpenConfig(tr.ReaderConfig("", 0))
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if st := s.Stats(); len(st) != len(s.RingNames()) || len(st) == 0 || st[0].Capacity != transport.DefaultRingSize {
		t.Errorf("Stats %+v for rings %v", st, s.RingNames())
	}
	if s.Tracker() != nil {
		t.Error("a session with its caller's reader keeps a tracker")
	}
}
