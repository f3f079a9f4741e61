package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/testenv"
	tpt "github.com/ringwatch/ringwatch/internal/transport"
	"github.com/ringwatch/ringwatch/pkg/consumer"
	"github.com/ringwatch/ringwatch/pkg/hostrings"
)

// testConfig is `ringwatch run`'s defaults, but for the metrics on a free
// loopback port and the control socket at socket.
func testConfig(socket string) Config {
	return Config{Version: "test", Sources: []string{abi.SourceExec}, Transport: abi.Ringbuf, Wakeup: consumer.WakeupAdaptive,
		Rings:     tpt.Options{RingSize: tpt.DefaultRingSize, CPUsPerRing: 1, Consumers: tpt.AutoConsumers},
		Web:       Web{ListenAddresses: []string{"127.0.0.1:0"}, TelemetryPath: "/metrics"},
		CtlSocket: socket, HostRings: true, HostPause: hostrings.DefaultPause}
}

// TestRunKeepsExactBooks runs the daemon in-process over the real kernel,
// with JSON output: execs of /bin/true while it runs must each reach
// stdout, and the Summary must add up exactly, to the kernel's attempts, to
// the lines written and to the summary printed.
func TestRunKeepsExactBooks(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	before := testenv.Snapshot(t)

	cfg := testConfig(filepath.Join(t.TempDir(), "ctl.sock"))
	cfg.JSONOutput = true
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var stdout, stderr syncBuffer
	type result struct {
		sum Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := Run(ctx, cfg, &stdout, &stderr)
		done <- result{sum, err}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "metrics on http://127.0.0.1:") {
		if time.Now().After(deadline) {
			t.Fatalf("no banner after 30s:\n%s", stderr.String())
		}
		select {
		case r := <-done:
			t.Fatalf("Run ended before its banner: %v\n%s", r.err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}

	pids := map[int]bool{}
	for range 20 {
		c := exec.Command("/bin/true")
		if err := c.Run(); err != nil {
			t.Fatal(err)
		}
		pids[c.Process.Pid] = true
	}
	// The exec records are in the ring once each exec returns: the stop
	// drains them.
	stop()
	r := <-done
	if r.err != nil {
		t.Fatalf("Run: %v\n%s", r.err, stderr.String())
	}
	sum, out := r.sum, stderr.String()

	if len(sum.Sources) != 1 || sum.Sources[0].Name != abi.SourceExec {
		t.Fatalf("summary sources: %+v", sum.Sources)
	}
	src := sum.Sources[0]
	if src.Records+src.Gaps != src.Kernel.Attempts || src.Gaps != src.Kernel.Lost || src.Kernel.Lost != 0 {
		t.Errorf("books of exec: %d records + %d gaps, %d attempted, %d lost by the kernel; want records + gaps = attempted, gaps = lost = 0",
			src.Records, src.Gaps, src.Kernel.Attempts, src.Kernel.Lost)
	}
	if src.Records < uint64(len(pids)) {
		t.Errorf("%d exec records, fewer than the %d execs made", src.Records, len(pids))
	}
	if want := fmt.Sprintf("source exec: %d records, %d bytes, %d lost, %d attempted, %d sequence gaps",
		src.Records, src.Bytes, src.Kernel.Lost, src.Kernel.Attempts, src.Gaps); !strings.Contains(out, want) {
		t.Errorf("printed summary lacks %q:\n%s", want, out)
	}

	if sum.Output == nil {
		t.Fatal("no output stats with JSON output")
	}
	lines := strings.Count(stdout.String(), "\n")
	if o := sum.Output; o.Records != src.Records || o.Accepted != src.Records || o.Invalid != 0 || uint64(lines) != o.Records {
		t.Errorf("output: %+v and %d lines, for %d records carried", *o, lines, src.Records)
	}
	if want := fmt.Sprintf("output: %d records written as JSON\n", sum.Output.Records); !strings.Contains(out, want) {
		t.Errorf("printed summary lacks %q:\n%s", want, out)
	}
	for line := range strings.Lines(stdout.String()) {
		var ev struct {
			Type     string `json:"type"`
			Pid      int    `json:"pid"`
			Filename string `json:"filename"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("stdout line is not JSON: %q", line)
		}
		if ev.Type == abi.SourceExec && ev.Filename == "/bin/true" {
			delete(pids, ev.Pid)
		}
	}
	if len(pids) > 0 {
		t.Errorf("no JSON event for the /bin/true pids %v", pids)
	}
	testenv.WaitForObjects(t, before)
}
