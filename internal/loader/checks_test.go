package loader

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringwatch/ringwatch/internal/privilege"
)

func TestPrivilegesFrom(t *testing.T) {
	bit := func(caps ...string) privilege.Set { return privilege.MustParse(caps) }
	for _, tc := range []struct {
		name    string
		caps    privilege.Set
		missing string // "" when allowed
	}{
		{"root's full set", ^privilege.Set(0), ""},
		{"CAP_SYS_ADMIN alone", bit("CAP_SYS_ADMIN"), ""},
		{"CAP_BPF and CAP_PERFMON", bit("CAP_BPF", "CAP_PERFMON"), ""},
		{"none", 0, "lacks CAP_BPF and CAP_PERFMON"},
		{"CAP_BPF only", bit("CAP_BPF"), "(this process lacks CAP_PERFMON)"},
		{"CAP_PERFMON only", bit("CAP_PERFMON", "CAP_DAC_READ_SEARCH"), "(this process lacks CAP_BPF)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := privilegesFrom(tc.caps)
			if tc.missing == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrPrivileges) || !errors.Is(err, os.ErrPermission) {
				t.Fatalf("err = %v, want ErrPrivileges", err)
			}
			for _, want := range []string{"needs root (or CAP_BPF and CAP_PERFMON)", "run ringwatch with sudo", tc.missing} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

func TestCheckTracefs(t *testing.T) {
	mounted, unmounted := t.TempDir(), t.TempDir()
	if err := os.Mkdir(filepath.Join(mounted, "events"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkTracefs([]string{unmounted, mounted}); err != nil {
		t.Errorf("tracefs at the second path: %v", err)
	}
	err := checkTracefs([]string{unmounted})
	if !errors.Is(err, ErrNoTracefs) || !strings.Contains(err.Error(), "mount -t tracefs nodev "+unmounted) {
		t.Errorf("err = %v, want ErrNoTracefs saying how to mount it", err)
	}
}

func TestCheckBTF(t *testing.T) {
	present := filepath.Join(t.TempDir(), "vmlinux")
	if err := os.WriteFile(present, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkBTF(present); err != nil {
		t.Errorf("BTF present: %v", err)
	}
	err := checkBTF(present + ".missing")
	if !errors.Is(err, ErrNoBTF) || !strings.Contains(err.Error(), "CONFIG_DEBUG_INFO_BTF=y") {
		t.Errorf("err = %v, want ErrNoBTF naming CONFIG_DEBUG_INFO_BTF", err)
	}
}
