package testenv

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestAtomicsProbeMatchesTheKernelVersion: the atomics probe must find
// what the kernel's version promises (BPF atomics from 5.12), or RequireBPF
// would skip every producer test on a kernel that has them, or let them
// fail on one that has not.
func TestAtomicsProbeMatchesTheKernelVersion(t *testing.T) {
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root to load the probe program")
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var major, minor int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor); err != nil {
		t.Fatalf("kernel release %q: %v", u.Release, err)
	}
	has := major > 5 || (major == 5 && minor >= 12)
	if err := haveAtomics(); (err == nil) != has {
		t.Errorf("Linux %d.%d: atomics probe says %v", major, minor, err)
	}
}
