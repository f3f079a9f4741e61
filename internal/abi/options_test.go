package abi

import (
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

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

func TestCheckRingSizeRefusesWhatTheKernelCannotTake(t *testing.T) {
	for _, size := range []int{MaxRingSize * 2, 64 << 30} {
		err := CheckRingSize(size)
		if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "choose 2GiB or less") {
			t.Errorf("CheckRingSize(%s) = %v, want the 2GiB limit", FormatSize(size), err)
		}
	}
	if err := CheckRingSize(MaxRingSize); err != nil {
		t.Errorf("CheckRingSize(2GiB) = %v", err)
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
		if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRingSize(%q) = %v, want ErrInvalidOption saying %q", in, err, want)
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
		if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), want) {
			t.Errorf("SplitList(%q) = %v, want ErrInvalidOption saying %q", in, err, want)
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
		if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePIDs(%q) = %v, want ErrInvalidOption saying %q", in, err, want)
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
		if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckSocketPath(%q) = %v, want ErrInvalidOption saying %q", in, err, want)
		}
	}
}
