//go:build libbpf

package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/internal/session"
	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/internal/transport"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// BPF ring buffer flags of bpf_ringbuf_output (include/uapi/linux/bpf.h).
const (
	rbWakeIfCaughtUp = 0 // the kernel's rule: wake the consumer if it had read everything
	rbNoWakeup       = 1 // BPF_RB_NO_WAKEUP
)

// libbpfRingFiller is a BPF program that writes one zeroed record of size
// bytes (a multiple of 8) into ring with bpf_ringbuf_output each time it
// runs: with BPF_PROG_TEST_RUN and a repeat count, it fills a real kernel
// ring in one system call. From pkg/consumer's kernel benchmarks.
func libbpfRingFiller(t testing.TB, ring *ebpf.Map, size int, flags int32) *ebpf.Program {
	t.Helper()
	insns := asm.Instructions{asm.Mov.Imm(asm.R0, 0)}
	for off := -size; off < 0; off += 8 {
		insns = append(insns, asm.StoreMem(asm.RFP, int16(off), asm.R0, asm.DWord))
	}
	insns = append(insns,
		asm.LoadMapPtr(asm.R1, ring.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -int32(size)),
		asm.Mov.Imm(asm.R3, int32(size)),
		asm.Mov.Imm(asm.R4, flags),
		asm.FnRingbufOutput.Call(),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, Instructions: insns, License: "GPL"})
	if err != nil {
		t.Fatalf("load filler program: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// libbpfFill runs the filler n times, each an attempt to write a record.
func libbpfFill(t testing.TB, prog *ebpf.Program, n int) {
	t.Helper()
	if n == 0 {
		return // a repeat count of 0 runs the program once
	}
	if _, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 14), Repeat: uint32(n)}); err != nil {
		t.Fatalf("fill ring: %v", err)
	}
}

func newLibbpfTestRing(t testing.TB, size int) *ebpf.Map {
	t.Helper()
	ring, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: uint32(size)})
	if err != nil {
		t.Fatalf("create ring buffer: %v", err)
	}
	t.Cleanup(func() { ring.Close() })
	return ring
}

func openLibbpfTestReader(t testing.TB, ring *ebpf.Map) *libbpfReader {
	t.Helper()
	r, err := newLibbpfReader(ring)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestLibbpfDrainCountsEveryRecord fills a kernel ring buffer, part way
// and then past full so that records wrap around its end, and checks that
// libbpf's reader counts exactly the records and bytes written.
func TestLibbpfDrainCountsEveryRecord(t *testing.T) {
	testenv.RequireBPF(t)
	const ringSize = 256 << 10
	for _, size := range []int{16, 64, 256} {
		t.Run(fmt.Sprintf("%dB", size), func(t *testing.T) {
			ring := newLibbpfTestRing(t, ringSize)
			prog := libbpfRingFiller(t, ring, size, rbNoWakeup)
			r := openLibbpfTestReader(t, ring)
			// A record takes an 8-byte header and is padded to 8 bytes,
			// and a reservation fails once it would leave the producer a
			// whole ring ahead of the consumer: new_prod_pos - cons_pos >
			// mask in kernel/bpf/ringbuf.c, __bpf_ringbuf_reserve.
			slot := (8 + size + 7) &^ 7
			full := (ringSize - 1) / slot
			var records, bytes uint64
			for _, step := range []struct {
				name          string
				attempts, got int
			}{
				{"empty", 0, 0},
				{"part way", full / 3, full / 3},
				{"past full", full + 100, full},
				{"again", full + 100, full},
			} {
				libbpfFill(t, prog, step.attempts)
				n, err := r.Drain(nil)
				if err != nil {
					t.Fatalf("%s: %v", step.name, err)
				}
				records += uint64(step.got)
				bytes += uint64(step.got * size)
				gotRecords, gotBytes := r.Counts()
				if n != step.got || gotRecords != records || gotBytes != bytes {
					t.Fatalf("%s: Drain read %d records, counts %d records and %d bytes; want %d, %d and %d",
						step.name, n, gotRecords, gotBytes, step.got, records, bytes)
				}
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if gotRecords, gotBytes := r.Counts(); gotRecords != records || gotBytes != bytes {
				t.Errorf("after Close: counts %d records and %d bytes, want %d and %d", gotRecords, gotBytes, records, bytes)
			}
			if _, err := r.Drain(nil); err == nil {
				t.Error("Drain after Close: no error")
			}
			if err := r.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

// TestLibbpfReadStopsWithItsContext checks that Read reads what the
// producer woke it for, returns ctx.Err() once ctx is done, whether it was
// waiting or not, and can be called again afterwards.
func TestLibbpfReadStopsWithItsContext(t *testing.T) {
	testenv.RequireBPF(t)
	ring := newLibbpfTestRing(t, 64<<10)
	prog := libbpfRingFiller(t, ring, 64, rbWakeIfCaughtUp)
	r := openLibbpfTestReader(t, ring)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if n, err := r.Read(cancelled, nil); n != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("Read with a cancelled context: %d records, %v; want 0, context.Canceled", n, err)
	}
	if took := time.Since(start); took > 5*time.Millisecond {
		t.Errorf("Read with a cancelled context took %v", took)
	}

	// The first record finds the consumer caught up, so the kernel wakes
	// it; Read then reads every record, and waits until ctx ends.
	libbpfFill(t, prog, 100)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	var n int
	var err error
	go func() {
		defer close(done)
		n, err = r.Read(ctx, nil)
	}()
	// Read has read the records and waits for more once its count shows
	// them all and the kernel shows its thread asleep in libbpf's epoll set.
	returned := func() error {
		select {
		case <-done:
			return fmt.Errorf("Read returned before its context ended: %d records, %v", n, err)
		default:
			return nil
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if err := returned(); err != nil {
			t.Fatal(err)
		}
		if records, _ := r.Counts(); records == 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Read did not read the 100 records within 10s")
		}
	}
	testenv.WaitForEpollSleep(t, r.epollFD(), returned)
	start = time.Now()
	stop()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Read did not return within a second of its context's end")
	}
	if took := time.Since(start); took > 10*libbpfPollTimeout*time.Millisecond {
		t.Errorf("Read returned %v after its context ended, over %d ms", took, 10*libbpfPollTimeout)
	}
	if n != 100 || !errors.Is(err, context.Canceled) {
		t.Errorf("Read: %d records, %v; want 100, context.Canceled", n, err)
	}
	if records, bytes := r.Counts(); records != 100 || bytes != 100*64 {
		t.Errorf("counts %d records and %d bytes, want 100 and %d", records, bytes, 100*64)
	}
}

// TestLibbpfIsABenchPeer opens libbpf's reader as the bench does, on a
// session of the bench producer, and checks that it counts every record
// the producer did not count lost.
func TestLibbpfIsABenchPeer(t *testing.T) {
	testenv.RequireSyscallProgs(t) // the bench producer is a syscall program
	var rd reader
	for _, p := range peersOf[abi.Ringbuf] {
		if p.name == Libbpf {
			rd = p
		}
	}
	if rd.name == "" || rd.wakeup != consumer.WakeupKernel || !slices.Equal(rd.scenarios, []string{Drain, Saturation}) {
		t.Fatalf("peers of %s: %+v; want %s, woken by the kernel, in drain and saturation", abi.Ringbuf, peersOf[abi.Ringbuf], Libbpf)
	}
	if _, ok := peerOpeners[Libbpf]; !ok {
		t.Fatalf("no opener for %s", Libbpf)
	}

	const size = 64
	var opened session.Reader
	s, err := session.Open(session.Options{
		Sources:   []loader.Source{source(size)},
		Transport: abi.Ringbuf,
		Rings:     transport.Options{RingSize: 64 << 10},
		Wakeup:    rd.wakeup,
		NewReader: func(tr transport.Transport) (session.Reader, error) {
			r, err := openReader(rd, tr, false)
			opened = r
			return r, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	counted, ok := opened.(interface {
		Counts() (records, bytes uint64)
	})
	if !ok {
		t.Fatalf("%s's reader %T has no Counts", Libbpf, opened)
	}
	p, err := newProducer(s.Producers())
	if err != nil {
		t.Fatal(err)
	}
	// Twice what fits, so that some are lost.
	if err := p.run(2 * s.Transport().Fits(size)); err != nil {
		t.Fatal(err)
	}
	if err := s.Drain(nil); err != nil {
		t.Fatal(err)
	}
	attempts, lost, err := p.counts()
	if err != nil {
		t.Fatal(err)
	}
	records, bytes := counted.Counts()
	if lost == 0 || records+lost != attempts || bytes != records*size {
		t.Errorf("%d records of %d bytes read, %d lost, of %d attempted: want some lost and the rest read",
			records, bytes, lost, attempts)
	}
}

// BenchmarkLibbpfDrain drains a full 4 MiB kernel ring buffer, filled by
// a BPF program on the same thread, with libbpf's reader: the figures of
// pkg/consumer's BenchmarkKernelRingDrain for ringwatch and cilium/ebpf,
// for libbpf through this package's cgo. Only the drain is timed. Needs
// root.
func BenchmarkLibbpfDrain(b *testing.B) {
	testenv.RequireBPF(b)
	const ringSize = 4 << 20
	for _, size := range []int{16, 64, 256} {
		b.Run(fmt.Sprintf("record=%dB", size), func(b *testing.B) {
			ring := newLibbpfTestRing(b, ringSize)
			prog := libbpfRingFiller(b, ring, size, rbNoWakeup)
			r := openLibbpfTestReader(b, ring)
			full := (ringSize - 1) / ((8 + size + 7) &^ 7)
			records := 0
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				libbpfFill(b, prog, full)
				b.StartTimer()
				n, err := r.Drain(nil)
				if err != nil {
					b.Fatal(err)
				}
				if n != full {
					b.Fatalf("drained %d records of %d", n, full)
				}
				records += n
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
		})
	}
}
