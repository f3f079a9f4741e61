// Command ringwatch carries kernel events from BPF rings to user space and
// shows, on a Prometheus endpoint, how well the transport does it.
//
// Run `ringwatch help` for the commands and `ringwatch run --help` for the
// main job's flags. This package owns the command line: the commands, their
// flags and the checks that refuse a wrong command line in one line naming
// the flag (on internal/cli's FlagSet), signals and exit statuses. The work
// itself is done by the internal/ packages and pkg/: `ringwatch run` is
// internal/daemon, `ctl` is internal/control's client, `ping` is
// internal/ping, `bench` is internal/bench, `rings` and `top` are
// internal/hostview.
package main
