package testenv

import (
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
)

// RequireUserRing stops t unless this process can do what RequireBPF
// checks and also create a BPF_MAP_TYPE_USER_RINGBUF and load a
// BPF_PROG_TYPE_SYSCALL program to drain it (Linux 6.1).
func RequireUserRing(t testing.TB) {
	t.Helper()
	RequireBPF(t)
	if err := features.HaveMapType(ebpf.UserRingbuf); err != nil {
		Unavailable(t, fmt.Sprintf("kernel lacks BPF_MAP_TYPE_USER_RINGBUF (Linux 6.1): %v", err))
	}
	RequireSyscallProgs(t)
}
