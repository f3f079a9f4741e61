package hostrings

import (
	"errors"
	"os"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/testbpf"
	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// overwriteProducer is bpf/testfill.c's fill_overwrite and the one ring it
// writes, of size bytes, created with BPF_F_RB_OVERWRITE.
func overwriteProducer(t *testing.T, size uint32) *ebpf.Collection {
	t.Helper()
	spec, err := testbpf.OverwriteSpec(size)
	if err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("load the overwrite producer: %v", err)
	}
	t.Cleanup(coll.Close)
	return coll
}

// TestOverwriteRingInTheCensus creates an overwrite-mode ring, as another
// program would, and writes it over and over with bpf/testfill.c's
// fill_overwrite (BPF_PROG_TEST_RUN): the census must know its mode from
// the map's flags, read the overwrite position the kernel itself reports
// (bpf_ringbuf_query in the producer), and give a nonzero overwrite rate,
// without calling the ring stalled or advising a size for a consumer that
// is not meant to read.
//
// On a kernel without the mode (this machine's 6.18) the flag is refused,
// and the test holds the kernel to that instead of skipping; the live check
// runs on 6.19 and later (the VM's 7.x).
func TestOverwriteRingInTheCensus(t *testing.T) {
	testenv.RequireSyscallProgs(t)
	if err := consumer.RecorderSupported(); errors.Is(err, errors.ErrUnsupported) {
		m, merr := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: uint32(os.Getpagesize()), Flags: flagOverwrite})
		if merr == nil {
			m.Close()
			t.Fatalf("the probe says %v, yet the kernel created a ring with BPF_F_RB_OVERWRITE", err)
		}
		if !errors.Is(merr, unix.EINVAL) {
			t.Fatalf("creating an overwrite-mode ring failed with %v, want the kernel's EINVAL for the flag", merr)
		}
		t.Logf("%v; the kernel refuses the flag: %v. The live check runs on 6.19 and later (the VM's 7.x).", err, merr)
		return
	} else if err != nil {
		t.Fatal(err)
	}

	const size = 16 << 10
	coll := overwriteProducer(t, size)
	fill := coll.Programs[testbpf.ProgramFillOverwrite]
	info, err := coll.Maps[testbpf.MapOverwriteEvents].Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("the kernel gives no map IDs")
	}
	var seq uint64
	// run writes records and returns the overwrite position the producer
	// read with bpf_ringbuf_query after its last record.
	run := func(records uint32) uint64 {
		t.Helper()
		var out testbpf.OverwriteArgs
		if _, err := fill.Run(&ebpf.RunOptions{Context: testbpf.OverwriteArgs{Records: records, FirstSeq: seq}, ContextOut: &out}); err != nil {
			t.Fatalf("run %v: %v", fill, err)
		}
		seq += uint64(records)
		if out.Failed != 0 {
			t.Fatalf("%d reserves failed with one producer", out.Failed)
		}
		return out.OverwritePos
	}
	recordSize := uint64(unix.BPF_RINGBUF_HDR_SZ + unsafe.Sizeof(testbpf.OverwriteRecord{}))

	c := openCensus(t, Options{StallAfter: time.Millisecond})
	run(10)
	r := mustFind(t, c, id)
	if r.Kind != RingBuf || !r.Overwrite || r.OverwritePos != 0 || r.Producer != 10*recordSize {
		t.Fatalf("before the ring wraps: %+v; want an overwrite-mode ringbuf at overwrite position 0, producer %d", r, 10*recordSize)
	}

	kernelPos := run(5000)
	t0 := time.Now()
	before, _ := find(c.Sample(t0), id)
	if before.OverwritePos != kernelPos || before.OverwritePos == 0 || before.Producer != seq*recordSize {
		t.Fatalf("after %d records: overwrite position %d, producer %d; want %d (bpf_ringbuf_query), %d",
			seq, before.OverwritePos, before.Producer, kernelPos, seq*recordSize)
	}
	time.Sleep(5 * time.Millisecond)
	kernelPos = run(5000)
	t1 := time.Now()
	after, _ := find(c.Sample(t1), id)
	if after.OverwritePos != kernelPos {
		t.Fatalf("overwrite position %d, the kernel says %d", after.OverwritePos, kernelPos)
	}
	if after.Stalled || after.Pending() > size || after.Pending() == 0 {
		t.Errorf("a full flight recorder never read: stalled %v, pending %d; want not stalled, 0 < pending <= %d",
			after.Stalled, after.Pending(), size)
	}
	rates := RatesBetween(before, after, t1.Sub(t0))
	if want := float64(after.OverwritePos-before.OverwritePos) / t1.Sub(t0).Seconds(); rates.Overwritten <= 0 || rates.Overwritten != want {
		t.Errorf("overwrite rate %v B/s, want %v (the overwrite position's advance over the samples' interval)", rates.Overwritten, want)
	}
	if rates.Stalled || rates.ToFull != Forever || rates.History <= 0 || rates.History == Forever {
		t.Errorf("rates %+v: want not stalled, never full, a finite history", rates)
	}
	t.Logf("overwrite position %d, producer %d; %.0f B/s in, %.0f B/s overwritten, %v of history",
		after.OverwritePos, after.Producer, rates.In, rates.Overwritten, rates.History)
}
