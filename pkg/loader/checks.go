package loader

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

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
	// ErrInvalidOption means an Options field is out of range.
	ErrInvalidOption = errors.New("invalid option")
)

// problem is an error whose message already says what is wrong and what
// to do. It unwraps to one of the sentinels above for errors.Is, without
// appending the sentinel's text to a message meant for people.
type problem struct {
	msg  string
	kind error
}

func (p *problem) Error() string { return p.msg }
func (p *problem) Unwrap() error { return p.kind }

func problemf(kind error, format string, args ...any) error {
	return &problem{msg: fmt.Sprintf(format, args...), kind: kind}
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

// CheckRingSize reports whether size can be the data size of a BPF ring
// buffer: the kernel requires a power of two that is a multiple of the page
// size (kernel/bpf/ringbuf.c: ringbuf_map_alloc).
func CheckRingSize(size int) error {
	page := os.Getpagesize()
	if size >= page && size%page == 0 && size&(size-1) == 0 {
		return nil
	}
	suggest := page
	for suggest < size && suggest < 1<<30 {
		suggest <<= 1
	}
	return problemf(ErrInvalidOption, "ring size %s is not a power-of-two multiple of the page size (%s): try %s",
		FormatSize(size), FormatSize(page), FormatSize(suggest))
}

var sizeUnits = []struct {
	suffix string
	shift  uint
}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}}

// ParseRingSize reads a ring size such as "4MiB", "256KiB", "1GiB" or a
// plain number of bytes, and checks it with [CheckRingSize]. The suffixes
// are binary; "4M" and "4m" are accepted as "4MiB".
func ParseRingSize(s string) (int, error) {
	num, shift := strings.TrimSpace(s), uint(0)
	for _, u := range sizeUnits {
		for _, suffix := range []string{u.suffix, u.suffix[:1], strings.ToLower(u.suffix[:1])} {
			if strings.HasSuffix(num, suffix) {
				num, shift = strings.TrimSpace(strings.TrimSuffix(num, suffix)), u.shift
				break
			}
		}
		if shift != 0 {
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n == 0 || n > 1<<(40-shift) {
		return 0, problemf(ErrInvalidOption, "ring size %q is not a size such as 4MiB, 256KiB or 65536", s)
	}
	size := int(n << shift)
	return size, CheckRingSize(size)
}

// FormatSize writes a byte count in the largest binary unit that divides
// it exactly: 4194304 is "4MiB", 6000 is "6000B".
func FormatSize(n int) string {
	for _, u := range sizeUnits {
		if n > 0 && n%(1<<u.shift) == 0 {
			return strconv.Itoa(n>>u.shift) + u.suffix
		}
	}
	return strconv.Itoa(n) + "B"
}
