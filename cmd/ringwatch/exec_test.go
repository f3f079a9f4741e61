package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ringwatch/ringwatch/internal/testenv"
)

// TestRunExecJSONOnEveryTransport runs `ringwatch run --source exec
// --output json` on each transport while paths of /bin/true of three
// lengths are exec'd: a short one, one of about 100 bytes and one longer
// than an exec record holds. Records are as long as their filename, and
// the JSON must not show it: every object has the same keys as ever, the
// filename whole (cut to 255 bytes and flagged for the long one), and the
// comm the kernel gave the process.
func TestRunExecJSONOnEveryTransport(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	paths := testenv.ExecPaths(t, t.TempDir())
	keys := []string{"comm", "cpu", "filename", "filename_truncated", "ktime_ns", "pid", "ppid", "seq", "type", "uid"}

	for _, transport := range []string{"ringbuf", "percpu-ringbuf", "perfbuf", "spsc"} {
		t.Run(transport, func(t *testing.T) {
			var stdout bytes.Buffer
			cmd, stderr, _ := startRingwatch(t, &stdout, "run", "--source", "exec", "--transport", transport,
				"--output", "json", "--web.listen-address", "127.0.0.1:0")
			want := map[int]string{} // filename, by pid
			for _, path := range paths {
				c := testenv.TrueAt(path)
				if err := c.Run(); err != nil {
					t.Fatalf("run %s: %v", path, err)
				}
				want[c.Process.Pid] = path
			}
			// The records are in the rings once the execs returned, and run
			// drains the rings before it exits.
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			rest, _ := io.ReadAll(stderr)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("ringwatch run after SIGINT: %v\n%s", err, rest)
			}

			got := map[int]map[string]any{}
			for line := range strings.Lines(stdout.String()) {
				var ev map[string]any
				if err := json.Unmarshal([]byte(line), &ev); err != nil {
					t.Fatalf("stdout line is not JSON: %q", line)
				}
				if pid, ok := ev["pid"].(float64); ok && want[int(pid)] != "" {
					got[int(pid)] = ev
				}
			}
			for pid, path := range want {
				ev := got[pid]
				if ev == nil {
					t.Errorf("no JSON object for pid %d (%d-byte path)", pid, len(path))
					continue
				}
				var have []string
				for k := range ev {
					have = append(have, k)
				}
				slices.Sort(have)
				filename, truncated := path, false
				if len(path) > 255 {
					filename, truncated = path[:255], true
				}
				comm := filepath.Base(path)
				comm = comm[:min(len(comm), 15)]
				wantEv := map[string]any{"type": "exec", "pid": float64(pid), "ppid": float64(os.Getpid()),
					"uid": float64(os.Getuid()), "comm": comm, "filename": filename, "filename_truncated": truncated}
				for k, v := range wantEv {
					if !reflect.DeepEqual(ev[k], v) {
						t.Errorf("%d-byte path: %s is %v, want %v", len(path), k, ev[k], v)
					}
				}
				if !slices.Equal(have, keys) {
					t.Errorf("%d-byte path: keys %v, want %v", len(path), have, keys)
				}
			}
		})
	}
}
