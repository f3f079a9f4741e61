package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/control"
	"github.com/ringwatch/ringwatch/internal/cpus"
	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/internal/session"
	"github.com/ringwatch/ringwatch/internal/transport"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// Consumer names.
const (
	Ringwatch     = "ringwatch"
	CiliumRingbuf = "cilium-ringbuf"
	CiliumPerf    = "cilium-perf"
	// Baseline is no ring at all: a thread on the producer CPU writes an
	// eventfd that a thread on the consumer CPU waits on in epoll. Its
	// latency is what waking a thread costs on this machine, the floor
	// under every consumer that sleeps.
	Baseline = "baseline-eventfd"
)

// Scenario names.
const (
	Drain      = "drain"
	Saturation = "saturation"
	Latency    = "latency"
	RoundTrip  = "roundtrip"
	Scale      = "scale"
	Producer   = "producer"
)

// Scenarios lists the scenarios, in the order Run takes them.
func Scenarios() []string { return []string{Drain, Saturation, Latency, RoundTrip, Scale, Producer} }

// RecordSizes are the record sizes the synthetic producer writes: one
// program per size and transport in bpf/ringwatch.c.
var RecordSizes = []int{16, 64, 256, 1024, 4096}

// source is the synthetic producer of size-byte records, a loader source
// that is never attached: the bench runs it ([producer]).
func source(size int) loader.Source {
	return loader.Source{Name: "bench", RecordSize: size, Program: fmt.Sprintf("bench_%d", size)}
}

// Options choose what Run measures.
type Options struct {
	Scenarios  []string
	Transports []abi.TransportName
	Sizes      []int
	Wakeups    []consumer.Wakeup // for ringwatch's consumer in latency and saturation
	Peers      bool              // also run cilium/ebpf's readers where they apply
	RingSize   int
	// Saturation: records the producer writes per run, unless MaxTime
	// passes first (0: no limit): a producer that wakes the consumer for
	// every record runs a hundred times slower than one that does not.
	Records int
	MaxTime time.Duration
	// Latency: the rates in records per second, and how long each runs.
	Rates    []int
	Duration time.Duration
	// Scale: how many producer threads, each on its own CPU, in each
	// measurement, and how many consumers read (0: one per
	// transport.RingsPerConsumer rings). Each runs for MaxTime.
	Producers []int
	Consumers int
	// RoundTrip: pings.
	Pings int
	// The CPUs the producer and the consumer are pinned to.
	ProducerCPU, ConsumerCPU int
	// Progress, if not nil, gets a line as each measurement starts.
	Progress io.Writer
	// Quick is a quick run (SetQuick): saturation then runs only at the
	// sizes up to 64 bytes, where its target is, if any were asked for.
	Quick bool
}

// OptionScenarios are the scenarios that use each option that not all of
// them use, by the name of its flag in `ringwatch bench`: an option given
// for none of the chosen scenarios is a mistake.
var OptionScenarios = map[string][]string{
	"records":   {Saturation},
	"max-time":  {Saturation, Scale},
	"rates":     {Latency},
	"duration":  {Latency},
	"pings":     {RoundTrip},
	"producers": {Scale},
	"consumers": {Scale},
	"wakeup":    {Saturation, Latency},
}

// SetQuick makes o a quick run of every scenario, under 2 minutes: sizes
// 16, 64 and 256 (saturation 16 and 64, latency 64), 1Mi records or 1s,
// 0.3s per rate, 1000 pings. The options named in given, by their flags'
// names as in OptionScenarios, keep the values they have.
func (o *Options) SetQuick(given map[string]bool) {
	o.Quick = true
	if !given["size"] {
		o.Sizes = []int{16, 64, 256}
	}
	if !given["records"] {
		o.Records = 1 << 20
	}
	if !given["max-time"] {
		o.MaxTime = time.Second
	}
	if !given["duration"] {
		o.Duration = 300 * time.Millisecond
	}
	if !given["pings"] {
		o.Pings = 1000
	}
}

// MaxLatencyRecords bounds a latency measurement's records, rate times
// duration: the latency of each is kept, 8 bytes a record.
const MaxLatencyRecords = 100_000_000

// LatencyOverflow is the first of o.Rates whose records over o.Duration,
// n, exceed MaxLatencyRecords in a run with the latency scenario; rate 0
// when none does.
func (o Options) LatencyOverflow() (rate int, n float64) {
	if !slices.Contains(o.Scenarios, Latency) {
		return 0, 0
	}
	for _, rate := range o.Rates {
		if n := float64(rate) * o.Duration.Seconds(); n > MaxLatencyRecords {
			return rate, n
		}
	}
	return 0, 0
}

// sizesFor are the record sizes that suit scenario: latency and scale at
// the middle size asked for; in a quick run, saturation only at the sizes
// up to 64 bytes, if any were asked for; the rest at every size.
func (o Options) sizesFor(scenario string) []int {
	if len(o.Sizes) == 0 {
		return nil
	}
	switch scenario {
	case Latency, Scale:
		return []int{o.Sizes[len(o.Sizes)/2]}
	case Saturation:
		small := slices.DeleteFunc(slices.Clone(o.Sizes), func(n int) bool { return n > 64 })
		if o.Quick && len(small) > 0 {
			return small
		}
	}
	return o.Sizes
}

// Result is one measurement. Fields that do not apply to its scenario are
// zero and left out of JSON.
type Result struct {
	Scenario   string `json:"scenario"`
	Transport  string `json:"transport,omitempty"`
	Consumer   string `json:"consumer"`
	Wakeup     string `json:"wakeup,omitempty"`
	RecordSize int    `json:"record_size,omitempty"`
	Rate       int    `json:"rate,omitempty"` // records per second asked for

	Attempted uint64 `json:"attempted"`
	Delivered uint64 `json:"delivered"`
	Lost      uint64 `json:"lost"`
	// Producer: what the overwrite ring holds at the end, and what it
	// overwrote; Unsupported says why a row was not measured.
	Kept        uint64 `json:"kept,omitempty"`
	Overwritten uint64 `json:"overwritten,omitempty"`
	Unsupported string `json:"unsupported,omitempty"`

	NsPerRecord float64 `json:"ns_per_record,omitempty"` // drain; producer: the producer's CPU
	// DrainNsPerRecord is, in saturation, what the same consumer spends per
	// record draining the same transport's full ring of records of the same
	// size, measured in the same session right after the flow: the floor
	// the live figure (CPUPerMillion, in ms per million: ns per record) is
	// held to.
	DrainNsPerRecord float64 `json:"drain_ns_per_record,omitempty"`
	GBPerSecond      float64 `json:"gb_per_second,omitempty"`      // drain
	DeliveredRatio   float64 `json:"delivered_fraction,omitempty"` // saturation
	ProducerRate     float64 `json:"producer_records_per_second,omitempty"`
	Producers        int     `json:"producers,omitempty"`                       // scale
	Consumers        int     `json:"consumers,omitempty"`                       // scale
	PerProducer      float64 `json:"records_per_second_per_producer,omitempty"` // scale
	ConsumerCPU      float64 `json:"consumer_cpu_seconds,omitempty"`
	CPUPerMillion    float64 `json:"consumer_cpu_seconds_per_million,omitempty"`
	Wakeups          uint64  `json:"wakeups,omitempty"`

	P50  time.Duration `json:"p50_ns,omitempty"`
	P99  time.Duration `json:"p99_ns,omitempty"`
	P999 time.Duration `json:"p999_ns,omitempty"`
	Max  time.Duration `json:"max_ns,omitempty"`
}

// Run measures every combination Options asks for, each scenario at the
// record sizes that suit it, in a fixed order, and returns the results as
// they come; on error it returns those so far.
func Run(ctx context.Context, opts Options) ([]Result, error) {
	var results []Result
	progress := func(format string, args ...any) {
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, format+"\n", args...)
		}
	}
	for _, scenario := range opts.Scenarios {
		sizes := opts.sizesFor(scenario)
		if scenario == RoundTrip {
			progress("roundtrip: %d pings", opts.Pings)
			r, err := roundTrip(ctx, opts.Pings)
			if err != nil {
				return results, fmt.Errorf("roundtrip: %w", err)
			}
			results = append(results, r)
			continue
		}
		if scenario == Producer {
			for _, size := range sizes {
				for _, ring := range producerRings {
					if err := ctx.Err(); err != nil {
						return results, err
					}
					progress("producer: %s, %d-byte records", ring, size)
					r, err := producerCost(opts, ring, size)
					if err != nil {
						return results, fmt.Errorf("producer on %s, %d bytes: %w", ring, size, err)
					}
					results = append(results, r)
				}
			}
			continue
		}
		if scenario == Scale {
			for _, t := range opts.Transports {
				for _, size := range sizes {
					for _, producers := range opts.Producers {
						if err := ctx.Err(); err != nil {
							return results, err
						}
						progress("scale: %s, %d-byte records, %d producers", t, size, producers)
						r, err := scale(ctx, opts, t, size, producers)
						if err != nil {
							return results, fmt.Errorf("scale on %s, %d bytes, %d producers: %w", t, size, producers, err)
						}
						results = append(results, r)
					}
				}
			}
			continue
		}
		if scenario == Latency {
			for _, rate := range opts.Rates {
				progress("latency: %s, %d wakeups/s", Baseline, rate)
				r, err := baseline(ctx, opts, rate)
				if err != nil {
					return results, fmt.Errorf("latency baseline: %w", err)
				}
				results = append(results, r)
			}
		}
		for _, t := range opts.Transports {
			for _, size := range sizes {
				for _, c := range consumersFor(scenario, t, opts) {
					rates := []int{0}
					if scenario == Latency {
						rates = opts.Rates
					}
					for _, rate := range rates {
						if err := ctx.Err(); err != nil {
							return results, err
						}
						progress("%s: %s, %d-byte records, %s consumer%s%s", scenario, t, size, c.name,
							wakeupNote(c.wakeup), rateNote(rate))
						r, err := measure(ctx, opts, scenario, t, size, c, rate)
						if err != nil {
							return results, fmt.Errorf("%s on %s, %d bytes, %s: %w", scenario, t, size, c.name, err)
						}
						results = append(results, r)
					}
				}
			}
		}
	}
	return results, nil
}

func wakeupNote(w consumer.Wakeup) string {
	if w == "" {
		return ""
	}
	return ", wakeup " + string(w)
}

func rateNote(rate int) string {
	if rate == 0 {
		return ""
	}
	return fmt.Sprintf(", %d records/s", rate)
}

// reader is one consumer under test, with the wakeup mode the producers
// are loaded with for it.
type reader struct {
	name   string
	wakeup consumer.Wakeup // the producers' mode: for peers, the kernel's rule
	// scenarios it is measured in; nil: all.
	scenarios []string
}

func consumersFor(scenario string, t abi.TransportName, opts Options) []reader {
	var out []reader
	if scenario == Drain {
		out = append(out, reader{name: Ringwatch, wakeup: consumer.WakeupAdaptive})
	} else {
		for _, w := range opts.Wakeups {
			out = append(out, reader{name: Ringwatch, wakeup: w})
		}
	}
	if opts.Peers {
		for _, p := range peersOf[t] {
			if p.scenarios == nil || slices.Contains(p.scenarios, scenario) {
				out = append(out, p)
			}
		}
	}
	return out
}

// measure loads the bench producer for one combination and runs it.
func measure(ctx context.Context, opts Options, scenario string, t abi.TransportName, size int, rd reader, rate int) (Result, error) {
	r := Result{Scenario: scenario, Transport: string(t), Consumer: rd.name, RecordSize: size, Rate: rate}
	if scenario != Drain {
		r.Wakeup = string(rd.wakeup)
	}
	var opened session.Reader
	s, err := session.Open(session.Options{
		Sources:   []loader.Source{source(size)},
		Transport: t,
		Rings:     transport.Options{RingSize: opts.RingSize},
		Wakeup:    rd.wakeup,
		NewReader: func(tr transport.Transport) (session.Reader, error) {
			r, err := openReader(rd, tr, rate > 0)
			opened = r
			return r, err
		},
	})
	if err != nil {
		return r, err
	}
	defer s.Close()
	p, err := newProducer(s.Producers())
	if err != nil {
		return r, err
	}
	k := &sink{}
	k.counted, _ = opened.(selfCounting)
	switch scenario {
	case Drain:
		err = drain(s, p, k, opts, size, &r)
	case Saturation, Latency:
		err = flow(ctx, s, p, k, opts, rate, &r)
		if err == nil && scenario == Saturation && rd.name == Ringwatch {
			r.DrainNsPerRecord, err = drainCost(s, p, k, opts, size)
		}
	default:
		err = fmt.Errorf("unknown scenario %q", scenario)
	}
	return r, err
}

// producer runs the synthetic producer of a session and reads its counts.
type producer struct {
	prog     *ebpf.Program
	counters *ebpf.Map
}

func newProducer(p *loader.Producers) (*producer, error) {
	prod := &producer{prog: p.Program("bench"), counters: p.Map(abi.MapBenchCounters)}
	if prod.prog == nil || prod.counters == nil {
		return nil, errors.New("run bench: no bench producer loaded")
	}
	return prod, nil
}

// run runs the synthetic producer once on the calling thread's CPU: it
// writes count records, or counts as lost those with no room.
func (p *producer) run(count int) error {
	var ctx any = abi.BenchArgs{Count: uint32(count)}
	if p.prog.Type() == ebpf.RawTracepoint {
		ctx = [1]uint64{uint64(count)} // the perfbuf producer: see bpf/ringwatch.c
	}
	if _, err := p.prog.Run(&ebpf.RunOptions{Context: ctx}); err != nil {
		return fmt.Errorf("run bench producer: %w", err)
	}
	return nil
}

// counts reads the synthetic producer's attempts and losses, summed over
// the CPUs it ran on.
func (p *producer) counts() (attempts, lost uint64, err error) {
	var perCPU []abi.BenchCounters
	if err := p.counters.Lookup(uint32(0), &perCPU); err != nil {
		return 0, 0, fmt.Errorf("read bench counters: %w", err)
	}
	for _, c := range perCPU {
		attempts += c.Attempts
		lost += c.Lost
	}
	return attempts, lost, nil
}

// drainRounds is how many times drain fills and empties the ring; it
// reports the median round, as one round is at the mercy of a noisy
// neighbour.
const drainRounds = 5

// drain fills the producer CPU's ring with nobody reading, then times the
// drain alone.
func drain(s *session.Session, p *producer, k *sink, opts Options, size int, r *Result) error {
	perRecord, err := fillAndDrain(s, p, k, opts, size)
	if err != nil {
		return err
	}
	if err := k.account(s, p, r); err != nil {
		return err
	}
	if perRecord > 0 {
		r.NsPerRecord = perRecord
		r.GBPerSecond = float64(k.bytes) / float64(k.records) / r.NsPerRecord
	}
	return nil
}

// drainCost is drain's figure on a session a flow has just run on: what
// the consumer spends per record draining a full ring, for the saturation
// table to set beside what it spent while the producer ran. It checks the
// books again after, without touching the flow's result.
func drainCost(s *session.Session, p *producer, k *sink, opts Options, size int) (float64, error) {
	perRecord, err := fillAndDrain(s, p, k, opts, size)
	if err != nil {
		return 0, err
	}
	var books Result
	return perRecord, k.account(s, p, &books)
}

// fillAndDrain fills and drains the ring drainRounds times and returns the
// median ns per record.
func fillAndDrain(s *session.Session, p *producer, k *sink, opts Options, size int) (float64, error) {
	n := s.Transport().Fits(size)
	perRecord := make([]float64, 0, drainRounds)
	for range drainRounds {
		if err := cpus.RunOn(opts.ProducerCPU, func() error { return runProducer(p, n, 0, time.Time{}, nil) }); err != nil {
			return 0, err
		}
		k.collect()
		records := k.records
		var took time.Duration
		err := cpus.RunOn(opts.ConsumerCPU, func() error {
			start := time.Now()
			err := s.Drain(k.onBatch)
			took = time.Since(start)
			return err
		})
		if err != nil {
			return 0, err
		}
		k.collect()
		if got := k.records - records; got > 0 {
			perRecord = append(perRecord, float64(took.Nanoseconds())/float64(got))
		}
	}
	if len(perRecord) == 0 {
		return 0, nil
	}
	slices.Sort(perRecord)
	return perRecord[len(perRecord)/2], nil
}

// flow runs the producer at full speed (rate 0) or at rate records per
// second while the sink reads on its own CPU, then stops both and counts.
func flow(ctx context.Context, s *session.Session, p *producer, k *sink, opts Options, rate int, r *Result) error {
	records := opts.Records
	if rate > 0 {
		records = int(float64(rate) * opts.Duration.Seconds())
		k.keepLatencies(records)
	}
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	var wg sync.WaitGroup
	var readErr error
	var cpu time.Duration
	wg.Go(func() {
		readErr = cpus.RunOn(opts.ConsumerCPU, func() error {
			before, _ := cpus.ThreadTime(0)
			err := s.Read(readCtx, k.onBatch)
			after, _ := cpus.ThreadTime(0)
			cpu = after - before
			return err
		})
	})
	var produced time.Duration
	err := cpus.RunOn(opts.ProducerCPU, func() error {
		start := time.Now()
		var deadline time.Time
		if rate == 0 && opts.MaxTime > 0 {
			deadline = time.Now().Add(opts.MaxTime)
		}
		err := runProducer(p, records, rate, deadline, ctx)
		produced = time.Since(start)
		return err
	})
	// Let the reader catch up with what is already in the rings, then
	// stop it; what remains is drained below, outside the CPU count.
	time.Sleep(10 * time.Millisecond)
	stopReading()
	wg.Wait()
	if err != nil {
		return err
	}
	if readErr != nil {
		return readErr
	}
	if err := s.Drain(k.onBatch); err != nil {
		return err
	}
	if err := k.account(s, p, r); err != nil {
		return err
	}
	r.ProducerRate = float64(r.Attempted) / produced.Seconds()
	r.ConsumerCPU = cpu.Seconds()
	if r.Delivered > 0 {
		r.CPUPerMillion = cpu.Seconds() / float64(r.Delivered) * 1e6
	}
	if r.Attempted > 0 {
		r.DeliveredRatio = float64(r.Delivered) / float64(r.Attempted)
	}
	if rate > 0 {
		r.P50, r.P99, r.P999, r.Max = k.percentiles()
	}
	return nil
}

// runProducer writes records through the bench program: as fast as it can
// in runs of up to 4096 records until the deadline if any, or one record
// per tick of 1/rate seconds.
func runProducer(p *producer, records, rate int, deadline time.Time, ctx context.Context) error {
	if rate <= 0 {
		for done := 0; done < records; {
			if !deadline.IsZero() && time.Now().After(deadline) {
				return nil
			}
			n := min(4096, records-done)
			if err := p.run(n); err != nil {
				return err
			}
			done += n
		}
		return nil
	}
	return paced(ctx, rate, records, func() error { return p.run(1) })
}

// paced calls fn n times, rate times a second, on the calling thread: it
// sleeps through most of each long wait and spins the rest, as a sleep
// alone overshoots by the timer slack.
func paced(ctx context.Context, rate, n int, fn func() error) error {
	period := time.Second / time.Duration(rate)
	next := time.Now()
	for range n {
		if ctx != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		if wait := time.Until(next); wait > 200*time.Microsecond {
			time.Sleep(wait - 100*time.Microsecond)
		}
		for time.Now().Before(next) {
		}
		if err := fn(); err != nil {
			return err
		}
		next = next.Add(period)
	}
	return nil
}

// sink is what the consumer under test handed over: counts, and the
// records' delivery latencies when kept.
type sink struct {
	records, bytes uint64
	latencies      []int64      // ns; nil when not kept
	counted        selfCounting // nil: the reader hands its records over in batches
}

// selfCounting is a reader that counts what it reads itself instead of
// handing it over: libbpf's, whose C callback counts each record where a
// call into Go for each would cost it more than the read.
type selfCounting interface {
	Counts() (records, bytes uint64)
}

// collect takes a self-counting reader's counts.
func (s *sink) collect() {
	if s.counted != nil {
		s.records, s.bytes = s.counted.Counts()
	}
}

func (s *sink) keepLatencies(n int) { s.latencies = make([]int64, 0, n) }

func (s *sink) onBatch(b consumer.Batch) {
	s.records += uint64(len(b.Records))
	s.bytes += b.Bytes
	if s.latencies == nil {
		return
	}
	for _, rec := range b.Records {
		if len(rec) >= int(abi.BenchTimeOffset)+8 {
			sent := int64(binary.NativeEndian.Uint64(rec[abi.BenchTimeOffset:]))
			s.latencies = append(s.latencies, b.ReadTime-sent)
		}
	}
}

// account fills r's counts and checks that they add up: every attempt the
// producer made was delivered or counted lost.
func (s *sink) account(sess *session.Session, p *producer, r *Result) error {
	s.collect()
	attempts, lost, err := p.counts()
	if err != nil {
		return err
	}
	r.Attempted, r.Lost, r.Delivered = attempts, lost, s.records
	for _, st := range sess.Stats() {
		r.Wakeups += st.Wakeups
	}
	if r.Delivered+r.Lost != r.Attempted {
		return fmt.Errorf("delivered %d + lost %d != attempted %d", r.Delivered, r.Lost, r.Attempted)
	}
	return nil
}

func (s *sink) percentiles() (p50, p99, p999, max time.Duration) {
	if len(s.latencies) == 0 {
		return
	}
	slices.Sort(s.latencies)
	at := func(q float64) time.Duration {
		return time.Duration(s.latencies[min(int(q*float64(len(s.latencies))), len(s.latencies)-1)])
	}
	return at(0.50), at(0.99), at(0.999), time.Duration(s.latencies[len(s.latencies)-1])
}

// roundTrip pings through the user ring and back.
func roundTrip(ctx context.Context, pings int) (Result, error) {
	ch, err := session.OpenControl(nil, control.Options{})
	if err != nil {
		return Result{}, err
	}
	defer ch.Close()
	lat := make([]int64, 0, pings)
	for range pings {
		pong, err := ch.Ping(ctx)
		if err != nil {
			return Result{}, err
		}
		lat = append(lat, pong.RoundTrip.Nanoseconds())
	}
	// The counts are the writer's and the kernel's own: pings submitted
	// into the user ring, and pings the control program read and answered.
	st, err := ch.DrainStats()
	if err != nil {
		return Result{}, err
	}
	s := &sink{latencies: lat}
	r := Result{Scenario: RoundTrip, Consumer: Ringwatch, Attempted: ch.WriterStats().Submitted,
		Delivered: st.Accepted[abi.MsgPing], Lost: st.RepliesLost}
	if r.Delivered != uint64(len(lat)) || r.Attempted != r.Delivered {
		return r, fmt.Errorf("%d pings written, %d answered by the kernel, %d replies read", r.Attempted, r.Delivered, len(lat))
	}
	r.P50, r.P99, r.P999, r.Max = s.percentiles()
	return r, nil
}

// baseline measures thread wakeup latency without any ring: see Baseline.
func baseline(ctx context.Context, opts Options, rate int) (Result, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return Result{}, err
	}
	defer unix.Close(efd)
	n := int(float64(rate) * opts.Duration.Seconds())
	s := &sink{}
	s.keepLatencies(n)
	var sent atomic.Int64  // CLOCK_MONOTONIC of the last write
	var writes, got uint64 // what the producer wrote, what the reader read
	var wg sync.WaitGroup
	var waitErr error
	var cpu time.Duration
	wg.Go(func() {
		waitErr = cpus.RunOn(opts.ConsumerCPU, func() error {
			before, _ := cpus.ThreadTime(0)
			defer func() {
				after, _ := cpus.ThreadTime(0)
				cpu = after - before
			}()
			var buf [8]byte
			for got < uint64(n) {
				// A blocking read: the kernel puts the thread to sleep
				// and wakes it on the write, as epoll would. Writes that
				// came while we ran are read at once, together; the
				// latency is then the last one's.
				if _, err := unix.Read(efd, buf[:]); err != nil {
					return err
				}
				got += binary.LittleEndian.Uint64(buf[:])
				s.latencies = append(s.latencies, consumer.MonotonicNow()-sent.Load())
			}
			return nil
		})
	})
	err = cpus.RunOn(opts.ProducerCPU, func() error {
		one := [8]byte{1}
		return paced(ctx, rate, n, func() error {
			sent.Store(consumer.MonotonicNow())
			_, err := unix.Write(efd, one[:])
			if err == nil {
				writes++
			}
			return err
		})
	})
	if err != nil {
		var all [8]byte
		binary.LittleEndian.PutUint64(all[:], uint64(n)) // let a waiting reader out
		unix.Write(efd, all[:])
	}
	wg.Wait()
	if err != nil {
		return Result{}, err
	}
	if waitErr != nil {
		return Result{}, waitErr
	}
	// Attempted is what the producer wrote, Delivered what the reader took
	// out of the eventfd's counter: an eventfd loses nothing, so they must
	// agree.
	r := Result{Scenario: Latency, Consumer: Baseline, Rate: rate, Attempted: writes, Delivered: got,
		ConsumerCPU: cpu.Seconds(), CPUPerMillion: cpu.Seconds() / float64(n) * 1e6}
	if r.Delivered != r.Attempted {
		return r, fmt.Errorf("baseline: %d eventfd writes, %d read", r.Attempted, r.Delivered)
	}
	r.P50, r.P99, r.P999, r.Max = s.percentiles()
	return r, nil
}
