package transport_test

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/cpus"
	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/internal/session"
	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/internal/transport"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestFitsIsWhatTheKernelHolds holds Fits to the kernel: each transport is
// planned and loaded for real, and the bench producer (bpf/ringwatch.c)
// writes Fits+extra records of each size into one CPU's ring with nobody
// reading. The kernel must take exactly Fits of them and refuse the rest
// (its own count of losses), and the consumer must then read exactly Fits:
// a formula that is off by one record either way fails.
func TestFitsIsWhatTheKernelHolds(t *testing.T) {
	testenv.RequireBPF(t)
	page := os.Getpagesize()
	for _, tc := range []struct {
		transport abi.TransportName
		ring      int
	}{
		{abi.Ringbuf, page},
		{abi.Ringbuf, 4 * page},
		{abi.PercpuRingbuf, page},
		{abi.Perfbuf, page},
		{abi.Perfbuf, 4 * page},
		{abi.SPSC, page},
		{abi.SPSC, 4 * page},
	} {
		for _, size := range []int{16, 64, 256, 1024} {
			t.Run(fmt.Sprintf("%s/%dB-ring/%dB", tc.transport, tc.ring, size), func(t *testing.T) {
				if tc.transport != abi.Perfbuf {
					testenv.RequireSyscallProgs(t) // the bench producer is a syscall program, but on perfbuf
				}
				checkFits(t, tc.transport, tc.ring, size)
			})
		}
	}
}

func checkFits(t *testing.T, name abi.TransportName, ringSize, size int) {
	s, err := session.Open(session.Options{
		Sources:   []loader.Source{{Name: "bench", RecordSize: size, Program: fmt.Sprintf("bench_%d", size)}},
		Transport: name,
		Rings:     transport.Options{RingSize: ringSize},
	})
	if err != nil {
		t.Fatalf("session.Open: %v", err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("close session: %v", err)
		}
	}()
	fits := s.Transport().Fits(size)
	if fits < 1 {
		t.Fatalf("Fits(%d) = %d on a %d-byte ring", size, fits, ringSize)
	}
	const extra = 7
	attempts, lost := runBench(t, s, fits+extra)
	if attempts != uint64(fits+extra) || lost != extra {
		t.Errorf("the kernel took %d of %d records (%d refused); Fits says %d", attempts-lost, attempts, lost, fits)
	}
	var read, bytes uint64
	if err := s.Drain(func(b consumer.Batch) {
		read += uint64(len(b.Records))
		bytes += b.Bytes
	}); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if read != uint64(fits) {
		t.Errorf("the consumer read %d records from the full ring; Fits says %d", read, fits)
	}
	if read > 0 && bytes/read < uint64(size) {
		t.Errorf("%d bytes in %d records of %d bytes", bytes, read, size)
	}
}

// runBench runs the session's bench producer once, for n records, on CPU 0
// (a thread pinned there, as the per-CPU rings need), and returns the
// producer's counts of attempts and losses.
func runBench(t *testing.T, s *session.Session, n int) (attempts, lost uint64) {
	t.Helper()
	prog, counters := s.Producers().Program("bench"), s.Producers().Map(abi.MapBenchCounters)
	if prog == nil || counters == nil {
		t.Fatal("no bench producer loaded")
	}
	var ctx any = abi.BenchArgs{Count: uint32(n)}
	if prog.Type() == ebpf.RawTracepoint {
		ctx = [1]uint64{uint64(n)} // the perfbuf producer takes its count as a raw tracepoint argument
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the thread ends with the goroutine, pinned or not
		if err := cpus.PinThread(0); err != nil {
			done <- fmt.Errorf("pin to CPU 0: %w", err)
			return
		}
		_, err := prog.Run(&ebpf.RunOptions{Context: ctx})
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatalf("run the bench producer: %v", err)
	}
	var perCPU []abi.BenchCounters
	if err := counters.Lookup(uint32(0), &perCPU); err != nil {
		t.Fatalf("read the bench counters: %v", err)
	}
	for _, c := range perCPU {
		attempts += c.Attempts
		lost += c.Lost
	}
	return attempts, lost
}

// TestPercpuRingbufFullRingLeavesOthersAlone fills CPU 0's ring with a
// child's getpid calls while nobody reads, then has a second child on CPU 1
// make its own: on percpu-ringbuf every one of the second child's records
// must arrive and CPU 1 count no loss, while CPU 0 lost some. The same run
// on the shared ringbuf must lose the second child's records: the check
// can tell the two apart.
func TestPercpuRingbufFullRingLeavesOthersAlone(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireCPUs(t, 2)
	for _, tc := range []struct {
		transport abi.TransportName
		isolated  bool
	}{
		{abi.PercpuRingbuf, true},
		{abi.Ringbuf, false},
	} {
		t.Run(string(tc.transport), func(t *testing.T) {
			flood, quiet := testenv.StartSyscallChild(t), testenv.StartSyscallChild(t)
			flood.Pin(t, 0)
			quiet.Pin(t, 1)
			sources, err := loader.ParseSources([]string{abi.SourceSyscalls})
			if err != nil {
				t.Fatal(err)
			}
			s, err := session.Open(session.Options{
				Sources:     sources,
				Transport:   tc.transport,
				Rings:       transport.Options{RingSize: 4 * os.Getpagesize()},
				SyscallPIDs: []uint32{uint32(flood.Pid), uint32(quiet.Pid)},
			})
			if err != nil {
				t.Fatalf("session.Open: %v", err)
			}
			defer func() {
				if err := s.Close(); err != nil {
					t.Errorf("close session: %v", err)
				}
			}()

			flood.Getpid(t, 20_000) // about 20 times what a ring holds
			const n = 100
			quiet.Getpid(t, n)
			got := 0
			if err := s.Drain(func(b consumer.Batch) {
				for _, rec := range b.Records {
					if r, err := abi.DecodeSyscall(rec); err == nil && r.Tid == uint32(quiet.Tid) && r.Nr == unix.SYS_GETPID {
						got++
					}
				}
			}); err != nil {
				t.Fatal(err)
			}
			counters, err := s.Counters()
			if err != nil {
				t.Fatal(err)
			}
			perCPU := counters[0].PerCPU
			if perCPU[0].Lost == 0 {
				t.Fatal("the flood lost nothing on CPU 0: the test proves nothing")
			}
			if tc.isolated && (got != n || perCPU[1].Lost != 0) {
				t.Errorf("CPU 1's ring: %d of the %d getpids arrived, %d records lost there, while CPU 0 lost %d",
					got, n, perCPU[1].Lost, perCPU[0].Lost)
			}
			if !tc.isolated && (got == n || perCPU[1].Lost == 0) {
				t.Errorf("shared ring: %d of %d getpids on CPU 1 arrived and CPU 1 lost %d after CPU 0 filled the ring; want losses",
					got, n, perCPU[1].Lost)
			}
		})
	}
}
