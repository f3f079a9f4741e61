package loader

import (
	"context"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/cpus"
	"github.com/ringwatch/ringwatch/internal/testbpf"
	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/internal/transport"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// BenchmarkProducerCost is what ringwatch's syscalls source costs the
// process it watches: a getpid loop on a thread pinned to the second CPU
// this process may use, with nothing attached, under the producers' floor
// (bpf/testfill.c: floor_sys_enter, a 40-byte reserve and no-wakeup submit
// into a ring nobody reads, for the same allow-list hash lookup), and under
// each transport's syscalls program with an adaptive consumer reading on
// the first CPU. The setups take turns, rounds times, and each reports its
// median ns per getpid; the ringwatch rows also report their median ratio
// to the floor in the same round (x-floor: at or above 1, the closer the
// better). Run it as root:
//
//	go test -run '^$' -bench ProducerCost -benchtime 1x ./internal/loader
func BenchmarkProducerCost(b *testing.B) {
	testenv.RequireBPF(b)
	testenv.RequireCPUs(b, 2)
	cpus, err := cpus.Allowed()
	if err != nil {
		b.Fatal(err)
	}
	const calls, rounds = 2_000_000, 5
	setups := []string{"none", "floor", string(abi.Ringbuf), string(abi.PercpuRingbuf), string(abi.SPSC)}
	perCall := map[string][]float64{}
	ratio := map[string][]float64{}
	for range b.N {
		for range rounds {
			took := map[string]float64{}
			for _, name := range setups {
				ns, err := producerRound(name, calls, cpus[0], cpus[1])
				if err != nil {
					b.Fatalf("%s: %v", name, err)
				}
				took[name] = ns
				perCall[name] = append(perCall[name], ns)
			}
			for _, name := range setups[2:] {
				ratio[name] = append(ratio[name], took[name]/took["floor"])
			}
		}
	}
	for _, name := range setups {
		b.Run(name, func(b *testing.B) {
			b.ReportMetric(median(perCall[name]), "ns/getpid")
			if r := ratio[name]; r != nil {
				b.ReportMetric(median(r), "x-floor")
			}
		})
	}
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// producerRound times calls getpids on loopCPU under setup name.
func producerRound(name string, calls, consumerCPU, loopCPU int) (_ float64, err error) {
	pid := uint32(os.Getpid())
	switch name {
	case "none":
	case "floor":
		spec, err := testbpf.Load()
		if err != nil {
			return 0, err
		}
		for p := range spec.Programs {
			if p != testbpf.ProgramFloor {
				delete(spec.Programs, p)
			}
		}
		pruneMaps(spec)
		// 48 bytes a call, with room to spare: the ring never fills.
		spec.Maps[testbpf.MapFloorEvents].MaxEntries = uint32(roundUpPow2(uint64(calls) * 64))
		coll, err := ebpf.NewCollection(spec)
		if err != nil {
			return 0, err
		}
		defer coll.Close()
		if err := coll.Maps[testbpf.MapFloorPIDs].Put(pid, uint8(1)); err != nil {
			return 0, err
		}
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sys_enter", Program: coll.Programs[testbpf.ProgramFloor]})
		if err != nil {
			return 0, err
		}
		defer l.Close()
	default:
		tr, err := transport.New(abi.TransportName(name), transport.Options{})
		if err != nil {
			return 0, err
		}
		defer tr.Close()
		src, err := ParseSources([]string{"syscalls"})
		if err != nil {
			return 0, err
		}
		p, err := Open(Options{Sources: src, Transport: tr, Wakeup: consumer.WakeupAdaptive, SyscallPIDs: []uint32{pid}})
		if err != nil {
			return 0, err
		}
		defer p.Close()
		c, err := consumer.OpenConfig(tr.ReaderConfig(consumer.WakeupAdaptive, 0))
		if err != nil {
			return 0, err
		}
		defer c.Close()
		if err := p.Attach(); err != nil {
			return 0, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var readErr error
		wg.Go(func() {
			readErr = cpus.RunOn(consumerCPU, func() error {
				for ctx.Err() == nil {
					if _, err := c.Read(ctx, func(consumer.Batch) {}); err != nil && ctx.Err() == nil {
						return err
					}
				}
				return nil
			})
		})
		defer func() {
			cancel()
			wg.Wait()
			if readErr != nil && err == nil {
				err = readErr
			}
		}()
	}
	var took time.Duration
	err = cpus.RunOn(loopCPU, func() error {
		start := time.Now()
		for range calls {
			unix.Getpid()
		}
		took = time.Since(start)
		return nil
	})
	return float64(took.Nanoseconds()) / float64(calls), err
}

func roundUpPow2(n uint64) uint64 {
	p := uint64(4096)
	for p < n {
		p <<= 1
	}
	return p
}
