package loader

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestPrivilegesFrom(t *testing.T) {
	bit := func(caps ...uint) (v uint64) {
		for _, c := range caps {
			v |= 1 << c
		}
		return v
	}
	for _, tc := range []struct {
		name    string
		caps    uint64
		missing string // "" when allowed
	}{
		{"root's full set", ^uint64(0), ""},
		{"CAP_SYS_ADMIN alone", bit(capSysAdmin), ""},
		{"CAP_BPF and CAP_PERFMON", bit(capBPF, capPerfmon), ""},
		{"none", 0, "lacks CAP_BPF and CAP_PERFMON"},
		{"CAP_BPF only", bit(capBPF), "lacks CAP_PERFMON"},
		{"CAP_PERFMON only", bit(capPerfmon), "lacks CAP_BPF"},
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

func TestParseRingSize(t *testing.T) {
	page := os.Getpagesize()
	for _, tc := range []struct {
		in   string
		want int // 0: an error wrapping ErrInvalidOption
	}{
		{"4MiB", 4 << 20},
		{"4M", 4 << 20},
		{"4m", 4 << 20},
		{"256KiB", 256 << 10},
		{"1GiB", 1 << 30},
		{" 16 MiB ", 16 << 20},
		{"65536", 65536},
		{"0", 0},
		{"", 0},
		{"-4MiB", 0},
		{"4.5MiB", 0},
		{"3MiB", 0},                             // not a power of two
		{"1KiB", 0},                             // below a page
		{"99999999999999GiB", 0},                // overflows
		{"4MB", 0},                              // decimal units are not taken
		{strconv.Itoa(page / 2), 0},             // half a page
		{strconv.Itoa(page), page},              // one page
		{strconv.Itoa(page*2 + page), 0},        // three pages
		{strconv.Itoa(page * 1024), page << 10}, // 1024 pages
	} {
		got, err := ParseRingSize(tc.in)
		if tc.want == 0 {
			if err == nil || !errors.Is(err, ErrInvalidOption) {
				t.Errorf("ParseRingSize(%q) = %d, %v; want ErrInvalidOption", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseRingSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestCheckRingSizeSuggestsTheNextPowerOfTwo(t *testing.T) {
	err := CheckRingSize(3 << 20)
	if err == nil || !strings.Contains(err.Error(), "try 4MiB") {
		t.Fatalf("CheckRingSize(3MiB) = %v, want a suggestion of 4MiB", err)
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int]string{
		4 << 20: "4MiB", 1 << 30: "1GiB", 256 << 10: "256KiB", 6000: "6000B", 1536: "1536B", 3 << 20: "3MiB",
	} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}
