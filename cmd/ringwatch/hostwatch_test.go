package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/internal/testenv/ringchild"
)

// scrapeUntil scrapes url until body matches want, and returns it.
func scrapeUntil(t *testing.T, url string, want *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		body := get(t, url)
		if want.MatchString(body) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %v in the metrics after 10s:\n%s", want, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRunServesHostRingsAndProgramStats runs `ringwatch run --prog-stats`
// beside a child with a ring: /metrics shows the child's ring with its
// owner and what it holds, ringwatch's own ring marked as ours, and
// program run counts; once the run has stopped, the statistics are off.
func TestRunServesHostRingsAndProgramStats(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	child := ringchild.Start(t, ringchild.Ring)
	const records = 100
	child.Do(t, fmt.Sprintf("write %d", records))

	cmd, stderr, banner := startRingwatch(t, io.Discard, "run", "--web.listen-address", "127.0.0.1:0", "--ctl.socket", "", "--prog-stats",
		"--host-rings.pause", "250ms")
	url := regexp.MustCompile(`http://\S+/metrics`).FindString(banner)
	id := strconv.FormatUint(uint64(child.MapID), 10)
	scrapeUntil(t, url, regexp.MustCompile(`ringwatch_bpf_program_runs_total\{prog_id="\d+",prog_name="exec_ringbuf"`))
	// The advice comes once the census has measured one span of the ring.
	body := scrapeUntil(t, url, regexp.MustCompile(`ringwatch_host_ring_advised_capacity_bytes\{map_id="`+id+`"`))
	// The child wrote nothing since: a peak of 0, and the smallest ring
	// for the 3200 bytes pending, for the pause asked.
	for _, want := range []string{
		"ringwatch_host_ring_advice_pause_seconds 0.25",
		fmt.Sprintf(`ringwatch_host_ring_peak_produced_bytes_per_second{map_id=%q,map_name=%q} 0`, id, ringchild.RingName),
		fmt.Sprintf(`ringwatch_host_ring_time_to_full_at_peak_seconds{map_id=%q,map_name=%q} +Inf`, id, ringchild.RingName),
		fmt.Sprintf(`ringwatch_host_ring_advised_capacity_bytes{map_id=%q,map_name=%q} %d`, id, ringchild.RingName, max(os.Getpagesize(), 4096)),
		fmt.Sprintf(`ringwatch_host_ring_pending_bytes{map_id=%q,map_name=%q} %d`, id, ringchild.RingName, records*ringchild.RecordBytes),
		fmt.Sprintf(`ringwatch_host_ring_capacity_bytes{map_id=%q,map_name=%q} %d`, id, ringchild.RingName, ringchild.RingSize),
		fmt.Sprintf(`ringwatch_host_ring_info{map_id=%q,map_name=%q,mode="normal",ours="false",owner=%q,programs=%q,type="ringbuf"} 1`,
			id, ringchild.RingName, child.Comm(), ringchild.ProgName),
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !regexp.MustCompile(`ringwatch_host_ring_info\{map_id="\d+",map_name="events",mode="normal",ours="true",owner="[^"]*",programs="exec_ringbuf",type="ringbuf"\} 1`).MatchString(body) {
		t.Errorf("ringwatch's own events ring is not marked as ours:\n%s", grepLines(body, "ringwatch_host_ring_info"))
	}
	if problems, err := promlint.New(strings.NewReader(body)).Lint(); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %+v", err, problems)
	}

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stderr)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ringwatch run after SIGINT: %v\n%s", err, rest)
	}
	before := runCount(t, child.ProgID)
	child.Do(t, "write 50")
	if after := runCount(t, child.ProgID); after != before {
		t.Errorf("run statistics still on after ringwatch run exited: %d runs counted (another process may hold them on)", after-before)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// TestRunWithoutHostRings: --host-rings=false serves no host ring metric,
// and a run without CAP_SYS_ADMIN says once that it has none, and carries
// on.
func TestRunWithoutHostRings(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		testenv.Unavailable(t, "needs setpriv (util-linux) to drop CAP_SYS_ADMIN")
	}
	for _, tc := range []struct {
		name    string
		wrap    []string
		args    []string
		message string
	}{
		{"flag", nil, []string{"--host-rings=false"}, ""},
		{"no CAP_SYS_ADMIN", []string{setpriv, "--inh-caps=-sys_admin", "--bounding-set=-sys_admin", "--"}, nil, "no host ring metrics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"run", "--web.listen-address", "127.0.0.1:0", "--ctl.socket", ""}, tc.args...)
			cmd := ringwatchCmd(args...)
			if tc.wrap != nil {
				cmd.Args = append(append([]string{}, tc.wrap...), cmd.Args...)
				cmd.Path = tc.wrap[0]
			}
			cmd.Stdout = io.Discard
			stderrPipe, err := cmd.StderrPipe()
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
			var stderr strings.Builder
			buf := make([]byte, 4096)
			for !strings.Contains(stderr.String(), "metrics on http") {
				n, err := stderrPipe.Read(buf)
				stderr.Write(buf[:n])
				if err != nil {
					t.Fatalf("ringwatch run ended: %v\n%s", err, stderr.String())
				}
			}
			url := regexp.MustCompile(`http://\S+/metrics`).FindString(stderr.String())
			body := scrapeUntil(t, url, regexp.MustCompile(`ringwatch_ring_capacity_bytes\{ring="events"\}`))
			if strings.Contains(body, "ringwatch_host_ring_") {
				t.Errorf("host ring metrics served:\n%s", grepLines(body, "ringwatch_host_ring_"))
			}
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			rest, _ := io.ReadAll(stderrPipe)
			stderr.Write(rest)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("ringwatch run after SIGINT: %v\n%s", err, stderr.String())
			}
			out := stderr.String()
			if got := strings.Count(out, "CAP_SYS_ADMIN"); tc.message != "" && (got != 1 || !strings.Contains(out, tc.message)) {
				t.Errorf("stderr names CAP_SYS_ADMIN %d times, want once, in %q:\n%s", got, tc.message, out)
			}
			if tc.message == "" && strings.Contains(out, "host ring") {
				t.Errorf("stderr mentions host rings:\n%s", out)
			}
			if !strings.Contains(out, "ring events (ringbuf):") {
				t.Errorf("no summary:\n%s", out)
			}
		})
	}
}
