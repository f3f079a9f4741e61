package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/cli"
	"github.com/ringwatch/ringwatch/internal/control"
	"github.com/ringwatch/ringwatch/internal/loader"
)

const ctlUsage = `Usage: ringwatch ctl [flags] ACTION...

Changes the settings of a running 'ringwatch run', from the next record on.
The actions go, in the order given, to the run's control socket; the run
writes them into its user ring (BPF_MAP_TYPE_USER_RINGBUF) followed by a
ping, and the kernel's control program applies them to the producers in
that order. ctl answers once the ping has come back, so when it exits 0
every action has taken effect. Nothing is sent unless every action is
sound.

The socket is mode 0600 in a directory of mode 0700, and the run answers
only root and its own user: run ctl as root (sudo).

'ringwatch ctl dump' writes the newest records of the run's --recorder to
stdout, oldest first, as --output json does, and their books to stderr.

Actions:
  --pid LIST         limit the syscalls source to these comma-separated
                     process ids, replacing the list it had; --pid= (empty)
                     reports every process but ringwatch again
  --pause SOURCE     stop recording SOURCE (exec or syscalls); its events
                     are counted as skipped
  --resume SOURCE    record SOURCE again
  --sample SOURCE=N  record one event of SOURCE in N; N=1 records all. A new
                     rate starts when each CPU's current countdown ends

Flags:
`

const ctlExamples = `
Examples:
  sudo ringwatch ctl --pid 1234
  sudo ringwatch ctl --pause exec
  sudo ringwatch ctl dump --timeout 1m > events.jsonl
  sudo ringwatch ctl --pid 1234,5678 --sample syscalls=100 --resume syscalls

Exit status: 0 when every action was applied, 1 if no ringwatch run
answered or it could not apply them, 2 for a wrong command line.
`

type ctlConfig struct {
	dump    bool // ctl dump: the recorder's window to stdout
	socket  string
	timeout time.Duration
	actions []control.Action
}

// ctlFlagValues are ctl's flags as given: the actions in the order given.
type ctlFlagValues struct {
	socket  *string
	timeout *time.Duration
	actions *[]control.Action
}

// ctlFlags defines ctl's flags. The test of every flag's bad values
// enumerates it: a flag added here needs rows there.
func ctlFlags() (cli.FlagSet, ctlFlagValues) {
	fs := cli.NewFlagSet("ringwatch ctl")
	actions := new([]control.Action)
	add := func(a control.Action) { *actions = append(*actions, a) }
	// Each action's value is checked as it is read, so a refusal names
	// the flag and the value.
	fs.Action("pid", "comma-separated process ids the syscalls source is limited to; empty for every process but ringwatch", func(s string) error {
		pids, err := cli.ParsePIDs(s, loader.MaxSyscallPIDs)
		if err != nil {
			return err
		}
		add(control.Action{Op: control.OpSetPIDs, PIDs: pids})
		return nil
	})
	fs.Action("pause", "source to pause: "+strings.Join(loader.SourceNames(), " or "), func(s string) error {
		if err := checkSource(s); err != nil {
			return err
		}
		add(control.Action{Op: control.OpPause, Source: s})
		return nil
	})
	fs.Action("resume", "source to resume: "+strings.Join(loader.SourceNames(), " or "), func(s string) error {
		if err := checkSource(s); err != nil {
			return err
		}
		add(control.Action{Op: control.OpResume, Source: s})
		return nil
	})
	fs.Action("sample", "SOURCE=N: record one event of SOURCE in N", func(s string) error {
		source, n, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("not SOURCE=N: give a source and one event in how many to record, such as syscalls=100")
		}
		if err := checkSource(source); err != nil {
			return err
		}
		every, err := strconv.ParseUint(n, 10, 32)
		if err != nil || every == 0 {
			return fmt.Errorf("N %q is not a whole number from 1 to %d: give one event in how many to record, such as %s=100 (1 records all)",
				n, uint32(math.MaxUint32), source)
		}
		add(control.Action{Op: control.OpSetSampling, Source: source, Every: uint32(every)})
		return nil
	})
	return fs, ctlFlagValues{
		socket:  fs.String("socket", control.DefaultSocket, "the control socket of the ringwatch run to change: its --ctl.socket"),
		timeout: fs.Duration("timeout", 10*time.Second, true, "10s", "how long to wait for the run's answer"),
		actions: actions,
	}
}

// checkSource checks one source's name, which ctl's actions take.
func checkSource(name string) error {
	if name != strings.TrimSpace(name) || strings.Contains(name, ",") {
		return abi.Choose("source", name, loader.SourceNames())
	}
	_, err := loader.ParseSources([]string{name})
	return err
}

// parseCtlFlags reads ctl's command line and checks it whole: nothing is
// sent unless every action is sound. It returns flag.ErrHelp after
// printing the help for --help.
func parseCtlFlags(args []string, stderr io.Writer) (ctlConfig, error) {
	dump := len(args) > 0 && args[0] == "dump"
	if dump {
		args = args[1:]
	}
	fs, f := ctlFlags()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.PrintUsage(stderr, ctlUsage, ctlExamples)
		}
		return ctlConfig{}, err
	}
	if dump && len(*f.actions) > 0 {
		return ctlConfig{}, errors.New("dump takes no actions: send them in a ctl of their own")
	}
	if len(*f.actions) == 0 && !dump {
		return ctlConfig{}, errors.New("nothing to do: give an action, such as --pid 1234 or --pause exec")
	}
	if *f.socket == "" {
		return ctlConfig{}, fmt.Errorf("--socket is empty: give the --ctl.socket of the ringwatch run to change (default %s)", control.DefaultSocket)
	}
	if err := cli.CheckSocketPath(*f.socket); err != nil {
		return ctlConfig{}, fmt.Errorf("--socket: %w", err)
	}
	return ctlConfig{dump: dump, socket: *f.socket, timeout: *f.timeout, actions: *f.actions}, nil
}

func ctlCommand(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseCtlFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "ringwatch ctl: %v\nSee 'ringwatch ctl --help'.\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	var done string
	if cfg.dump { // the window goes to stdout, what was done to stderr
		done, err = control.DumpLine(ctx, cfg.socket, stdout)
		stdout = stderr
	} else {
		done, err = control.SendActions(ctx, cfg.socket, cfg.actions)
	}
	if err != nil {
		fmt.Fprintf(stderr, "ringwatch ctl: %v\n", cli.Reword(err, flagOf))
		return exitError
	}
	fmt.Fprintf(stdout, "ringwatch ctl: %s\n", done)
	return exitOK
}
