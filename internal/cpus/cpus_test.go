package cpus

import (
	"errors"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/abi"
)

func TestParseCPUList(t *testing.T) {
	sixteen := make([]int, 16)
	for i := range sixteen {
		sixteen[i] = i
	}
	got, err := ParseList("0-2,5,7-8", sixteen)
	if err != nil || !slices.Equal(got, []int{0, 1, 2, 5, 7, 8}) {
		t.Fatalf("ParseList = %v, %v", got, err)
	}
	if got, err := ParseList(" 0, 2-3", sixteen[:4]); err != nil || !slices.Equal(got, []int{0, 2, 3}) {
		t.Errorf("ParseList with spaces = %v, %v", got, err)
	}
	// A process under taskset -c 2,3,5 may use those CPUs alone, whatever
	// their numbers: not 0 to 2, as counting them would say.
	sparse := []int{2, 3, 5}
	if got, err := ParseList("5,2-3", sparse); err != nil || !slices.Equal(got, []int{5, 2, 3}) {
		t.Errorf("ParseList(5,2-3) allowing 2,3,5 = %v, %v", got, err)
	}
	for _, tc := range []struct {
		in      string
		allowed []int
		want    string
	}{
		{"", sixteen, "the CPU list is empty"},
		{"a", sixteen, `"a" is not a CPU or a range of CPUs: give CPU numbers and ranges, such as 0,2 or 0-3`},
		{"3-1", sixteen, `"3-1" is not a CPU`},
		{"-1", sixteen, `"-1" is not a CPU`},
		{"1-", sixteen, `"1-" is not a CPU`},
		{"0,", sixteen, `"" is not a CPU`},
		{"+1", sixteen, `"+1" is not a CPU`},
		{"1.5", sixteen, `"1.5" is not a CPU`},
		{"16", sixteen, `CPU list "16": CPU 16 is not one this process may run on: it may use CPUs 0-15 (its CPU affinity, set by taskset or a container's cpuset)`},
		// Refused at its first CPU not allowed, before it is expanded: no
		// 100-billion-entry list.
		{"0-99999999999", sixteen, "CPU 16 is not one this process may run on: it may use CPUs 0-15"},
		{"99999999999999999999", sixteen, "is not a CPU"},
		{"0,0", sixteen, "CPU 0 is listed twice: give each once"},
		{"0-3,2", sixteen, "CPU 2 is listed twice"},
		// Below, between and above the allowed CPUs, each named.
		{"0", sparse, "CPU 0 is not one this process may run on: it may use CPUs 2-3,5 (its CPU affinity"},
		{"1", sparse, "CPU 1 is not one"},
		{"2-5", sparse, "CPU 4 is not one this process may run on: it may use CPUs 2-3,5"},
		{"6", sparse, "CPU 6 is not one"},
		{"3,3", sparse, "CPU 3 is listed twice"},
		{"0", []int{1}, "CPU 0 is not one this process may run on: it may use CPU 1 only (its"},
	} {
		_, err := ParseList(tc.in, tc.allowed)
		if !errors.Is(err, abi.ErrInvalidOption) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseList(%q, %v) = %v, want ErrInvalidOption saying %q", tc.in, tc.allowed, err, tc.want)
		}
	}
}

func TestFormatCPUList(t *testing.T) {
	for _, tc := range []struct {
		cpus []int
		want string
	}{
		{nil, ""},
		{[]int{0}, "0"},
		{[]int{0, 1}, "0-1"},
		{[]int{2, 3, 5}, "2-3,5"},
		{[]int{0, 1, 2, 3, 8, 10, 11}, "0-3,8,10-11"},
		{[]int{1, 3, 5}, "1,3,5"},
	} {
		got := FormatList(tc.cpus)
		if got != tc.want {
			t.Errorf("FormatList(%v) = %q, want %q", tc.cpus, got, tc.want)
		}
		if len(tc.cpus) == 0 {
			continue
		}
		// What it writes, ParseList reads back.
		if back, err := ParseList(got, tc.cpus); err != nil || !slices.Equal(back, tc.cpus) {
			t.Errorf("ParseList(FormatList(%v)) = %v, %v", tc.cpus, back, err)
		}
	}
}

// TestAllowedCPUsFollowAffinity narrows this thread's affinity to one CPU
// and checks Allowed then names that CPU alone, whatever its number,
// and that it names as many CPUs as the runtime counts otherwise.
func TestAllowedCPUsFollowAffinity(t *testing.T) {
	all, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != runtime.NumCPU() || !slices.IsSorted(all) {
		t.Fatalf("Allowed = %v, want %d CPUs in order (runtime.NumCPU)", all, runtime.NumCPU())
	}
	if want, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.Lines(string(want)) {
			if list, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok && strings.TrimSpace(list) != FormatList(all) {
				t.Errorf("Allowed = %s, /proc/self/status says %s", FormatList(all), strings.TrimSpace(list))
			}
		}
	}
	last := all[len(all)-1]
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var one, old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		t.Fatal(err)
	}
	one.Set(last)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &old)
	got, err := Allowed()
	if err != nil || !slices.Equal(got, []int{last}) {
		t.Errorf("Allowed on a thread pinned to CPU %d = %v, %v", last, got, err)
	}
}
