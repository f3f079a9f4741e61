package daemon

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/control"
)

// What `ringwatch run` does when a second run starts beside it, and when
// its metrics endpoint fails while it runs. The soak suite
// (internal/soak) drives both from outside.

// listenError explains a failure to listen for metrics. A port in use is
// most often a run already started: say how a second one can run beside
// it.
func listenError(addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return abi.RefuseOption(err, "web listen address", addr, "listen for metrics on %s: %v: another ringwatch run, or another program, has it: "+
			"stop that, or give this run another {web listen address} (and, beside another ringwatch run, another {control socket})", addr, err)
	}
	return abi.RefuseOption(err, "web listen address", addr, "listen for metrics on %s: %v (choose another with {web listen address})", addr, err)
}

// checkControlSocket refuses, before anything is loaded into the kernel,
// a control socket that another run answers on. Two runs with distinct
// listen addresses and control sockets coexist: each loads its own BPF
// objects and counts on its own. Anything else at path is left to
// control.Listen, which replaces a stale socket and refuses the rest.
func checkControlSocket(path string) error {
	if err := control.CheckSocket(path); errors.Is(err, control.ErrSocketInUse) {
		return abi.RefuseOption(err, "control socket", path, "another ringwatch is listening on %s: stop it, or give this run another {control socket} "+
			"(or {control socket} '' for none) and another {web listen address}", path)
	}
	return nil
}

// metricsError is the metrics server's failure while the run was carrying
// records: its listener stopped accepting.
type metricsError struct {
	addr string
	err  error
}

func (e *metricsError) Error() string {
	return fmt.Sprintf("serve metrics on %s: %v: the metrics endpoint failed, so the run stopped (the summary above has its counts); start it again", e.addr, e.err)
}

func (e *metricsError) Unwrap() error { return e.err }

// stopOnMetricsFailure cancels the run with the server's failure, if one
// comes before ctx is done. A run whose endpoint is gone would go on
// carrying records nobody can see, so it stops, drains, and prints its
// summary, and the command exits 1 so that a supervisor restarts it.
func stopOnMetricsFailure(ctx context.Context, failed <-chan error, cancel context.CancelCauseFunc) {
	go func() {
		select {
		case err := <-failed:
			cancel(err)
		case <-ctx.Done():
		}
	}()
}

// metricsFailure is the metrics server's failure that ended the run, or
// nil.
func metricsFailure(ctx context.Context) error {
	var me *metricsError
	if errors.As(context.Cause(ctx), &me) {
		return me
	}
	return nil
}
