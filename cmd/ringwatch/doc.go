// Command ringwatch carries kernel events from BPF rings to user space and
// shows, on a Prometheus endpoint, how well the transport does it.
//
// Run `ringwatch help` for the commands and `ringwatch run --help` for the
// main job's flags.
//
//   - main.go: command dispatch, version, exit statuses.
//   - run.go: `ringwatch run`: flags, wiring of loader, consumer and
//     metrics, signals, the capability drop after attaching, and JSON
//     output.
//   - web.go: run's HTTP side through the Prometheus exporter-toolkit: the
//     --web.* flags, listeners (or systemd's sockets), TLS and basic
//     authentication, the landing page.
//   - ctl.go: `ringwatch ctl`, and the control side of `ringwatch run`:
//     control program, channel, socket, heartbeat, metrics.
//   - ping.go: `ringwatch ping`: round trips through the user ring.
//   - bench.go: `ringwatch bench`: flags and result tables of internal/bench.
//   - flags.go: the checked flag values every command defines its flags
//     with, and the parse that refuses a wrong command line in one line
//     naming the flag and what is valid, before anything is loaded.
//   - hostwatch.go: `run`'s view of the whole host: the ring census and,
//     with --prog-stats, the kernel's program statistics.
//   - rings.go: `ringwatch rings`: every ring on the host, once.
//   - top.go: `ringwatch top`: rings and programs, live, with Bubble Tea.
package main
