package consumer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/testenv"
)

// memQueues are SPSC queues in plain Go memory, laid out as
// bpf/ringwatch.h lays them out in the BPF arrays.
type memQueues struct {
	queueWords []uint64 // struct spsc_queue of each queue, 8-byte aligned
	slots      []byte
	slotSize   uint64
	perQueue   uint64
	sleeping   uint32 // wake_state.consumer_sleeping
	watermark  uint32 // wake_state.watermark: slots pending that wake a lazy consumer
	bell       *eventBell
}

func newMemQueues(t testing.TB, queues, perQueue, slotSize int) *memQueues {
	m := &memQueues{
		queueWords: make([]uint64, queues*spscQueueSize/8),
		slots:      make([]byte, queues*perQueue*slotSize),
		slotSize:   uint64(slotSize),
		perQueue:   uint64(perQueue),
	}
	m.bell = newEventBell(t)
	return m
}

func (m *memQueues) queueMem() []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(&m.queueWords[0])), len(m.queueWords)*8)
}

func (m *memQueues) reader() *spsc {
	return newSPSC(m.queueMem(), m.slots, m.slotSize, m.perQueue)
}

// sleeper is an adaptive sleeper whose handshake is the queues' flag and
// doorbell; maxDelay < 0 makes every sleep deep.
func (m *memQueues) sleeper(maxDelay time.Duration) *sleeper {
	lazy := lazySleep(maxDelay)
	return &sleeper{mode: WakeupAdaptive, lazyFor: lazy, flow: newFlow(holdSleeps * max(lazy, 0)),
		sleeping: &m.sleeping, watermark: &m.watermark, bell: m.bell}
}

// consumer is a Consumer of the queues with adaptive wakeups; maxDelay < 0
// makes every sleep deep.
func (m *memQueues) consumer(t testing.TB, maxDelay time.Duration) *Consumer {
	c, err := newConsumer([]ring{m.reader()}, m.sleeper(maxDelay))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (m *memQueues) head(k int) *uint64 { return &m.queueWords[k*spscQueueSize/8+spscHeadOffset/8] }
func (m *memQueues) tail(k int) *uint64 { return &m.queueWords[k*spscQueueSize/8+spscTailOffset/8] }

// producer is queue k's producer, doing in Go what the BPF producer in
// bpf/transport.h does, step for step. Go's atomics are sequentially
// consistent, which gives both the release and acquire orderings and the
// handshake's StoreLoad fence.
type producer struct {
	m          *memQueues
	k          int
	tail       uint64 // our copy: only we write the shared one
	tailSlot   uint64 // tail mod perQueue
	cachedHead uint64
	doorbells  int
}

// newProducer is queue k's producer, starting where the queue's tail is.
func (m *memQueues) producer(k int) *producer {
	tail := atomic.LoadUint64(m.tail(k))
	return &producer{m: m, k: k, tail: tail, tailSlot: tail % m.perQueue, cachedHead: atomic.LoadUint64(m.head(k))}
}

// push writes rec into the next slot and reports false if the queue is
// full.
func (p *producer) push(rec []byte) bool {
	m := p.m
	if p.tail-p.cachedHead >= m.perQueue {
		p.cachedHead = atomic.LoadUint64(m.head(p.k))
		if p.tail-p.cachedHead >= m.perQueue {
			return false
		}
	}
	index := uint64(p.k)*m.perQueue + p.tailSlot
	slot := m.slots[index*m.slotSize : (index+1)*m.slotSize]
	binary.LittleEndian.PutUint32(slot, uint32(len(rec)))
	copy(slot[spscSlotHeader:], rec)
	if p.tailSlot++; p.tailSlot == m.perQueue {
		p.tailSlot = 0
	}
	p.tail++
	atomic.StoreUint64(m.tail(p.k), p.tail) // publish, then look
	state := atomic.LoadUint32(&m.sleeping)
	wake := state == sleepDeep ||
		(state == sleepLazy && p.tail-atomic.LoadUint64(m.head(p.k)) >= uint64(atomic.LoadUint32(&m.watermark)))
	if wake && atomic.CompareAndSwapUint32(&m.sleeping, state, sleepAwake) {
		m.bell.ring()
		p.doorbells++
	}
	return true
}

// eventBell is a doorbell in an eventfd, standing in for the BPF doorbell
// ring buffer: the Consumer waits on it in epoll all the same.
type eventBell struct{ efd int }

func newEventBell(t testing.TB) *eventBell {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	return &eventBell{efd: fd}
}

func (b *eventBell) fd() int { return b.efd }

func (b *eventBell) ring() {
	one := [8]byte{1}
	unix.Write(b.efd, one[:])
}

func (b *eventBell) clear() error {
	var buf [8]byte
	if _, err := unix.Read(b.efd, buf[:]); err != nil && !errors.Is(err, unix.EAGAIN) {
		return err
	}
	return nil
}

func (b *eventBell) close() error { return unix.Close(b.efd) }

// record is an SPSC test record: its sequence number, then filler of a
// length that varies with it, every byte derived from the number.
func record(buf []byte, seq uint64, maxLen int) []byte {
	n := 8 + int(seq%uint64(maxLen-7))
	buf = buf[:n]
	binary.LittleEndian.PutUint64(buf, seq)
	for i := 8; i < n; i++ {
		buf[i] = byte(seq) + byte(i)
	}
	return buf
}

// checkRecord reports what is wrong with rec as record number want.
func checkRecord(rec []byte, want uint64, maxLen int) string {
	if len(rec) < 8 {
		return "short record"
	}
	if got := binary.LittleEndian.Uint64(rec); got != want {
		return "out of order"
	}
	var buf [256]byte
	if string(record(buf[:], want, maxLen)) != string(rec) {
		return "wrong content"
	}
	return ""
}

func TestSPSCReadsInOrderAndReleasesOncePerBatch(t *testing.T) {
	m := newMemQueues(t, 2, 8, 32)
	defer m.bell.close()
	s := m.reader()
	defer s.close()
	p0, p1 := m.producer(0), m.producer(1)
	var buf [24]byte
	for i := range uint64(8) {
		if !p0.push(record(buf[:], i, 24)) {
			t.Fatalf("queue 0 full at %d of 8", i)
		}
	}
	if p0.push(record(buf[:], 8, 24)) {
		t.Fatal("pushed a 9th record into an 8-slot queue")
	}
	p1.push(record(buf[:], 100, 24))

	var b batch
	if err := s.nextBatch(&b, 100); err != nil {
		t.Fatal(err)
	}
	// A quarter of each queue per batch: 2 from queue 0, 1 from queue 1.
	if len(b.records) != 3 {
		t.Fatalf("first batch has %d records, want 3", len(b.records))
	}
	for i, want := range []uint64{0, 1, 100} {
		if problem := checkRecord(b.records[i], want, 24); problem != "" {
			t.Fatalf("record %d: %s", i, problem)
		}
	}
	if atomic.LoadUint64(m.head(0)) != 0 {
		t.Fatal("head moved before release")
	}
	if !s.release() || atomic.LoadUint64(m.head(0)) != 2 || atomic.LoadUint64(m.head(1)) != 1 {
		t.Fatalf("after release: heads %d, %d; want 2, 1", *m.head(0), *m.head(1))
	}
	if s.release() {
		t.Fatal("second release with nothing read reports work")
	}
	// The freed slots take new records, wrapping around the queue.
	for i := uint64(8); i < 10; i++ {
		if !p0.push(record(buf[:], i, 24)) {
			t.Fatalf("no room for record %d after release", i)
		}
	}
	next := uint64(2)
	for {
		b.records = b.records[:0]
		if err := s.nextBatch(&b, 100); err != nil {
			t.Fatal(err)
		}
		for _, rec := range b.records {
			if problem := checkRecord(rec, next, 24); problem != "" {
				t.Fatalf("record %d: %s", next, problem)
			}
			next++
		}
		if !s.release() {
			break
		}
	}
	if next != 10 {
		t.Fatalf("read up to record %d, want 10", next)
	}
	if s.pending() != 0 {
		t.Fatalf("pending %d after reading everything", s.pending())
	}
}

func TestSPSCRejectsCorruptQueues(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(m *memQueues)
	}{
		{"slot longer than a slot holds", func(m *memQueues) {
			binary.LittleEndian.PutUint32(m.slots, 32)
			atomic.StoreUint64(m.tail(0), 1)
		}},
		{"tail ahead by more than the queue", func(m *memQueues) { atomic.StoreUint64(m.tail(1), 9) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemQueues(t, 2, 8, 32)
			defer m.bell.close()
			s := m.reader()
			defer s.close()
			tc.corrupt(m)
			var b batch
			if err := s.nextBatch(&b, 100); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("nextBatch = %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestSPSCPassesTenMillionRecords runs the protocol between a producer and
// the real Consumer on two goroutines: every record must arrive, once, in
// order, intact. A full queue makes the producer retry, so nothing may be
// lost. Run it with -race: the race detector checks that the atomics order
// every slot write before its read, and every read before the slot's reuse.
func TestSPSCPassesTenMillionRecords(t *testing.T) {
	n := uint64(10_000_000)
	if testing.Short() {
		n = 1_000_000
	}
	const maxLen = 56
	m := newMemQueues(t, 1, 1024, 64)
	c := m.consumer(t, DefaultMaxDelay)
	defer c.Close()

	var next uint64 // read by this goroutine only after the reader stops
	var progress atomic.Uint64
	failed := false
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			_, err := c.Read(ctx, func(b Batch) {
				for _, rec := range b.Records {
					if problem := checkRecord(rec, next, maxLen); problem != "" && !failed {
						failed = true // one report is enough
						t.Errorf("record %d: %s", next, problem)
					}
					next++
				}
				progress.Store(next)
				if next >= n {
					select {
					case <-done:
					default:
						close(done)
					}
				}
			})
			if err != nil && ctx.Err() == nil {
				t.Errorf("Read: %v", err)
				return
			}
		}
	})

	p := m.producer(0)
	var buf [maxLen]byte
	full := 0
	for seq := uint64(0); seq < n; {
		if p.push(record(buf[:], seq, maxLen)) {
			seq++
		} else {
			full++
		}
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("only %d of %d records arrived", progress.Load(), n)
	}
	cancel()
	wg.Wait()
	if next != n {
		t.Errorf("%d records arrived, %d were sent", next, n)
	}
	st := c.Stats()[0]
	t.Logf("%d records, %d batches, %d wakeups, %d doorbells, producer found the queue full %d times",
		st.Records, st.Batches, st.Wakeups, p.doorbells, full)
	if st.Records != n {
		t.Errorf("Stats counts %d records, want %d", st.Records, n)
	}
}

// TestSPSCHandshakeLeavesNoRecordWaiting alternates bursts with idle gaps
// thousands of times, so the consumer goes to sleep between most bursts
// and must be woken by the doorbell. The bound this test holds the
// protocol to: a record never waits for a later record or for a timer,
// only for the consumer thread to run. So after each burst the producer
// stops and waits for every record of it to arrive; a lost wakeup would
// leave that wait hanging (the deadline exists only to fail instead of
// hang, and is no statement about speed). The longest wait is logged.
func TestSPSCHandshakeLeavesNoRecordWaiting(t *testing.T) {
	rounds := 5000
	if testing.Short() {
		rounds = 500
	}
	m := newMemQueues(t, 1, 256, 32)
	c := m.consumer(t, -1) // deep sleeps only: no timer may help
	defer c.Close()

	var delivered, target atomic.Uint64
	arrived := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			if _, err := c.Read(ctx, func(b Batch) {
				if delivered.Add(uint64(len(b.Records))) == target.Load() {
					arrived <- struct{}{}
				}
			}); err != nil && ctx.Err() == nil {
				t.Errorf("Read: %v", err)
				return
			}
		}
	})
	defer func() { cancel(); wg.Wait() }()

	p := m.producer(0)
	rng := rand.New(rand.NewPCG(1, 2))
	var longest time.Duration
	var buf [24]byte
	seq := uint64(0)
	for round := range rounds {
		burst := 1 + rng.IntN(64)
		target.Add(uint64(burst))
		start := time.Now()
		for range burst {
			for !p.push(record(buf[:], seq, 24)) {
			}
			seq++
		}
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: %d of %d records still waiting: a wakeup was lost",
				round, target.Load()-delivered.Load(), burst)
		}
		longest = max(longest, time.Since(start))
		// Idle long enough, most of the time, for the consumer to reach
		// epoll_wait; sometimes not at all, to race its arm.
		if rng.IntN(4) > 0 {
			time.Sleep(time.Duration(rng.IntN(50)) * time.Microsecond)
		}
	}
	// Stop the reader first: it counts a batch after the callback that
	// signalled its arrival returns.
	cancel()
	wg.Wait()
	st := c.Stats()[0]
	t.Logf("%d rounds: %d records, %d wakeups, %d doorbells; longest burst-to-delivery %v",
		rounds, st.Records, st.Wakeups, p.doorbells, longest)
	if st.Records != seq {
		t.Errorf("%d records delivered, %d sent", st.Records, seq)
	}
	// The test is about the sleep path: it must have been taken, often.
	if p.doorbells < rounds/10 || st.Wakeups == 0 {
		t.Errorf("only %d doorbells and %d wakeups in %d rounds: the consumer hardly slept", p.doorbells, st.Wakeups, rounds)
	}
}

// TestLazySleepDeliversWithinItsDelay holds the adaptive consumer's lazy
// sleep to its bound: a record below the watermark rings no doorbell, and
// must still arrive, without any later record, when the consumer wakes
// itself after its delay. Each record is written just after the consumer
// has delivered the one before and gone back to sleep, so it waits about a
// whole lazy sleep: the worst case.
//
// The bound is MaxDelay plus however long the kernel keeps the consumer
// thread waiting for a CPU once its timer has fired, which ringwatch cannot
// shorten: on a machine with more runnable threads than CPUs, that is
// milliseconds (measured with 2 CPUs at a load average of 13-21: p99 of
// the whole wait 3.3-9.6 ms, of the wait less the run-queue delay 0.87-0.97
// ms). So the test measures each record's wait from its write to its
// delivery, subtracts the time the reading thread spent runnable but not
// running meanwhile (run_delay in /proc/<tid>/schedstat,
// Documentation/scheduler/sched-stats.rst), and requires of that: the
// median within MaxDelay, with no allowance (a lazy sleep that leaves no
// room for the wakeup, or runs long, or a record that waits for a second
// sleep, puts most records past it); the 99th percentile within MaxDelay
// plus an allowance of 20 ms for interrupts, a hypervisor's steal time
// and the Go runtime, which the run-queue delay does not count (two CI
// runs under -race on an idle 2-CPU VM measured a p99 of 2.4 and 8.5 ms;
// the median, held to MaxDelay with no allowance, is what catches a sleep
// that is too long); and no
// record beyond MaxDelay + 50 ms. (The 10 s deadline only turns a hang
// into a failure.)
func TestLazySleepDeliversWithinItsDelay(t *testing.T) {
	const (
		maxDelay  = DefaultMaxDelay
		allowance = 20 * time.Millisecond
		worst     = maxDelay + 50*time.Millisecond
	)
	rounds := 1000
	if testing.Short() {
		rounds = 200
	}
	if _, err := runDelay("/proc/thread-self/schedstat"); err != nil {
		testenv.Unavailable(t, fmt.Sprintf("needs the kernel's scheduler statistics (CONFIG_SCHED_INFO): %v", err))
	}
	m := newMemQueues(t, 1, 256, 32) // watermark: 32 slots
	c := m.consumer(t, maxDelay)
	defer c.Close()

	// Each record is its sequence number and CLOCK_MONOTONIC when written;
	// the reader appends its wait and the reading thread's run-queue delay
	// when read.
	var waits, queued []time.Duration
	arrived := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	tids := make(chan int)
	var wg sync.WaitGroup
	wg.Go(func() {
		runtime.LockOSThread() // as internal/session's consumers are
		defer runtime.UnlockOSThread()
		tids <- unix.Gettid()
		for ctx.Err() == nil {
			c.Read(ctx, func(b Batch) {
				now := MonotonicNow()
				delay, err := runDelay("/proc/thread-self/schedstat")
				if err != nil {
					t.Error(err)
				}
				for _, rec := range b.Records {
					waits = append(waits, time.Duration(now-int64(binary.LittleEndian.Uint64(rec[8:]))))
					queued = append(queued, delay)
				}
				arrived <- struct{}{}
			})
		}
	})
	defer func() { cancel(); wg.Wait() }()
	schedstat := fmt.Sprintf("/proc/self/task/%d/schedstat", <-tids)

	p := m.producer(0)
	var rec [16]byte
	var own []time.Duration
	// The flow model chooses a lazy sleep when records come at least half
	// a record per lazy sleep: one every two lazy sleeps. Each record here
	// waits for the one before to be delivered, so how often they come is
	// this loop's pace, which a slow machine (the VM matrix's emulated
	// CPUs, where reading schedstat alone takes a good part of a lazy
	// sleep) can bring below that. The doorbell check counts only the
	// records that came after an interval the model must read as flowing
	// (within 1.5 lazy sleeps, a margin of a quarter): lazy rounds.
	lazy := lazySleep(maxDelay)
	pushed := make([]int64, rounds)
	var lazyRounds, lazyDoorbells int
	for round := range rounds {
		before, err := runDelay(schedstat)
		if err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint64(rec[:], uint64(round))
		pushed[round] = MonotonicNow()
		binary.LittleEndian.PutUint64(rec[8:], uint64(pushed[round]))
		rang := p.doorbells
		if !p.push(rec[:]) {
			t.Fatal("queue full")
		}
		// The sleep this record found was chosen from the interval
		// between the two records before it.
		if round >= 2 && time.Duration(pushed[round-1]-pushed[round-2]) <= lazy*3/2 {
			lazyRounds++
			lazyDoorbells += p.doorbells - rang
		}
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: a record below the watermark was never delivered", round)
		}
		if len(waits) != round+1 {
			t.Fatalf("round %d: %d records delivered", round, len(waits))
		}
		own = append(own, waits[round]-(queued[round]-before))
	}
	total := slices.Clone(waits)
	slices.Sort(total)
	slices.Sort(own)
	t.Logf("%d single records, %d doorbells (%d in %d lazy rounds); wait p50 %v, p99 %v, max %v; less the run-queue delay p50 %v, p99 %v, p99.9 %v, max %v",
		rounds, p.doorbells, lazyDoorbells, lazyRounds, quantile(total, .5), quantile(total, .99), quantile(total, 1),
		quantile(own, .5), quantile(own, .99), quantile(own, .999), quantile(own, 1))
	// Most records of the lazy rounds came while the consumer slept
	// lazily, so without a doorbell: the self-wakeup delivered them
	// (measured: 0.4% of them rang on this project's 2-CPU machine, 16-27%
	// in four runs under the VM matrix's emulation; a consumer that always
	// sleeps deeply rang for 51%, not all, since it is often still awake
	// when the next record comes). A machine too slow for any lazy round
	// fails: the check must run.
	if lazyRounds < rounds/10 {
		t.Errorf("only %d of %d records came within 1.5 lazy sleeps (%v) of the one before: this loop is too slow here to check lazy sleeps", lazyRounds, rounds, lazy*3/2)
	}
	if lazyDoorbells > lazyRounds*2/5 {
		t.Errorf("%d doorbells for %d records below the watermark that came while records flowed: the consumer did not sleep lazily", lazyDoorbells, lazyRounds)
	}
	if q := quantile(own, .5); q > maxDelay {
		t.Errorf("median of the wait less the run-queue delay is %v, beyond the %v bound", q, maxDelay)
	}
	if q := quantile(own, .99); q > maxDelay+allowance {
		t.Errorf("p99 of the wait less the run-queue delay is %v, beyond the %v bound and its %v allowance", q, maxDelay, allowance)
	}
	if q := quantile(own, 1); q > worst {
		t.Errorf("a record waited %v besides the run-queue delay, beyond %v", q, worst)
	}
}

// runDelay is the run_delay of a /proc schedstat file: how long the thread
// has waited on a run queue, in all (Documentation/scheduler/sched-stats.rst).
func runDelay(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("%s: %q is not run time, run delay and slices", path, b)
	}
	ns, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return time.Duration(ns), nil
}

// quantile is the q-quantile of sorted, by the nearest rank below.
func quantile(sorted []time.Duration, q float64) time.Duration {
	return sorted[int(q*float64(len(sorted)-1))]
}

// BenchmarkSPSCWalk is the consumer's walk over SPSC slots, as
// BenchmarkDrain is over a ring buffer.
func BenchmarkSPSCWalk(b *testing.B) {
	for _, size := range []int{16, 64, 256} {
		b.Run(fmt.Sprintf("record=%dB", size), func(b *testing.B) {
			const perQueue = 4096
			m := newMemQueues(b, 1, perQueue, size+spscSlotHeader)
			defer m.bell.close()
			s := m.reader()
			defer s.close()
			p := m.producer(0)
			rec := make([]byte, size)
			bt := batch{records: make([][]byte, 0, maxBatchRecords)}
			b.ReportAllocs()
			b.ResetTimer()
			records := 0
			for range b.N {
				b.StopTimer()
				for p.push(rec) {
				}
				b.StartTimer()
				for {
					bt.records = bt.records[:0]
					if err := s.nextBatch(&bt, maxBatchRecords); err != nil {
						b.Fatal(err)
					}
					records += len(bt.records)
					if !s.release() {
						break
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
		})
	}
}
