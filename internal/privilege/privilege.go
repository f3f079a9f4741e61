package privilege

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Load is what loading and attaching the producers needs; see the package
// documentation for why each.
var Load = []string{"CAP_BPF", "CAP_PERFMON", "CAP_DAC_READ_SEARCH"}

// Run is what `ringwatch run` keeps once its producers are attached:
// nothing, unless the host census runs (see Census).
var Run = []string{}

// Census is what `ringwatch run` keeps too while its host ring census
// (--host-rings) or program statistics (--prog-stats) run, when it holds
// them: walking every BPF map and program and opening them by ID
// (BPF_MAP_GET_NEXT_ID, BPF_MAP_GET_FD_BY_ID) and BPF_ENABLE_STATS are for
// CAP_SYS_ADMIN alone (kernel/bpf/syscall.c); the census finds each ring's
// owners in other processes' /proc/PID/fd, whose links only a ptrace-read
// check lets through (CAP_SYS_PTRACE: security/commoncap.c,
// cap_ptrace_access_check) in directories of mode 0500 of their owners
// (CAP_DAC_READ_SEARCH). With CAP_SYS_ADMIN alone the census still runs,
// with an empty owner label.
var Census = []string{"CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"}

// names are the capabilities by number, from include/uapi/linux/capability.h.
var names = [...]string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
	"CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// Set is a set of capabilities, bit n for capability number n, as the
// kernel shows them in /proc/PID/status (CapEff and the others).
type Set uint64

// Parse turns capability names such as "CAP_BPF" into a Set.
func Parse(list []string) (Set, error) {
	var s Set
	for _, name := range list {
		n := indexOf(name)
		if n < 0 {
			return 0, fmt.Errorf("unknown capability %q: names look like CAP_BPF", name)
		}
		s |= 1 << n
	}
	return s, nil
}

// MustParse is Parse for the lists of this package.
func MustParse(list []string) Set {
	s, err := Parse(list)
	if err != nil {
		panic(err)
	}
	return s
}

func indexOf(name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}

// Has says whether s holds the capability called name.
func (s Set) Has(name string) bool {
	n := indexOf(name)
	return n >= 0 && s&(1<<n) != 0
}

// Names lists s's capabilities by name, in number order; a capability
// newer than this package is "cap_N".
func (s Set) Names() []string {
	list := []string{}
	for v := uint64(s); v != 0; v &= v - 1 {
		n := bits.TrailingZeros64(v)
		if n < len(names) {
			list = append(list, names[n])
		} else {
			list = append(list, "cap_"+strconv.Itoa(n))
		}
	}
	return list
}

// String is the names joined with commas, or "none".
func (s Set) String() string {
	if s == 0 {
		return "none"
	}
	return strings.Join(s.Names(), ",")
}

// State is a thread's capability sets.
type State struct {
	Effective, Permitted, Inheritable Set
}

// Current reads the calling thread's capabilities (capget(2)).
func Current() (State, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return State{}, fmt.Errorf("read capabilities: %w", err)
	}
	join := func(lo, hi uint32) Set { return Set(uint64(lo) | uint64(hi)<<32) }
	return State{
		Effective:   join(data[0].Effective, data[1].Effective),
		Permitted:   join(data[0].Permitted, data[1].Permitted),
		Inheritable: join(data[0].Inheritable, data[1].Inheritable),
	}, nil
}

// ErrCgo is returned by Drop in a binary linked with cgo, where Go cannot
// change every thread's capabilities.
var ErrCgo = errors.New("a binary built with cgo cannot drop capabilities on every thread: build ringwatch with CGO_ENABLED=0")

// Drop keeps only the capabilities in keep that the process has, and
// gives up every other, on every thread: from the bounding set first
// (when the process holds CAP_SETPCAP, which that needs), then from the
// permitted, effective and inheritable sets, which takes them out of the
// ambient set too (capabilities(7): a capability leaves the ambient set
// when it leaves the permitted or inheritable set). What is gone cannot
// come back, not even through exec of a set-user-ID program once the
// bounding set is cut. It returns the effective set left.
//
// Call it once the work that needs more is done, before handling any
// input from outside. It returns ErrCgo, and changes nothing, in a binary
// linked with cgo.
func Drop(keep Set) (Set, error) {
	cur, err := Current()
	if err != nil {
		return 0, err
	}
	keep &= cur.Permitted
	if cur.Effective&MustParse([]string{"CAP_SETPCAP"}) != 0 {
		last, err := lastCap()
		if err != nil {
			return 0, err
		}
		for n := 0; n <= last; n++ {
			if keep&(1<<n) != 0 {
				continue
			}
			// PR_CAPBSET_DROP of a capability already out of the bounding
			// set succeeds, so every thread returns the same.
			if _, _, errno := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(n), 0); errno != 0 {
				return 0, dropError("drop capability "+Set(1<<n).String()+" from the bounding set", errno)
			}
		}
	}
	// capset(2) changes the calling thread only: hence every thread, with
	// the same header and data. The data is on the heap and lives past
	// the call (AllThreadsSyscall is go:uintptrescapes).
	hdr := &unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := &[2]unix.CapUserData{}
	inheritable := cur.Inheritable & keep
	for i := range data {
		data[i].Effective = uint32(keep >> (32 * i))
		data[i].Permitted = uint32(keep >> (32 * i))
		data[i].Inheritable = uint32(inheritable >> (32 * i))
	}
	if _, _, errno := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(hdr)), uintptr(unsafe.Pointer(&data[0])), 0); errno != 0 {
		return 0, dropError("set capabilities to "+keep.String(), errno)
	}
	now, err := Current()
	if err != nil {
		return 0, err
	}
	return now.Effective, nil
}

func dropError(what string, errno syscall.Errno) error {
	if errno == syscall.ENOTSUP {
		return ErrCgo
	}
	return fmt.Errorf("%s: %w", what, errno)
}

// lastCap is the highest capability number this kernel knows.
func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("read the kernel's last capability: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 || n > 63 {
		return 0, fmt.Errorf("read the kernel's last capability: %q is not a capability number", b)
	}
	return n, nil
}

// Missing lists, by name, the capabilities of need that have lacks.
func Missing(have Set, need []string) []string {
	var missing []string
	for _, name := range need {
		if !have.Has(name) {
			missing = append(missing, name)
		}
	}
	return missing
}

// ParseStatus reads the capability sets of a /proc/PID/status or
// /proc/PID/task/TID/status file: its CapInh, CapPrm, CapEff, CapBnd and
// CapAmb lines, keyed by those names, each a 64-bit hex mask.
func ParseStatus(status []byte) (map[string]Set, error) {
	sets := map[string]Set{}
	for line := range strings.Lines(string(status)) {
		key, value, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(key, "Cap") {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(value), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("parse %s %q: %w", key, strings.TrimSpace(value), err)
		}
		sets[key] = Set(v)
	}
	for _, key := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if _, ok := sets[key]; !ok {
			return nil, fmt.Errorf("no %s line in the status", key)
		}
	}
	return sets, nil
}
