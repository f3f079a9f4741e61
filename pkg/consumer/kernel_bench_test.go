package consumer

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	ciliumperf "github.com/cilium/ebpf/perf"
	ciliumringbuf "github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/cpus"
	"github.com/ringwatch/ringwatch/internal/testenv"
)

// ringFiller is a BPF program that writes one zeroed record of a fixed size
// into a ring buffer with bpf_ringbuf_output each time it runs. Run with
// BPF_PROG_TEST_RUN and a repeat count, it fills a real kernel ring in one
// system call, without waking the consumer (BPF_RB_NO_WAKEUP).
func ringFiller(b *testing.B, ring *ebpf.Map, size int) *ebpf.Program {
	b.Helper()
	insns := zeroedRecord(size)
	insns = append(insns,
		asm.LoadMapPtr(asm.R1, ring.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -int32(size)),
		asm.Mov.Imm(asm.R3, int32(size)),
		asm.Mov.Imm(asm.R4, 1), // BPF_RB_NO_WAKEUP
		asm.FnRingbufOutput.Call(),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	)
	return loadFiller(b, insns)
}

// loadFiller loads a filler program as a socket filter, which
// BPF_PROG_TEST_RUN runs with a repeat count, closed when b ends.
func loadFiller(b *testing.B, insns asm.Instructions) *ebpf.Program {
	b.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, Instructions: insns, License: "GPL"})
	if err != nil {
		b.Fatalf("load filler program: %v", err)
	}
	b.Cleanup(func() { prog.Close() })
	return prog
}

// zeroedRecord is the start of a filler program: size zero bytes at the
// top of its stack, the record it writes.
func zeroedRecord(size int) asm.Instructions {
	insns := asm.Instructions{asm.Mov.Imm(asm.R0, 0)}
	for off := -size; off < 0; off += 8 {
		insns = append(insns, asm.StoreMem(asm.RFP, int16(off), asm.R0, asm.DWord))
	}
	return insns
}

// fill writes records until the ring is full and returns how many fit.
func fill(b *testing.B, prog *ebpf.Program, ring *ebpf.Map, size int) int {
	b.Helper()
	n := int(ring.MaxEntries()) / (size + unix.BPF_RINGBUF_HDR_SZ)
	if _, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 14), Repeat: uint32(n)}); err != nil {
		b.Fatalf("fill ring: %v", err)
	}
	return n - 1 // the kernel keeps one record's worth free: see __bpf_ringbuf_reserve
}

// BenchmarkKernelRingDrain drains a full 4 MiB kernel ring buffer, filled
// by a BPF program, with this package's Consumer and, side by side in the
// same run, with cilium/ebpf's ringbuf.Reader.ReadInto. Only the drain is
// timed. Needs root.
func BenchmarkKernelRingDrain(b *testing.B) {
	testenv.RequireBPF(b)
	for _, size := range []int{16, 64, 256} {
		for _, reader := range []string{"ringwatch", "cilium-ReadInto"} {
			b.Run(fmt.Sprintf("record=%dB/%s", size, reader), func(b *testing.B) {
				ring, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 4 << 20})
				if err != nil {
					b.Fatal(err)
				}
				defer ring.Close()
				prog := ringFiller(b, ring, size)
				drain := drainWithConsumer(b, ring)
				if reader != "ringwatch" {
					drain = drainWithCilium(b, ring)
				}
				records := 0
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					b.StopTimer()
					want := fill(b, prog, ring, size)
					b.StartTimer()
					if got := drain(); got < want {
						b.Fatalf("drained %d of at least %d records", got, want)
					}
					records += want
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
			})
		}
	}
}

func drainWithConsumer(b *testing.B, ring *ebpf.Map) func() int {
	c, err := Open(ringOf(ring))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	fn := func(Batch) {}
	return func() int {
		n, err := c.Drain(fn)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
}

func drainWithCilium(b *testing.B, ring *ebpf.Map) func() int {
	rd, err := ciliumringbuf.NewReader(ring)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rd.Close() })
	var rec ciliumringbuf.Record
	return func() int {
		rd.SetDeadline(time.Now()) // return when the ring is empty
		n := 0
		for {
			err := rd.ReadInto(&rec)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return n
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
}

// perfFiller is ringFiller for a perf event array: bpf_perf_event_output
// (bpf_skb_event_output for a socket filter) of a zeroed record of a fixed
// size to the buffer of the CPU it runs on.
func perfFiller(b *testing.B, array *ebpf.Map, size int) *ebpf.Program {
	b.Helper()
	insns := zeroedRecord(size)
	insns = append(insns,
		// R1 is the program's context, as the helper wants it.
		asm.LoadMapPtr(asm.R2, array.FD()),
		asm.LoadImm(asm.R3, 0xffffffff, asm.DWord), // BPF_F_CURRENT_CPU
		asm.Mov.Reg(asm.R4, asm.RFP),
		asm.Add.Imm(asm.R4, -int32(size)),
		asm.Mov.Imm(asm.R5, int32(size)),
		asm.FnPerfEventOutput.Call(),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	)
	return loadFiller(b, insns)
}

// BenchmarkKernelPerfDrain drains a full 4 MiB perf buffer of CPU 0,
// filled by a BPF program run on CPU 0, with this package's Consumer and,
// side by side, with cilium/ebpf's perf.Reader.ReadInto. Only the drain is
// timed. Needs root.
func BenchmarkKernelPerfDrain(b *testing.B) {
	testenv.RequireBPF(b)
	const bufSize = 4 << 20
	for _, size := range []int{16, 64, 256} {
		for _, reader := range []string{"ringwatch", "cilium-perf-ReadInto"} {
			b.Run(fmt.Sprintf("record=%dB/%s", size, reader), func(b *testing.B) {
				pinToCPU0(b)
				array, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerfEventArray})
				if err != nil {
					b.Fatal(err)
				}
				defer array.Close()
				prog := perfFiller(b, array, size)
				var drain func() int
				if reader == "ringwatch" {
					c, err := Open(PerfBuffer("cpu0", array, 0, bufSize))
					if err != nil {
						b.Fatal(err)
					}
					defer c.Close()
					drain = func() int {
						n, err := c.Drain(func(Batch) {})
						if err != nil {
							b.Fatal(err)
						}
						return n
					}
				} else {
					rd, err := ciliumperf.NewReader(array, bufSize)
					if err != nil {
						b.Fatal(err)
					}
					defer rd.Close()
					var rec ciliumperf.Record
					drain = func() int {
						rd.SetDeadline(time.Now())
						n := 0
						for {
							err := rd.ReadInto(&rec)
							if errors.Is(err, os.ErrDeadlineExceeded) {
								return n
							}
							if err != nil {
								b.Fatal(err)
							}
							n++
						}
					}
				}
				perRecord := (perfRawOffset + size + 7) &^ 7
				want := bufSize/perRecord - 1
				records := 0
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					b.StopTimer()
					if _, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 14), Repeat: uint32(want)}); err != nil {
						b.Fatalf("fill perf buffer: %v", err)
					}
					b.StartTimer()
					if got := drain(); got < want {
						b.Fatalf("drained %d of %d records", got, want)
					}
					records += want
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
			})
		}
	}
}

// pinToCPU0 keeps the benchmark's goroutine on CPU 0 until it ends:
// BPF_PROG_TEST_RUN runs the program on the calling thread's CPU.
func pinToCPU0(b *testing.B) {
	runtime.LockOSThread()
	if err := cpus.PinThread(0); err != nil {
		b.Fatalf("pin to CPU 0: %v", err)
	}
	// The thread goes back to the runtime when the goroutine ends, still
	// pinned: unpin it first.
	b.Cleanup(func() {
		var all unix.CPUSet
		for cpu := range runtime.NumCPU() {
			all.Set(cpu)
		}
		unix.SchedSetaffinity(0, &all)
		runtime.UnlockOSThread()
	})
}
