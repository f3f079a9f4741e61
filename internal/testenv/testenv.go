package testenv

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
)

// Unavailable skips t with reason, or fails it when CI is set: in CI every
// test must run.
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set, so this cannot be skipped: %s", reason)
	}
	t.Skip(reason)
}

// RequireBPF stops t unless this process can load ringwatch's producers
// and create ring buffers: root, kernel BTF, BPF_MAP_TYPE_RINGBUF, and the
// BPF atomics the producers use (Linux 5.12): every transport's adaptive
// wakeup takes the doorbell with a compare-and-exchange (bpf/ringwatch.c,
// ring_doorbell), and the spsc queue fences with a fetch-and-add in
// BPF_F_MMAPABLE arrays. A kernel without them refuses the programs at load
// time, so a test would fail with a verifier error instead of skipping.
func RequireBPF(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root to load BPF programs")
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		Unavailable(t, "needs kernel BTF at /sys/kernel/btf/vmlinux")
	}
	if err := features.HaveMapType(ebpf.RingBuf); err != nil {
		Unavailable(t, fmt.Sprintf("kernel lacks BPF_MAP_TYPE_RINGBUF: %v", err))
	}
	if err := haveAtomics(); err != nil {
		Unavailable(t, fmt.Sprintf("kernel lacks the BPF atomics ringwatch's producers use (cmpxchg, fetch-and-add; Linux 5.12): %v", err))
	}
	if err := features.HaveMapFlag(features.BPF_F_MMAPABLE); err != nil {
		Unavailable(t, fmt.Sprintf("kernel lacks BPF_F_MMAPABLE arrays (Linux 5.5): %v", err))
	}
}

// RequireTracefs stops t unless tracefs is mounted, as tracepoint
// attachment needs.
func RequireTracefs(t testing.TB) {
	t.Helper()
	for _, dir := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(dir + "/events"); err == nil {
			return
		}
	}
	Unavailable(t, "needs tracefs: mount -t tracefs nodev /sys/kernel/tracing")
}

// KernelObjects are the IDs of every BPF program, map and link in the
// kernel, of every process.
type KernelObjects struct {
	Programs []ebpf.ProgramID
	Maps     []ebpf.MapID
	Links    []link.ID
}

// Snapshot lists the kernel's BPF objects.
func Snapshot(t testing.TB) KernelObjects {
	t.Helper()
	var objs KernelObjects
	var err error
	if objs.Programs, err = listIDs(ebpf.ProgramGetNextID); err != nil {
		t.Fatalf("list BPF programs: %v", err)
	}
	if objs.Maps, err = listIDs(ebpf.MapGetNextID); err != nil {
		t.Fatalf("list BPF maps: %v", err)
	}
	it := new(link.Iterator)
	defer it.Close()
	for it.Next() {
		objs.Links = append(objs.Links, it.ID)
	}
	if err := it.Err(); err != nil {
		t.Fatalf("list BPF links: %v", err)
	}
	return objs
}

// listIDs walks one of the kernel's ID lists from the start.
func listIDs[ID ~uint32](next func(ID) (ID, error)) ([]ID, error) {
	var ids []ID
	for id := ID(0); ; {
		n, err := next(id)
		if errors.Is(err, os.ErrNotExist) {
			return ids, nil
		}
		if err != nil {
			return nil, err
		}
		ids, id = append(ids, n), n
	}
}

// Added lists the objects in o that were not in before.
func (o KernelObjects) Added(before KernelObjects) KernelObjects {
	return KernelObjects{
		Programs: added(o.Programs, before.Programs),
		Maps:     added(o.Maps, before.Maps),
		Links:    added(o.Links, before.Links),
	}
}

// Empty reports whether o lists no object.
func (o KernelObjects) Empty() bool {
	return len(o.Programs) == 0 && len(o.Maps) == 0 && len(o.Links) == 0
}

func added[T comparable](now, before []T) []T {
	var out []T
	for _, id := range now {
		if !slices.Contains(before, id) {
			out = append(out, id)
		}
	}
	return out
}

// WaitForObjects fails t unless the kernel comes to hold no BPF object
// that was not in before. (Objects in before may go: an earlier test's
// objects can still be on their way out.) The kernel frees a program's maps
// after an RCU grace period, so the lists take a moment to settle; the wait
// is a deadline, not a measurement.
func WaitForObjects(t testing.TB, before KernelObjects) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := Snapshot(t).Added(before)
		if left.Empty() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("BPF objects left in the kernel that were not there before: %+v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Main runs the package's tests, then each of after (to remove what the
// tests shared), and then fails if any file descriptor that was not open
// before them is still open. Run again as a SyscallChild, it is that child
// instead.
func Main(m *testing.M, after ...func()) {
	if os.Getenv(helperEnv) == "syscalls" {
		runSyscallChild()
		os.Exit(0)
	}
	// Open and close a pipe so the Go runtime's own poller descriptors exist
	// before the first count.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	before := openFDs()
	code := m.Run()
	for _, f := range after {
		f()
	}
	if code == 0 {
		if leaked := newFDs(before, openFDs()); len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "file descriptors leaked by the tests:\n  %s\n", strings.Join(leaked, "\n  "))
			code = 1
		}
	}
	os.Exit(code)
}

// openFDs maps each open descriptor to what it refers to.
func openFDs() map[string]string {
	fds := map[string]string{}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fds
	}
	for _, e := range entries {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own descriptor, closed by now
		}
		fds[e.Name()] = target
	}
	return fds
}

func newFDs(before, after map[string]string) []string {
	var leaked []string
	for fd, target := range after {
		if before[fd] != target {
			leaked = append(leaked, fd+" -> "+target)
		}
	}
	slices.Sort(leaked)
	return leaked
}

// RequireCPUs skips t, or fails it under CI, on a machine with fewer than n
// CPUs: the benchmarks pin a producer and a consumer to CPUs of their own.
func RequireCPUs(t testing.TB, n int) {
	t.Helper()
	if got := runtime.NumCPU(); got < n {
		Unavailable(t, fmt.Sprintf("needs %d CPUs, this machine has %d", n, got))
	}
}
