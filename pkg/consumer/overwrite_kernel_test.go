package consumer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/testbpf"
	"github.com/ringwatch/ringwatch/internal/testenv"
)

// kernelRelease is uname's release and its major and minor numbers.
func kernelRelease(t *testing.T) (string, int, int) {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	var major, minor int
	if _, err := fmt.Sscanf(release, "%d.%d", &major, &minor); err != nil {
		t.Fatalf("parse kernel release %q: %v", release, err)
	}
	return release, major, minor
}

// TestOverwriteProbeMatchesTheKernelVersion holds the feature probe to the
// version the mode came with (6.19), where the kernel is Linux's own
// numbering: a probe that says absent on 7.x, or present on 6.18, is
// wrong. The probe itself never compares versions.
func TestOverwriteProbeMatchesTheKernelVersion(t *testing.T) {
	testenv.RequireBPF(t)
	release, major, minor := kernelRelease(t)
	err := RecorderSupported()
	want := major > 6 || major == 6 && minor >= 19
	switch {
	case want && err != nil:
		t.Fatalf("kernel %s should have overwrite-mode ring buffers; the probe says: %v", release, err)
	case !want && !errors.Is(err, errors.ErrUnsupported):
		t.Fatalf("kernel %s predates overwrite-mode ring buffers; the probe says %v, want errors.ErrUnsupported", release, err)
	}
	t.Logf("kernel %s: %v", release, err)
}

// overwriteSpec is bpf/testfill.c's fill_overwrite and its maps alone,
// its ring of size bytes.
func overwriteSpec(t *testing.T, size uint32) *ebpf.CollectionSpec {
	t.Helper()
	spec, err := testbpf.OverwriteSpec(size)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// overwriteRecordSize is a record of fill_overwrite in the ring: its
// header and payload (a multiple of 8, so no padding).
const overwriteRecordSize = unix.BPF_RINGBUF_HDR_SZ + uint64(unsafe.Sizeof(testbpf.OverwriteRecord{}))

// TestOverwriteRecorderUnderALiveProducer runs the flight recorder's test
// producer (bpf/testfill.c, fill_overwrite) with BPF_PROG_TEST_RUN on one
// goroutine while another takes snapshots, on a kernel with overwrite-mode
// ring buffers (6.19; the VM matrix's 7.x). The producer is alone, so no
// reserve fails and every record has the same size: record n lies at ring
// position n*size, and the sequence numbers tell exactly what each snapshot
// should hold. Every record returned must be whole (its check words) and in
// order, the window must be the overwrite position to the producer
// position, and the overwritten and pending counts must be exactly the
// records of the window not returned.
//
// On a kernel without the mode, the probe says so and loading the producer
// must fail with the kernel's EINVAL for the map, before anything else:
// that is what this machine's 6.18 checks, and why the test needs no skip.
func TestOverwriteRecorderUnderALiveProducer(t *testing.T) {
	testenv.RequireSyscallProgs(t)
	const size = 16 << 10
	spec := overwriteSpec(t, size)
	if err := RecorderSupported(); errors.Is(err, errors.ErrUnsupported) {
		coll, lerr := ebpf.NewCollection(spec)
		if lerr == nil {
			coll.Close()
			t.Fatalf("the probe says %v, yet the kernel created a ring with BPF_F_RB_OVERWRITE", err)
		}
		if !errors.Is(lerr, unix.EINVAL) {
			t.Fatalf("loading the overwrite producer failed with %v, want the kernel's EINVAL for the flag", lerr)
		}
		release, _, _ := kernelRelease(t)
		t.Logf("kernel %s: %v; loading the producer is refused: %v. The live check runs on 6.19 and later (the VM's 7.x).", release, err, lerr)
		return
	} else if err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("load the overwrite producer: %v", err)
	}
	defer coll.Close()
	fill := coll.Programs[testbpf.ProgramFillOverwrite]
	r, err := OpenRecorder(coll.Maps[testbpf.MapOverwriteEvents])
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	var seq, failed, kernelPos uint64
	run := func(records uint32) {
		var out testbpf.OverwriteArgs
		if _, err := fill.Run(&ebpf.RunOptions{Context: testbpf.OverwriteArgs{Records: records, FirstSeq: seq}, ContextOut: &out}); err != nil {
			t.Errorf("run %v: %v", fill, err)
		}
		seq += uint64(records)
		failed += uint64(out.Failed)
		kernelPos = out.OverwritePos
	}
	var s Snapshot

	// Quiet, before and after the ring wraps: the snapshot is the whole
	// window the kernel reports, and the kernel's overwrite position (its
	// own bpf_ringbuf_query) is the word the reader maps.
	for _, records := range []uint32{10, 5000} {
		run(records)
		if err := r.Snapshot(&s); err != nil {
			t.Fatal(err)
		}
		checkOverwriteSnapshot(t, &s)
		if s.Start != kernelPos || s.End != seq*overwriteRecordSize || s.Overwritten != 0 || s.Pending != 0 {
			t.Fatalf("after %d records: window [%d, %d), %d overwritten, %d pending; want [%d (bpf_ringbuf_query), %d), none",
				seq, s.Start, s.End, s.Overwritten, s.Pending, kernelPos, seq*overwriteRecordSize)
		}
		if last := binary.LittleEndian.Uint64(s.Records[len(s.Records)-1]); last != seq-1 {
			t.Fatalf("newest record is %d, want %d", last, seq-1)
		}
		// Held counts the same window without copying it: with the
		// producer quiet, written - held is exactly the records gone,
		// which the oldest one's sequence number says.
		held, heldPending, err := r.Held()
		first := binary.LittleEndian.Uint64(s.Records[0])
		if err != nil || held != len(s.Records) || heldPending != 0 || seq-uint64(held) != first {
			t.Fatalf("after %d records: Held %d, %d pending, %v; the snapshot has %d, the oldest is record %d",
				seq, held, heldPending, err, len(s.Records), first)
		}
	}

	// Live: the producer writes the ring over and over while snapshots
	// are taken.
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			run(200)
		}
	}()
	var snapshots, returned, overwritten, pending, lapped int
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		err := r.Snapshot(&s)
		if errors.Is(err, errLapped) {
			lapped++
			continue
		}
		if err != nil {
			stop.Store(true)
			wg.Wait()
			t.Fatal(err)
		}
		if !checkOverwriteSnapshot(t, &s) {
			break
		}
		snapshots++
		returned += len(s.Records)
		overwritten += int(s.Overwritten)
		pending += int(s.Pending)
	}
	stop.Store(true)
	wg.Wait()
	if failed != 0 {
		t.Errorf("%d reserves failed with one producer: the kernel refuses only a record that would reach a pending one", failed)
	}
	t.Logf("%d records written; %d snapshots returned %d records, dropped %d overwritten during the copy, %d pending; %d snapshots lapped",
		seq, snapshots, returned, overwritten, pending, lapped)
	if snapshots == 0 || returned == 0 {
		t.Fatalf("no snapshot returned records (%d lapped)", lapped)
	}
}

// checkOverwriteSnapshot holds a snapshot of fill_overwrite's ring to what
// the sequence numbers say, and reports whether it held.
func checkOverwriteSnapshot(t *testing.T, s *Snapshot) bool {
	t.Helper()
	const rs = overwriteRecordSize
	if s.Start%rs != 0 || s.End%rs != 0 || s.End-s.Start >= 16<<10 {
		t.Errorf("window [%d, %d) is not whole records of %d bytes inside the ring", s.Start, s.End, rs)
		return false
	}
	first, end := s.Start/rs, s.End/rs
	if s.Discarded != 0 || s.Pending > 1 {
		t.Errorf("%d discarded, %d pending: one producer discards nothing and holds at most one record", s.Discarded, s.Pending)
		return false
	}
	if got := uint64(len(s.Records)) + s.Overwritten + s.Pending; got != end-first {
		t.Errorf("%d returned + %d overwritten + %d pending = %d, the window [%d, %d) holds records %d to %d",
			len(s.Records), s.Overwritten, s.Pending, got, s.Start, s.End, first, end-1)
		return false
	}
	for i, rec := range s.Records {
		if uint64(len(rec)) != rs-unix.BPF_RINGBUF_HDR_SZ {
			t.Errorf("record %d has %d bytes, want %d", i, len(rec), rs-unix.BPF_RINGBUF_HDR_SZ)
			return false
		}
		// The overwritten are the oldest, the pending the newest.
		want := first + s.Overwritten + uint64(i)
		seq := binary.LittleEndian.Uint64(rec)
		if seq != want {
			t.Errorf("record %d of window [%d, %d) is %d, want %d (%d overwritten before it)", i, s.Start, s.End, seq, want, s.Overwritten)
			return false
		}
		for k := range 4 {
			if c := binary.LittleEndian.Uint64(rec[8+8*k:]); c != seq*testbpf.OverwriteCheckMul+uint64(k) {
				t.Errorf("record %d (seq %d) is torn: check word %d is %#x, want %#x", i, seq, k, c, seq*testbpf.OverwriteCheckMul+uint64(k))
				return false
			}
		}
	}
	return true
}
