package loader

import (
	"errors"
	"io/fs"
	"os"
	"strings"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/privilege"
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

const privilegeHint = "loading BPF programs needs root (or CAP_BPF and CAP_PERFMON): run ringwatch with sudo, or give it the capabilities README's Deploying lists"

// checkPrivileges fails unless this process's effective capabilities allow
// loading tracing programs and ring buffers.
func checkPrivileges() error {
	cur, err := privilege.Current()
	if err != nil {
		return err
	}
	return privilegesFrom(cur.Effective)
}

// privilegesFrom judges a set of effective capabilities: CAP_BPF and
// CAP_PERFMON, or CAP_SYS_ADMIN, which stands in for both (Linux 5.8,
// include/linux/capability.h: bpf_capable, perfmon_capable).
func privilegesFrom(effective privilege.Set) error {
	need := []string{"CAP_BPF", "CAP_PERFMON"}
	missing := privilege.Missing(effective, need)
	if effective.Has("CAP_SYS_ADMIN") || len(missing) == 0 {
		return nil
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
		_, err := os.Stat(p + "/events")
		if err == nil {
			return nil
		}
		if errors.Is(err, fs.ErrPermission) {
			// tracefs is mode 0700 root: another user reads it with
			// CAP_DAC_READ_SEARCH.
			return problemf(ErrPrivileges, "tracefs at %s is readable only by root, and the exec source reads its tracepoint there: run ringwatch as root, or give it CAP_DAC_READ_SEARCH too (this process, uid %d, lacks it)",
				p, os.Geteuid())
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
