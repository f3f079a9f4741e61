package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ringwatch/ringwatch/internal/testenv"
)

func TestParseBenchFlags(t *testing.T) {
	cfg, err := parseBenchFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.opts
	if len(o.Scenarios) != 4 || len(o.Transports) != 4 || len(o.Sizes) != 5 || len(o.Wakeups) != 3 || !o.Peers ||
		o.RingSize != 4<<20 || o.Records != 4<<20 || o.Duration != 3*time.Second || len(o.Rates) != 3 || cfg.json {
		t.Errorf("defaults: %+v", cfg)
	}
	cfg, err = parseBenchFlags([]string{"--quick", "--size", "64", "--json"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.opts; len(o.Sizes) != 1 || o.Records != 1<<20 || o.Duration != 300*time.Millisecond || o.MaxTime != time.Second || !cfg.json {
		t.Errorf("--quick with an explicit --size: %+v", cfg)
	}
	// Bad values: TestEveryFlagRefusesBadValues.
	var help bytes.Buffer
	if _, err := parseBenchFlags([]string{"--help"}, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"--scenario", "--transport", "--size", "--wakeup", "--peers", "--ring-size", "--records",
		"--max-time", "--rates", "--duration", "--pings", "--producer-cpu", "--consumer-cpu", "--quick", "--json",
		"drain", "saturation", "latency", "roundtrip", "cilium", "Exit status"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("bench --help does not mention %s", want)
		}
	}
}

// TestBenchRunsAsACommand runs the real binary on one small drain, with
// JSON out, and checks the peer was measured beside ringwatch.
func TestBenchRunsAsACommand(t *testing.T) {
	testenv.RequireSyscallProgs(t) // the bench producer is a syscall program
	testenv.RequireCPUs(t, 2)
	cmd := ringwatchCmd("bench", "--scenario", "drain", "--transport", "ringbuf", "--size", "64",
		"--ring-size", "64KiB", "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ringwatch bench: %v\n%s", err, stderr.String())
	}
	var results []struct {
		Scenario    string  `json:"scenario"`
		Consumer    string  `json:"consumer"`
		Delivered   uint64  `json:"delivered"`
		NsPerRecord float64 `json:"ns_per_record"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &results); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout.String())
	}
	if len(results) != 2 || results[0].Consumer != "ringwatch" || results[1].Consumer != "cilium-ringbuf" {
		t.Fatalf("results: %+v", results)
	}
	for _, r := range results {
		if r.Scenario != "drain" || r.Delivered == 0 || r.NsPerRecord <= 0 {
			t.Errorf("result %+v", r)
		}
	}
	if !strings.Contains(stderr.String(), "drain: ringbuf, 64-byte records") {
		t.Errorf("no progress on stderr:\n%s", stderr.String())
	}
}
