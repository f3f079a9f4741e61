package transport

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ringwatch/ringwatch/internal/abi"
)

func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name abi.Transport
		opts Options
		want string
	}{
		{"carrier-pigeon", Options{}, "choose from ringbuf, percpu-ringbuf, perfbuf, spsc"},
		{abi.Ringbuf, Options{CPUsPerRing: 2}, "applies only to --transport percpu-ringbuf"},
		{abi.PercpuRingbuf, Options{CPUsPerRing: -1}, "give 1 or more"},
		{abi.SPSC, Options{RingSize: 3 << 20}, "try 4MiB"},
	} {
		_, err := New(tc.name, tc.opts)
		if !errors.Is(err, abi.ErrInvalidOption) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q, %+v) = %v, want ErrInvalidOption saying %q", tc.name, tc.opts, err, tc.want)
		}
	}
}

func TestParseCPUList(t *testing.T) {
	got, err := ParseCPUList("0-2,5,7-8", 16)
	if err != nil || !slices.Equal(got, []int{0, 1, 2, 5, 7, 8}) {
		t.Fatalf("ParseCPUList = %v, %v", got, err)
	}
	if got, err := ParseCPUList(" 0, 2-3", 4); err != nil || !slices.Equal(got, []int{0, 2, 3}) {
		t.Errorf("ParseCPUList with spaces = %v, %v", got, err)
	}
	for _, tc := range []struct{ in, want string }{
		{"", "the CPU list is empty"},
		{"a", `"a" is not a CPU or a range of CPUs: give CPU numbers and ranges, such as 0,2 or 0-3`},
		{"3-1", `"3-1" is not a CPU`},
		{"-1", `"-1" is not a CPU`},
		{"1-", `"1-" is not a CPU`},
		{"0,", `"" is not a CPU`},
		{"+1", `"+1" is not a CPU`},
		{"1.5", `"1.5" is not a CPU`},
		{"16", "CPU 16: this machine has CPUs 0 to 15"},
		// Refused before it is expanded: no 100-billion-entry list.
		{"0-99999999999", "CPU 99999999999: this machine has CPUs 0 to 15"},
		{"99999999999999999999", "is not a CPU"},
		{"0,0", "CPU 0 is listed twice: give each once"},
		{"0-3,2", "CPU 2 is listed twice"},
	} {
		_, err := ParseCPUList(tc.in, 16)
		if !errors.Is(err, abi.ErrInvalidOption) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseCPUList(%q) = %v, want ErrInvalidOption saying %q", tc.in, err, tc.want)
		}
	}
}
