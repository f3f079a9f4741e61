package abi

import (
	"errors"
	"os"
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
