package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ringwatch/ringwatch/internal/testenv"
)

// nobody runs this test binary as ringwatch, as user and group 65534
// (nobody), with no capabilities.
type nobody struct{ bin, dir string }

// asNobody copies the test binary where nobody can run it. It needs root,
// to switch users; without root it skips, or fails when CI is set.
func asNobody(t *testing.T) nobody {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "needs root to switch to user nobody")
	}
	// t.TempDir is private to root: nobody needs a directory everyone
	// can read.
	dir, err := os.MkdirTemp("", "ringwatch-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "ringwatch.test")
	if err := copyFile(os.Args[0], bin); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return nobody{bin, dir}
}

// run runs ringwatch args as nobody and returns its exit status, stdout
// and stderr.
func (n nobody) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(n.bin, args...)
	cmd.Env = []string{asRingwatch + "=1", "PATH=/usr/bin:/bin"}
	cmd.Dir = n.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("ringwatch %q as nobody: %v", args, err)
	return 0, "", ""
}

// TestCommandsAsNobodySayWhatToDo runs each command as an unprivileged
// user: each must refuse at once, before any work, with exit status 1
// (it cannot do its work) and the one line that says what to do. A wrong
// command line is still reported as such (exit 2): it is checked first.
// (ctl against a live run, through its socket's modes and SO_PEERCRED:
// TestCtlIsForRootAlone.)
func TestCommandsAsNobodySayWhatToDo(t *testing.T) {
	n := asNobody(t)
	const needsRoot = "loading BPF programs needs root (or CAP_BPF and CAP_PERFMON): run ringwatch with sudo, or give it the capabilities README's Deploying lists (this process lacks CAP_BPF and CAP_PERFMON)\n"
	// A control socket in a directory of root's with mode 0700, as
	// 'ringwatch run' makes it: nobody cannot reach it.
	private := t.TempDir()
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(private, "ctl.sock")
	// A port already taken: the privileges are still what nobody hears
	// about first.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"run", "--web.listen-address", "127.0.0.1:0"}, exitError, "ringwatch: " + needsRoot},
		{[]string{"run", "--web.listen-address", "127.0.0.1:0", "--source", "exec,syscalls", "--transport", "spsc",
			"--ctl.socket", ""}, exitError, "ringwatch: " + needsRoot},
		{[]string{"run", "--web.listen-address", taken.Addr().String()}, exitError, "ringwatch: " + needsRoot},
		{[]string{"ping"}, exitError, "ringwatch ping: " + needsRoot},
		// No progress line first: bench checks before its first
		// measurement.
		{[]string{"bench"}, exitError, "ringwatch bench: " + needsRoot},
		{[]string{"bench", "--scenario", "roundtrip", "--json"}, exitError, "ringwatch bench: " + needsRoot},
		{[]string{"ctl", "--socket", sock, "--pause", "exec"}, exitError,
			"ringwatch ctl: permission denied on " + sock + ": run ringwatch ctl as root (sudo)\n"},
		{[]string{"ping", "--count", "0"}, exitUsage,
			"ringwatch ping: --count 0 is out of range: give 1 to 1000000\nSee 'ringwatch ping --help'.\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			if tc.args[0] == "bench" {
				testenv.RequireCPUs(t, 2) // or its defaults are a wrong command line
			}
			code, stdout, stderr := n.run(t, tc.args...)
			if code != tc.code || stdout != "" || stderr != tc.stderr {
				t.Errorf("ringwatch %q as nobody: exit %d, stdout %q, stderr:\n%s\nwant exit %d, nothing on stdout, and stderr:\n%s",
					tc.args, code, stdout, stderr, tc.code, tc.stderr)
			}
		})
	}
}
