package loader

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ringwatch/ringwatch/internal/abi"
	"golang.org/x/sys/unix"
)

// The errors Open returns when the machine cannot run the producers. Each
// is wrapped in a message that says what to do; test for them with
// errors.Is.
var (
	// ErrPrivileges means the process lacks CAP_BPF and CAP_PERFMON (or
	// CAP_SYS_ADMIN). It is os.ErrPermission.
	ErrPrivileges = os.ErrPermission
	// ErrNoBTF means the kernel exposes no BTF for CO-RE relocations.
	ErrNoBTF = errors.New("kernel BTF not available")
	// ErrNoTracefs means tracefs is not mounted, so tracepoints cannot be
	// attached.
	ErrNoTracefs = errors.New("tracefs not mounted")
	// ErrInvalidOption means an Options field is out of range: it is
	// abi.ErrInvalidOption.
	ErrInvalidOption = abi.ErrInvalidOption
)

func problemf(kind error, format string, args ...any) error {
	return abi.Problemf(kind, format, args...)
}

// Capability numbers from include/uapi/linux/capability.h.
const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

const privilegeHint = "loading BPF programs needs root (or CAP_BPF and CAP_PERFMON): run ringwatch with sudo"

// checkPrivileges fails unless this process's effective capabilities allow
// loading tracing programs and ring buffers.
func checkPrivileges() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read process capabilities: %w", err)
	}
	return privilegesFrom(uint64(data[0].Effective) | uint64(data[1].Effective)<<32)
}

// privilegesFrom judges a set of effective capabilities.
func privilegesFrom(effective uint64) error {
	has := func(c uint) bool { return effective&(1<<c) != 0 }
	if has(capSysAdmin) || (has(capBPF) && has(capPerfmon)) {
		return nil
	}
	var missing []string
	if !has(capBPF) {
		missing = append(missing, "CAP_BPF")
	}
	if !has(capPerfmon) {
		missing = append(missing, "CAP_PERFMON")
	}
	return problemf(ErrPrivileges, "%s (this process lacks %s)", privilegeHint, strings.Join(missing, " and "))
}

// btfPath is where the kernel exposes its own BTF (CONFIG_DEBUG_INFO_BTF).
const btfPath = "/sys/kernel/btf/vmlinux"

func checkBTF(path string) error {
	if _, err := os.Stat(path); err != nil {
		return problemf(ErrNoBTF, "no kernel BTF at %s: ringwatch's CO-RE programs need a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distribution kernels since 5.4 are)",
			path)
	}
	return nil
}

// tracefsPaths are where tracefs is found, in the order cilium/ebpf looks.
var tracefsPaths = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

func checkTracefs(paths []string) error {
	for _, p := range paths {
		if _, err := os.Stat(p + "/events"); err == nil {
			return nil
		}
	}
	return problemf(ErrNoTracefs, "tracefs is not mounted at %s, and tracepoints are attached through it: mount it with 'mount -t tracefs nodev %s'",
		strings.Join(paths, " or "), paths[0])
}

// CheckPrivileges reports whether this process may load ringwatch's BPF
// programs, before anything is loaded: a command that would otherwise
// start work it cannot finish calls it first. The error says what to do;
// it wraps ErrPrivileges.
func CheckPrivileges() error { return checkPrivileges() }
