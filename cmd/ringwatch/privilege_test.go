package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ringwatch/ringwatch/internal/privilege"
	"github.com/ringwatch/ringwatch/internal/testenv"
)

// TestRunDropsCapabilities runs ringwatch as root and checks that once it
// has attached, every one of its threads holds exactly privilege.Run and,
// for the host ring census, privilege.Census, in every set, bounding set
// included, and that it still carries exec events and answers ctl.
func TestRunDropsCapabilities(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	testenv.RequireUserRing(t)
	bin := testenv.BuildRingwatch(t)
	sock := filepath.Join(t.TempDir(), "ctl.sock")

	var stdout syncBuffer
	cmd := exec.Command(bin, "run", "--output", "json", "--web.listen-address", "127.0.0.1:0", "--ctl.socket", sock)
	stderr := startBinary(t, cmd, &stdout)
	// The banner, the control socket, then the capabilities left: as
	// root, the host ring census (--host-rings, on by default) runs, and
	// keeps what it needs.
	lines := readLines(t, stderr, 3)
	want := privilege.MustParse(privilege.Run) | privilege.MustParse(privilege.Census)
	if lines[2] != "ringwatch: attached; running with capabilities: "+want.String() {
		t.Errorf("third line on stderr is %q, want the capabilities left", lines[2])
	}
	for key, set := range threadCapabilities(t, cmd.Process.Pid) {
		// Inheritable and ambient keep only what they had of want:
		// nothing, for a root started with none.
		if strings.HasSuffix(key, "CapInh") || strings.HasSuffix(key, "CapAmb") {
			if set&^want != 0 {
				t.Errorf("%s = %s, want at most %s", key, set, want)
			}
		} else if set != want {
			t.Errorf("%s = %s, want %s", key, set, want)
		}
	}

	pids := execTrue(t, 10)
	if out, err := ringwatchCmd("ctl", "--socket", sock, "--sample", "exec=1").CombinedOutput(); err != nil {
		t.Errorf("ctl after the drop: %v\n%s", err, out)
	}
	stopAndCheckEvents(t, cmd, stderr, &stdout, pids)
}

// TestRunAsUserWithAmbientCapabilities starts ringwatch as systemd starts
// deploy/systemd/ringwatch.service: through socket activation (here
// systemd-socket-activate), as an unprivileged user holding
// privilege.Load as ambient capabilities (here setpriv). It must carry exec
// events, serve them on the socket it was handed, and hold privilege.Run
// once attached. With a capability of privilege.Load missing, it must say
// which.
func TestRunAsUserWithAmbientCapabilities(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	testenv.RequireUserRing(t)
	for _, tool := range []string{"setpriv", "systemd-socket-activate"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Unavailable(t, fmt.Sprintf("needs %s (util-linux, systemd): %v", tool, err))
		}
	}
	bin := testenv.BuildRingwatch(t)
	// The control socket's directory belongs to the user, as the unit's
	// RuntimeDirectory does.
	dir, err := os.MkdirTemp("", "ringwatch-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, nobodyID, nobodyID); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "ctl.sock")
	asUser := func(caps []string, args ...string) *exec.Cmd {
		var set []string
		for _, c := range caps {
			set = append(set, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
		}
		list := strings.Join(append([]string{"-all"}, set...), ",")
		return exec.Command("setpriv", append([]string{"--reuid", fmt.Sprint(nobodyID), "--regid", fmt.Sprint(nobodyID), "--clear-groups",
			"--inh-caps", list, "--ambient-caps", list, bin}, args...)...)
	}

	t.Run("missing", func(t *testing.T) {
		for _, drop := range privilege.Load {
			var caps []string
			for _, c := range privilege.Load {
				if c != drop {
					caps = append(caps, c)
				}
			}
			out, err := asUser(caps, "run", "--web.listen-address", "127.0.0.1:0", "--ctl.socket", "").CombinedOutput()
			if code := exitCode(err); code != exitError || !strings.Contains(string(out), drop) {
				t.Errorf("without %s: exit %d (%v), want %d and a message naming it:\n%s", drop, code, err, exitError, out)
			}
		}
	})

	// A key only root may read passes the check before loading (with
	// CAP_DAC_READ_SEARCH), but not the one after the drop: the toolkit
	// reads it at every handshake, as the user.
	t.Run("key unreadable after the drop", func(t *testing.T) {
		testenv.WriteCertificate(t, dir, "tls.crt", "tls.key")
		config := filepath.Join(dir, "web.yml")
		testenv.WriteFile(t, config, "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n")
		for _, f := range []string{config, filepath.Join(dir, "tls.crt")} {
			if err := os.Chmod(f, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out, err := asUser(privilege.Load, "run", "--web.config.file", config, "--web.listen-address", "127.0.0.1:0", "--ctl.socket", "").CombinedOutput()
		if code := exitCode(err); code != exitError || !strings.Contains(string(out), "tls.key: permission denied") ||
			!strings.Contains(string(out), fmt.Sprintf("readable by uid %d", nobodyID)) {
			t.Errorf("exit %d (%v), want %d and a message about the key:\n%s", code, err, exitError, out)
		}
	})

	port := freePort(t)
	args := append([]string{"-l", "127.0.0.1:" + port}, asUser(privilege.Load, "run", "--web.systemd-socket", "--output", "json", "--ctl.socket", sock).Args...)
	var stdout syncBuffer
	cmd := exec.Command("systemd-socket-activate", args...)
	stderr := startBinary(t, cmd, &stdout)
	// systemd-socket-activate starts ringwatch, in its own process, at the
	// first connection.
	body := getRetrying(t, "http://127.0.0.1:"+port+"/metrics", 60*time.Second)
	if !strings.Contains(body, "ringwatch_build_info") {
		t.Fatalf("metrics on the activated socket:\n%s", body)
	}
	// systemd-socket-activate says what it does on stderr first.
	for {
		if b, err := stderr.Peek(len("ringwatch ")); err != nil || string(b) == "ringwatch " {
			break
		}
		readLines(t, stderr, 1)
	}
	lines := readLines(t, stderr, 3)
	if !strings.Contains(lines[0], "metrics on http://127.0.0.1:"+port+"/metrics") {
		t.Errorf("banner does not name the socket systemd passed: %q", lines[0])
	}
	want := privilege.MustParse(privilege.Run)
	if lines[2] != "ringwatch: attached; running with capabilities: "+want.String() {
		t.Errorf("third line on stderr is %q, want the capabilities left", lines[2])
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^Uid:\s+%d\s`, nobodyID)).Match(status) {
		t.Errorf("ringwatch does not run as uid %d:\n%s", nobodyID, status)
	}
	for key, set := range threadCapabilities(t, cmd.Process.Pid) {
		// Without CAP_SETPCAP the bounding set stays as it was.
		if !strings.HasSuffix(key, "CapBnd") && set != want {
			t.Errorf("%s = %s, want privilege.Run, %s", key, set, want)
		}
	}
	pids := execTrue(t, 10)
	if out, err := ringwatchCmd("ctl", "--socket", sock, "--sample", "exec=1").CombinedOutput(); err != nil {
		t.Errorf("ctl as root: %v\n%s", err, out)
	}
	stopAndCheckEvents(t, cmd, stderr, &stdout, pids)
}

// nobodyID is the uid and gid of user nobody, whom the tests run ringwatch as.
const nobodyID = 65534

// threadCapabilities reads the capability sets of every thread of pid,
// keyed "task TID CapEff" and so on.
func threadCapabilities(t *testing.T, pid int) map[string]privilege.Set {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("list the threads of %d: %v", pid, err)
	}
	all := map[string]privilege.Set{}
	for _, path := range tasks {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sets, err := privilege.ParseStatus(b)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		tid := filepath.Base(filepath.Dir(path))
		for _, key := range []string{"CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"} {
			all["task "+tid+" "+key] = sets[key]
		}
	}
	if len(tasks) < 2 {
		t.Errorf("ringwatch has %d thread: the test means to check several", len(tasks))
	}
	return all
}

// startBinary starts cmd with stdout going to out and returns its stderr;
// the process is killed if the test ends with it running.
func startBinary(t *testing.T, cmd *exec.Cmd, out io.Writer) *bufio.Reader {
	t.Helper()
	cmd.Stdout = out
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return bufio.NewReader(pipe)
}

// readLines reads n lines of stderr, or fails when they do not come.
func readLines(t *testing.T, r *bufio.Reader, n int) []string {
	t.Helper()
	var lines []string
	for range n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stderr ended after %q: %v", lines, err)
		}
		lines = append(lines, strings.TrimSuffix(line, "\n"))
	}
	return lines
}

// execTrue runs /bin/true n times and returns the pids.
func execTrue(t *testing.T, n int) []int {
	t.Helper()
	var pids []int
	for range n {
		c := exec.Command("/bin/true")
		if err := c.Run(); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, c.Process.Pid)
	}
	return pids
}

// stopAndCheckEvents stops ringwatch with SIGTERM, expects exit 0, and an
// exec event in its JSON output for each of pids.
func stopAndCheckEvents(t *testing.T, cmd *exec.Cmd, stderr *bufio.Reader, stdout *syncBuffer, pids []int) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stderr)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ringwatch after SIGTERM: %v\n%s", err, rest)
	}
	seen := trueExecs(t, stdout.String())
	for _, pid := range pids {
		if !seen[pid] {
			t.Errorf("no exec event for /bin/true pid %d; stderr:\n%s", pid, rest)
		}
	}
}

// freePort is a TCP port on loopback that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

// getRetrying gets url, retrying while the connection is refused.
func getRetrying(t *testing.T, url string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := httpClient.Get(url)
		if err == nil {
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("get %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if exit, ok := err.(*exec.ExitError); ok {
		return exit.ExitCode()
	}
	return -1
}

// syncBuffer is a bytes.Buffer a process writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
