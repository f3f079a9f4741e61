package main

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringwatch/ringwatch/internal/cpus"
	"github.com/ringwatch/ringwatch/internal/testenv"
)

// runOnlyOn runs ringwatch with args in a child process that may run on
// cpu alone, as under taskset -c cpu or a container's cpuset: it forks
// from a thread pinned to cpu, and a child inherits the affinity of the
// thread that forked it (sched_setaffinity(2)). It returns the exit
// status and stderr; a child still running after a minute is killed.
func runOnlyOn(t *testing.T, cpu int, args ...string) (int, string) {
	t.Helper()
	cmd := ringwatchCmd(args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cpus.RunOn(cpu, cmd.Start); err != nil {
		t.Fatalf("start ringwatch %s on CPU %d alone: %v", strings.Join(args, " "), cpu, err)
	}
	kill := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	defer kill.Stop()
	var exit *exec.ExitError
	if err := cmd.Wait(); errors.As(err, &exit) {
		return exit.ExitCode(), stderr.String()
	} else if err != nil {
		t.Fatalf("ringwatch %s: %v", strings.Join(args, " "), err)
	}
	return 0, stderr.String()
}

// TestCPUFlagsFollowTheAffinity runs ringwatch restricted to one CPU that
// is not CPU 0 (the last this test may use: CPU 1 on a 2-CPU machine), as
// taskset -c 1 would. runtime.NumCPU() is then 1, yet CPU 1 is the one
// the consumer may be pinned to, and CPU 0 the one it may not.
func TestCPUFlagsFollowTheAffinity(t *testing.T) {
	testenv.RequireCPUs(t, 2)
	allowed := allowedCPUs()
	only, other := allowed[len(allowed)-1], allowed[0]
	mayUse := fmt.Sprintf("it may use CPU %d only (its CPU affinity, set by taskset or a container's cpuset)", only)

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			// --duration ends a run that is wrongly let through.
			{[]string{"run", "--duration", "1s", "--web.listen-address", "127.0.0.1:0", "--consumer-cpus", strconv.Itoa(other)},
				fmt.Sprintf("ringwatch run: --consumer-cpus: CPU list %q: CPU %d is not one this process may run on: %s", strconv.Itoa(other), other, mayUse)},
			{[]string{"run", "--duration", "1s", "--web.listen-address", "127.0.0.1:0", "--consumer-cpus", fmt.Sprintf("%d,%d", only, other)},
				fmt.Sprintf("CPU %d is not one this process may run on: %s", other, mayUse)},
			{[]string{"bench", "--producer-cpu", strconv.Itoa(only), "--consumer-cpu", strconv.Itoa(only)},
				fmt.Sprintf("this process may use CPU %d only (its CPU affinity, set by taskset or a container's cpuset), and bench needs two CPUs", only)},
			{[]string{"bench", "--scenario", "scale", "--producers", "2"},
				"give comma-separated whole numbers from 1 to 1 (each on a CPU of its own: this process may run on 1 CPU)"},
		} {
			code, stderr := runOnlyOn(t, only, tc.args...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Errorf("ringwatch %s on CPU %d alone: exit %d, stderr:\n%s\nwant exit %d saying %q",
					strings.Join(tc.args, " "), only, code, stderr, exitUsage, tc.want)
			}
		}
	})

	// The command line passes; run for real, the consumer pins itself to
	// that CPU, which fails unless the process may run there.
	t.Run("accepted", func(t *testing.T) {
		testenv.RequireBPF(t)
		testenv.RequireTracefs(t)
		args := []string{"run", "--source", "exec", "--duration", "300ms", "--web.listen-address", "127.0.0.1:0",
			"--consumer-cpus", strconv.Itoa(only)}
		code, stderr := runOnlyOn(t, only, args...)
		if code != exitOK || !strings.Contains(stderr, "consumer 0 (events):") {
			t.Errorf("ringwatch %s on CPU %d alone: exit %d, stderr:\n%s\nwant exit %d and the consumer's summary line",
				strings.Join(args, " "), only, code, stderr, exitOK)
		}
	})
}
