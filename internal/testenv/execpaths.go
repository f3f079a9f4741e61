package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ExecPaths are paths of /bin/true of several lengths for exec records to
// carry, made as symlinks under dir: /bin/true itself, one of about 100
// bytes, and one longer than the records' FILENAME_LEN (256), which a
// record truncates.
func ExecPaths(t testing.TB, dir string) []string {
	t.Helper()
	mid := filepath.Join(dir, strings.Repeat("m", max(1, 100-len(dir)-1)))
	long := filepath.Join(dir, strings.Repeat("d", 200), strings.Repeat("l", 100))
	if err := os.Mkdir(filepath.Dir(long), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{mid, long} {
		if err := os.Symlink("/bin/true", p); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"/bin/true", mid, long}
}

// TrueAt is a command that execs the /bin/true behind path, one of
// ExecPaths, with argv[0] "true": where /bin/true is a link to busybox (the
// VM matrix's guests), busybox picks its applet by argv[0], and a link's
// own name would make it exit 127. The kernel's record of the exec still
// names path (the tracepoint takes the filename execve was given).
func TrueAt(path string) *exec.Cmd {
	cmd := exec.Command(path)
	cmd.Args[0] = "true"
	return cmd
}
