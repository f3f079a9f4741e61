package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

// TestRecorder runs the recorder where the kernel has overwrite-mode ring
// buffers (Linux 6.19 and later: the VM matrix's 7.x), and checks its
// refusal where it has not (this project's 6.18, and 6.1 in the matrix):
// every kernel runs one of the two, so neither is a skip.
func TestRecorder(t *testing.T) {
	testenv.RequireBPF(t)
	err := consumer.RecorderSupported()
	switch {
	case err == nil:
		recorderDumpsTheNewestWindow(t)
	case errors.Is(err, errors.ErrUnsupported):
		recorderRefusedWithoutOverwriteMode(t)
	default:
		t.Fatalf("probe: %v", err)
	}
}

// recorderRefusedWithoutOverwriteMode: on a kernel before 6.19, run
// --recorder says in one line which kernel it needs and exits 2, before it
// loads or announces anything.
func recorderRefusedWithoutOverwriteMode(t *testing.T) {
	var stdout, stderr bytes.Buffer
	cmd := ringwatchCmd("run", "--recorder", "64MiB", "--web.listen-address", "127.0.0.1:0",
		"--ctl.socket", filepath.Join(t.TempDir(), "ctl.sock"))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	msg := stderr.String()
	if !errors.As(err, &exit) || exit.ExitCode() != exitUsage || stdout.Len() != 0 || strings.Count(msg, "\n") != 1 ||
		!strings.Contains(msg, "--recorder 64MiB") || !strings.Contains(msg, "need Linux 6.19 or later") {
		t.Fatalf("ringwatch run --recorder 64MiB: %v, stdout %q, stderr:\n%s\nwant exit %d and one line naming --recorder and Linux 6.19",
			err, stdout.String(), msg, exitUsage)
	}
}

// recorderDumpsTheNewestWindow runs the recorder beside --output json
// on 6.19 and later: a child's syscalls overflow a small recorder, then,
// while the run keeps running, ctl dump and SIGUSR1 each give the newest
// window, which must be exactly the last records the run printed, and
// the books must add up to every record printed.
func recorderDumpsTheNewestWindow(t *testing.T) {
	child := testenv.StartSyscallChild(t)
	dir := t.TempDir()
	var stdout bytes.Buffer
	cmd, stderr, banner := startRingwatch(t, &stdout, "run", "--web.listen-address", "127.0.0.1:0",
		"--ctl.socket", filepath.Join(dir, "ctl.sock"), "--source", "syscalls", "--pid", strconv.Itoa(child.Pid),
		"--output", "json", "--recorder", "64KiB", "--recorder.dump-dir", dir)
	var said strings.Builder
	said.WriteString(banner)
	readUntil := func(want string) string {
		t.Helper()
		for {
			line, err := stderr.ReadString('\n')
			said.WriteString(line)
			if err != nil {
				t.Fatalf("ringwatch run said no line with %q: %v\n%s", want, err, said.String())
			}
			if strings.Contains(line, want) {
				return line
			}
		}
	}
	readUntil("recorder of 64KiB")
	child.Getpid(t, 5000) // some 48 bytes each: four times what 64KiB holds

	// The run's consumer may still be printing: the window is taken from
	// the recorder, not from it, so it is the same either way.
	code, out := ctl(t, "dump", "--socket", filepath.Join(dir, "ctl.sock"))
	if code != exitOK {
		t.Fatalf("ringwatch ctl dump: exit %d\n%s", code, out)
	}
	books := regexp.MustCompile(`(?m)^ringwatch ctl: dumped (\d+) records attempted = (\d+) delivered \+ (\d+) overwritten \+ (\d+) lost`).
		FindStringSubmatch(out)
	if books == nil {
		t.Fatalf("ctl dump's output has no books line:\n%s", out)
	}
	dumped := out[:strings.LastIndex(out, "ringwatch ctl: dumped ")] // the books come last, on stderr

	// The child is quiet: the metrics, taken at the scrape, add up with
	// the window the dump found.
	url := regexp.MustCompile(`http://\S+/metrics`).FindString(banner)
	if url == "" {
		t.Fatalf("banner names no metrics URL: %q", banner)
	}
	scraped := get(t, url)
	metric := func(name string) int {
		m := regexp.MustCompile(`(?m)^` + name + ` (\d+)$`).FindStringSubmatch(scraped)
		if m == nil {
			t.Fatalf("no %s in the metrics:\n%s", name, scraped)
		}
		return must(strconv.Atoi(m[1]))
	}
	mRecords, mLost, mOverwritten := metric("ringwatch_recorder_records_total"),
		metric("ringwatch_recorder_lost_records_total"), metric("ringwatch_recorder_overwritten_records_total")

	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	line := readUntil("recorder dump in ")
	file := strings.TrimSpace(line[strings.Index(line, " in ")+4 : strings.LastIndex(line, ": ")])
	fromSignal, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v\n%s", err, line)
	}

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ringwatch run: %v\n%s", err, said.String())
	}
	printed := strings.SplitAfter(stdout.String(), "\n")
	printed = printed[:len(printed)-1]
	n := func(i int) int { return must(strconv.Atoi(books[i])) }
	attempted, delivered, overwritten, lost := n(1), n(2), n(3), n(4)
	if attempted != len(printed) || lost != 0 || delivered+overwritten+lost != attempted || overwritten == 0 {
		t.Errorf("books %q: want %d attempted (every record the run printed), none lost, some overwritten, adding up", books[0], len(printed))
	}
	if mRecords != attempted || mLost != lost || mOverwritten != overwritten || mRecords != delivered+mOverwritten+mLost {
		t.Errorf("metrics: %d records, %d lost, %d overwritten; the dump's books %q, with %d held: want the same, adding up",
			mRecords, mLost, mOverwritten, books[0], delivered)
	}
	checkWindow(t, "ctl dump", dumped, printed, delivered)
	checkWindow(t, "SIGUSR1's dump", string(fromSignal), printed, delivered)
}

// checkWindow holds a dump of n records to what the run printed: each line
// is one the run printed, whole; each CPU's records are consecutive, oldest
// first, and end with the last one the run printed of that CPU. (Across
// CPUs the recorder's order may differ from the transport's: a producer
// copies its record into the recorder just before it submits it to the
// transport, where it reserved room earlier.)
func checkWindow(t *testing.T, what, dump string, printed []string, n int) {
	t.Helper()
	type rec struct{ CPU, Seq int }
	parse := func(line string) rec {
		var r rec
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s: line %q is not JSON: %v", what, line, err)
		}
		return r
	}
	was := map[string]bool{}
	newest := map[int]int{}
	for _, line := range printed {
		was[line] = true
		r := parse(line)
		newest[r.CPU] = r.Seq
	}
	lines := strings.SplitAfter(dump, "\n")
	lines = lines[:len(lines)-1]
	if len(lines) != n {
		t.Errorf("%s has %d lines, its books say %d delivered", what, len(lines), n)
	}
	last := map[int]int{}
	for i, line := range lines {
		if !was[line] {
			t.Fatalf("%s: line %d, %q, is not one the run printed", what, i, line)
		}
		r := parse(line)
		if prev, ok := last[r.CPU]; ok && r.Seq != prev+1 {
			t.Fatalf("%s: line %d has CPU %d's seq %d after %d", what, i, r.CPU, r.Seq, prev)
		}
		last[r.CPU] = r.Seq
	}
	for cpu, seq := range last {
		if newest[cpu] != seq {
			t.Errorf("%s ends CPU %d at seq %d, the run printed up to %d", what, cpu, seq, newest[cpu])
		}
	}
}
