package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BuildRingwatch builds cmd/ringwatch as `make build` does, without cgo, and
// returns the binary's path. Tests need it where the test binary will not
// do: one built with -race links cgo, and a binary linked with cgo cannot
// drop its capabilities (privilege.ErrCgo). The binary is in a directory
// every user may read and enter, for tests that run it as another user,
// and is removed when t ends.
func BuildRingwatch(t testing.TB) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		Unavailable(t, "needs the go command in PATH to build ringwatch: "+err.Error())
	}
	dir, err := os.MkdirTemp("", "ringwatch-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "ringwatch")
	cmd := exec.Command(goTool, "build", "-trimpath", "-o", bin, "github.com/ringwatch/ringwatch/cmd/ringwatch")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build ringwatch: %v\n%s", err, out)
	}
	return bin
}
