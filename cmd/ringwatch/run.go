package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

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

// runFlagValues are run's flags as given, each checked on its own.
type runFlagValues struct {
	source, transport, wakeup, consumerCPUs, ringSize *string
	cpusPerRing, consumers                            *int
	output, pids, ctlSocket, recorder, recorderDir    *string
	duration, hostPause                               *time.Duration
	hostRings, progStats                              *bool
	web                                               *webFlags
}

// runFlags defines run's flags. The test of every flag's bad values
// enumerates it: a flag added here needs rows there.
func runFlags() (cli.FlagSet, runFlagValues) {
	fs := cli.NewFlagSet("ringwatch run")
	return fs, runFlagValues{
		source: fs.String("source", abi.SourceExec,
			"comma-separated sources to carry: "+strings.Join(loader.SourceNames(), ", ")),
		transport: fs.String("transport", string(abi.Ringbuf),
			"how records travel to user space: "+cli.JoinNames(abi.Transports())),
		wakeup: fs.String("wakeup", string(consumer.WakeupAdaptive),
			"when producers wake the consumer: adaptive (only when it sleeps; after records flowed it sleeps lazily, waking at an eighth of the ring or after 1ms), every (every record), busy (never: the consumer polls a CPU)"),
		cpusPerRing: fs.Int("cpus-per-ring", 1, 1, cli.MaxCount, "", "percpu-ringbuf: how many CPUs share one ring buffer"),
		consumers: fs.Int("consumers", 0, 0, cli.MaxCount, fmt.Sprintf("0 is one consumer per %d rings", tpt.RingsPerConsumer),
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
		recorder:    fs.String("recorder", "", "size of a flight recorder that keeps the newest records (overwrite-mode ring, Linux 6.19), such as 64MiB; empty for none"),
		recorderDir: fs.String("recorder.dump-dir", daemon.DefaultRecorderDumpDir, "directory SIGUSR1 writes the recorder's window to, as JSON lines"),
		progStats:   fs.Bool("prog-stats", false, "turn the kernel's BPF run statistics on while running and serve ringwatch_bpf_program_* metrics of every program on the host; costs every program run on the host some 70ns"),
	}
}

// parseRunFlags reads run's command line and checks it whole: nothing is
// loaded before it passes. It returns flag.ErrHelp after printing the
// help for --help.
func parseRunFlags(args []string, stderr io.Writer) (daemon.Config, error) {
	fs, f := runFlags()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.PrintUsage(stderr, runUsage, runExamples)
		}
		return daemon.Config{}, err
	}
	cfg := daemon.Config{Version: version, Duration: *f.duration, CtlSocket: *f.ctlSocket,
		Rings:     tpt.Options{CPUsPerRing: *f.cpusPerRing, Consumers: consumerCount(*f.consumers)},
		HostRings: *f.hostRings, HostPause: *f.hostPause, ProgStats: *f.progStats, Names: flagName}
	if !cfg.HostRings && fs.Given("host-rings.pause") {
		return daemon.Config{}, fmt.Errorf("--host-rings.pause sizes the host rings, which --host-rings=false turns off: leave one of them out")
	}
	var err error
	if cfg.Sources, err = cli.SplitList(*f.source); err != nil {
		return daemon.Config{}, fmt.Errorf("--source: %w", err)
	}
	if len(cfg.Sources) == 0 {
		return daemon.Config{}, fmt.Errorf("--source is empty: choose from %s", strings.Join(loader.SourceNames(), ", "))
	}
	if _, err := loader.ParseSources(cfg.Sources); err != nil {
		return daemon.Config{}, fmt.Errorf("--source: %w", err)
	}
	if cfg.Transport, err = parseTransport(*f.transport); err != nil {
		return daemon.Config{}, err
	}
	if cfg.Wakeup, err = parseWakeup(*f.wakeup); err != nil {
		return daemon.Config{}, err
	}
	if *f.consumerCPUs != "" {
		allowed, err := cpus.Allowed()
		if err != nil {
			return daemon.Config{}, fmt.Errorf("--consumer-cpus: %w", err)
		}
		if cfg.ConsumerCPUs, err = cpus.ParseList(*f.consumerCPUs, allowed); err != nil {
			return daemon.Config{}, fmt.Errorf("--consumer-cpus: %w", err)
		}
	}
	if cfg.Rings.RingSize, err = cli.ParseRingSize(*f.ringSize); err != nil {
		return daemon.Config{}, fmt.Errorf("--ring-size: %w", err)
	}
	if err := tpt.CheckOptions(cfg.Transport, cfg.Rings); err != nil {
		return daemon.Config{}, cli.Reword(err, flagOf)
	}
	if cfg.Web, err = f.web.config(fs); err != nil {
		return daemon.Config{}, err
	}
	switch *f.output {
	case "none":
	case "json":
		cfg.JSONOutput = true
	default:
		return daemon.Config{}, fmt.Errorf("--output %q: choose none or json", *f.output)
	}
	if cfg.PIDs, err = cli.ParsePIDs(*f.pids, loader.MaxSyscallPIDs); err != nil {
		return daemon.Config{}, fmt.Errorf("--pid: %w", err)
	}
	if len(cfg.PIDs) > 0 && !slices.Contains(cfg.Sources, abi.SourceSyscalls) {
		return daemon.Config{}, fmt.Errorf("--pid limits the syscalls source, which --source %s leaves out: add it, such as --source %s,%s",
			*f.source, strings.Join(cfg.Sources, ","), abi.SourceSyscalls)
	}
	if err := cli.CheckSocketPath(cfg.CtlSocket); err != nil {
		return daemon.Config{}, fmt.Errorf("--ctl.socket: %w", err)
	}
	if cfg.RecorderDir = *f.recorderDir; *f.recorder != "" {
		if cfg.Recorder, err = cli.ParseRingSize(*f.recorder); err != nil {
			return daemon.Config{}, fmt.Errorf("--recorder: %w", err)
		}
	}
	if cfg.RecorderDir == "" || (cfg.Recorder == 0 && fs.Given("recorder.dump-dir")) {
		return daemon.Config{}, fmt.Errorf("--recorder.dump-dir %q: give a directory, with --recorder", cfg.RecorderDir)
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
	if cfg.JSONOutput {
		// A reader that goes away (ringwatch run --output json | head)
		// should end the run cleanly, with a summary: with SIGPIPE
		// ignored, the write fails with EPIPE instead of killing us.
		signal.Ignore(syscall.SIGPIPE)
	}
	if _, err := daemon.Run(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "ringwatch: %v\n", cli.Reword(err, flagOf))
		if errors.Is(err, abi.ErrInvalidOption) {
			return exitUsage
		}
		return exitError
	}
	return exitOK
}

// consumerCount is --consumers as the transport takes it: 0 is automatic.
func consumerCount(flag int) int {
	if flag == 0 {
		return tpt.AutoConsumers
	}
	return flag
}
