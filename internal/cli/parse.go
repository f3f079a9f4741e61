package cli

import (
	"slices"
	"strconv"
	"strings"

	"github.com/ringwatch/ringwatch/internal/abi"
)

// sizeUnits are the binary units a ring size may carry, largest first, as
// abi.FormatSize writes them.
var sizeUnits = []struct {
	suffix string
	shift  uint
}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}}

// sizeHint says what a ring size looks like.
const sizeHint = "give a number of bytes, with KiB, MiB or GiB (binary units) or no unit, such as 4MiB, 256KiB or 65536"

// ParseRingSize reads a ring size such as "4MiB", "256KiB", "1GiB" or a
// plain number of bytes, and checks it with [abi.CheckRingSize]. The
// suffixes are binary; "4M" and "4m" are accepted as "4MiB".
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
	if num == "" || strings.Trim(num, "0123456789") != "" {
		return 0, abi.Problemf(abi.ErrInvalidOption, "ring size %q is not a size: %s", s, sizeHint)
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n > abi.MaxRingSize>>shift {
		// Only digits, so the number is too large for 64 bits or for a ring.
		return 0, abi.Problemf(abi.ErrInvalidOption, "ring size %q is larger than a ring can be (%s: the kernel takes a 32-bit size): choose %s or less",
			s, abi.FormatSize(abi.MaxRingSize), abi.FormatSize(abi.MaxRingSize))
	}
	size := int(n << shift)
	return size, abi.CheckRingSize(size)
}

// SplitList reads a comma-separated list a user gave, such as
// "exec, syscalls": each item trimmed of spaces, none empty, none twice.
// An empty or all-blank s is an empty list.
func SplitList(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var items []string
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, abi.Problemf(abi.ErrInvalidOption, "%q has an empty item: separate the items with single commas, such as a,b", s)
		}
		if slices.Contains(items, item) {
			return nil, abi.Problemf(abi.ErrInvalidOption, "%q is listed twice: give each once", item)
		}
		items = append(items, item)
	}
	return items, nil
}

// MaxPID is the largest process id Linux hands out on a 64-bit machine:
// PID_MAX_LIMIT, 4M (include/linux/threads.h).
const MaxPID = 4 << 20

// ParsePIDs reads a comma-separated list of at most max process ids, as
// [SplitList] does; "" is none.
func ParsePIDs(s string, max int) ([]uint32, error) {
	items, err := SplitList(s)
	if err != nil {
		return nil, err
	}
	if len(items) > max {
		return nil, abi.Problemf(abi.ErrInvalidOption, "%d process ids given: at most %d fit the filter", len(items), max)
	}
	pids := make([]uint32, 0, len(items))
	for _, item := range items {
		n, err := strconv.ParseUint(item, 10, 32)
		if err != nil || n == 0 || n > MaxPID {
			return nil, abi.Problemf(abi.ErrInvalidOption, "%q is not a process id: give whole numbers from 1 to %d, such as 1234,5678", item, MaxPID)
		}
		pids = append(pids, uint32(n))
	}
	return pids, nil
}

// MaxSocketPath is the longest path a unix socket can have: sun_path holds
// 108 bytes with the terminating NUL (include/uapi/linux/un.h).
const MaxSocketPath = 107

// CheckSocketPath reports whether path can name a unix socket. "" is
// allowed: it means none.
func CheckSocketPath(path string) error {
	switch {
	case len(path) > MaxSocketPath:
		return abi.Problemf(abi.ErrInvalidOption, "socket path %q is %d bytes, and a unix socket's path can be at most %d: choose a shorter one",
			path, len(path), MaxSocketPath)
	case strings.ContainsRune(path, 0):
		return abi.Problemf(abi.ErrInvalidOption, "socket path %q holds a NUL byte: choose a plain path", path)
	case path != "" && strings.HasSuffix(path, "/"):
		return abi.Problemf(abi.ErrInvalidOption, "socket path %q names a directory: give the socket's file name too, such as %sctl.sock", path, path)
	}
	return nil
}
