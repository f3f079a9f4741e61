package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // the command could not do its work
	exitUsage = 2 // the command line was wrong
)

const usage = `ringwatch carries kernel events from BPF rings to user space, without losing
track of a single record, and shows what the transport is doing on a
Prometheus endpoint.

Usage:
  ringwatch run [flags]    load the BPF producers and carry their records until
                           interrupted; see 'ringwatch run --help'
  ringwatch ctl ACTION...  change a running 'ringwatch run': pid filter,
                           pause, resume, sampling; see 'ringwatch ctl --help'
  ringwatch ping [flags]   measure the round trip user -> kernel -> user
                           through the user ring; see 'ringwatch ping --help'
  ringwatch bench [flags]  measure the transports, wakeup modes and consumers
                           side by side; see 'ringwatch bench --help'
  ringwatch rings [flags]  list every BPF ring on the host with its fill, rates
                           and owner; see 'ringwatch rings --help'
  ringwatch top [flags]    watch every ring and BPF program on the host, live;
                           see 'ringwatch top --help'
  ringwatch version        print the version
  ringwatch help [COMMAND] print this help, or a command's

ringwatch run needs root (or CAP_BPF and CAP_PERFMON, and CAP_DAC_READ_SEARCH
for the exec source), a kernel with BTF (/sys/kernel/btf/vmlinux) and, for
the exec source, tracefs mounted at /sys/kernel/tracing. Once attached, it
drops every capability it does not need (its host ring census keeps
CAP_SYS_ADMIN). Its control socket, and ringwatch ping, need Linux 6.1 or
later (BPF_MAP_TYPE_USER_RINGBUF). ringwatch rings and ringwatch top need
CAP_SYS_ADMIN, to walk every BPF map and program on the host.
`

// commands are the commands that take flags, and have a help of their own.
var commands = []string{"run", "ctl", "ping", "bench", "rings", "top"}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return runCommand(args[1:], stdout, stderr)
	case "ctl":
		return ctlCommand(args[1:], stdout, stderr)
	case "ping":
		return pingCommand(args[1:], stdout, stderr)
	case "bench":
		return benchCommand(args[1:], stdout, stderr)
	case "rings":
		return ringsCommand(args[1:], stdout, stderr)
	case "top":
		return topCommand(args[1:], stdout, stderr)
	case "version", "--version":
		if len(args) > 1 {
			fmt.Fprintf(stderr, "ringwatch version: unexpected argument %q: version takes none\n", args[1])
			return exitUsage
		}
		fmt.Fprintf(stdout, "ringwatch %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "help", "-h", "-help", "--help":
		switch {
		case len(args) == 1:
			fmt.Fprint(stdout, usage)
			return exitOK
		case len(args) == 2 && slices.Contains(commands, args[1]):
			// 'ringwatch help run' is 'ringwatch run --help'.
			return run([]string{args[1], "--help"}, stdout, stderr)
		}
		fmt.Fprintf(stderr, "ringwatch help: %q is not a command: give one of %s, or nothing\n",
			strings.Join(args[1:], " "), strings.Join(commands, ", "))
		return exitUsage
	default:
		fmt.Fprintf(stderr, "ringwatch: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
}
