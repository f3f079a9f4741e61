// Package systemd holds the tests of ringwatch's systemd units: that their
// capabilities are internal/privilege's, that systemd accepts them, that
// the sysusers file makes the user they run as, and that their system call
// filter lets ringwatch make every call it makes.
package systemd

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringwatch/ringwatch/internal/privilege"
	"github.com/ringwatch/ringwatch/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// unit is a unit file's settings: section, then key, then values in order.
type unit map[string]map[string][]string

func readUnit(t *testing.T, path string) unit {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: not a setting: %q", path, line)
			}
			u[section][key] = append(u[section][key], value)
		}
	}
	return u
}

func (u unit) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Fatalf("[%s] %s is set %d times, want once", section, key, len(v))
	}
	return v[0]
}

// TestServiceCapabilities holds the service's capability lines to
// internal/privilege.Load: what ringwatch needs to load and attach, which
// it then drops to privilege.Run on its own.
func TestServiceCapabilities(t *testing.T) {
	svc := readUnit(t, "ringwatch.service")
	want := privilege.MustParse(privilege.Load)
	for _, key := range []string{"AmbientCapabilities", "CapabilityBoundingSet"} {
		got, err := privilege.Parse(strings.Fields(svc.one(t, "Service", key)))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if got != want {
			t.Errorf("%s = %s, want privilege.Load, %s", key, got, want)
		}
	}
	if user := svc.one(t, "Service", "User"); user == "root" || user == "0" {
		t.Errorf("User=%s: the service is to run as a user of its own", user)
	}
	if nnp := svc.one(t, "Service", "NoNewPrivileges"); nnp != "yes" {
		t.Errorf("NoNewPrivileges=%s", nnp)
	}
	exec := svc.one(t, "Service", "ExecStart")
	if !strings.Contains(exec, " run ") || !strings.Contains(exec, "--web.systemd-socket") {
		t.Errorf("ExecStart=%s: want ringwatch run --web.systemd-socket", exec)
	}
	if sockets := svc.one(t, "Unit", "Requires"); sockets != "ringwatch.socket" {
		t.Errorf("Requires=%s, want ringwatch.socket", sockets)
	}
	sock := readUnit(t, "ringwatch.socket")
	if listen := sock.one(t, "Socket", "ListenStream"); listen != "9477" {
		t.Errorf("ListenStream=%s, want ringwatch's port 9477", listen)
	}
}

// TestUnitsVerify runs systemd-analyze verify on the units, which must
// accept them without a word. ExecStart's binary must exist for that, so
// the check runs on copies whose ExecStart names a binary that does; every
// other line is as shipped.
func TestUnitsVerify(t *testing.T) {
	analyze := lookPath(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ringwatch.service", "ringwatch.socket"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("/usr/local/bin/ringwatch "), []byte(self+" "))
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(analyze, "verify", "--man=no", "ringwatch.service", "ringwatch.socket")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestSysusersMakesTheUser applies ringwatch.sysusers to an empty root and
// checks it makes the user and group the service runs as.
func TestSysusersMakesTheUser(t *testing.T) {
	sysusers := lookPath(t, "systemd-sysusers", "systemd")
	root := t.TempDir()
	for _, f := range []string{"passwd", "group", "shadow", "gshadow"} {
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "etc", f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	abs, err := filepath.Abs("ringwatch.sysusers")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sysusers, "--root", root, abs).CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	svc := readUnit(t, "ringwatch.service")
	for file, name := range map[string]string{"passwd": svc.one(t, "Service", "User"), "group": svc.one(t, "Service", "Group")} {
		b, err := os.ReadFile(filepath.Join(root, "etc", file))
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `:x:[1-9]\d*:`).Match(b) {
			t.Errorf("/etc/%s after systemd-sysusers has no non-root %s:\n%s", file, name, b)
		}
	}
}

// TestSystemCallFilter runs ringwatch under strace, through every
// transport and the control socket, and checks that the service's
// SystemCallFilter allows every system call it made: a call outside it
// would fail with SystemCallErrorNumber under systemd.
func TestSystemCallFilter(t *testing.T) {
	testenv.RequireUserRing(t)
	testenv.RequireTracefs(t)
	analyze := lookPath(t, "systemd-analyze", "systemd")
	strace := lookPath(t, "strace", "strace")
	allowed := map[string]bool{}
	for _, item := range strings.Fields(readUnit(t, "ringwatch.service").one(t, "Service", "SystemCallFilter")) {
		for _, name := range expandFilter(t, analyze, item) {
			allowed[name] = true
		}
	}
	bin := testenv.BuildRingwatch(t)
	dir := t.TempDir()
	made := map[string]bool{}
	for _, transport := range []string{"ringbuf", "percpu-ringbuf", "perfbuf", "spsc"} {
		trace := filepath.Join(dir, transport+".strace")
		sock := filepath.Join(dir, transport+".sock")
		cmd := exec.Command(strace, "-f", "-qq", "-o", trace, bin, "run", "--transport", transport,
			"--source", "exec,syscalls", "--pid", "1", "--output", "json", "--web.listen-address", "127.0.0.1:0", "--ctl.socket", sock)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				// A tracer that dies lets its tracee run on: kill both.
				if pid, err := tracee(cmd.Process.Pid); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
		// ctl makes the run accept, read and answer on its socket.
		deadline := time.Now().Add(30 * time.Second)
		for {
			if err := exec.Command(bin, "ctl", "--socket", sock, "--sample", "exec=1").Run(); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: ctl never got an answer", transport)
			}
			time.Sleep(100 * time.Millisecond)
		}
		// Stop it as systemd does, with SIGTERM.
		pid, err := tracee(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%s: ringwatch under strace: %v", transport, err)
		}
		b, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(?m)^\d+ +([a-z0-9_]+)\(`).FindAllSubmatch(b, -1) {
			made[string(m[1])] = true
		}
	}
	if !made["bpf"] || !made["perf_event_open"] || !made["capset"] {
		t.Fatalf("the traces lack bpf, perf_event_open or capset: %v", made)
	}
	var refused []string
	for name := range made {
		// execve is strace starting ringwatch; under systemd it is done
		// before the filter applies.
		if !allowed[name] && name != "execve" {
			refused = append(refused, name)
		}
	}
	slices.Sort(refused)
	if len(refused) > 0 {
		t.Errorf("ringwatch called %s, which SystemCallFilter does not allow", strings.Join(refused, ", "))
	}
}

// tracee is the one process strace (pid) started.
func tracee(pid int) (int, error) {
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0, fmt.Errorf("find ringwatch under strace: %w", err)
	}
	f := strings.Fields(string(children))
	if len(f) != 1 {
		return 0, fmt.Errorf("find ringwatch under strace: strace has children %q", f)
	}
	return strconv.Atoi(f[0])
}

// expandFilter turns a SystemCallFilter item, a call or a @group, into the
// calls it allows, as systemd-analyze syscall-filter lists them.
func expandFilter(t *testing.T, analyze, item string) []string {
	t.Helper()
	if !strings.HasPrefix(item, "@") {
		return []string{item}
	}
	out, err := exec.Command(analyze, "syscall-filter", "--no-pager", item).Output()
	if err != nil {
		t.Fatalf("systemd-analyze syscall-filter %s: %v", item, err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n")[1:] {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "@"):
			names = append(names, expandFilter(t, analyze, line)...)
		default:
			names = append(names, line)
		}
	}
	if len(names) == 0 {
		t.Fatalf("systemd-analyze syscall-filter %s lists no calls", item)
	}
	return names
}

func lookPath(t *testing.T, tool, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		testenv.Unavailable(t, fmt.Sprintf("needs %s (Debian package %s): %v", tool, pkg, err))
	}
	return path
}
