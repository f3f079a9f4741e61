package consumer

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	ciliumringbuf "github.com/cilium/ebpf/ringbuf"

	"github.com/ringwatch/ringwatch/internal/testenv"
)

// ringFiller is a BPF program that writes one zeroed record of a fixed size
// into a ring buffer with bpf_ringbuf_output each time it runs. Run with
// BPF_PROG_TEST_RUN and a repeat count, it fills a real kernel ring in one
// system call, without waking the consumer (BPF_RB_NO_WAKEUP).
func ringFiller(b *testing.B, ring *ebpf.Map, size int) *ebpf.Program {
	b.Helper()
	insns := asm.Instructions{asm.Mov.Imm(asm.R0, 0)}
	for off := -size; off < 0; off += 8 {
		insns = append(insns, asm.StoreMem(asm.RFP, int16(off), asm.R0, asm.DWord))
	}
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
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, Instructions: insns, License: "GPL"})
	if err != nil {
		b.Fatalf("load ring filler: %v", err)
	}
	b.Cleanup(func() { prog.Close() })
	return prog
}

// fill writes records until the ring is full and returns how many fit.
func fill(b *testing.B, prog *ebpf.Program, ring *ebpf.Map, size int) int {
	b.Helper()
	n := int(ring.MaxEntries()) / (size + ringbufHeaderSize)
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
