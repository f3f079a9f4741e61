package session

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/pkg/consumer"
	"github.com/ringwatch/ringwatch/pkg/loader"
	"github.com/ringwatch/ringwatch/pkg/transport"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestRunCarriesEveryRecordAndLeavesNothing runs the whole lifecycle on
// every transport: a child makes 20,000 getpid calls while the session
// reads from 16-page rings; Run's Finish closes the books. Every attempt
// must be delivered or counted lost (some may be, on a small ring under
// the race detector), the sequence gaps must equal the losses, the
// callback and the accounting must see the same records, and Close must
// leave no BPF object of ours in the kernel.
func TestRunCarriesEveryRecordAndLeavesNothing(t *testing.T) {
	for _, name := range abi.Transports() {
		t.Run(string(name), func(t *testing.T) {
			testenv.RequireBPF(t)
			before := testenv.Snapshot(t)
			child := testenv.StartSyscallChild(t)
			sources, err := loader.ParseSources([]string{abi.SourceSyscalls})
			if err != nil {
				t.Fatal(err)
			}
			s, err := Open(Options{Sources: sources, Transport: name,
				Rings: transport.Options{RingSize: 16 * os.Getpagesize()}, SyscallPIDs: []uint32{uint32(child.Pid)}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var seen uint64
			count := func(b consumer.Batch) { seen += uint64(len(b.Records)) }
			var wg sync.WaitGroup
			var counters []loader.Counters
			var runErr error
			wg.Go(func() { counters, runErr = s.Run(ctx, count) })
			const n = 20_000
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
				seen != delivered || tally.Records != delivered {
				t.Errorf("counters %+v; consumer delivered %d, callback saw %d, accounting %+v", counters, delivered, seen, tally)
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

// TestOpenFailsCleanly gives options the transport refuses: Open must say
// so and leave nothing behind.
func TestOpenFailsCleanly(t *testing.T) {
	testenv.RequireBPF(t)
	before := testenv.Snapshot(t)
	if s, err := Open(Options{Transport: abi.Ringbuf, Rings: transport.Options{RingSize: 3 << 20}}); err == nil {
		s.Close()
		t.Fatal("Open accepted a 3MiB ring")
	}
	// The loader refuses a negative watermark after the transport was
	// made: Open must close it again.
	if s, err := Open(Options{Transport: abi.PercpuRingbuf, Watermark: -1}); !errors.Is(err, abi.ErrInvalidOption) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open with a negative watermark: %v, want ErrInvalidOption", err)
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
