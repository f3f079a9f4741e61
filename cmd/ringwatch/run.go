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
	"github.com/ringwatch/ringwatch/internal/cli"
	"github.com/ringwatch/ringwatch/internal/control"
	"github.com/ringwatch/ringwatch/internal/cpus"
	"github.com/ringwatch/ringwatch/internal/daemon"
	"github.com/ringwatch/ringwatch/internal/loader"
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
	transport    abi.TransportName
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
	if cfg.sources, err = cli.SplitList(*f.source); err != nil {
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
	if cfg.ringSize, err = cli.ParseRingSize(*f.ringSize); err != nil {
		return runConfig{}, fmt.Errorf("--ring-size: %w", err)
	}
	if err := tpt.CheckOptions(cfg.transport, tpt.Options{RingSize: cfg.ringSize, CPUsPerRing: cfg.cpusPerRing,
		Consumers: consumerCount(cfg.consumers)}); err != nil {
		return runConfig{}, cli.Reword(err, flagOf)
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
	if cfg.pids, err = cli.ParsePIDs(*f.pids, loader.MaxSyscallPIDs); err != nil {
		return runConfig{}, fmt.Errorf("--pid: %w", err)
	}
	if len(cfg.pids) > 0 && !slices.Contains(cfg.sources, abi.SourceSyscalls) {
		return runConfig{}, fmt.Errorf("--pid limits the syscalls source, which --source %s leaves out: add it, such as --source %s,%s",
			*f.source, strings.Join(cfg.sources, ","), abi.SourceSyscalls)
	}
	if err := cli.CheckSocketPath(cfg.ctlSocket); err != nil {
		return runConfig{}, fmt.Errorf("--ctl.socket: %w", err)
	}
	return cfg, nil
}

// parseTransport and parseWakeup read the flag of that name. The
// libraries take "" as the default; on the command line it is a mistake.
func parseTransport(name string) (abi.TransportName, error) {
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
	// From here on a stop signal ends the run cleanly, even one that
	// arrives while the producers are still loading.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.jsonOutput {
		// A reader that goes away (ringwatch run --output json | head)
		// should end the run cleanly, with a summary: with SIGPIPE
		// ignored, the write fails with EPIPE instead of killing us.
		signal.Ignore(syscall.SIGPIPE)
	}
	if _, err := daemon.Run(ctx, cfg.daemon(), stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "ringwatch: %v\n", cli.Reword(err, flagOf))
		if errors.Is(err, abi.ErrInvalidOption) {
			return exitUsage
		}
		return exitError
	}
	return exitOK
}

// daemon is the run as internal/daemon takes it.
func (c runConfig) daemon() daemon.Config {
	return daemon.Config{Version: version, Sources: c.sources, Transport: c.transport, Wakeup: c.wakeup,
		Rings:        tpt.Options{RingSize: c.ringSize, CPUsPerRing: c.cpusPerRing, Consumers: consumerCount(c.consumers)},
		ConsumerCPUs: c.consumerCPUs, PIDs: c.pids, JSONOutput: c.jsonOutput, Duration: c.duration, CtlSocket: c.ctlSocket,
		HostRings: c.hostRings, HostPause: c.hostPause, ProgStats: c.progStats, Names: flagName,
		Web: daemon.Web{ListenAddresses: c.web.listen.addresses, SystemdSocket: *c.web.systemdSocket,
			ConfigFile: *c.web.configFile, TelemetryPath: *c.web.telemetryPath}}
}

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
