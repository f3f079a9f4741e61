package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/control"
	"github.com/ringwatch/ringwatch/internal/testenv"
)

func TestParseCtlFlagsKeepsTheOrder(t *testing.T) {
	cfg, err := parseCtlFlags([]string{"--pid", "12, 34", "--pause", "exec", "--sample", "syscalls=10",
		"--resume", "exec", "--pid=", "--socket", "/tmp/x.sock"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []control.Action{
		{Op: control.OpSetPIDs, PIDs: []uint32{12, 34}},
		{Op: control.OpPause, Source: "exec"},
		{Op: control.OpSetSampling, Source: "syscalls", Every: 10},
		{Op: control.OpResume, Source: "exec"},
		{Op: control.OpSetPIDs},
	}
	got, _ := json.Marshal(cfg.actions)
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(got, wantJSON) || cfg.socket != "/tmp/x.sock" || cfg.timeout != 10*time.Second {
		t.Errorf("parsed %s, socket %q, timeout %v; want %s", got, cfg.socket, cfg.timeout, wantJSON)
	}

	// Bad values: TestEveryFlagRefusesBadValues.
}

func TestCtlAndPingHelpAreComplete(t *testing.T) {
	var help bytes.Buffer
	if _, err := parseCtlFlags([]string{"--help"}, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("ctl --help: %v", err)
	}
	for _, want := range []string{"--pid", "--pause", "--resume", "--sample", "--socket", "--timeout",
		"exec", "syscalls", "0600", "root", "in the order given", "Exit status", `(default "/run/ringwatch/ctl.sock")`} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("ctl --help does not mention %s:\n%s", want, help.String())
		}
	}
	help.Reset()
	if _, err := parsePingFlags([]string{"--help"}, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("ping --help: %v", err)
	}
	for _, want := range []string{"--count", "--interval", "--timeout", "p99", "BPF_MAP_TYPE_USER_RINGBUF",
		"Linux 6.1", "Exit status", `(default "10")`} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("ping --help does not mention %s:\n%s", want, help.String())
		}
	}
	var out bytes.Buffer
	for _, args := range [][]string{{"ctl", "--help"}, {"ping", "--help"}, {"help"}} {
		out.Reset()
		if code := run(args, &out, &out); code != exitOK {
			t.Errorf("%q exits %d", args, code)
		}
	}
	for _, want := range []string{"ringwatch ctl", "ringwatch ping"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("ringwatch help does not list %s", want)
		}
	}
	for _, args := range [][]string{{"ctl"}, {"ctl", "--pause", "forks"}, {"ping", "--count", "0"}, {"ping", "extra"}} {
		if code := run(args, io.Discard, io.Discard); code != exitUsage {
			t.Errorf("%q exits %d, want %d", args, code, exitUsage)
		}
	}
}

func TestParsePingFlags(t *testing.T) {
	cfg, err := parsePingFlags(nil, io.Discard)
	if err != nil || cfg.Count != 10 || cfg.Interval != 0 || cfg.Timeout != time.Second {
		t.Errorf("defaults: %+v, %v", cfg, err)
	}
	cfg, err = parsePingFlags([]string{"--count", "1000", "--interval", "1ms", "--timeout", "3s"}, io.Discard)
	if err != nil || cfg.Count != 1000 || cfg.Interval != time.Millisecond || cfg.Timeout != 3*time.Second {
		t.Errorf("parsed: %+v, %v", cfg, err)
	}
	// Bad values: TestEveryFlagRefusesBadValues.
}

// TestPingCommand runs `ringwatch ping --count 1000` as a user would.
func TestPingCommand(t *testing.T) {
	testenv.RequireUserRing(t)
	before := testenv.Snapshot(t)
	var stdout, stderr bytes.Buffer
	cmd := ringwatchCmd("ping", "--count", "1000")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ringwatch ping --count 1000: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "1000 pings answered") {
		t.Errorf("output:\n%s", out)
	}
	m := regexp.MustCompile(`p50 (\S+)  p99 (\S+)  max (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no p50, p99 and max in:\n%s", out)
	}
	var d [3]time.Duration
	for i := range d {
		var err error
		if d[i], err = time.ParseDuration(m[i+1]); err != nil || d[i] <= 0 {
			t.Fatalf("%q is not a round trip: %v", m[i+1], err)
		}
	}
	if d[0] > d[1] || d[1] > d[2] {
		t.Errorf("p50 %v, p99 %v, max %v are out of order", d[0], d[1], d[2])
	}
	testenv.WaitForObjects(t, before)
}

// startRunWithControl starts `ringwatch run` with a control socket in a
// fresh directory and returns the socket's path after the run announced it.
func startRunWithControl(t *testing.T, stdout io.Writer, args ...string) (*exec.Cmd, string, func() string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	cmd, stderr, banner := startRingwatch(t, stdout, append([]string{"run", "--web.listen-address", "127.0.0.1:0",
		"--ctl.socket", sock}, args...)...)
	line, err := stderr.ReadString('\n')
	if err != nil || !strings.Contains(line, "control socket "+sock) {
		t.Fatalf("after the banner %q, ringwatch said %q (%v), not where its control socket is", banner, line, err)
	}
	rest := func() string {
		b, _ := io.ReadAll(stderr)
		return banner + line + string(b)
	}
	return cmd, sock, rest
}

func ctl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	cmd := ringwatchCmd(append([]string{"ctl"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String()
	}
	t.Fatalf("ringwatch ctl: %v", err)
	return 0, ""
}

// TestCtlChangesARunningRun changes the syscalls source's pid filter of a
// running ringwatch from one child process to another with ringwatch ctl,
// and reads ringwatch's JSON output: the first child's getpid calls are
// there only from before ctl returned, the second's only from after.
func TestCtlChangesARunningRun(t *testing.T) {
	testenv.RequireUserRing(t)
	a, b := testenv.StartSyscallChild(t), testenv.StartSyscallChild(t)
	var stdout bytes.Buffer
	cmd, sock, rest := startRunWithControl(t, &stdout, "--source", "syscalls", "--output", "json",
		"--pid", strconv.Itoa(a.Pid))

	const n = 100
	a.Getpid(t, n)
	b.Getpid(t, n)
	if code, out := ctl(t, "--socket", sock, "--pid", strconv.Itoa(b.Pid)); code != exitOK ||
		!strings.Contains(out, "applied 1 (set_pids)") {
		t.Fatalf("ringwatch ctl --pid: exit %d\n%s", code, out)
	}
	a.Getpid(t, n)
	b.Getpid(t, n)
	if code, out := ctl(t, "--socket", sock, "--pause", "exec"); code != exitError ||
		!strings.Contains(out, "does not carry the exec source") {
		t.Errorf("ctl --pause exec on a run without it: exit %d\n%s", code, out)
	}

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	summary := rest()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ringwatch run: %v\n%s", err, summary)
	}
	if !regexp.MustCompile(`user ring: \d+ messages \(.*1 set_pids.*\), 0 rejected`).MatchString(summary) {
		t.Errorf("summary lacks the user ring's line:\n%s", summary)
	}

	fromA, fromB := 0, 0
	for line := range strings.Lines(stdout.String()) {
		var ev struct {
			Pid, Tid int
			Nr       int64
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("stdout line is not JSON: %q", line)
		}
		switch {
		case ev.Nr != unix.SYS_GETPID:
		case ev.Pid == a.Pid && ev.Tid == a.Tid:
			fromA++
		case ev.Pid == b.Pid && ev.Tid == b.Tid:
			fromB++
		}
	}
	if fromA != n || fromB != n {
		t.Errorf("getpid records: %d of A, %d of B; want %d each: A's before ctl, B's after", fromA, fromB, n)
	}
}

// TestCtlIsForRootAlone runs ringwatch ctl as user nobody against a
// running ringwatch: refused by the socket's mode, and, with the mode
// opened up, by the run's SO_PEERCRED check.
func TestCtlIsForRootAlone(t *testing.T) {
	testenv.RequireUserRing(t)
	testenv.RequireTracefs(t)
	cmd, sock, _ := startRunWithControl(t, io.Discard)
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v, mode %v; want 0600", err, fi.Mode())
	}

	n := asNobody(t)
	asNobody := func() (int, string) {
		code, stdout, stderr := n.run(t, "ctl", "--socket", sock, "--pause", "exec")
		return code, stdout + stderr
	}

	if code, out := asNobody(); code != exitError ||
		out != "ringwatch ctl: permission denied on "+sock+": run ringwatch ctl as root (sudo)\n" {
		t.Errorf("as nobody: exit %d\n%s", code, out)
	}
	// Open the directory and the socket to everyone: the run itself must
	// still refuse.
	// (t.TempDir is two directories deep, both private.)
	for path, mode := range map[string]os.FileMode{
		filepath.Dir(filepath.Dir(sock)): 0o755, filepath.Dir(sock): 0o755, sock: 0o666,
	} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	if code, out := asNobody(); code != exitError ||
		out != "ringwatch ctl: permission denied: uid 65534 may not control ringwatch; run ringwatch ctl as root (sudo)\n" {
		t.Errorf("as nobody through an open socket: exit %d\n%s", code, out)
	}
	if code, out := ctl(t, "--socket", sock, "--pause", "exec"); code != exitOK {
		t.Errorf("as root: exit %d\n%s", code, out)
	}
}

func TestCtlSaysWhatToDoWithoutARun(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	code, out := ctl(t, "--socket", sock, "--pid", "1")
	if code != exitError || !strings.Contains(out, "no ringwatch run is listening on "+sock) ||
		!strings.Contains(out, "start one with 'ringwatch run'") {
		t.Errorf("ctl without a run: exit %d\n%s", code, out)
	}
}

// TestRunRefusesABusyControlSocket starts a second ringwatch on the first
// one's control socket: it must fail and say how to proceed, and leave the
// first one's socket working.
func TestRunRefusesABusyControlSocket(t *testing.T) {
	testenv.RequireUserRing(t)
	testenv.RequireTracefs(t)
	first, sock, _ := startRunWithControl(t, io.Discard)
	defer func() {
		first.Process.Signal(syscall.SIGTERM)
		first.Wait()
	}()
	var stderr bytes.Buffer
	second := ringwatchCmd("run", "--web.listen-address", "127.0.0.1:0", "--ctl.socket", sock, "--duration", "1s")
	second.Stderr = &stderr
	err := second.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitError ||
		!strings.Contains(stderr.String(), "another ringwatch is listening on "+sock) {
		t.Fatalf("second run on a busy socket: %v\n%s", err, stderr.String())
	}
	if code, out := ctl(t, "--socket", sock, "--pause", "exec", "--resume", "exec"); code != exitOK {
		t.Errorf("the first run's socket after the second run failed: exit %d\n%s", code, out)
	}

	// Without a control socket, a run needs no user ring at all.
	third, stderrR, banner := startRingwatch(t, io.Discard, "run", "--web.listen-address", "127.0.0.1:0",
		"--ctl.socket", "", "--duration", "200ms")
	restB, _ := io.ReadAll(stderrR)
	out := banner + string(restB)
	if err := third.Wait(); err != nil {
		t.Fatalf("run with --ctl.socket '': %v\n%s", err, out)
	}
	if strings.Contains(out, "control socket") || strings.Contains(out, "user ring:") {
		t.Errorf("a run with --ctl.socket '' still has a control side:\n%s", out)
	}
}
