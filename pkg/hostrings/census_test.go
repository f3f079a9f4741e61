package hostrings

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/internal/testenv/ringchild"
)

func TestMain(m *testing.M) { ringchild.Main(m) }

func TestParseMapID(t *testing.T) {
	for _, tc := range []struct {
		fdinfo string
		id     ebpf.MapID
		ok     bool
	}{
		{"pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1057\nmap_type:\t27\nkey_size:\t0\nvalue_size:\t0\nmax_entries:\t65536\nmap_flags:\t0x0\nmap_extra:\t0x0\nmemlock:\t78176\nmap_id:\t4242\nfrozen:\t0\n", 4242, true},
		{"map_id:\t7", 7, true},
		{"prog_type:\t1\nprog_id:\t12\n", 0, false},
		{"map_id:\tx\n", 0, false},
		{"map_id:\t4294967296\n", 0, false},
		{"", 0, false},
	} {
		id, ok := parseMapID([]byte(tc.fdinfo))
		if id != tc.id || ok != tc.ok {
			t.Errorf("parseMapID(%q) = %d, %v; want %d, %v", tc.fdinfo, id, ok, tc.id, tc.ok)
		}
	}
}

func TestRingPendingAndFill(t *testing.T) {
	for _, tc := range []struct {
		r       Ring
		pending uint64
		fill    float64
	}{
		{Ring{Capacity: 4096, Producer: 1 << 40, Consumer: 1<<40 - 1024}, 1024, 0.25},
		{Ring{Capacity: 4096, Producer: 8192, Consumer: 4096}, 4096, 1},
		{Ring{Capacity: 4096, Producer: 10, Consumer: 20}, 0, 0}, // a broken user ring writer
		{Ring{Kind: PerfEventArray}, 0, 0},
		// Overwrite mode: readable from max(consumer, overwrite), as
		// ringbuf_avail_data_sz counts.
		{Ring{Kind: RingBuf, Overwrite: true, Capacity: 4096, Producer: 20480, Consumer: 0, OverwritePos: 16384}, 4096, 1},
		{Ring{Kind: RingBuf, Overwrite: true, Capacity: 4096, Producer: 20480, Consumer: 19456, OverwritePos: 16384}, 1024, 0.25},
		{Ring{Kind: RingBuf, Overwrite: true, Capacity: 4096, Producer: 1024, OverwritePos: 2048}, 0, 0}, // overwrite read after the producer moved
		// Not in overwrite mode, the third word means nothing.
		{Ring{Kind: RingBuf, Capacity: 4096, Producer: 2048, OverwritePos: 1024}, 2048, 0.5},
	} {
		if got := tc.r.Pending(); got != tc.pending {
			t.Errorf("%+v: pending %d, want %d", tc.r, got, tc.pending)
		}
		if got := tc.r.Fill(); got != tc.fill {
			t.Errorf("%+v: fill %v, want %v", tc.r, got, tc.fill)
		}
	}
}

// TestStalledOnPlainMemory drives the stall rule over positions in Go
// memory: stalled only while bytes are pending and the consumer has not
// moved for longer than StallAfter.
func TestStalledOnPlainMemory(t *testing.T) {
	var consumer, producer uint64
	c := &Census{opts: Options{StallAfter: time.Second}, motion: map[ebpf.MapID]*motion{},
		rings: []*held{{ring: Ring{ID: 1, Kind: RingBuf, Capacity: 4096},
			pos: &positions{consumer: &consumer, producer: &producer}}}}
	t0 := time.Unix(1000, 0)
	step := func(at time.Duration, wantStalled bool) {
		t.Helper()
		r := c.Sample(t0.Add(at))[0]
		if r.Stalled != wantStalled {
			t.Errorf("at %v (consumer %d, producer %d): stalled %v, want %v", at, consumer, producer, r.Stalled, wantStalled)
		}
	}
	step(0, false)
	step(2*time.Second, false) // nothing pending
	producer = 64
	step(3*time.Second, true) // pending, and the consumer has not moved since 0
	consumer = 32
	step(3*time.Second+time.Millisecond, false) // it moved
	step(4*time.Second, false)                  // not longer than StallAfter
	step(4*time.Second+2*time.Millisecond, true)
	consumer = 64
	step(10*time.Second, false) // caught up
	step(20*time.Second, false) // idle but empty
}

// TestOverwriteRingOnPlainMemory reads an overwrite-mode ring's third
// position and holds it to the stall rule: a flight recorder's consumer
// reads only on demand, so pending bytes with a consumer that never moves
// are its normal state, not a stall.
func TestOverwriteRingOnPlainMemory(t *testing.T) {
	var consumer, producer, overwrite uint64
	c := &Census{opts: Options{StallAfter: time.Second}, motion: map[ebpf.MapID]*motion{},
		rings: []*held{{ring: Ring{ID: 1, Kind: RingBuf, Capacity: 4096, Overwrite: true},
			pos: &positions{consumer: &consumer, producer: &producer, overwrite: &overwrite}}}}
	t0 := time.Unix(1000, 0)
	c.Sample(t0)
	producer, overwrite = 1<<20, 1<<20-4096
	r := c.Sample(t0.Add(10 * time.Second))[0]
	if r.Stalled || r.OverwritePos != overwrite || r.Pending() != 4096 || r.Fill() != 1 {
		t.Errorf("overwrite ring: stalled %v, overwrite position %d, pending %d, fill %v; want not stalled, %d, 4096, 1",
			r.Stalled, r.OverwritePos, r.Pending(), r.Fill(), overwrite)
	}
}

// find returns the ring of map id in rings.
func find(rings []Ring, id ebpf.MapID) (Ring, bool) {
	i := slices.IndexFunc(rings, func(r Ring) bool { return r.ID == id })
	if i < 0 {
		return Ring{}, false
	}
	return rings[i], true
}

func openCensus(t *testing.T, opts Options) *Census {
	t.Helper()
	c, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

func mustFind(t *testing.T, c *Census, id ebpf.MapID) Ring {
	t.Helper()
	r, ok := find(c.Sample(time.Now()), id)
	if !ok {
		t.Fatalf("map %d is not in the census", id)
	}
	return r
}

// checkIdentity checks what the census says of the child's ring besides its
// positions.
func checkIdentity(t *testing.T, r Ring, child *ringchild.Child, name string, kind Kind, capacity uint64) {
	t.Helper()
	if r.Name != name || r.Kind != kind || r.Capacity != capacity || r.Ours {
		t.Errorf("ring: %+v; want name %q, kind %s, capacity %d, not ours", r, name, kind, capacity)
	}
	if !slices.ContainsFunc(r.Programs, func(p Program) bool { return p.ID == child.ProgID }) {
		t.Errorf("programs %+v lack the child's program %d", r.Programs, child.ProgID)
	}
	if want := (Owner{PID: child.Pid, Comm: child.Comm()}); !slices.Contains(r.Owners, want) {
		t.Errorf("owners %+v lack the child %+v", r.Owners, want)
	}
	if slices.ContainsFunc(r.Owners, func(o Owner) bool { return o.PID == os.Getpid() }) {
		t.Errorf("owners %+v include the census's own process", r.Owners)
	}
}

func TestRingBuffer(t *testing.T) {
	testenv.RequireBPF(t)
	child := ringchild.Start(t, ringchild.Ring)
	const records = 100
	child.Do(t, fmt.Sprintf("write %d", records))
	stallAfter := time.Second
	c := openCensus(t, Options{StallAfter: stallAfter})

	r := mustFind(t, c, child.MapID)
	checkIdentity(t, r, child, ringchild.RingName, RingBuf, ringchild.RingSize)
	if want := uint64(records * ringchild.RecordBytes); r.Pending() != want || r.Producer != want || r.Consumer != 0 {
		t.Errorf("after %d records unread: producer %d, consumer %d, pending %d; want %d pending", records, r.Producer, r.Consumer, r.Pending(), want)
	}
	if got := child.Do(t, "read"); got != fmt.Sprint(records) {
		t.Fatalf("child read %s records, want %d", got, records)
	}
	r = mustFind(t, c, child.MapID)
	if r.Pending() != 0 || r.Consumer != r.Producer || r.Producer != records*ringchild.RecordBytes {
		t.Errorf("after reading: producer %d, consumer %d, pending %d", r.Producer, r.Consumer, r.Pending())
	}

	// Under load, a consumer that keeps reading is never stalled...
	child.Do(t, "load")
	start := time.Now()
	moved := false
	for time.Since(start) < stallAfter*3/2 {
		r = mustFind(t, c, child.MapID)
		if r.Stalled {
			t.Fatalf("stalled while the child reads: %+v", r)
		}
		moved = moved || r.Consumer > records*ringchild.RecordBytes
		time.Sleep(10 * time.Millisecond)
	}
	if !moved {
		t.Fatalf("the consumer position never moved under load")
	}
	// ...and one that stops is stalled once StallAfter has passed. The
	// allowance covers a loaded machine; the rule itself is exact (see
	// TestStalledOnPlainMemory).
	child.Do(t, "stop-reading")
	stopped := time.Now()
	for r = mustFind(t, c, child.MapID); !r.Stalled; r = mustFind(t, c, child.MapID) {
		if time.Since(stopped) > stallAfter+3*time.Second {
			t.Fatalf("not stalled %v after the child stopped reading: %+v", time.Since(stopped), r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("stalled %v after the child stopped reading (threshold %v)", time.Since(stopped).Round(time.Millisecond), stallAfter)

	child.Exit(t)
	waitGone(t, c, child.MapID)
}

func TestUserRing(t *testing.T) {
	testenv.RequireUserRing(t)
	child := ringchild.Start(t, ringchild.UserRing)
	const messages = 100
	child.Do(t, fmt.Sprintf("write %d", messages))
	stallAfter := time.Second
	c := openCensus(t, Options{StallAfter: stallAfter})

	r := mustFind(t, c, child.MapID)
	checkIdentity(t, r, child, "user_ring", UserRingBuf, ringchild.UserRingSize)
	want := uint64(messages * ringchild.RecordBytes)
	if r.Pending() != want || r.Producer != want || r.Consumer != 0 {
		t.Errorf("after %d messages undrained: producer %d, consumer %d, pending %d; want %d pending", messages, r.Producer, r.Consumer, r.Pending(), want)
	}
	// Nobody drains: stalled once StallAfter has passed.
	seen := time.Now()
	for r = mustFind(t, c, child.MapID); !r.Stalled; r = mustFind(t, c, child.MapID) {
		if time.Since(seen) > stallAfter+3*time.Second {
			t.Fatalf("not stalled %v after the last message: %+v", time.Since(seen), r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := child.Do(t, "drain"); got != fmt.Sprint(messages) {
		t.Fatalf("the kernel drained %s messages, want %d", got, messages)
	}
	r = mustFind(t, c, child.MapID)
	if r.Pending() != 0 || r.Consumer != want || r.Producer != want || r.Stalled {
		t.Errorf("after the drain: producer %d, consumer %d, pending %d, stalled %v", r.Producer, r.Consumer, r.Pending(), r.Stalled)
	}
	child.Exit(t)
	waitGone(t, c, child.MapID)
}

// TestPerfEventArray lists a child's perf event array: its slots, one per
// possible CPU, and its owner, but no positions.
func TestPerfEventArray(t *testing.T) {
	testenv.RequireBPF(t)
	child := ringchild.Start(t, ringchild.PerfArray)
	c := openCensus(t, Options{})
	r := mustFind(t, c, child.MapID)
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != ringchild.PerfName || r.Kind != PerfEventArray || r.CPUs != cpus || r.HasPositions() ||
		r.Capacity != 0 || r.Producer != 0 || r.Consumer != 0 {
		t.Errorf("perf event array listed as %+v; want %s with %d CPUs and no positions", r, ringchild.PerfName, cpus)
	}
	if want := (Owner{PID: child.Pid, Comm: child.Comm()}); !slices.Contains(r.Owners, want) {
		t.Errorf("owners %+v lack the child %+v", r.Owners, want)
	}
	c.mu.Lock()
	for _, h := range c.rings {
		if h.ring.ID == child.MapID && h.pos != nil {
			t.Errorf("the census mapped something of a perf event array")
		}
	}
	c.mu.Unlock()
}

// waitGone walks the census until map id has left it. The kernel frees a
// program's maps after an RCU grace period, so a ring can outlive its
// owner by a moment; the wait is a deadline, not a measurement.
func waitGone(t *testing.T, c *Census, id ebpf.MapID) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := c.Walk(); err != nil {
			t.Fatal(err)
		}
		r, ok := find(c.Sample(time.Now()), id)
		if !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("its owner exited, yet map %d is still in the census: %+v", id, r)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRunFollowsRings runs the census's own loop: a new ring appears, and
// an exited child's ring leaves, within one walk period.
func TestRunFollowsRings(t *testing.T) {
	testenv.RequireBPF(t)
	const walkEvery = 500 * time.Millisecond
	c := openCensus(t, Options{WalkEvery: walkEvery})
	var mu sync.Mutex
	var last []Ring
	var lastAt time.Time
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.Run(ctx, func(r []Ring) {
			mu.Lock()
			last, lastAt = r, time.Now()
			mu.Unlock()
		}, func(err error) { t.Error(err) })
	}()
	defer wg.Wait()
	defer cancel()
	waitFor := func(what string, since time.Time, want bool, id ebpf.MapID) {
		t.Helper()
		for {
			mu.Lock()
			_, ok := find(last, id)
			at := lastAt
			mu.Unlock()
			if ok == want && at.After(since) {
				t.Logf("%s after %v", what, at.Sub(since).Round(time.Millisecond))
				if d := at.Sub(since); d > walkEvery+2*time.Second {
					t.Errorf("%s after %v, more than one period (%v) and a 2s allowance", what, d, walkEvery)
				}
				return
			}
			if time.Since(since) > walkEvery+5*time.Second {
				t.Fatalf("%s: not after %v", what, time.Since(since))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	started := time.Now()
	child := ringchild.Start(t, ringchild.Ring)
	waitFor("the new ring appeared", started, true, child.MapID)
	exited := time.Now()
	child.Exit(t)
	waitFor("the exited child's ring left", exited, false, child.MapID)
}

// TestMappingIsReadOnly proves the census cannot write another process's
// ring: it keeps no descriptor of it, its two mappings are read-only, one
// page each, and cannot be made writable, and a store through one faults
// and changes nothing.
func TestMappingIsReadOnly(t *testing.T) {
	testenv.RequireBPF(t)
	child := ringchild.Start(t, ringchild.Ring)
	child.Do(t, "write 10")
	c := openCensus(t, Options{})
	c.mu.Lock()
	i := slices.IndexFunc(c.rings, func(h *held) bool { return h.ring.ID == child.MapID })
	if i < 0 {
		c.mu.Unlock()
		t.Fatalf("map %d is not in the census", child.MapID)
	}
	h := c.rings[i]
	c.mu.Unlock()

	page := os.Getpagesize()
	// The mappings, as the kernel lists them: read, no write, shared.
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for what, mem := range map[string][]byte{"consumer page": h.pos.consumerMem, "producer page": h.pos.producerMem} {
		if len(mem) != page {
			t.Errorf("%s: %d bytes mapped, want one page (%d): the data must not be mapped", what, len(mem), page)
		}
		prefix := fmt.Sprintf("%x-%x ", uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&mem[0]))+uintptr(page))
		var line string
		for l := range strings.Lines(string(maps)) {
			if strings.HasPrefix(l, prefix) {
				line = l
			}
		}
		if !strings.HasPrefix(line, prefix+"r--s ") {
			t.Errorf("%s: /proc/self/maps says %q, want %q", what, line, prefix+"r--s ...")
		}
		// bpf_map_mmap cleared VM_MAYWRITE: mprotect cannot add write.
		if err := unix.Mprotect(mem, unix.PROT_READ|unix.PROT_WRITE); !errors.Is(err, unix.EACCES) {
			t.Errorf("%s: mprotect(PROT_WRITE) = %v, want EACCES", what, err)
		}
	}
	// The census keeps no descriptor of the ring: only the two pages.
	if fds := mapFDs(t, child.MapID); len(fds) != 0 {
		t.Errorf("the census holds descriptors %v of the child's ring", fds)
	}
	// Even a read-write descriptor gets no writable producer page of a
	// ring buffer (kernel/bpf/ringbuf.c, ringbuf_map_mmap_kern: -EPERM).
	rw, err := ebpf.NewMapFromID(child.MapID)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if mem, err := unix.Mmap(rw.FD(), int64(page), page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); !errors.Is(err, unix.EPERM) {
		if err == nil {
			unix.Munmap(mem)
		}
		t.Errorf("writable mmap of the producer page = %v, want EPERM", err)
	}

	// A store through the mapping faults. Were it to land, the child would
	// find nothing to read.
	producer, _ := h.pos.load()
	if err := storeFaults(h.pos.consumer, producer); err == nil {
		t.Fatal("a store into the census's consumer page did not fault")
	} else {
		t.Logf("store faulted: %v", err)
	}
	if got := child.Do(t, "read"); got != "10" {
		t.Errorf("the child read %s records after the census's store, want 10", got)
	}
}

// mapFDs lists this process's descriptors of map id.
func mapFDs(t *testing.T, id ebpf.MapID) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fdinfo")
	if err != nil {
		t.Fatal(err)
	}
	var fds []string
	for _, e := range entries {
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if got, ok := parseMapID(info); err == nil && ok && got == id {
			fds = append(fds, e.Name())
		}
	}
	return fds
}

// storeFaults stores v at p and returns the fault it raised, or nil.
func storeFaults(p *uint64, v uint64) (err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	*(*uint64)(unsafe.Pointer(p)) = v
	return nil
}

// TestNeedsCapSysAdmin opens a census on a thread without CAP_SYS_ADMIN:
// it fails with ErrPermission and says what to do.
func TestNeedsCapSysAdmin(t *testing.T) {
	testenv.RequireBPF(t)
	err := testenv.WithoutCapability(unix.CAP_SYS_ADMIN, func() error {
		c, err := Open(Options{})
		if err == nil {
			c.Close()
		}
		return err
	})
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "CAP_SYS_ADMIN") {
		t.Errorf("Open without CAP_SYS_ADMIN: %v; want ErrPermission, naming CAP_SYS_ADMIN", err)
	}
}

func TestRatesBetween(t *testing.T) {
	ring := func(producer, consumer uint64) Ring {
		return Ring{Kind: RingBuf, Capacity: 1 << 20, Producer: producer, Consumer: consumer}
	}
	overwriting := func(producer, overwrite uint64) Ring {
		return Ring{Kind: RingBuf, Overwrite: true, Capacity: 1 << 20, Producer: producer, OverwritePos: overwrite}
	}
	for _, tc := range []struct {
		name      string
		prev, cur Ring
		dt        time.Duration
		want      Rates
	}{
		{"idle", ring(100, 100), ring(100, 100), time.Second, Rates{ToFull: Forever, ConsumerGrace: Forever}},
		{"filling", ring(0, 0), ring(4096, 1024), 2 * time.Second,
			// in 2048/s, out 512/s: (1MiB - 3072) / 1536 per second; grace 1MiB / 2048 per second.
			Rates{In: 2048, Out: 512, ToFull: seconds((1<<20 - 3072) / 1536.0), ConsumerGrace: 512 * time.Second}},
		{"draining", ring(4096, 0), ring(5120, 4096), time.Second,
			Rates{In: 1024, Out: 4096, ToFull: Forever, ConsumerGrace: 1024 * time.Second}},
		{"stalled", ring(64, 0), ring(128, 0), time.Second,
			Rates{In: 64, ToFull: seconds((1<<20 - 128) / 64.0), ConsumerGrace: seconds((1 << 20) / 64.0), Stalled: true}},
		{"perf", Ring{Kind: PerfEventArray}, Ring{Kind: PerfEventArray}, time.Second, Rates{ToFull: Forever, ConsumerGrace: Forever}},
		{"no time", ring(0, 0), ring(64, 0), 0, Rates{ToFull: Forever, ConsumerGrace: Forever}},
		// Overwrite mode: 1MiB in, 768KiB of it overwritten, nothing
		// read; the ring holds a second of history and neither fills nor
		// stalls.
		{"overwriting", overwriting(1<<20, 1<<18), overwriting(2<<20, 1<<20), time.Second,
			Rates{In: 1 << 20, Overwritten: 3 << 18, ToFull: Forever, ConsumerGrace: Forever, History: time.Second}},
		{"overwrite idle", overwriting(1<<20, 1<<18), overwriting(1<<20, 1<<18), time.Second,
			Rates{ToFull: Forever, ConsumerGrace: Forever, History: Forever}},
	} {
		if got := RatesBetween(tc.prev, tc.cur, tc.dt); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// BenchmarkWalk is the cost of one walk of the host (run every 2s by
// Census.Run): every map and program ID, and every process's descriptors.
//
//	go test -run '^$' -bench 'Walk|Sample' ./pkg/hostrings
func BenchmarkWalk(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	c, err := Open(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for b.Loop() {
		if err := c.Walk(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(c.Sample(time.Now()))), "rings")
}

// BenchmarkSample is the cost of one sample (run every 10ms by
// Census.Run): two loads and a stall check per ring.
func BenchmarkSample(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	c, err := Open(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	now := time.Now()
	for b.Loop() {
		c.Sample(now)
	}
	b.ReportMetric(float64(len(c.Sample(now))), "rings")
}
