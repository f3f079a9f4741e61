package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringwatch/ringwatch/internal/testenv"
)

// manyCPUs is how many CPUs the tests below need: 15 producers on CPUs
// 1-15 beside the consumers, and the default of 4 consumers (one per 4
// rings).
const manyCPUs = 16

// requireManyCPUs skips t on a machine with fewer than 16 CPUs, as every
// development machine and CI host of this project is: make vmtest boots a
// 16-CPU VM to run it (RINGWATCH_VMTEST is the VM's CPU count there, and a
// VM meant to have 16 that has fewer fails the test).
func requireManyCPUs(t *testing.T) {
	t.Helper()
	if runtime.NumCPU() >= manyCPUs {
		return
	}
	if n, _ := strconv.Atoi(os.Getenv("RINGWATCH_VMTEST")); n >= manyCPUs {
		t.Fatalf("RINGWATCH_VMTEST=%d, yet this process may run on %d CPUs", n, runtime.NumCPU())
	}
	t.Skipf("needs %d CPUs, this machine has %d: make vmtest runs it in a 16-CPU VM", manyCPUs, runtime.NumCPU())
}

// TestScaleBenchManyCPUs runs the scale scenario with 15 producers on
// every transport under the default consumers, and checks the books of
// each: every attempt delivered or counted lost.
func TestScaleBenchManyCPUs(t *testing.T) {
	requireManyCPUs(t)
	testenv.RequireSyscallProgs(t)
	cmd := ringwatchCmd("bench", "--scenario", "scale", "--transport", "ringbuf,percpu-ringbuf,perfbuf,spsc",
		"--size", "64", "--producers", "15", "--max-time", "1s", "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ringwatch bench: %v\n%s", err, stderr.String())
	}
	var results []struct {
		Transport string `json:"transport"`
		Attempted uint64 `json:"attempted"`
		Delivered uint64 `json:"delivered"`
		Lost      uint64 `json:"lost"`
		Producers int    `json:"producers"`
		Consumers int    `json:"consumers"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &results); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout.String())
	}
	seen := map[string]bool{}
	for _, r := range results {
		t.Logf("%+v", r)
		seen[r.Transport] = true
		consumers := 4
		if r.Transport == "ringbuf" {
			consumers = 1
		}
		if r.Producers != 15 || r.Consumers != consumers {
			t.Errorf("%s: %d producers and %d consumers, want 15 and %d", r.Transport, r.Producers, r.Consumers, consumers)
		}
		if r.Delivered == 0 || r.Delivered+r.Lost != r.Attempted {
			t.Errorf("%s: attempted %d, delivered %d, lost %d: the books do not close", r.Transport, r.Attempted, r.Delivered, r.Lost)
		}
	}
	if len(seen) != 4 {
		t.Errorf("results for %v, want every transport", seen)
	}
}

// TestGetpidloopManyCPUs carries real system calls from 15 getpid threads,
// one pinned to each of CPUs 1-15 (examples/getpidloop), through every
// transport with the default consumers, and percpu-ringbuf with 2 and 4
// CPUs per ring. From the exit summary: the books close per ring and for
// the source, every ring of CPUs 1-15 carried records, the consumers are
// one per 4 rings and together read every ring, and the kernel's count of
// events the producer missed plus those it attempted covers every getpid
// call the threads made.
func TestGetpidloopManyCPUs(t *testing.T) {
	requireManyCPUs(t)
	testenv.RequireBPF(t)
	loop := testenv.BuildGetpidloop(t)
	for _, tc := range []struct {
		transport   string
		cpusPerRing int
	}{{"ringbuf", 1}, {"percpu-ringbuf", 1}, {"perfbuf", 1}, {"spsc", 1}, {"percpu-ringbuf", 2}, {"percpu-ringbuf", 4}} {
		t.Run(fmt.Sprintf("%s/cpus-per-ring-%d", tc.transport, tc.cpusPerRing), func(t *testing.T) {
			// getpidloop waits before it starts, for ringwatch to attach;
			// the wait is long enough for a slow emulated machine, and
			// checked below.
			const wait = 8 * time.Second
			var loopOut bytes.Buffer
			lc := exec.Command(loop, "--threads", "15", "--first-cpu", "1", "--wait", wait.String(), "--duration", "2s")
			lc.Stdout, lc.Stderr = &loopOut, &loopOut
			launched := time.Now()
			if err := lc.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if lc.ProcessState == nil {
					lc.Process.Kill()
					lc.Wait()
				}
			}()
			args := []string{"run", "--source", "syscalls", "--transport", tc.transport, "--pid", strconv.Itoa(lc.Process.Pid),
				"--web.listen-address", "127.0.0.1:0"}
			if tc.cpusPerRing > 1 {
				args = append(args, "--cpus-per-ring", strconv.Itoa(tc.cpusPerRing))
			}
			cmd, stderr, banner := startRingwatch(t, io.Discard, args...)
			for {
				line, err := stderr.ReadString('\n')
				if err != nil {
					t.Fatalf("ringwatch never said it attached: %v (banner %q)", err, banner)
				}
				if strings.Contains(line, "attached") {
					break
				}
			}
			if took := time.Since(launched); took >= wait {
				t.Fatalf("ringwatch attached %v after getpidloop started, later than its %v wait: the run missed the start", took, wait)
			}
			if err := lc.Wait(); err != nil {
				t.Fatalf("getpidloop: %v\n%s", err, loopOut.String())
			}
			m := regexp.MustCompile(`(\d+) getpid calls in`).FindStringSubmatch(loopOut.String())
			if m == nil {
				t.Fatalf("getpidloop printed no count:\n%s", loopOut.String())
			}
			calls, _ := strconv.ParseUint(m[1], 10, 64)
			time.Sleep(100 * time.Millisecond) // the last records' wakeups
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			rest, _ := io.ReadAll(stderr)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("ringwatch run after SIGINT: %v\n%s", err, rest)
			}
			summary := string(rest)
			t.Logf("getpidloop: %s\nsummary:\n%s", strings.TrimSpace(loopOut.String()), summary)
			checkManyCPUSummary(t, summary, tc.transport, tc.cpusPerRing, calls)
		})
	}
}

var (
	manyRingLine     = regexp.MustCompile(`(?m)^ring (\S+) \(\S+\): (\d+) records, \d+ bytes, (\d+) lost, (\d+) attempted, (\d+) sequence gaps, (\d+) invalid`)
	manyConsumerLine = regexp.MustCompile(`(?m)^consumer (\d+) \(([^)]*)\):`)
	manySourceLine   = regexp.MustCompile(`(?m)^source syscalls: (\d+) records, \d+ bytes, (\d+) lost, (\d+) attempted, (\d+) sequence gaps, (\d+) missed`)
)

func checkManyCPUSummary(t *testing.T, summary, transport string, cpusPerRing int, calls uint64) {
	t.Helper()
	num := func(s string) uint64 { n, _ := strconv.ParseUint(s, 10, 64); return n }
	rings := manyRingLine.FindAllStringSubmatch(summary, -1)
	// One consumer per 4 rings of CPUs; spsc names one ring per consumer,
	// over its group of queues; ringbuf has one ring.
	wantConsumers := max(1, runtime.NumCPU()/cpusPerRing/4)
	wantRings := runtime.NumCPU() / cpusPerRing
	switch transport {
	case "ringbuf":
		wantRings, wantConsumers = 1, 1
	case "spsc":
		wantRings = wantConsumers
	}
	if len(rings) != wantRings {
		t.Fatalf("%d rings in the summary, want %d", len(rings), wantRings)
	}
	for i, r := range rings {
		records, lost, attempted, gaps, invalid := num(r[2]), num(r[3]), num(r[4]), num(r[5]), num(r[6])
		if records+lost != attempted || gaps != lost || invalid != 0 {
			t.Errorf("ring %s: %d records + %d lost != %d attempted, or %d gaps, %d invalid", r[1], records, lost, attempted, gaps, invalid)
		}
		// Ring i holds CPUs i*cpusPerRing and on; a getpid thread runs on
		// each of CPUs 1-15, so only ring 0 of a ring per CPU may be
		// quiet.
		if attempted == 0 && (i > 0 || cpusPerRing > 1 || transport == "ringbuf" || transport == "spsc") {
			t.Errorf("ring %s carried nothing, yet a getpid thread ran on its CPUs", r[1])
		}
	}
	consumers := manyConsumerLine.FindAllStringSubmatch(summary, -1)
	if len(consumers) != wantConsumers {
		t.Errorf("%d consumers of %d rings, want %d (one per 4 rings of CPUs)", len(consumers), wantRings, wantConsumers)
	}
	read := map[string]int{}
	for _, c := range consumers {
		for name := range strings.SplitSeq(c[2], ",") {
			read[name]++
		}
	}
	for _, r := range rings {
		if read[r[1]] != 1 {
			t.Errorf("ring %s is read by %d consumers, want 1", r[1], read[r[1]])
		}
	}
	s := manySourceLine.FindStringSubmatch(summary)
	if s == nil {
		t.Fatalf("no source syscalls line in the summary")
	}
	records, lost, attempted, gaps, missed := num(s[1]), num(s[2]), num(s[3]), num(s[4]), num(s[5])
	if records+lost != attempted || gaps != lost {
		t.Errorf("source syscalls: %d records + %d lost != %d attempted, or %d gaps", records, lost, attempted, gaps)
	}
	if attempted+missed < calls {
		t.Errorf("getpidloop made %d getpid calls; the producer attempted %d and the kernel says it missed %d: events vanished uncounted",
			calls, attempted, missed)
	}
	if missed > 0 {
		t.Logf("the kernel did not run the producer for %d events (%.2f%%): see README, \"Tested on\"", missed, 100*float64(missed)/float64(attempted+missed))
	}
}
