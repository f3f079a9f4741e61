package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/bench"
	"github.com/ringwatch/ringwatch/internal/cli"
	"github.com/ringwatch/ringwatch/internal/cpus"
	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/internal/ping"
	tpt "github.com/ringwatch/ringwatch/internal/transport"
	"github.com/ringwatch/ringwatch/pkg/consumer"
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
               fraction, lost, producer rate, consumer CPU, and beside the
               consumer's CPU ns per record the drain's (a full ring of the
               same transport and size, drained in the same session), and
               their ratio
  latency      --rates records per second for --duration each: delivery
               latency p50, p99, p99.9 and max (kernel timestamp at produce,
               CLOCK_MONOTONIC at consume) and consumer CPU seconds per
               million records; a baseline row gives this machine's cost of
               waking a thread, with no ring at all
  roundtrip    --pings pings through the user ring to the kernel and back
  scale        --producers producer threads at full speed, each pinned to a
               CPU of its own (from the second CPU it may use on), for
               --max-time, read by --consumers consumers: delivered
               fraction, total and per-producer rate, consumer CPU ns per
               record. Not in the default set: ask for it by
               name
  producer     nobody reading, by name only: the producer's CPU ns per record
               in ringbuf, an overwrite ring (Linux 6.19+) and percpu-ringbuf

Every measurement checks that delivered + lost equals what the producer
attempted. Progress goes to stderr; the table, or with --json the results,
to stdout. Needs root, and 2 CPUs or more that this process may run on
(its CPU affinity, which taskset or a container's cpuset narrows).

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
	opts bench.Options // with Quick set by --quick
	json bool
}

// benchFlagValues are bench's flags as given.
type benchFlagValues struct {
	scenarios, transports, sizes, wakeups, ringSize, rates, producers *string
	peers, quick, json                                                *bool
	records, pings, producerCPU, consumerCPU, consumers               *int
	maxTime, duration                                                 *time.Duration
}

// benchFlags defines bench's flags, its CPU flags over allowed, the CPUs
// this process may run on (cpus.Allowed, never empty). The test of
// every flag's bad values enumerates it: a flag added here needs rows
// there.
func benchFlags(allowed []int) (cli.FlagSet, benchFlagValues) {
	fs := cli.NewFlagSet("ringwatch bench")
	// The first two allowed CPUs by default; with fewer, parseBenchFlags
	// refuses the command line whatever these are.
	cpuAt := func(i int) int { return allowed[min(i, len(allowed)-1)] }
	cpus := fmt.Sprintf("CPUs this process may run on: %s", cpus.FormatList(allowed))
	return fs, benchFlagValues{
		scenarios:   fs.String("scenario", "drain,saturation,latency,roundtrip", "comma-separated scenarios to run"),
		transports:  fs.String("transport", strings.ReplaceAll(cli.JoinNames(abi.Transports()), " ", ""), "comma-separated transports to measure"),
		sizes:       fs.String("size", "16,64,256,1024,4096", "comma-separated record sizes in bytes: 16, 64, 256, 1024, 4096"),
		wakeups:     fs.String("wakeup", "adaptive,every,busy", "comma-separated wakeup modes of ringwatch's consumer for saturation and latency"),
		peers:       fs.Bool("peers", true, "also measure cilium/ebpf's ringbuf.Reader and perf.Reader, and libbpf's ring_buffer in a build with -tags libbpf ('make bench')"),
		ringSize:    fs.String("ring-size", abi.FormatSize(tpt.DefaultRingSize), "data size of each ring"),
		records:     fs.Int("records", 4<<20, 1, cli.MaxCount, "", "saturation: records the producer writes per measurement"),
		maxTime:     fs.Duration("max-time", 5*time.Second, false, "5s", "saturation: stop the producer after this long even if --records are not all written"),
		rates:       fs.String("rates", "1000,10000,100000", "latency: comma-separated rates in records per second"),
		duration:    fs.Duration("duration", 3*time.Second, true, "3s", "latency: how long each rate runs"),
		pings:       fs.Int("pings", 10000, 1, ping.MaxCount, "", "roundtrip: pings to send"),
		producerCPU: fs.Int("producer-cpu", cpuAt(0), allowed[0], allowed[len(allowed)-1], cpus, "CPU the producer thread is pinned to"),
		consumerCPU: fs.Int("consumer-cpu", cpuAt(1), allowed[0], allowed[len(allowed)-1], cpus, "CPU the consumer thread is pinned to"),
		producers:   fs.String("producers", defaultProducers(len(allowed)), "scale: comma-separated producer thread counts, each producer on its own CPU"),
		consumers: fs.Int("consumers", 0, 0, cli.MaxCount, fmt.Sprintf("0 is one consumer per %d rings", tpt.RingsPerConsumer),
			"scale: consumer threads, each reading its own rings; 0 is one per 4 rings (a shared ringbuf has one ring, so one consumer)"),
		quick: fs.Bool("quick", false, "a quick run of every scenario, under 2 minutes: sizes 16, 64 and 256 (saturation 16 and 64, latency 64), 1Mi records or 1s, 0.3s per rate, 1000 pings"),
		json:  fs.Bool("json", false, "print the results as JSON instead of a table"),
	}
}

// parseBenchFlags reads bench's command line and checks it whole: nothing
// is loaded before it passes. It returns flag.ErrHelp after printing the
// help for --help.
func parseBenchFlags(args []string, stderr io.Writer) (benchConfig, error) {
	allowed, err := cpus.Allowed()
	if err != nil {
		return benchConfig{}, err
	}
	fs, f := benchFlags(allowed)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.PrintUsage(stderr, benchUsage, benchExamples)
		}
		return benchConfig{}, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	cfg := benchConfig{json: *f.json}
	o := &cfg.opts
	o.Peers = *f.peers
	o.Records, o.Duration, o.Pings, o.MaxTime = *f.records, *f.duration, *f.pings, *f.maxTime
	o.ProducerCPU, o.ConsumerCPU, o.Consumers = *f.producerCPU, *f.consumerCPU, *f.consumers
	if o.Scenarios, err = cli.NameList("--scenario", *f.scenarios, bench.Scenarios()); err != nil {
		return cfg, err
	}
	for _, name := range slices.Sorted(maps.Keys(bench.OptionScenarios)) {
		uses := bench.OptionScenarios[name]
		if set[name] && !slices.ContainsFunc(uses, func(s string) bool { return slices.Contains(o.Scenarios, s) }) {
			return cfg, fmt.Errorf("--%s applies only to --scenario %s, which --scenario %s leaves out: add it, or leave --%s out",
				name, strings.Join(uses, " or "), strings.Join(o.Scenarios, ","), name)
		}
	}
	names, err := cli.NameList("--transport", *f.transports, abi.Transports())
	if err != nil {
		return cfg, err
	}
	for _, name := range names {
		o.Transports = append(o.Transports, abi.TransportName(name))
		if err := tpt.CheckOptions(abi.TransportName(name), tpt.Options{Consumers: consumerCount(o.Consumers)}); err != nil {
			return cfg, cli.Reword(err, flagOf)
		}
	}
	sizes, err := cli.NameList("--size", *f.sizes, strings.Fields(strings.Trim(fmt.Sprint(bench.RecordSizes), "[]")))
	if err != nil {
		return cfg, err
	}
	for _, size := range sizes {
		n, _ := strconv.Atoi(size) // one of bench.RecordSizes
		o.Sizes = append(o.Sizes, n)
	}
	wakeups, err := cli.NameList("--wakeup", *f.wakeups, consumer.Wakeups())
	if err != nil {
		return cfg, err
	}
	for _, w := range wakeups {
		o.Wakeups = append(o.Wakeups, consumer.Wakeup(w))
	}
	if o.Producers, err = cli.IntList("--producers", *f.producers, 1, len(allowed),
		"each on a CPU of its own: this process may run on "+cli.Plural(len(allowed), "CPU")); err != nil {
		return cfg, err
	}
	if o.Rates, err = cli.IntList("--rates", *f.rates, 1, cli.MaxCount, "records per second"); err != nil {
		return cfg, err
	}
	if o.RingSize, err = cli.ParseRingSize(*f.ringSize); err != nil {
		return cfg, fmt.Errorf("--ring-size: %w", err)
	}
	// The defaults are not checked as they are read, and a CPU between
	// two allowed ones passes the flags' range.
	if len(allowed) < 2 {
		return cfg, fmt.Errorf("--producer-cpu and --consumer-cpu: this process may use %s (its CPU affinity, set by taskset or a container's cpuset), and bench needs two CPUs: allow it two or more",
			cpus.AllowedPhrase(allowed))
	}
	for _, c := range []struct {
		flag string
		cpu  int
	}{{"--producer-cpu", o.ProducerCPU}, {"--consumer-cpu", o.ConsumerCPU}} {
		if !slices.Contains(allowed, c.cpu) {
			return cfg, fmt.Errorf("%s %d: %w", c.flag, c.cpu, cpus.NotAllowed(c.cpu, allowed))
		}
	}
	if o.ProducerCPU == o.ConsumerCPU {
		return cfg, fmt.Errorf("--producer-cpu %d and --consumer-cpu %d must be two different CPUs", o.ProducerCPU, o.ConsumerCPU)
	}
	if *f.quick {
		// Flags given explicitly win over the quick defaults.
		o.SetQuick(set)
	}
	if rate, n := o.LatencyOverflow(); rate > 0 {
		return cfg, fmt.Errorf("--rates %d for --duration %v is %.0f records, and latency keeps each record's delivery time: keep rate times duration at most %d",
			rate, o.Duration, n, bench.MaxLatencyRecords)
	}
	return cfg, nil
}

// defaultProducers is 1, 2, 4, ... up to one producer on every CPU but one.
func defaultProducers(cpus int) string {
	var list []string
	for n := 1; n < cpus-1; n *= 2 {
		list = append(list, strconv.Itoa(n))
	}
	return strings.Join(append(list, strconv.Itoa(max(cpus-1, 1))), ",")
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
	// Say at once what to do without the privileges, not after the
	// first measurement's progress line.
	if err := loader.CheckPrivileges(); err != nil {
		fmt.Fprintf(stderr, "ringwatch bench: %v\n", err)
		return exitError
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	o := cfg.opts
	o.Progress = stderr
	results, err := bench.Run(ctx, o)
	if cfg.json {
		if jerr := bench.WriteJSON(stdout, results); jerr != nil && err == nil {
			err = jerr
		}
	} else {
		bench.WriteTables(stdout, results)
	}
	if err != nil {
		fmt.Fprintf(stderr, "ringwatch bench: %v\n", err)
		return exitError
	}
	return exitOK
}
