package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/ringwatch/ringwatch/internal/testenv"
)

// TestRunStopsCleanlyWhenStdoutCloses is `ringwatch run --output json |
// head -n 5`: the reader of stdout takes five lines and goes away while
// events keep coming. The run must then stop by itself, exit 0, and print
// its summary on stderr, counting at least the lines that were read.
func TestRunStopsCleanlyWhenStdoutCloses(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd, stderr, _ := startRingwatch(t, w, "run", "--output", "json", "--source", "exec",
		"--web.listen-address", "127.0.0.1:0", "--ctl.socket", "")
	w.Close() // ringwatch holds its own copy: the pipe is its stdout alone

	exited := make(chan error, 1)
	var rest []byte
	go func() {
		rest, _ = io.ReadAll(stderr)
		exited <- cmd.Wait()
	}()
	// spawn makes exec events until stop is closed.
	stop := make(chan struct{})
	spawned := make(chan struct{})
	go func() {
		defer close(spawned)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := exec.Command("/bin/true").Run(); err != nil {
				t.Errorf("run /bin/true: %v", err)
				return
			}
		}
	}()
	defer func() { close(stop); <-spawned }()

	// head -n 5
	lines := bufio.NewReader(r)
	for i := range 5 {
		line, err := lines.ReadBytes('\n')
		if err != nil {
			t.Fatalf("line %d of stdout: %v", i+1, err)
		}
		if !json.Valid(line) {
			t.Fatalf("line %d of stdout is not JSON: %q", i+1, line)
		}
	}
	r.Close()

	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("ringwatch run after its stdout closed: %v, want exit status 0\n%s", err, rest)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("ringwatch run still running 20s after its stdout closed, with events coming")
	}
	summary := string(rest)
	t.Logf("stderr:\n%s", summary)
	out := regexp.MustCompile(`(?m)^output: (\d+) records written as JSON(?:, (\d+) not written \(.*broken pipe\))?$`).FindStringSubmatch(summary)
	carried := regexp.MustCompile(`(?m)^source exec: (\d+) records`).FindStringSubmatch(summary)
	if out == nil || carried == nil || !regexp.MustCompile(`(?m)^ringwatch: stopped; carried:$`).MatchString(summary) {
		t.Fatalf("no summary on stderr after stdout closed:\n%s", summary)
	}
	// Every record carried was either written or counted as not written.
	written, notWritten, records := atoi(out[1]), atoi(out[2]), atoi(carried[1])
	if written < 5 || written+notWritten != records {
		t.Errorf("the summary counts %d records written and %d not, of %d carried; 5 lines were read", written, notWritten, records)
	}
}

// atoi is strconv.Atoi of a number the pattern matched; "" is 0.
func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
