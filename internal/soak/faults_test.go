package soak

import (
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// start starts a run with args and stops it (continuing it first) when t
// ends, if the test has not.
func start(t *testing.T, bin string, attr *syscall.SysProcAttr, args ...string) *Run {
	t.Helper()
	run, err := Start(bin, args, attr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if run.Cmd.ProcessState == nil {
			_ = run.Signal(syscall.SIGCONT)
			_, _, _ = run.Stop(time.Minute)
		}
	})
	return run
}

// stopClean stops run and checks it exits 0 with books that add up, and
// leaves no BPF object behind.
func stopClean(t *testing.T, run *Run, held BPFObjects) Summary {
	t.Helper()
	code, stderr, err := run.Stop(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Errorf("ringwatch run exited %d, want 0:\n%s", code, stderr)
	}
	sum, err := ParseSummary(stderr)
	if err != nil {
		t.Fatalf("%v:\n%s", err, stderr)
	}
	for _, p := range CheckFinal(sum) {
		t.Errorf("exit summary: %s", p)
	}
	waitGone(t, held)
	return sum
}

// command runs name with args and returns its exit status and output.
func command(t *testing.T, name string, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return 0, string(out)
}

func scrape(t *testing.T, run *Run) Scrape {
	t.Helper()
	s, _, err := run.Scrape(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// execTrue runs /bin/true n times.
func execTrue(t *testing.T, n int) {
	t.Helper()
	for range n {
		if err := exec.Command("/bin/true").Run(); err != nil {
			t.Fatal(err)
		}
	}
}

// waitExec waits until run has delivered at least want exec records, and
// returns the count.
func waitExec(t *testing.T, run *Run, want uint64) uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := scrape(t, run).Sources["exec"].Delivered
		if got >= want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run delivered %d exec records, want at least %d", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func heldBy(t *testing.T, run *Run) BPFObjects {
	t.Helper()
	held, err := HeldObjects(run.Pid())
	if err != nil {
		t.Fatal(err)
	}
	return held
}

// TestSecondRun starts a second run beside a first one. With the first's
// metrics address, or its control socket, the second is refused at once,
// naming what is in use and the flags that let it run beside; the first
// carries on. With an address and socket of its own, it coexists: each run
// has its own BPF objects and its own books, and ctl on one does not touch
// the other.
func TestSecondRun(t *testing.T) {
	requireRun(t)
	bin := ringwatchBinary(t)
	dir := t.TempDir()
	sockA, sockB := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	a := start(t, bin, nil, "--source", "exec", "--web.listen-address", "127.0.0.1:0", "--ctl.socket", sockA)
	u, err := url.Parse(a.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	heldA := heldBy(t, a)

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"metrics address in use", []string{"--web.listen-address", u.Host, "--ctl.socket", sockB},
			[]string{"listen for metrics on " + u.Host, "address already in use", "another ringwatch run", "another --web.listen-address", "another --ctl.socket"}},
		{"control socket in use", []string{"--web.listen-address", "127.0.0.1:0", "--ctl.socket", sockA},
			[]string{"another ringwatch is listening on " + sockA, "another --ctl.socket", "another --web.listen-address"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The second run starts in a mount namespace of its own
			// without tracefs, where loading the exec source fails: a
			// refusal that names the port or socket, not tracefs, came
			// before anything was loaded.
			begin := time.Now()
			cmd := exec.Command("/bin/sh", append([]string{"-c",
				`umount /sys/kernel/tracing && { ! mountpoint -q /sys/kernel/debug || umount -R /sys/kernel/debug; } && exec "$@"`, "sh",
				bin, "run", "--source", "exec", "--duration", "30s"}, tc.args...)...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
			outb, err := cmd.CombinedOutput()
			out, code := string(outb), cmd.ProcessState.ExitCode()
			if err != nil && code < 0 {
				t.Fatalf("second run: %v: %s", err, out)
			}
			if code != 1 {
				t.Fatalf("second run exited %d, want 1:\n%s", code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("second run's refusal does not say %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "tracefs") || strings.Contains(out, "carrying") {
				t.Errorf("second run went on to load its producers instead of refusing first:\n%s", out)
			}
			t.Logf("refused in %v: %s", time.Since(begin).Round(time.Millisecond), strings.TrimSpace(out))
		})
	}
	if _, err := os.Stat(sockB); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused run left its control socket %s (%v)", sockB, err)
	}

	// The first is untouched, and a second with its own address and socket
	// coexists.
	if err := a.Ctl("--pause", "exec", "--resume", "exec"); err != nil {
		t.Fatalf("the first run stopped answering ctl: %v", err)
	}
	b := start(t, bin, nil, "--source", "exec", "--web.listen-address", "127.0.0.1:0", "--ctl.socket", sockB)
	heldB := heldBy(t, b)
	for _, id := range heldB.Programs {
		for _, other := range heldA.Programs {
			if id == other {
				t.Fatalf("both runs hold program %d: they should load their own", id)
			}
		}
	}
	if err := b.Ctl("--pause", "exec"); err != nil {
		t.Fatal(err)
	}
	beforeA, beforeB := scrape(t, a).Sources["exec"], scrape(t, b).Sources["exec"]
	const n = 20
	execTrue(t, n)
	waitExec(t, a, beforeA.Delivered+n)
	afterB := scrape(t, b).Sources["exec"]
	if afterB.Attempted != beforeB.Attempted || afterB.Skipped < beforeB.Skipped+n {
		t.Errorf("the paused second run's exec source went from %+v to %+v over %d execs: want no attempt and %d more skipped",
			beforeB, afterB, n, n)
	}
	sumA := stopClean(t, a, heldA)
	sumB := stopClean(t, b, heldB)
	if sumA.Sources["exec"].Delivered < n || sumB.Sources["exec"].Skipped < n {
		t.Errorf("first run delivered %d exec records, second skipped %d; want both at least %d",
			sumA.Sources["exec"].Delivered, sumB.Sources["exec"].Skipped, n)
	}
}

// TestTracefsUnmounted unmounts tracefs under a running run, in a mount
// namespace of the run's own so the machine's tracefs is untouched. The
// tracepoint the run attached keeps firing (the attachment holds the
// event, not the mount), ctl still works, a new run in that namespace is
// refused with what to do, and the run stops cleanly with its books
// adding up.
func TestTracefsUnmounted(t *testing.T) {
	requireRun(t)
	if _, err := exec.LookPath("nsenter"); err != nil {
		// nsenter is in util-linux, on every machine that runs CI.
		t.Fatalf("needs nsenter (util-linux): %v", err)
	}
	bin := ringwatchBinary(t)
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	// Go makes the new namespace's mounts private (MS_REC|MS_PRIVATE on
	// /), so nothing done in it reaches the machine's mounts.
	run := start(t, bin, &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS},
		"--source", "exec,syscalls", "--web.listen-address", "127.0.0.1:0", "--ctl.socket", sock)
	held := heldBy(t, run)
	ns := []string{"-t", strconv.Itoa(run.Pid()), "-m", "--"}

	if code, out := command(t, "nsenter", append(ns, "sh", "-c",
		"umount /sys/kernel/tracing && { ! mountpoint -q /sys/kernel/debug || umount -R /sys/kernel/debug; }")...); code != 0 {
		t.Fatalf("unmount tracefs in the run's namespace: exit %d: %s", code, out)
	}
	for _, dir := range []string{"/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"} {
		if code, _ := command(t, "nsenter", append(ns, "test", "-e", dir)...); code == 0 {
			t.Fatalf("%s is still there in the run's namespace", dir)
		}
	}
	if _, err := os.Stat("/sys/kernel/tracing/events"); err != nil {
		t.Fatalf("the machine's tracefs went too: %v", err)
	}

	before := scrape(t, run).Sources["exec"].Delivered
	const n = 20
	execTrue(t, n)
	waitExec(t, run, before+n)
	if err := run.Ctl("--pause", "exec", "--resume", "exec"); err != nil {
		t.Errorf("ctl after tracefs went: %v", err)
	}

	code, out := command(t, "nsenter", append(ns, bin, "run", "--source", "exec", "--duration", "5s",
		"--web.listen-address", "127.0.0.1:0", "--ctl.socket", "")...)
	if code != 1 || !strings.Contains(out, "tracefs is not mounted") || !strings.Contains(out, "mount -t tracefs") {
		t.Errorf("a new run without tracefs exited %d, want 1 saying tracefs is not mounted and how to mount it:\n%s", code, out)
	}
	stopClean(t, run, held)
}

// TestMetricsListenerFails breaks a running run's metrics listener from
// outside: shutdown(2) on its listening socket, reached with
// pidfd_getfd(2), so accept fails as it would on a dead network stack.
// The run must say so, stop (detach, drain, print its summary, with books
// that add up), remove its control socket and exit 1, so that a
// supervisor restarts it, rather than carry on with no endpoint.
func TestMetricsListenerFails(t *testing.T) {
	requireRun(t)
	bin := ringwatchBinary(t)
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	run := start(t, bin, nil, "--source", "exec,syscalls", "--web.listen-address", "127.0.0.1:0", "--ctl.socket", sock)
	held := heldBy(t, run)
	scrape(t, run)
	u, err := url.Parse(run.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	if err := ShutdownListener(run.Pid(), port); err != nil {
		t.Fatal(err)
	}
	code, stderr, err := run.Wait(30 * time.Second)
	if err != nil {
		t.Fatalf("%v:\n%s", err, stderr)
	}
	if code != 1 {
		t.Errorf("ringwatch run exited %d after its listener failed, want 1:\n%s", code, stderr)
	}
	for _, w := range []string{"metrics server stopped", "stopping the run", "serve metrics on " + u.Host, "start it again"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr does not say %q:\n%s", w, stderr)
		}
	}
	sum, err := ParseSummary(stderr)
	if err != nil {
		t.Fatalf("%v:\n%s", err, stderr)
	}
	for _, p := range CheckFinal(sum) {
		t.Errorf("exit summary: %s", p)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket %s still there (%v)", sock, err)
	}
	waitGone(t, held)
}
