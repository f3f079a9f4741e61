package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/control"
	"github.com/ringwatch/ringwatch/internal/cpus"
	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/internal/metrics"
	"github.com/ringwatch/ringwatch/internal/output"
	"github.com/ringwatch/ringwatch/internal/privilege"
	"github.com/ringwatch/ringwatch/internal/session"
	tpt "github.com/ringwatch/ringwatch/internal/transport"
	"github.com/ringwatch/ringwatch/pkg/consumer"
	"github.com/ringwatch/ringwatch/pkg/hostrings"
)

const runUsage = `Usage: ringwatch run [flags]

Loads ringwatch's BPF producers, attaches the chosen sources to their kernel
events, and carries every record through the chosen transport to user space,
counting records, bytes, losses, wakeups, fill level and delivery latency.
Metrics are served over HTTP for Prometheus, with TLS and basic
authentication from --web.config.file. Once attached, ringwatch drops every
capability it does not need to run. On SIGINT or SIGTERM, or when
--duration passes, ringwatch detaches the producers, drains what the ring
still holds, prints a summary on stderr and exits 0. While it runs,
'ringwatch ctl' changes the sources' settings through --ctl.socket.

Sources:
  exec       every execve, from tracepoint sched/sched_process_exec:
             pid, ppid, uid, comm and filename (needs tracefs)
  syscalls   every system call entry, from raw tracepoint sys_enter:
             pid, tid and syscall number; high volume, so filter it with
             --pid. ringwatch's own syscalls are left out.

Transports (--transport):
  ringbuf          one BPF ring buffer shared by every CPU (the default);
                   records in reservation order across CPUs
  percpu-ringbuf   a BPF ring buffer per CPU, or per --cpus-per-ring CPUs:
                   no contention between CPUs; order per CPU only
  perfbuf          a perf buffer per CPU (BPF_MAP_TYPE_PERF_EVENT_ARRAY);
                   order per CPU only
  spsc             a lock-free single-producer single-consumer queue per CPU
                   in a BPF_F_MMAPABLE array, woken by a doorbell ring;
                   order per CPU only
--ring-size is the size of each ring: the ring buffer, each per-CPU ring,
each CPU's perf buffer or each CPU's queue.

Consumers (--consumers): each consumer is a thread of its own that reads a
contiguous range of the rings, with its own epoll set, its own sleep state
and doorbell (producers wake only the consumer of their ring) and its own
accounting. The default, 0, is one consumer per 4 rings: one per 4 CPUs on
the per-CPU transports. The ringbuf transport has one ring, so one consumer.
When ringwatch_consumer_busy_seconds_total of a consumer nears one second per
second, it cannot keep up: raise --consumers.

Flags:
`

const runExamples = `
Examples:
  ringwatch run
  ringwatch run --source exec,syscalls --pid 1234 --output json
  ringwatch run --ring-size 16MiB --duration 30s --web.listen-address :9477
  ringwatch run --source syscalls --transport percpu-ringbuf --cpus-per-ring 2

Exit status: 0 after a clean stop, 1 if ringwatch could not start or failed
while running, 2 for a wrong command line.
`

type runConfig struct {
	sources      []string
	transport    abi.Transport
	wakeup       consumer.Wakeup
	cpusPerRing  int
	consumers    int
	consumerCPUs []int
	ringSize     int
	web          *webFlags
	jsonOutput   bool
	duration     time.Duration
	pids         []uint32
	ctlSocket    string
	hostRings    bool          // the census of every ring on the host
	hostPause    time.Duration // the consumer pause the host rings' advised capacity is for
	progStats    bool          // the kernel's run statistics of every program
}

// runFlagValues are run's flags as given, each checked on its own.
type runFlagValues struct {
	source, transport, wakeup, consumerCPUs, ringSize *string
	cpusPerRing, consumers                            *int
	output, pids, ctlSocket                           *string
	duration, hostPause                               *time.Duration
	hostRings, progStats                              *bool
	web                                               *webFlags
}

// runFlags defines run's flags. The test of every flag's bad values
// enumerates it: a flag added here needs rows there.
func runFlags() (flagSet, runFlagValues) {
	fs := newFlagSet("run")
	return fs, runFlagValues{
		source: fs.String("source", abi.SourceExec,
			"comma-separated sources to carry: "+strings.Join(loader.SourceNames(), ", ")),
		transport: fs.String("transport", string(abi.Ringbuf),
			"how records travel to user space: "+joinNames(abi.Transports())),
		wakeup: fs.String("wakeup", string(consumer.WakeupAdaptive),
			"when producers wake the consumer: adaptive (only when it sleeps; after records flowed it sleeps lazily, waking at an eighth of the ring or after 1ms), every (every record), busy (never: the consumer polls a CPU)"),
		cpusPerRing: fs.Int("cpus-per-ring", 1, 1, maxCount, "", "percpu-ringbuf: how many CPUs share one ring buffer"),
		consumers: fs.Int("consumers", 0, 0, maxCount, fmt.Sprintf("0 is one consumer per %d rings", tpt.RingsPerConsumer),
			"consumer threads, each reading its own rings; 0 is one per 4 rings (ringbuf has one ring: one consumer)"),
		consumerCPUs: fs.String("consumer-cpus", "", "comma-separated CPUs (or ranges, 0-3) to pin the consumer threads to, one each in turn, of those this process may run on (its affinity); empty leaves them to the scheduler"),
		ringSize: fs.String("ring-size", abi.FormatSize(tpt.DefaultRingSize),
			"data size of each ring: a power-of-two multiple of the page size, such as 256KiB, 4MiB or 1GiB"),
		web:       addWebFlags(fs),
		output:    fs.String("output", "none", "what to print per event on stdout: none, or json (one object per line)"),
		duration:  fs.Duration("duration", 0, false, "30s", "stop after this long, such as 30s or 5m; 0 runs until SIGINT or SIGTERM"),
		pids:      fs.String("pid", "", "comma-separated process ids the syscalls source is limited to; empty means every process but ringwatch"),
		ctlSocket: fs.String("ctl.socket", control.DefaultSocket, "unix socket that 'ringwatch ctl' reaches this run on; empty for none"),
		hostRings: fs.Bool("host-rings", true, "serve ringwatch_host_ring_* metrics of every BPF ring buffer and user ring on the host (needs CAP_SYS_ADMIN)"),
		hostPause: fs.Duration("host-rings.pause", hostrings.DefaultPause, true, "100ms",
			"the consumer pause ringwatch_host_ring_advised_capacity_bytes is for: the ring that holds it at the ring's peak rate"),
		progStats: fs.Bool("prog-stats", false, "turn the kernel's BPF run statistics on while running and serve ringwatch_bpf_program_* metrics of every program on the host; costs every program run on the host some 70ns"),
	}
}

// parseRunFlags reads run's command line and checks it whole: nothing is
// loaded before it passes. It returns flag.ErrHelp after printing the
// help for --help.
func parseRunFlags(args []string, stderr io.Writer) (runConfig, error) {
	fs, f := runFlags()
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(fs, stderr, runUsage, runExamples)
		}
		return runConfig{}, err
	}
	cfg := runConfig{web: f.web, duration: *f.duration, ctlSocket: *f.ctlSocket,
		cpusPerRing: *f.cpusPerRing, consumers: *f.consumers, hostRings: *f.hostRings, hostPause: *f.hostPause, progStats: *f.progStats}
	if !cfg.hostRings && flagGiven(fs, "host-rings.pause") {
		return runConfig{}, fmt.Errorf("--host-rings.pause sizes the host rings, which --host-rings=false turns off: leave one of them out")
	}
	var err error
	if cfg.sources, err = abi.SplitList(*f.source); err != nil {
		return runConfig{}, fmt.Errorf("--source: %w", err)
	}
	if len(cfg.sources) == 0 {
		return runConfig{}, fmt.Errorf("--source is empty: choose from %s", strings.Join(loader.SourceNames(), ", "))
	}
	if _, err := loader.ParseSources(cfg.sources); err != nil {
		return runConfig{}, fmt.Errorf("--source: %w", err)
	}
	if cfg.transport, err = parseTransport(*f.transport); err != nil {
		return runConfig{}, err
	}
	if cfg.wakeup, err = parseWakeup(*f.wakeup); err != nil {
		return runConfig{}, err
	}
	if *f.consumerCPUs != "" {
		allowed, err := cpus.Allowed()
		if err != nil {
			return runConfig{}, fmt.Errorf("--consumer-cpus: %w", err)
		}
		if cfg.consumerCPUs, err = cpus.ParseList(*f.consumerCPUs, allowed); err != nil {
			return runConfig{}, fmt.Errorf("--consumer-cpus: %w", err)
		}
	}
	if cfg.ringSize, err = abi.ParseRingSize(*f.ringSize); err != nil {
		return runConfig{}, fmt.Errorf("--ring-size: %w", err)
	}
	if err := tpt.CheckOptions(cfg.transport, tpt.Options{RingSize: cfg.ringSize, CPUsPerRing: cfg.cpusPerRing,
		Consumers: consumerCount(cfg.consumers)}); err != nil {
		return runConfig{}, err
	}
	if err := f.web.check(); err != nil {
		return runConfig{}, err
	}
	switch *f.output {
	case "none":
	case "json":
		cfg.jsonOutput = true
	default:
		return runConfig{}, fmt.Errorf("--output %q: choose none or json", *f.output)
	}
	if cfg.pids, err = abi.ParsePIDs(*f.pids, loader.MaxSyscallPIDs); err != nil {
		return runConfig{}, fmt.Errorf("--pid: %w", err)
	}
	if len(cfg.pids) > 0 && !slices.Contains(cfg.sources, abi.SourceSyscalls) {
		return runConfig{}, fmt.Errorf("--pid limits the syscalls source, which --source %s leaves out: add it, such as --source %s,%s",
			*f.source, strings.Join(cfg.sources, ","), abi.SourceSyscalls)
	}
	if err := abi.CheckSocketPath(cfg.ctlSocket); err != nil {
		return runConfig{}, fmt.Errorf("--ctl.socket: %w", err)
	}
	return cfg, nil
}

// parseTransport and parseWakeup read the flag of that name. The
// libraries take "" as the default; on the command line it is a mistake.
func parseTransport(name string) (abi.Transport, error) {
	if name == "" {
		return "", fmt.Errorf("--transport: %w", abi.Choose("transport", name, abi.Transports()))
	}
	t, err := tpt.ParseName(name)
	if err != nil {
		return "", fmt.Errorf("--transport: %w", err)
	}
	return t, nil
}

func parseWakeup(name string) (consumer.Wakeup, error) {
	if w := consumer.Wakeup(name); slices.Contains(consumer.Wakeups(), w) {
		return w, nil
	}
	return "", fmt.Errorf("--wakeup: %w", abi.Choose("wakeup mode", name, consumer.Wakeups()))
}

// checkListenAddress refuses an address no listener could take, before
// anything is loaded: it must be host:port, the host may be empty (every
// interface), and the port a number from 0 to 65535.
func checkListenAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--web.listen-address %q is not host:port: give one such as 127.0.0.1:9477, [::1]:9477 or :9477 (every interface)", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || strconv.FormatUint(n, 10) != port {
		return fmt.Errorf("--web.listen-address %q: port %q is not a number from 0 to 65535: give one such as 127.0.0.1:9477", addr, port)
	}
	if strings.ContainsAny(host, " \t/") {
		return fmt.Errorf("--web.listen-address %q: %q is not a host name or address: give one such as 127.0.0.1:9477", addr, host)
	}
	return nil
}

// checkTelemetryPath refuses a path the HTTP server could not serve the
// metrics on: the landing page has /, and a request's path holds no
// query, fragment, space or percent escape, and no {wildcard}.
func checkTelemetryPath(path string) error {
	switch {
	case !strings.HasPrefix(path, "/"):
		return fmt.Errorf("--web.telemetry-path %q must start with /: give one such as /metrics", path)
	case path == "/":
		return fmt.Errorf("--web.telemetry-path / is the landing page's: give another path, such as /metrics")
	case strings.ContainsAny(path, "?#%{} \t\n") || strings.IndexFunc(path, unicode.IsControl) >= 0:
		return fmt.Errorf("--web.telemetry-path %q holds a character a URL path cannot (?, #, %%, {, }, a space or a control character): give a plain path such as /metrics", path)
	}
	return nil
}

func runCommand(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseRunFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "ringwatch run: %v\nSee 'ringwatch run --help'.\n", err)
		return exitUsage
	}
	if err := carry(cfg, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "ringwatch: %v\n", err)
		if errors.Is(err, abi.ErrInvalidOption) {
			return exitUsage
		}
		return exitError
	}
	return exitOK
}

// carry is the main job: load, consume, serve metrics, and on a stop
// signal detach, drain and summarise.
func carry(cfg runConfig, stdout, stderr io.Writer) (err error) {
	// From here on a stop signal ends the run cleanly, even one that
	// arrives while the producers are still loading.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Without the privileges nothing else matters: say so first, not
	// that the port is taken.
	if err := loader.CheckPrivileges(); err != nil {
		return err
	}
	// Listen, and check the web configuration, before loading anything,
	// so a taken port or a bad file fails fast.
	srv, err := listenMetrics(cfg.web)
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := checkControlSocket(cfg.ctlSocket); err != nil {
		return err
	}

	sources, err := loader.ParseSources(cfg.sources)
	if err != nil {
		return err
	}
	s, err := session.Open(session.Options{Sources: sources, Transport: cfg.transport, Wakeup: cfg.wakeup,
		Rings:        tpt.Options{RingSize: cfg.ringSize, CPUsPerRing: cfg.cpusPerRing, Consumers: consumerCount(cfg.consumers)},
		ConsumerCPUs: cfg.consumerCPUs, SyscallPIDs: cfg.pids})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.Close()) }()

	producers := s.Producers()
	rings := s.RingNames()
	collector := metrics.NewCollector(version, string(cfg.transport), rings, producers.Sources(), s, s.Tracker())
	side, err := startControl(cfg.ctlSocket, s, stderr)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, side.Close()) }()
	host := startHostWatch(cfg.hostRings, cfg.hostPause, cfg.progStats, stderr)
	defer func() { err = errors.Join(err, host.Close()) }()
	// Everything that needs a capability is done: give up what running
	// does not need, before serving anyone.
	if err := side.firstPing(); err != nil {
		return err
	}
	keep := privilege.MustParse(privilege.Run)
	if host.census != nil || host.stats != nil {
		keep |= privilege.MustParse(privilege.Census)
	}
	caps, err := dropCapabilities(keep)
	if err != nil {
		return err
	}
	metricsFailed := make(chan error, 1)
	if err := srv.serve(newRegistry(append(append(side.collectors(), host.collectors...), collector)...), stderr, metricsFailed); err != nil {
		return err
	}

	fmt.Fprintf(stderr, "ringwatch %s: carrying %s over %s, %s of %s (%s), %s; metrics on %s\n",
		version, strings.Join(producers.Sources(), ","), cfg.transport, plural(len(rings), "ring"),
		abi.FormatSize(cfg.ringSize), strings.Join(rings, ","), plural(len(s.ConsumerStats()), "consumer"),
		srv.urls())
	side.announce(stderr)
	fmt.Fprintln(stderr, caps)
	host.announce(stderr)

	if cfg.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}
	ctx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	stopOnMetricsFailure(ctx, metricsFailed, cancelRun)

	// The accounting sees every batch in the session; the callback only
	// prints.
	var handle func(consumer.Batch)
	var out *output.Writer
	if cfg.jsonOutput {
		// A reader that goes away (ringwatch run --output json | head)
		// should end the run cleanly, with a summary: with SIGPIPE
		// ignored, the write fails with EPIPE instead of killing us.
		signal.Ignore(syscall.SIGPIPE)
		// The consumers only copy each batch; an encoder goroutine
		// prints it, and a full buffer stalls them, so any loss is the
		// kernel's, and counted. A write error (EPIPE) ends the run at
		// once, even while no batch comes.
		out = output.NewWriterConfig(stdout, output.Config{OnError: cancelRun})
		defer out.Close() // for the early returns; idempotent
		handle = func(b consumer.Batch) {
			if err := out.Write(b.Records); err != nil {
				cancelRun(err)
			}
		}
		// Once told to stop, a run whose stdout is no longer read must
		// still end: give the output outputGrace to move, then drop what
		// is left, counted in the summary.
		stopWatch := context.AfterFunc(ctx, func() {
			time.AfterFunc(outputGrace, func() { out.Abort(errOutputStalled) })
		})
		defer stopWatch()
	}
	if err := s.Read(ctx, handle); err != nil {
		return err
	}
	metricsErr := metricsFailure(ctx)
	if cause := context.Cause(ctx); cause != nil && metricsErr == nil && !errors.Is(cause, context.Canceled) &&
		!errors.Is(cause, context.DeadlineExceeded) && !errors.Is(cause, syscall.EPIPE) {
		return fmt.Errorf("write events: %w", cause)
	}
	// Detach the producers, drain what the rings still hold, and close
	// the books with the kernel's final counts.
	if _, err := s.Finish(handle); err != nil {
		return err
	}
	if out != nil {
		// Every queued record is written before the summary.
		if err := out.Close(); err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, errOutputStalled) {
			return fmt.Errorf("write events: %w", err)
		}
	}
	fmt.Fprintln(stderr, "ringwatch: stopped; carried:")
	if err := collector.WriteSummary(stderr); err != nil {
		return err
	}
	if out != nil {
		st := out.Stats()
		line := fmt.Sprintf("output: %d records written as JSON", st.Records)
		if missed := st.Accepted - st.Records - st.Invalid; missed > 0 {
			line += fmt.Sprintf(", %d not written (%v)", missed, out.Err())
		}
		fmt.Fprintln(stderr, line)
	}
	return errors.Join(side.writeSummary(stderr), metricsErr)
}

// dropCapabilities gives up every capability but keep, on every thread,
// and returns the line that says what is left. A binary built with cgo
// cannot: it keeps its capabilities and the line says so.
func dropCapabilities(keep privilege.Set) (string, error) {
	effective, err := privilege.Drop(keep)
	if errors.Is(err, privilege.ErrCgo) {
		return fmt.Sprintf("ringwatch: warning: kept every capability: %v", err), nil
	}
	if err != nil {
		return "", fmt.Errorf("drop capabilities after attaching: %w", err)
	}
	return fmt.Sprintf("ringwatch: attached; running with capabilities: %s", effective), nil
}

// firstPing runs the control program once while the capabilities are
// still there: cilium/ebpf checks for BPF_PROG_RUN, by loading a program
// of its own, the first time any program runs, and loading needs CAP_BPF.
// It also proves at start that the control path answers.
//
// Not under the run's context: a stop signal that came during loading still
// ends the run cleanly, after this ping.
func (s *controlSide) firstPing() error {
	if s == nil || s.ch == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), heartbeatInterval)
	defer cancel()
	if _, err := s.ch.Ping(ctx); err != nil {
		return fmt.Errorf("ping the control program: %w", err)
	}
	return nil
}

// outputGrace is how long a stopping run waits for its stdout to take the
// events still queued before it drops them.
const outputGrace = 5 * time.Second

var errOutputStalled = errors.New("stdout's reader stopped reading while the run was stopping")

// consumerCount is --consumers as the transport takes it: 0 is automatic.
func consumerCount(flag int) int {
	if flag == 0 {
		return tpt.AutoConsumers
	}
	return flag
}

// plural is "1 ring", "2 rings".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
