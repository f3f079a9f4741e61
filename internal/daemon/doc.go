// Package daemon is `ringwatch run` without its command line: it loads the
// producers, carries their records to user space, serves the metrics and
// the control socket, watches the host's rings, and on a stop detaches,
// drains and closes the books. [Run] takes a [Config] that cmd/ringwatch
// builds from flags, and returns the [Summary] it printed, so the whole run
// is tested in-process, against the real kernel, without the binary.
//
// The command keeps what belongs to a process: flags, signals, exit
// statuses. Run stops when its context is done.
package daemon
