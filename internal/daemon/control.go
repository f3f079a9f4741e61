package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/control"
	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/internal/metrics"
	"github.com/ringwatch/ringwatch/internal/session"
)

// heartbeatInterval is how often a running ringwatch pings its own control
// program: a liveness check of the control path, and data for
// ringwatch_roundtrip_latency_seconds when nobody runs ctl.
const heartbeatInterval = 10 * time.Second

// controlSide is the user-to-kernel half of `ringwatch run`: the control
// program loaded next to the producers, the channel to it, the socket ctl
// reaches it through, and its metrics. A nil *controlSide is a run without
// one (an empty control socket path); its methods then do nothing.
type controlSide struct {
	// unavailable says why there is no control side on this kernel; the
	// other fields are then nil.
	unavailable error
	ch          *session.ControlLink
	srv         *control.Server
	collector   *metrics.UserRingCollector
	stop        context.CancelFunc
	wg          sync.WaitGroup
	names       func(option string) string // the program's names, for announce
}

// openControl is session.OpenControl. A test replaces it with what it
// returns when the kernel's probe finds no user ring (Linux before 6.1),
// which this machine's kernel cannot show.
var openControl = session.OpenControl

// startControl loads the control program next to the session's producers
// and listens on socket. On error nothing stays open.
func startControl(socket string, sess *session.Session, stderr io.Writer, names func(string) string) (_ *controlSide, err error) {
	if socket == "" {
		return nil, nil
	}
	s := &controlSide{names: names}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
		}
	}()
	roundTrips := metrics.NewRoundTripHistogram()
	s.ch, err = openControl(sess, control.Options{
		OnRoundTrip: func(d time.Duration) { roundTrips.Observe(d.Seconds()) },
	})
	if errors.Is(err, loader.ErrUnsupportedKernel) {
		// The producers work from Linux 5.8; only control needs 6.1.
		return &controlSide{unavailable: err}, nil
	}
	if err != nil {
		return nil, err
	}
	s.collector = metrics.NewUserRingCollector(s.ch.Channel, roundTrips)
	if s.srv, err = control.Listen(socket, s.ch.Channel, sess.Producers().Sources()); err != nil {
		return nil, err
	}
	var ctx context.Context
	ctx, s.stop = context.WithCancel(context.Background())
	s.wg.Go(func() { s.heartbeat(ctx, stderr) })
	return s, nil
}

// heartbeat pings until ctx is done, and says so on stderr when the
// control path stops answering, and when it answers again.
func (s *controlSide) heartbeat(ctx context.Context, stderr io.Writer) {
	t := time.NewTicker(heartbeatInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, heartbeatInterval)
		_, err := s.ch.Ping(pctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			fmt.Fprintf(stderr, "ringwatch: control heartbeat: %v\n", err)
			failing = true
		case err == nil && failing:
			fmt.Fprintln(stderr, "ringwatch: control heartbeat answers again")
			failing = false
		}
	}
}

// collectors are the metrics to serve, if any.
func (s *controlSide) collectors() []prometheus.Collector {
	if s == nil || s.unavailable != nil {
		return nil
	}
	return []prometheus.Collector{s.collector}
}

// announce says where ctl reaches this run, or why it cannot.
func (s *controlSide) announce(w io.Writer) {
	if s == nil {
		return
	}
	if s.unavailable != nil {
		fmt.Fprintf(w, "ringwatch: no control socket: %v\n", s.unavailable)
		return
	}
	fmt.Fprintln(w, abi.Words(s.names, "ringwatch: control socket %s; see {control client help}", s.srv.Path()))
}

// writeSummary adds the user ring's line to the exit summary.
func (s *controlSide) writeSummary(w io.Writer) error {
	if s == nil || s.unavailable != nil {
		return nil
	}
	return s.collector.WriteSummary(w)
}

// Close stops the socket and the heartbeat, then frees the channel and the
// control program, in that order. It is safe on a partly started side.
func (s *controlSide) Close() error {
	if s == nil {
		return nil
	}
	var errs []error
	if s.srv != nil {
		errs = append(errs, s.srv.Close())
	}
	if s.stop != nil {
		s.stop()
		s.wg.Wait()
	}
	if s.ch != nil {
		errs = append(errs, s.ch.Close())
	}
	return errors.Join(errs...)
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
