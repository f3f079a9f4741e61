package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/cpus"
)

func main() {
	threads := flag.Int("threads", 1, "threads calling getpid, each pinned to its own CPU")
	first := flag.Int("first-cpu", 1, "CPU of the first thread; the others follow on the CPUs this process may run on, wrapping around")
	wait := flag.Duration("wait", 2*time.Second, "pause before starting, for ringwatch to attach")
	duration := flag.Duration("duration", 5*time.Second, "how long the threads call getpid")
	flag.Parse()
	if *threads < 1 || *duration <= 0 {
		fmt.Fprintln(os.Stderr, "getpidloop: --threads must be 1 or more and --duration positive")
		os.Exit(2)
	}
	allowed, err := cpus.Allowed()
	if err != nil {
		fmt.Fprintf(os.Stderr, "getpidloop: %v\n", err)
		os.Exit(1)
	}
	start := slices.Index(allowed, *first)
	if start < 0 {
		fmt.Fprintf(os.Stderr, "getpidloop: --first-cpu: %v\n", cpus.NotAllowed(*first, allowed))
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "getpidloop: pid %d, %d threads from CPU %d, starting in %v\n", os.Getpid(), *threads, *first, *wait)
	time.Sleep(*wait)

	var calls atomic.Uint64
	var wg sync.WaitGroup
	deadline := time.Now().Add(*duration)
	for i := range *threads {
		wg.Go(func() {
			runtime.LockOSThread()
			if err := cpus.PinThread(allowed[(start+i)%len(allowed)]); err != nil {
				fmt.Fprintf(os.Stderr, "getpidloop: pin thread %d: %v\n", i, err)
				os.Exit(1)
			}
			n := uint64(0)
			for time.Now().Before(deadline) {
				for range 1000 {
					unix.Getpid()
				}
				n += 1000
			}
			calls.Add(n)
		})
	}
	wg.Wait()
	total := calls.Load()
	fmt.Printf("%d getpid calls in %v: %.2f M/s in all, %.2f M/s per thread\n", total, *duration,
		float64(total)/duration.Seconds()/1e6, float64(total)/duration.Seconds()/1e6/float64(*threads))
}
