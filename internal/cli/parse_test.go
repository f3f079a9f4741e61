package cli

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ringwatch/ringwatch/internal/abi"
)

func TestParseRingSize(t *testing.T) {
	page := os.Getpagesize()
	for _, tc := range []struct {
		in   string
		want int // 0: an error wrapping abi.ErrInvalidOption
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
			if err == nil || !errors.Is(err, abi.ErrInvalidOption) {
				t.Errorf("ParseRingSize(%q) = %d, %v; want abi.ErrInvalidOption", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseRingSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParseRingSizeSaysWhatIsWrong(t *testing.T) {
	for in, want := range map[string]string{
		"64XB":                 `ring size "64XB" is not a size: give a number of bytes, with KiB, MiB or GiB (binary units) or no unit`,
		"5 parsecs":            "is not a size",
		"":                     "is not a size",
		"1e30":                 "is not a size",
		"-4MiB":                "is not a size",
		"99999999999999999999": `ring size "99999999999999999999" is larger than a ring can be (2GiB: the kernel takes a 32-bit size): choose 2GiB or less`,
		"4GiB":                 "choose 2GiB or less",
		"3MiB":                 "try 4MiB",
	} {
		_, err := ParseRingSize(in)
		if !errors.Is(err, abi.ErrInvalidOption) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRingSize(%q) = %v, want abi.ErrInvalidOption saying %q", in, err, want)
		}
	}
}

func TestSplitList(t *testing.T) {
	for in, want := range map[string][]string{"": nil, "  ": nil, "a": {"a"}, " a , b ": {"a", "b"}} {
		got, err := SplitList(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("SplitList(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"a,a":   `"a" is listed twice: give each once`,
		"a, a":  `"a" is listed twice`,
		"a,":    `"a," has an empty item: separate the items with single commas`,
		",":     "has an empty item",
		"a,,b":  "has an empty item",
		"a, ,b": "has an empty item",
	} {
		_, err := SplitList(in)
		if !errors.Is(err, abi.ErrInvalidOption) || !strings.Contains(err.Error(), want) {
			t.Errorf("SplitList(%q) = %v, want abi.ErrInvalidOption saying %q", in, err, want)
		}
	}
}

func TestParsePIDs(t *testing.T) {
	got, err := ParsePIDs(" 12, 4194304", 2)
	if err != nil || !slices.Equal(got, []uint32{12, MaxPID}) {
		t.Errorf("ParsePIDs = %v, %v", got, err)
	}
	if got, err := ParsePIDs("", 2); err != nil || len(got) != 0 {
		t.Errorf(`ParsePIDs("") = %v, %v; want none`, got, err)
	}
	for in, want := range map[string]string{
		"0":           `"0" is not a process id: give whole numbers from 1 to 4194304`,
		"-1":          `"-1" is not a process id`,
		"4194305":     `"4194305" is not a process id`,
		"99999999999": `"99999999999" is not a process id`,
		"x":           `"x" is not a process id`,
		"1e3":         `"1e3" is not a process id`,
		"1,1":         `"1" is listed twice`,
		"1,2,3":       "3 process ids given: at most 2 fit the filter",
	} {
		_, err := ParsePIDs(in, 2)
		if !errors.Is(err, abi.ErrInvalidOption) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePIDs(%q) = %v, want abi.ErrInvalidOption saying %q", in, err, want)
		}
	}
}

func TestCheckSocketPath(t *testing.T) {
	for _, ok := range []string{"", "/run/ringwatch/ctl.sock", "ctl.sock", "/" + strings.Repeat("s", MaxSocketPath-1)} {
		if err := CheckSocketPath(ok); err != nil {
			t.Errorf("CheckSocketPath(%q) = %v", ok, err)
		}
	}
	for in, want := range map[string]string{
		"/" + strings.Repeat("s", MaxSocketPath): "is 108 bytes, and a unix socket's path can be at most 107: choose a shorter one",
		"/tmp/":                                  `socket path "/tmp/" names a directory: give the socket's file name too, such as /tmp/ctl.sock`,
		"/tmp/a\x00b":                            "holds a NUL byte",
	} {
		err := CheckSocketPath(in)
		if !errors.Is(err, abi.ErrInvalidOption) || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckSocketPath(%q) = %v, want abi.ErrInvalidOption saying %q", in, err, want)
		}
	}
}

// TestParseRingSizeReadsWhatFormatSizeWrites holds the two unit tables,
// here and in abi, to the same units.
func TestParseRingSizeReadsWhatFormatSizeWrites(t *testing.T) {
	for _, size := range []int{os.Getpagesize(), 256 << 10, 4 << 20, 1 << 30, abi.MaxRingSize} {
		if got, err := ParseRingSize(abi.FormatSize(size)); err != nil || got != size {
			t.Errorf("ParseRingSize(FormatSize(%d) = %q) = %d, %v", size, abi.FormatSize(size), got, err)
		}
	}
}

func TestRewordNamesTheFlags(t *testing.T) {
	flags := map[string]string{"CPUsPerRing": "--cpus-per-ring", "Transport": "--transport"}
	refusal := abi.RefuseOption(abi.ErrInvalidOption, "CPUsPerRing", 2, "{CPUsPerRing} %d applies only to {Transport} %s", 2, "percpu-ringbuf")
	other := abi.RefuseOption(nil, "Socket", "/s", "%s is taken: choose another {Socket}", "/s")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{refusal, "--cpus-per-ring 2 applies only to --transport percpu-ringbuf"},
		{fmt.Errorf("open transport: %w", refusal), "open transport: --cpus-per-ring 2 applies only to --transport percpu-ringbuf"},
		{errors.Join(fmt.Errorf("load: %w", refusal), other),
			"load: --cpus-per-ring 2 applies only to --transport percpu-ringbuf\n/s is taken: choose another Socket"},
	} {
		got := Reword(tc.err, flags)
		if got.Error() != tc.want {
			t.Errorf("Reword(%q) = %q, want %q", tc.err, got, tc.want)
		}
		if !errors.Is(got, abi.ErrInvalidOption) {
			t.Errorf("Reword(%q) no longer wraps ErrInvalidOption", tc.err)
		}
	}
	plain := errors.New("no option here")
	if got := Reword(plain, flags); got != plain {
		t.Errorf("Reword(%v) = %v, want it unchanged", plain, got)
	}
	if Reword(nil, flags) != nil {
		t.Error("Reword(nil) is not nil")
	}
}
