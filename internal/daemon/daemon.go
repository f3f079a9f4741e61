package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/accounting"
	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/internal/metrics"
	"github.com/ringwatch/ringwatch/internal/output"
	"github.com/ringwatch/ringwatch/internal/privilege"
	"github.com/ringwatch/ringwatch/internal/session"
	tpt "github.com/ringwatch/ringwatch/internal/transport"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// Config is a run, checked: cmd/ringwatch's parse has refused every bad
// value before Run sees it.
type Config struct {
	Version      string // for the banner, the landing page and ringwatch_build_info
	Sources      []string
	Transport    abi.TransportName
	Wakeup       consumer.Wakeup
	Rings        tpt.Options // ring size, CPUs per ring, consumers (tpt.AutoConsumers: one per tpt.RingsPerConsumer rings)
	ConsumerCPUs []int       // CPUs to pin the consumers to, in turn; empty leaves them to the scheduler
	PIDs         []uint32    // the syscalls source's filter; empty is every process but this one
	Web          Web
	JSONOutput   bool          // each record on stdout, one JSON object a line
	Duration     time.Duration // 0 runs until ctx is done
	CtlSocket    string        // where ringwatch ctl reaches the run; empty for none
	HostRings    bool          // the census of every ring on the host
	HostPause    time.Duration // the consumer pause the host rings' advised capacity is for
	ProgStats    bool          // the kernel's run statistics of every program
	Recorder     int           // the flight recorder's size; 0 for none
	RecorderDir  string        // where SIGUSR1 writes the recorder's window
	// Names names an option as the program's command line does, in the
	// lines Run prints (errors name options as abi.OptionErrors do); nil
	// keeps the options' own names.
	Names func(option string) string
}

// Summary is the books of a finished run, as its summary printed them: what
// the consumers delivered of each source beside what the kernel attempted.
// When every record reached user space, each source's Records plus Gaps is
// its Kernel.Attempts, and Gaps is Kernel.Lost.
type Summary struct {
	Sources []SourceSummary // in the order carried
	Output  *output.Stats   // what the JSON output wrote; nil without it
}

// SourceSummary is one source's books.
type SourceSummary struct {
	Name string
	accounting.SourceTally
	Kernel loader.Counters // the producers' final counts
}

// outputGrace is how long a stopping run waits for its stdout to take the
// events still queued before it drops them.
const outputGrace = 5 * time.Second

var errOutputStalled = errors.New("stdout's reader stopped reading while the run was stopping")

// Run is the main job: load, consume, serve metrics, and when ctx is done
// or cfg.Duration passes, detach, drain and summarise on stderr. Records go
// to stdout with cfg.JSONOutput. An error of [abi.ErrInvalidOption] is a
// configuration the kernel refused; a run stopped by its metrics endpoint's
// failure returns its Summary with the error.
func Run(ctx context.Context, cfg Config, stdout, stderr io.Writer) (_ Summary, err error) {
	// Without the privileges nothing else matters: say so first, not
	// that the port is taken.
	if err := loader.CheckPrivileges(); err != nil {
		return Summary{}, err
	}
	if err := checkRecorder(cfg.Recorder); err != nil {
		return Summary{}, err
	}
	// Listen, and check the web configuration, before loading anything,
	// so a taken port or a bad file fails fast.
	srv, err := listenMetrics(cfg.Web, cfg.Version)
	if err != nil {
		return Summary{}, err
	}
	defer srv.Close()
	if err := checkControlSocket(cfg.CtlSocket); err != nil {
		return Summary{}, err
	}

	sources, err := loader.ParseSources(cfg.Sources)
	if err != nil {
		return Summary{}, err
	}
	s, err := session.Open(session.Options{Sources: sources, Transport: cfg.Transport, Wakeup: cfg.Wakeup,
		Rings: cfg.Rings, ConsumerCPUs: cfg.ConsumerCPUs, SyscallPIDs: cfg.PIDs, Recorder: cfg.Recorder})
	if err != nil {
		return Summary{}, err
	}
	defer func() { err = errors.Join(err, s.Close()) }()

	producers := s.Producers()
	rings := s.RingNames()
	collector := metrics.NewCollector(cfg.Version, string(cfg.Transport), rings, producers.Sources(), s, s.Tracker())
	side, err := startControl(cfg.CtlSocket, s, stderr, cfg.Names)
	if err != nil {
		return Summary{}, err
	}
	defer func() { err = errors.Join(err, side.Close()) }()
	rec, err := startRecorder(producers, cfg.Recorder, cfg.RecorderDir, stderr)
	if err != nil {
		return Summary{}, err
	}
	defer func() { err = errors.Join(err, rec.Close()) }()
	if rec != nil && side != nil && side.srv != nil {
		side.srv.SetDumper(rec)
	}
	host := startHostWatch(cfg.HostRings, cfg.HostPause, cfg.ProgStats, stderr, cfg.Names)
	defer func() { err = errors.Join(err, host.Close()) }()
	// Everything that needs a capability is done: give up what running
	// does not need, before serving anyone.
	if err := side.firstPing(); err != nil {
		return Summary{}, err
	}
	keep := privilege.MustParse(privilege.Run)
	if host.census != nil || host.stats != nil {
		keep |= privilege.MustParse(privilege.Census)
	}
	caps, err := dropCapabilities(keep)
	if err != nil {
		return Summary{}, err
	}
	metricsFailed := make(chan error, 1)
	if err := srv.serve(newRegistry(append(append(append(side.collectors(), rec.collectors()...), host.collectors...), collector)...), stderr, metricsFailed); err != nil {
		return Summary{}, err
	}

	fmt.Fprintf(stderr, "ringwatch %s: carrying %s over %s, %s of %s (%s), %s; metrics on %s\n",
		cfg.Version, strings.Join(producers.Sources(), ","), cfg.Transport, plural(len(rings), "ring"),
		abi.FormatSize(cfg.Rings.RingSize), strings.Join(rings, ","), plural(len(s.ConsumerStats()), "consumer"),
		srv.urls())
	side.announce(stderr)
	rec.announce(stderr, cfg.Names)
	fmt.Fprintln(stderr, caps)
	host.announce(stderr)

	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	ctx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	stopOnMetricsFailure(ctx, metricsFailed, cancelRun)

	// The accounting sees every batch in the session; the callback only
	// prints.
	var handle func(consumer.Batch)
	var out *output.Writer
	if cfg.JSONOutput {
		// The consumers only copy each batch; an encoder goroutine
		// prints it, and a full buffer stalls them, so any loss is the
		// kernel's, and counted. A write error (EPIPE: the command
		// ignores SIGPIPE, so that a reader that goes away ends the run
		// cleanly, with a summary) ends the run at once, even while no
		// batch comes.
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
		return Summary{}, err
	}
	metricsErr := metricsFailure(ctx)
	if cause := context.Cause(ctx); cause != nil && metricsErr == nil && !errors.Is(cause, context.Canceled) &&
		!errors.Is(cause, context.DeadlineExceeded) && !errors.Is(cause, syscall.EPIPE) {
		return Summary{}, fmt.Errorf("write events: %w", cause)
	}
	// Detach the producers, drain what the rings still hold, and close
	// the books with the kernel's final counts.
	counters, err := s.Finish(handle)
	if err != nil {
		return Summary{}, err
	}
	if out != nil {
		// Every queued record is written before the summary.
		if err := out.Close(); err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, errOutputStalled) {
			return Summary{}, fmt.Errorf("write events: %w", err)
		}
	}
	fmt.Fprintln(stderr, "ringwatch: stopped; carried:")
	if err := collector.WriteSummary(stderr); err != nil {
		return Summary{}, err
	}
	sum := summarize(s.Tracker(), counters)
	if out != nil {
		st := out.Stats()
		sum.Output = &st
		line := fmt.Sprintf("output: %d records written as JSON", st.Records)
		if missed := st.Accepted - st.Records - st.Invalid; missed > 0 {
			line += fmt.Sprintf(", %d not written (%v)", missed, out.Err())
		}
		fmt.Fprintln(stderr, line)
	}
	return sum, errors.Join(side.writeSummary(stderr), metricsErr)
}

// summarize pairs each source's tally with the kernel's final counts.
func summarize(t *accounting.Tracker, counters []loader.Counters) Summary {
	var sum Summary
	for _, k := range counters {
		sum.Sources = append(sum.Sources, SourceSummary{Name: k.Source, SourceTally: t.Source(k.Source), Kernel: k})
	}
	return sum
}

// dropCapabilities gives up every capability but keep, on every thread,
// and returns the line that says what is left. A binary built with cgo
// cannot: it keeps its capabilities and the line says so.
func dropCapabilities(keep privilege.Set) (string, error) {
	effective, err := dropPrivileges(keep)
	if errors.Is(err, privilege.ErrCgo) {
		return fmt.Sprintf("ringwatch: warning: kept every capability: %v", err), nil
	}
	if err != nil {
		return "", fmt.Errorf("drop capabilities after attaching: %w", err)
	}
	return fmt.Sprintf("ringwatch: attached; running with capabilities: %s", effective), nil
}

// dropPrivileges is privilege.Drop. The in-process tests replace it: the
// test binary must keep its capabilities for the tests after them.
var dropPrivileges = privilege.Drop

// plural is "1 ring", "2 rings".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
