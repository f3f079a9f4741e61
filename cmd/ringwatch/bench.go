package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/pkg/bench"
	tpt "github.com/ringwatch/ringwatch/pkg/transport"
)

const benchUsage = `Usage: ringwatch bench [flags]

Measures ringwatch's transports and consumers side by side in one run, on
this machine, with one synthetic producer: a BPF program run with
BPF_PROG_TEST_RUN from a thread pinned to --producer-cpu, writing records of
a chosen size, while the consumer reads on a thread pinned to --consumer-cpu.
cilium/ebpf's ringbuf.Reader (ringbuf transport) and perf.Reader (perfbuf)
are measured with the same producer, and ringwatch/peer ratios printed; so
is libbpf's ring_buffer (drain and saturation, ringbuf) in a ringwatch built
with -tags libbpf, as 'make bench' builds it. A peer does no per-record work
that ringwatch does per batch: it reads the clock per record only where
latencies are kept.

Scenarios (--scenario):
  drain        fill one ring with nobody reading, then time the drain alone:
               ns per record and GB/s
  saturation   a full-speed producer for --records records: delivered
               fraction, lost, producer rate, consumer CPU
  latency      --rates records per second for --duration each: delivery
               latency p50, p99, p99.9 and max (kernel timestamp at produce,
               CLOCK_MONOTONIC at consume) and consumer CPU seconds per
               million records; a baseline row gives this machine's cost of
               waking a thread, with no ring at all
  roundtrip    --pings pings through the user ring to the kernel and back
  scale        --producers producer threads at full speed, each pinned to a
               CPU of its own (from CPU 1 on), for --max-time, read by
               --consumers consumers: delivered fraction, total and
               per-producer rate, consumer CPU seconds per million records.
               Not in the default set: ask for it by name

Every measurement checks that delivered + lost equals what the producer
attempted. Progress goes to stderr; the table, or with --json the results,
to stdout. Needs root, and 2 CPUs or more.

Flags:
`

const benchExamples = `
Examples:
  ringwatch bench --quick
  ringwatch bench --scenario latency --transport ringbuf,spsc --rates 10000 --duration 10s
  ringwatch bench --scenario saturation --size 16,64 --json > saturation.json
  ringwatch bench --scenario scale --transport percpu-ringbuf,spsc --size 64 --producers 1,8,15

Exit status: 0 when every measurement ran, 1 if one failed, 2 for a wrong
command line.
`

type benchConfig struct {
	opts  bench.Options
	json  bool
	quick bool
}

func parseBenchFlags(args []string, stderr io.Writer) (benchConfig, error) {
	fs := flag.NewFlagSet("ringwatch bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scenarios := fs.String("scenario", "drain,saturation,latency,roundtrip", "comma-separated scenarios to run")
	transports := fs.String("transport", strings.ReplaceAll(joinNames(abi.Transports()), " ", ""), "comma-separated transports to measure")
	sizes := fs.String("size", "16,64,256,1024,4096", "comma-separated record sizes in bytes: 16, 64, 256, 1024, 4096")
	wakeups := fs.String("wakeup", "adaptive,every,busy", "comma-separated wakeup modes of ringwatch's consumer for saturation and latency")
	peers := fs.Bool("peers", true, "also measure cilium/ebpf's ringbuf.Reader and perf.Reader, and libbpf's ring_buffer in a build with -tags libbpf ('make bench')")
	ringSize := fs.String("ring-size", abi.FormatSize(tpt.DefaultRingSize), "data size of each ring")
	records := fs.Int("records", 4<<20, "saturation: records the producer writes per measurement")
	maxTime := fs.Duration("max-time", 5*time.Second, "saturation: stop the producer after this long even if --records are not all written")
	rates := fs.String("rates", "1000,10000,100000", "latency: comma-separated rates in records per second")
	duration := fs.Duration("duration", 3*time.Second, "latency: how long each rate runs")
	pings := fs.Int("pings", 10000, "roundtrip: pings to send")
	producerCPU := fs.Int("producer-cpu", 0, "CPU the producer thread is pinned to")
	consumerCPU := fs.Int("consumer-cpu", 1, "CPU the consumer thread is pinned to")
	producers := fs.String("producers", defaultProducers(runtime.NumCPU()), "scale: comma-separated producer thread counts, each producer on its own CPU")
	consumers := fs.Int("consumers", 0, "scale: consumer threads, each reading its own rings; 0 is one per 4 rings (a shared ringbuf has one ring, so one consumer)")
	quick := fs.Bool("quick", false, "a quick run of every scenario, under 2 minutes: sizes 16, 64 and 256 (saturation 16 and 64, latency 64), 1Mi records or 1s, 0.3s per rate, 1000 pings")
	jsonOut := fs.Bool("json", false, "print the results as JSON instead of a table")
	fs.Usage = func() { printUsage(fs, stderr, benchUsage, benchExamples) }
	if err := fs.Parse(args); err != nil {
		return benchConfig{}, err
	}
	if fs.NArg() > 0 {
		return benchConfig{}, fmt.Errorf("unexpected argument %q: bench takes only flags", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	cfg := benchConfig{json: *jsonOut, quick: *quick}
	o := &cfg.opts
	o.Peers = *peers
	o.Records, o.Duration, o.Pings, o.MaxTime = *records, *duration, *pings, *maxTime
	o.ProducerCPU, o.ConsumerCPU = *producerCPU, *consumerCPU
	var err error
	for _, s := range splitList(*scenarios) {
		if !slices.Contains(bench.Scenarios(), s) {
			return cfg, fmt.Errorf("--scenario %q: choose from %s", s, joinNames(bench.Scenarios()))
		}
		o.Scenarios = append(o.Scenarios, s)
	}
	for _, name := range splitList(*transports) {
		t, err := tpt.ParseName(name)
		if err != nil {
			return cfg, fmt.Errorf("--transport: %w", err)
		}
		o.Transports = append(o.Transports, t)
	}
	if o.Sizes, err = intList("--size", *sizes); err != nil {
		return cfg, err
	}
	for _, size := range o.Sizes {
		if !slices.Contains(bench.RecordSizes, size) {
			return cfg, fmt.Errorf("--size %d: choose from %s", size, strings.Trim(strings.Join(strings.Fields(fmt.Sprint(bench.RecordSizes)), ", "), "[]"))
		}
	}
	for _, name := range splitList(*wakeups) {
		w, err := abi.ParseWakeup(name)
		if err != nil {
			return cfg, fmt.Errorf("--wakeup: %w", err)
		}
		o.Wakeups = append(o.Wakeups, w)
	}
	if o.Producers, err = intList("--producers", *producers); err != nil {
		return cfg, err
	}
	if *consumers < 0 {
		return cfg, fmt.Errorf("--consumers %d: give 1 or more, or 0 for one per 4 rings", *consumers)
	}
	o.Consumers = *consumers
	if o.Rates, err = intList("--rates", *rates); err != nil {
		return cfg, err
	}
	if o.RingSize, err = abi.ParseRingSize(*ringSize); err != nil {
		return cfg, fmt.Errorf("--ring-size: %w", err)
	}
	if len(o.Scenarios) == 0 || len(o.Transports) == 0 || len(o.Sizes) == 0 || len(o.Wakeups) == 0 {
		return cfg, errors.New("--scenario, --transport, --size and --wakeup must each name at least one")
	}
	if o.Records <= 0 || o.Pings <= 0 || o.Duration <= 0 || o.MaxTime < 0 {
		return cfg, errors.New("--records, --pings and --duration must be positive, --max-time not negative")
	}
	if o.ProducerCPU == o.ConsumerCPU || o.ProducerCPU < 0 || o.ConsumerCPU < 0 {
		return cfg, fmt.Errorf("--producer-cpu %d and --consumer-cpu %d must be two different CPUs", o.ProducerCPU, o.ConsumerCPU)
	}
	if *quick {
		// Flags given explicitly win over the quick defaults.
		if !set["size"] {
			o.Sizes = []int{16, 64, 256}
		}
		if !set["records"] {
			o.Records = 1 << 20
		}
		if !set["max-time"] {
			o.MaxTime = time.Second
		}
		if !set["duration"] {
			o.Duration = 300 * time.Millisecond
		}
		if !set["pings"] {
			o.Pings = 1000
		}
	}
	return cfg, nil
}

// joinNames lists names for a flag's help: "a, b, c".
func joinNames[T ~string](names []T) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	return strings.Join(s, ", ")
}

// defaultProducers is 1, 2, 4, ... up to one producer on every CPU but one.
func defaultProducers(cpus int) string {
	var list []string
	for n := 1; n < cpus-1; n *= 2 {
		list = append(list, strconv.Itoa(n))
	}
	return strings.Join(append(list, strconv.Itoa(max(cpus-1, 1))), ",")
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func intList(flagName, s string) ([]int, error) {
	var out []int
	for _, part := range splitList(s) {
		n, err := strconv.Atoi(part)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s %q is not a positive number", flagName, part)
		}
		out = append(out, n)
	}
	return out, nil
}

func benchCommand(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseBenchFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "ringwatch bench: %v\nSee 'ringwatch bench --help'.\n", err)
		return exitUsage
	}
	if n := runtime.NumCPU(); cfg.opts.ProducerCPU >= n || cfg.opts.ConsumerCPU >= n {
		fmt.Fprintf(stderr, "ringwatch bench: this machine has %d CPUs; choose --producer-cpu and --consumer-cpu below %d\n", n, n)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	o := cfg.opts
	o.Progress = stderr
	results, err := runBench(ctx, o, cfg.quick)
	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(results); jerr != nil && err == nil {
			err = jerr
		}
	} else {
		writeBenchTables(stdout, results)
	}
	if err != nil {
		fmt.Fprintf(stderr, "ringwatch bench: %v\n", err)
		return exitError
	}
	return exitOK
}

// runBench runs each scenario with the sizes that suit it: latency and
// scale at the middle size asked for; in a quick run, saturation only at the sizes up to
// 64 bytes, where its target is, if any were asked for; the rest at every
// size.
func runBench(ctx context.Context, o bench.Options, quick bool) ([]bench.Result, error) {
	var all []bench.Result
	for _, scenario := range o.Scenarios {
		so := o
		so.Scenarios = []string{scenario}
		switch scenario {
		case bench.Latency, bench.Scale:
			so.Sizes = []int{o.Sizes[len(o.Sizes)/2]}
		case bench.Saturation:
			small := slices.DeleteFunc(slices.Clone(o.Sizes), func(n int) bool { return n > 64 })
			if quick && len(small) > 0 {
				so.Sizes = small
			}
		}
		results, err := bench.Run(ctx, so)
		all = append(all, results...)
		if err != nil {
			return all, err
		}
	}
	return all, nil
}

// writeBenchTables prints one table per scenario, with ratios of
// ringwatch's figure to the peer's for the same transport and size.
func writeBenchTables(w io.Writer, results []bench.Result) {
	// vsPeers is ringwatch's figure over each peer's in the same
	// measurement, as "0.10x cilium-ringbuf, 1.20x libbpf".
	vsPeers := func(r bench.Result, figure func(bench.Result) float64, unit string) string {
		if r.Consumer != bench.Ringwatch {
			return ""
		}
		var out []string
		for _, p := range results {
			if p.Scenario == r.Scenario && p.Transport == r.Transport && p.RecordSize == r.RecordSize &&
				p.Rate == r.Rate && p.Consumer != bench.Ringwatch && p.Consumer != bench.Baseline && figure(p) > 0 {
				out = append(out, fmt.Sprintf("%.2fx%s %s", figure(r)/figure(p), unit, p.Consumer))
			}
		}
		return strings.Join(out, ", ")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	defer tw.Flush()
	us := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/1e3) }
	last := ""
	for _, r := range results {
		if r.Scenario != last {
			if last != "" {
				fmt.Fprintln(tw)
			}
			last = r.Scenario
			switch r.Scenario {
			case bench.Drain:
				fmt.Fprintln(tw, "DRAIN\ttransport\tsize\tconsumer\trecords\tns/record\tGB/s\tvs peers\t")
			case bench.Saturation:
				fmt.Fprintln(tw, "SATURATION\ttransport\tsize\tconsumer\twakeup\tattempted\tdelivered\tlost\tproduced/s\tconsumer CPU s\tCPU s/M\twakeups\tdelivered vs peers\t")
			case bench.Latency:
				fmt.Fprintln(tw, "LATENCY\ttransport\tsize\trate/s\tconsumer\twakeup\tdelivered\tp50 us\tp99 us\tp99.9 us\tmax us\tCPU s/M\twakeups\tp99 vs peers\t")
			case bench.RoundTrip:
				fmt.Fprintln(tw, "ROUNDTRIP\tpings\tp50 us\tp99 us\tp99.9 us\tmax us\t")
			case bench.Scale:
				fmt.Fprintln(tw, "SCALE\ttransport\tsize\tproducers\tconsumers\tattempted\tdelivered\tlost\tproduced/s\tper producer/s\tconsumer CPU s\tCPU s/M\t")
			}
		}
		switch r.Scenario {
		case bench.Drain:
			ratio := vsPeers(r, func(r bench.Result) float64 { return r.NsPerRecord }, "")
			fmt.Fprintf(tw, "\t%s\t%d\t%s\t%d\t%.1f\t%.2f\t%s\t\n", r.Transport, r.RecordSize, r.Consumer, r.Delivered, r.NsPerRecord, r.GBPerSecond, ratio)
		case bench.Saturation:
			ratio := vsPeers(r, func(r bench.Result) float64 { return r.DeliveredRatio }, "")
			fmt.Fprintf(tw, "\t%s\t%d\t%s\t%s\t%d\t%.2f%%\t%d\t%.2fM\t%.3f\t%.3f\t%d\t%s\t\n", r.Transport, r.RecordSize, r.Consumer, r.Wakeup,
				r.Attempted, 100*r.DeliveredRatio, r.Lost, r.ProducerRate/1e6, r.ConsumerCPU, r.CPUPerMillion, r.Wakeups, ratio)
		case bench.Latency:
			ratio := vsPeers(r, func(r bench.Result) float64 { return float64(r.P99) }, "")
			transport, size := r.Transport, strconv.Itoa(r.RecordSize)
			if r.Consumer == bench.Baseline {
				transport, size = "-", "-"
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%.2f\t%d\t%s\t\n", transport, size, r.Rate, r.Consumer, r.Wakeup,
				r.Delivered, us(r.P50), us(r.P99), us(r.P999), us(r.Max), r.CPUPerMillion, r.Wakeups, ratio)
		case bench.RoundTrip:
			fmt.Fprintf(tw, "\t%d\t%s\t%s\t%s\t%s\t\n", r.Delivered, us(r.P50), us(r.P99), us(r.P999), us(r.Max))
		case bench.Scale:
			fmt.Fprintf(tw, "\t%s\t%d\t%d\t%d\t%d\t%.2f%%\t%d\t%.2fM\t%.2fM\t%.3f\t%.3f\t\n", r.Transport, r.RecordSize,
				r.Producers, r.Consumers, r.Attempted, 100*r.DeliveredRatio, r.Lost, r.ProducerRate/1e6, r.PerProducer/1e6,
				r.ConsumerCPU, r.CPUPerMillion)
		}
	}
}
