package control

import (
	"testing"
	"time"

	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/pkg/userring"
)

// BenchmarkDoorbell times the drain trigger: one BPF_PROG_TEST_RUN of the
// control program, which drains whatever the user ring holds, without
// wakeups (Doorbell) and with them (DoorbellWake). With an empty ring it is
// the fixed cost of ringing; with messages waiting, ns/message is what the
// kernel side adds per data message, the doorbell's fixed cost shared out
// among the messages of one drain; net-ns/message takes that fixed cost,
// an empty doorbell timed in the same sub-benchmark, away. Needs root.
func BenchmarkDoorbell(b *testing.B) {
	testenv.RequireUserRing(b)
	for _, c := range []struct {
		name  string
		batch int
		wake  bool
	}{
		{"quiet/messages=0", 0, false},
		{"quiet/messages=1", 1, false},
		{"quiet/messages=64", 64, false},
		{"quiet/messages=1024", 1024, false},
		{"wake/messages=0", 0, true},
		{"wake/messages=1", 1, true},
	} {
		batch := c.batch
		b.Run(c.name, func(b *testing.B) {
			ctl, err := loader.OpenControl(loader.ControlOptions{UserRingSize: 1 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer ctl.Close()
			w, err := userring.Open(ctl.UserRing())
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			ring := ctl.Doorbell
			if c.wake {
				ring = ctl.DoorbellWake
			}
			// The fixed cost: the same doorbell on the empty ring, right
			// after each timed one, so that both see the same machine.
			var empty time.Duration
			var seq uint64
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				for range batch {
					s, err := w.Reserve(DataSize)
					if err != nil {
						b.Fatal(err)
					}
					AppendData(s.Data[:0], seq, seq)
					w.Submit(s)
					seq++
				}
				b.StartTimer()
				n, err := ring()
				if err != nil || n != batch {
					b.Fatalf("drained %d of %d: %v", n, batch, err)
				}
				if batch > 0 {
					b.StopTimer()
					start := time.Now()
					if n, err := ring(); err != nil || n != 0 {
						b.Fatalf("empty doorbell drained %d: %v", n, err)
					}
					empty += time.Since(start)
					b.StartTimer()
				}
			}
			if batch > 0 {
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/message")
				net := b.Elapsed() - empty
				b.ReportMetric(float64(net.Nanoseconds())/float64(b.N*batch), "net-ns/message")
			}
		})
	}
}
