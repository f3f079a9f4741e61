package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
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

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/internal/testenv/ringchild"
)

// asRingwatch makes the test binary, started by ringwatchCmd, run ringwatch
// itself instead of the tests: the real main, signals and exit status, with
// no separate build.
const asRingwatch = "RINGWATCH_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asRingwatch) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	ringchild.Main(m)
}

func ringwatchCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asRingwatch+"=1")
	return cmd
}

func TestParseRunFlags(t *testing.T) {
	cfg, err := parseRunFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Sources, ",") != "exec" || cfg.Rings.RingSize != 4<<20 ||
		strings.Join(cfg.Web.ListenAddresses, " ") != "127.0.0.1:9477" || cfg.Web.TelemetryPath != "/metrics" ||
		cfg.Web.SystemdSocket || cfg.Web.ConfigFile != "" || cfg.JSONOutput || cfg.Duration != 0 || len(cfg.PIDs) != 0 ||
		cfg.Transport != "ringbuf" || cfg.Rings.CPUsPerRing != 1 {
		t.Errorf("defaults: %+v", cfg)
	}

	cfg, err = parseRunFlags([]string{"--source", "exec, syscalls", "--ring-size", "16MiB", "--output", "json",
		"--duration", "30s", "--pid", "12,34", "--web.listen-address", ":1", "--web.listen-address", "[::1]:2",
		"--web.telemetry-path", "/m", "--web.config.file", "web.yml",
		"--transport", "percpu-ringbuf", "--cpus-per-ring", "2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Sources, ",") != "exec,syscalls" || cfg.Rings.RingSize != 16<<20 || !cfg.JSONOutput ||
		cfg.Duration != 30*time.Second || len(cfg.PIDs) != 2 || cfg.PIDs[1] != 34 ||
		strings.Join(cfg.Web.ListenAddresses, " ") != ":1 [::1]:2" || cfg.Web.TelemetryPath != "/m" ||
		cfg.Web.ConfigFile != "web.yml" || cfg.Web.SystemdSocket ||
		cfg.Transport != "percpu-ringbuf" || cfg.Rings.CPUsPerRing != 2 {
		t.Errorf("parsed: %+v", cfg)
	}

	if cfg, err = parseRunFlags([]string{"--web.systemd-socket"}, io.Discard); err != nil || !cfg.Web.SystemdSocket {
		t.Errorf("--web.systemd-socket: %v, %+v", err, cfg)
	}

	// Bad values: TestEveryFlagRefusesBadValues.
}

func TestRunHelpNamesEveryFlag(t *testing.T) {
	var help bytes.Buffer
	if _, err := parseRunFlags([]string{"--help"}, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"--source", "--ring-size", "--web.listen-address", "--web.telemetry-path",
		"--web.config.file", "--web.systemd-socket", `(default "127.0.0.1:9477")`,
		"--output", "--duration", "--pid", "--transport", "--cpus-per-ring", "--consumers", "--consumer-cpus", "exec", "syscalls", "SIGINT", "Exit status",
		`(default "4MiB")`, "ringbuf", "percpu-ringbuf", "perfbuf", "spsc"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("run --help does not mention %s:\n%s", want, help.String())
		}
	}
	var out bytes.Buffer
	if code := run([]string{"run", "--help"}, &out, &out); code != exitOK {
		t.Errorf("run --help exits %d", code)
	}
	if code := run([]string{"frobnicate"}, &out, &out); code != exitUsage {
		t.Errorf("unknown command exits %d, want %d", code, exitUsage)
	}
	if code := run([]string{"run", "--output", "xml"}, &out, &out); code != exitUsage {
		t.Errorf("bad flag value exits %d, want %d", code, exitUsage)
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"version"}, &out, io.Discard); code != exitOK || !strings.HasPrefix(out.String(), "ringwatch dev (go") {
		t.Errorf("version: %d %q", code, out.String())
	}
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}

// TestRunEndToEnd runs `ringwatch run` as a user would: scrape it while it
// carries exec events, stop it with SIGINT, and read its JSON and summary.
func TestRunEndToEnd(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	before := testenv.Snapshot(t)

	var stdout bytes.Buffer
	cmd, stderr, banner := startRingwatch(t, &stdout, "run", "--output", "json", "--web.listen-address", "127.0.0.1:0")
	url := regexp.MustCompile(`http://\S+/metrics`).FindString(banner)
	if url == "" {
		t.Fatalf("banner names no metrics URL: %q", banner)
	}

	var pids []int
	for range 20 {
		c := exec.Command("/bin/true")
		if err := c.Run(); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, c.Process.Pid)
	}
	// The exec records reach the ring within the exec itself, and ringwatch
	// reads them when woken; wait for them to show in the metrics.
	deadline := time.Now().Add(10 * time.Second)
	for {
		body := get(t, url)
		if m := regexp.MustCompile(`(?m)^ringwatch_source_events_total\{source="exec"\} (\d+)`).FindStringSubmatch(body); m != nil && must(strconv.Atoi(m[1])) >= len(pids) {
			problems, err := promlint.New(strings.NewReader(body)).Lint()
			if err != nil || len(problems) > 0 {
				t.Errorf("promlint: %v %+v", err, problems)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exec events never reached the metrics:\n%s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stderr)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ringwatch run after SIGINT: %v\n%s", err, rest)
	}
	summary := string(rest)
	if !regexp.MustCompile(`source exec: \d+ records, \d+ bytes, 0 lost`).MatchString(summary) ||
		!strings.Contains(summary, "ring events (ringbuf)") {
		t.Errorf("summary:\n%s", summary)
	}

	seen := trueExecs(t, stdout.String())
	for _, pid := range pids {
		if !seen[pid] {
			t.Errorf("no JSON event for /bin/true pid %d", pid)
		}
	}
	testenv.WaitForObjects(t, before)
}

// TestRunStopsCleanly stops ringwatch run each way it can be stopped
// without a failure: each must exit 0 with the summary.
func TestRunStopsCleanly(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	for _, tc := range []struct {
		name string
		args []string
		stop func(*os.Process) error
		ring string // a summary line the run must print
	}{
		{"duration", []string{"--duration", "300ms"}, nil, "ring events (ringbuf):"},
		{"SIGTERM", nil, func(p *os.Process) error { return p.Signal(syscall.SIGTERM) }, "ring events (ringbuf):"},
		{"percpu-ringbuf", []string{"--duration", "300ms", "--transport", "percpu-ringbuf"}, nil, "ring cpu0 (percpu-ringbuf):"},
		{"percpu-ringbuf-grouped", []string{"--duration", "300ms", "--transport", "percpu-ringbuf", "--cpus-per-ring", "64"}, nil, "(percpu-ringbuf):"},
		{"perfbuf", []string{"--duration", "300ms", "--transport", "perfbuf", "--ring-size", "64KiB"}, nil, "ring cpu0 (perfbuf):"},
		{"spsc", []string{"--duration", "300ms", "--transport", "spsc"}, nil, "ring spsc (spsc):"},
		{"percpu-ringbuf-consumers", []string{"--duration", "300ms", "--transport", "percpu-ringbuf", "--consumers", "64",
			"--consumer-cpus", "0"}, nil, "consumer 0 (cpu0):"},
		{"spsc-consumers", []string{"--duration", "300ms", "--transport", "spsc", "--consumers", "64"}, nil, "ring spsc-cpus0-0 (spsc):"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, stderr, banner := startRingwatch(t, io.Discard,
				append([]string{"run", "--source", "exec,syscalls", "--web.listen-address", "127.0.0.1:0"}, tc.args...)...)
			if tc.stop != nil {
				if err := tc.stop(cmd.Process); err != nil {
					t.Fatal(err)
				}
			}
			rest, _ := io.ReadAll(stderr)
			out := banner + string(rest)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("ringwatch run: %v\n%s", err, out)
			}
			for _, want := range []string{"carrying exec,syscalls", "source exec:", "source syscalls:", tc.ring} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// startRingwatch starts ringwatch with args and returns once it has printed
// its banner, the first line on stderr; the rest of stderr is left to read.
// If the test ends with ringwatch still running, it is killed.
func startRingwatch(t *testing.T, stdout io.Writer, args ...string) (*exec.Cmd, *bufio.Reader, string) {
	t.Helper()
	if len(args) > 0 && args[0] == "run" && !slices.Contains(args, "--ctl.socket") {
		// A socket of the test's own: a ringwatch already running on this
		// machine, as a service, holds the default one.
		args = append(args, "--ctl.socket", filepath.Join(t.TempDir(), "ctl.sock"))
	}
	cmd := ringwatchCmd(args...)
	stderr := startBinary(t, cmd, stdout)
	banner, err := stderr.ReadString('\n')
	if err != nil {
		t.Fatalf("no banner from ringwatch %s: %v", strings.Join(args, " "), err)
	}
	return cmd, stderr, banner
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func must(n int, err error) int {
	if err != nil {
		panic(err)
	}
	return n
}

// trueExecs reads run's JSON output and returns the pids of the /bin/true
// execs it carried; a line that is not JSON fails the test.
func trueExecs(t *testing.T, out string) map[int]bool {
	t.Helper()
	seen := map[int]bool{}
	for line := range strings.Lines(out) {
		var ev struct {
			Type     string `json:"type"`
			Pid      int    `json:"pid"`
			Filename string `json:"filename"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("stdout line is not JSON: %q", line)
		}
		if ev.Type == "exec" && ev.Filename == "/bin/true" {
			seen[ev.Pid] = true
		}
	}
	return seen
}
