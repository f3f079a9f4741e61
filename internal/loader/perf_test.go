package loader

import (
	"encoding/binary"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/testenv"
)

// TestOtherToolsStillSeeTracepointEvents counts sched:sched_process_exec
// with a perf counter of its own, as `perf stat -e` does, while ringwatch's
// exec program is attached to the same tracepoint: the counter must see
// every exec that ringwatch records. A tracepoint program that returned 0
// would hide them all from perf (kernel/events/core.c,
// perf_trace_run_bpf_submit).
func TestOtherToolsStillSeeTracepointEvents(t *testing.T) {
	forEachTransport(t, setup{Options: Options{Sources: sourcesNamed(t, abi.SourceExec)}}, testOtherToolsStillSeeTracepointEvents)
}

func testOtherToolsStillSeeTracepointEvents(t *testing.T, cfg setup) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	counters := openTracepointCounters(t, "sched", "sched_process_exec")
	p, c := openProducers(t, cfg)
	self := uint32(os.Getpid())
	ours := 0
	finish := consume(t, p, c, func(rec []byte) {
		if e, err := abi.DecodeExec(rec); err == nil && e.Ppid == self {
			ours++
		}
	})
	const n = 50
	before := counters.read(t)
	for range n {
		if err := exec.Command("/bin/true").Run(); err != nil {
			t.Fatalf("run /bin/true: %v", err)
		}
	}
	seen := counters.read(t) - before
	finish()
	if ours != n {
		t.Errorf("ringwatch recorded %d of our %d execs", ours, n)
	}
	// Other processes may exec too: at least ours.
	if seen < n {
		t.Errorf("a perf counter on sched:sched_process_exec counted %d events during %d execs: ringwatch hides them", seen, n)
	}
}

// tracepointCounters is a counting perf event on a tracepoint on every
// CPU, what `perf stat -e group:name -a` opens.
type tracepointCounters []int

func openTracepointCounters(t *testing.T, group, name string) tracepointCounters {
	t.Helper()
	raw, err := os.ReadFile("/sys/kernel/tracing/events/" + group + "/" + name + "/id")
	if err != nil {
		testenv.Unavailable(t, "read the tracepoint's id: "+err.Error())
	}
	id, err := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		t.Fatalf("tracepoint id %q: %v", raw, err)
	}
	var fds tracepointCounters
	for cpu := range runtime.NumCPU() {
		attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_TRACEPOINT, Config: id}
		attr.Size = uint32(unsafe.Sizeof(attr))
		fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
		if err != nil {
			t.Fatalf("perf_event_open on %s:%s, CPU %d: %v", group, name, cpu, err)
		}
		fds = append(fds, fd)
	}
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	return fds
}

// read sums the counters.
func (c tracepointCounters) read(t *testing.T) int {
	t.Helper()
	total := 0
	for _, fd := range c {
		var buf [8]byte
		if _, err := unix.Read(fd, buf[:]); err != nil {
			t.Fatalf("read perf counter: %v", err)
		}
		total += int(binary.NativeEndian.Uint64(buf[:]))
	}
	return total
}
