package cpus

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/abi"
)

// Allowed are the CPUs this process may run on, in increasing order:
// its CPU affinity, which taskset, sched_setaffinity and a container's
// cpuset (Kubernetes' static CPU manager, docker --cpuset-cpus) narrow.
// They are not CPUs 0 to runtime.NumCPU()-1: NumCPU counts this set, so
// under taskset -c 2,3 it is 2 and CPU 0 is not one of them. The kernel
// reports the mask as it stands, ANDed with the active CPUs
// (kernel/sched/syscalls.c: sched_getaffinity), so an offline CPU is
// never among them. Nor are they the possible CPUs that per-CPU maps are
// indexed by (ebpf.PossibleCPU), which may be more.
//
// It reads the calling thread's mask, the process's own unless something
// pinned that thread and left it to other goroutines. A machine with more
// than 1024 CPUs is refused (unix.CPUSet holds 1024).
func Allowed() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("read the CPUs this process may run on (sched_getaffinity): %w", err)
	}
	var cpus []int
	for cpu := range len(set) * 64 {
		if set.IsSet(cpu) {
			cpus = append(cpus, cpu)
		}
	}
	return cpus, nil
}

// FormatList writes cpus, in increasing order, in the kernel's CPU list
// format, ranges compacted: 0-3,8,10-11.
func FormatList(cpus []int) string {
	var b strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(cpus[i]))
		if j > i {
			b.WriteString("-" + strconv.Itoa(cpus[j]))
		}
		i = j + 1
	}
	return b.String()
}

// NotAllowed is the error for a CPU a user gave that is not among
// allowed, the CPUs this process may run on ([Allowed]): it says which
// those are, and what sets them. It wraps abi.ErrInvalidOption.
func NotAllowed(cpu int, allowed []int) error {
	return abi.Problemf(abi.ErrInvalidOption,
		"CPU %d is not one this process may run on: it may use %s (its CPU affinity, set by taskset or a container's cpuset)",
		cpu, AllowedPhrase(allowed))
}

// AllowedPhrase names allowed CPUs for a message: "CPU 1 only",
// "CPUs 2-3,5". A running process always has one: the kernel refuses an
// empty affinity mask (sched_setaffinity(2): EINVAL).
func AllowedPhrase(allowed []int) string {
	if len(allowed) == 1 {
		return "CPU " + strconv.Itoa(allowed[0]) + " only"
	}
	return "CPUs " + FormatList(allowed)
}

// ParseList parses a CPU list a user gave in the kernel's CPU list
// format, such as "0-3,8,10-11" (Documentation/admin-guide/cputopology.rst):
// none twice, each one of allowed, the CPUs this process may run on
// ([Allowed]). A range stops at its first CPU not allowed, so
// "0-99999999999" is refused, not allocated. Its errors wrap
// abi.ErrInvalidOption and say what to give.
func ParseList(s string, allowed []int) ([]int, error) {
	return parseList(s, func(cpu int) error {
		if !slices.Contains(allowed, cpu) {
			return NotAllowed(cpu, allowed)
		}
		return nil
	})
}

// parseList parses the kernel's CPU list format, calling check on each
// CPU before it is added: a CPU it refuses ends the parse, before the rest
// of its range is expanded.
func parseList(s string, check func(cpu int) error) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, abi.Problemf(abi.ErrInvalidOption, "the CPU list is empty: give CPU numbers and ranges, such as 0,2 or 0-3")
	}
	var list []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		last := first
		if err == nil && isRange {
			last, err = strconv.Atoi(hi)
		}
		if err != nil || first < 0 || last < first || lo != strings.TrimLeft(lo, "+") || hi != strings.TrimLeft(hi, "+") {
			return nil, abi.Problemf(abi.ErrInvalidOption, "CPU list %q: %q is not a CPU or a range of CPUs: give CPU numbers and ranges, such as 0,2 or 0-3", s, part)
		}
		for cpu := first; cpu <= last; cpu++ {
			if err := check(cpu); err != nil {
				return nil, fmt.Errorf("CPU list %q: %w", s, err)
			}
			if slices.Contains(list, cpu) {
				return nil, abi.Problemf(abi.ErrInvalidOption, "CPU list %q: CPU %d is listed twice: give each once", s, cpu)
			}
			list = append(list, cpu)
		}
	}
	return list, nil
}
