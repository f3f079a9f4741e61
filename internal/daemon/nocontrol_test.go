package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/control"
	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/internal/session"
	"github.com/ringwatch/ringwatch/internal/testenv"
)

// TestRunCarriesOnWithoutTheUserRing plays a kernel before 6.1: the control
// program's feature probe fails as loader.OpenControl reports it there
// (ErrUnsupportedKernel). run must say there is no control socket and why,
// create none, and still carry events and end without error with its
// summary, without the user ring's line.
func TestRunCarriesOnWithoutTheUserRing(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	probed := 0
	openControl = func(*session.Session, control.Options) (*session.ControlLink, error) {
		probed++
		return nil, abi.Problemf(loader.ErrUnsupportedKernel,
			"this kernel lacks BPF_MAP_TYPE_USER_RINGBUF, which the user ring needs: run ringwatch on Linux 6.1 or later")
	}
	t.Cleanup(func() { openControl = session.OpenControl })

	socket := filepath.Join(t.TempDir(), "ctl.sock")
	cfg := testConfig(socket)
	cfg.Duration = 300 * time.Millisecond
	var stdout, stderr syncBuffer
	_, err := Run(context.Background(), cfg, &stdout, &stderr)
	out := stderr.String()
	if err != nil {
		t.Fatalf("Run: %v:\n%s", err, out)
	}
	if probed != 1 {
		t.Errorf("the control program was opened %d times, want once", probed)
	}
	for _, want := range []string{
		"ringwatch: no control socket: this kernel lacks BPF_MAP_TYPE_USER_RINGBUF",
		"carrying exec over ringbuf",
		"ringwatch: stopped; carried:",
		"source exec:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "user ring:") || strings.Contains(out, "control socket "+socket) {
		t.Errorf("a run without the user ring reports one:\n%s", out)
	}
	if _, err := os.Lstat(socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket %s: %v, want none", socket, err)
	}
}
