// Command ringwatch carries kernel events from BPF rings to user space and
// shows, on a Prometheus endpoint, how well the transport does it.
//
// Run `ringwatch help` for the commands and `ringwatch run --help` for the
// main job's flags.
//
//   - main.go: command dispatch, version, exit statuses.
//   - run.go: `ringwatch run`'s flags into an internal/daemon Config,
//     signals and exit status; the run itself is internal/daemon.
//   - web.go: run's --web.* flags, those of the Prometheus
//     exporter-toolkit.
//   - ctl.go: `ringwatch ctl`, the client of a run's control socket.
//   - ping.go: `ringwatch ping`: round trips through the user ring.
//   - bench.go: `ringwatch bench`: flags and result tables of internal/bench.
//   - flags.go: the checked flag values every command defines its flags
//     with, and the parse that refuses a wrong command line in one line
//     naming the flag and what is valid, before anything is loaded.
//   - rings.go, top.go: the flags of `ringwatch rings` and `ringwatch
//     top`; what they show is internal/hostview.
package main
