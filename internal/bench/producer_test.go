package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/ringwatch/ringwatch/internal/cpus"
	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// TestProducerScenarioRows runs the producer scenario briefly: a row for
// each ring at each size, in order, every record accounted for. Where the
// kernel has overwrite mode its row is measured, and the ring kept what
// fits and overwrote the rest; where not, the row says which kernel it
// needs, and the other rings are still measured.
func TestProducerScenarioRows(t *testing.T) {
	testenv.RequireSyscallProgs(t) // the bench producer is a syscall program
	testenv.RequireCPUs(t, 2)
	allowed, err := cpus.Allowed()
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Scenarios: []string{Producer}, Sizes: []int{16, 256}, RingSize: 256 << 10, Quick: true,
		ProducerCPU: allowed[0], ConsumerCPU: allowed[1]}
	results, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	overwrite := consumer.RecorderSupported() == nil
	if len(results) != 6 {
		t.Fatalf("%d results, want 3 rings at 2 sizes: %+v", len(results), results)
	}
	for i, r := range results {
		size, ring := opts.Sizes[i/3], producerRings[i%3]
		if r.Scenario != Producer || r.RecordSize != size || r.Transport != ring {
			t.Errorf("result %d is %s on %s at %d bytes, want producer on %s at %d", i, r.Scenario, r.Transport, r.RecordSize, ring, size)
			continue
		}
		if ring == RingbufOverwrite && !overwrite {
			if r.Unsupported != NeedsOverwrite || r.Attempted != 0 {
				t.Errorf("overwrite row on a kernel without it: %+v, want it to say %q", r, NeedsOverwrite)
			}
			continue
		}
		// Each round writes what fits, a ring's worth.
		want := uint64(opts.producerRounds() * ((opts.RingSize - 1) / ((8 + size + 7) &^ 7)))
		if r.Unsupported != "" || r.Attempted != want || r.Lost != 0 || r.NsPerRecord <= 0 || r.ProducerRate <= 0 {
			t.Errorf("%s at %d bytes: %+v, want %d attempted, none lost, a cost", ring, size, r, want)
		}
		if ring == RingbufOverwrite {
			if r.Delivered != 0 || r.Kept == 0 || r.Kept > want/uint64(opts.producerRounds()) || r.Kept+r.Overwritten != r.Attempted {
				t.Errorf("overwrite ring at %d bytes: %+v, want a ring's worth at most kept, the rest overwritten", size, r)
			}
		} else if r.Delivered != r.Attempted || r.Kept != 0 || r.Overwritten != 0 {
			t.Errorf("%s at %d bytes: %+v, want every record drained", ring, size, r)
		}
	}
	var table bytes.Buffer
	WriteTables(&table, results)
	for _, want := range []string{"PRODUCER", RingbufOverwrite, ProducerMethod} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("the table has no %q:\n%s", want, table.String())
		}
	}
	if !overwrite && !strings.Contains(table.String(), NeedsOverwrite) {
		t.Errorf("the table does not say the overwrite row needs Linux 6.19:\n%s", table.String())
	}
	t.Logf("\n%s", table.String())
}
