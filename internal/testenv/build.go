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
// and is removed when t ends. Where RINGWATCH_TEST_RINGWATCH names a
// binary built that way (make vmtest's guests, which have no Go
// toolchain), it returns that instead.
func BuildRingwatch(t testing.TB) string {
	t.Helper()
	return build(t, "RINGWATCH_TEST_RINGWATCH", "github.com/ringwatch/ringwatch/cmd/ringwatch")
}

// BuildGetpidloop builds examples/getpidloop, the load of the scaling
// measurement, without cgo, or returns RINGWATCH_TEST_GETPIDLOOP if set.
func BuildGetpidloop(t testing.TB) string {
	t.Helper()
	return build(t, "RINGWATCH_TEST_GETPIDLOOP", "github.com/ringwatch/ringwatch/examples/getpidloop")
}

func build(t testing.TB, env, pkg string) string {
	t.Helper()
	if bin := os.Getenv(env); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		return bin
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		Unavailable(t, "needs the go command in PATH to build "+pkg+" (or "+env+" naming a built one): "+err.Error())
	}
	dir, err := os.MkdirTemp("", "ringwatch-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command(goTool, "build", "-trimpath", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	return bin
}
