package abi

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// ErrInvalidOption is wrapped by every error about an option out of range:
// a name no list holds, a size the kernel refuses. Test for it with
// errors.Is; the message already says what to choose instead.
var ErrInvalidOption = errors.New("invalid option")

// Problem is an error whose message already says what is wrong and what to
// do. It unwraps to a sentinel such as ErrInvalidOption for errors.Is,
// without appending the sentinel's text to a message meant for people.
type Problem struct {
	Msg  string
	Kind error
}

func (p *Problem) Error() string { return p.Msg }
func (p *Problem) Unwrap() error { return p.Kind }

// Problemf formats a Problem of the given kind.
func Problemf(kind error, format string, args ...any) error {
	return &Problem{Msg: fmt.Sprintf(format, args...), Kind: kind}
}

// Choose is the error for a value not among names: it lists them.
func Choose[T ~string](what string, value string, names []T) error {
	list := make([]string, len(names))
	for i, n := range names {
		list[i] = string(n)
	}
	return Problemf(ErrInvalidOption, "unknown %s %q: choose from %s", what, value, strings.Join(list, ", "))
}

// MaxRingSize is the largest ring: a map's max_entries, a ring buffer's
// data size, is a 32-bit number, and a power of two.
const MaxRingSize = 1 << 31

// CheckRingSize reports whether size can be the data size of a BPF ring
// buffer: the kernel requires a power of two that is a multiple of the page
// size (kernel/bpf/ringbuf.c: ringbuf_map_alloc), and at most MaxRingSize.
func CheckRingSize(size int) error {
	if size > MaxRingSize {
		return Problemf(ErrInvalidOption, "ring size %s is larger than a ring can be (%s: the kernel takes a 32-bit size): choose %s or less",
			FormatSize(size), FormatSize(MaxRingSize), FormatSize(MaxRingSize))
	}
	page := os.Getpagesize()
	if size >= page && size%page == 0 && size&(size-1) == 0 {
		return nil
	}
	suggest := page
	for suggest < size && suggest < 1<<30 {
		suggest <<= 1
	}
	return Problemf(ErrInvalidOption, "ring size %s is not a power-of-two multiple of the page size (%s): try %s",
		FormatSize(size), FormatSize(page), FormatSize(suggest))
}

var sizeUnits = []struct {
	suffix string
	shift  uint
}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}}

// sizeHint says what a ring size looks like.
const sizeHint = "give a number of bytes, with KiB, MiB or GiB (binary units) or no unit, such as 4MiB, 256KiB or 65536"

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
	if num == "" || strings.Trim(num, "0123456789") != "" {
		return 0, Problemf(ErrInvalidOption, "ring size %q is not a size: %s", s, sizeHint)
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n > MaxRingSize>>shift {
		// Only digits, so the number is too large for 64 bits or for a ring.
		return 0, Problemf(ErrInvalidOption, "ring size %q is larger than a ring can be (%s: the kernel takes a 32-bit size): choose %s or less",
			s, FormatSize(MaxRingSize), FormatSize(MaxRingSize))
	}
	size := int(n << shift)
	return size, CheckRingSize(size)
}

// SplitList reads a comma-separated list a user gave, such as
// "exec, syscalls": each item trimmed of spaces, none empty, none twice.
// An empty or all-blank s is an empty list. Its errors wrap
// ErrInvalidOption.
func SplitList(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var items []string
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, Problemf(ErrInvalidOption, "%q has an empty item: separate the items with single commas, such as a,b", s)
		}
		if slices.Contains(items, item) {
			return nil, Problemf(ErrInvalidOption, "%q is listed twice: give each once", item)
		}
		items = append(items, item)
	}
	return items, nil
}

// MaxPID is the largest process id Linux hands out on a 64-bit machine:
// PID_MAX_LIMIT, 4M (include/linux/threads.h).
const MaxPID = 4 << 20

// ParsePIDs reads a comma-separated list of at most max process ids, as
// [SplitList] does; "" is none. Its errors wrap ErrInvalidOption.
func ParsePIDs(s string, max int) ([]uint32, error) {
	items, err := SplitList(s)
	if err != nil {
		return nil, err
	}
	if len(items) > max {
		return nil, Problemf(ErrInvalidOption, "%d process ids given: at most %d fit the filter", len(items), max)
	}
	pids := make([]uint32, 0, len(items))
	for _, item := range items {
		n, err := strconv.ParseUint(item, 10, 32)
		if err != nil || n == 0 || n > MaxPID {
			return nil, Problemf(ErrInvalidOption, "%q is not a process id: give whole numbers from 1 to %d, such as 1234,5678", item, MaxPID)
		}
		pids = append(pids, uint32(n))
	}
	return pids, nil
}

// MaxSocketPath is the longest path a unix socket can have: sun_path holds
// 108 bytes with the terminating NUL (include/uapi/linux/un.h).
const MaxSocketPath = 107

// CheckSocketPath reports whether path can name a unix socket. "" is
// allowed: it means none. Its errors wrap ErrInvalidOption.
func CheckSocketPath(path string) error {
	switch {
	case len(path) > MaxSocketPath:
		return Problemf(ErrInvalidOption, "socket path %q is %d bytes, and a unix socket's path can be at most %d: choose a shorter one",
			path, len(path), MaxSocketPath)
	case strings.ContainsRune(path, 0):
		return Problemf(ErrInvalidOption, "socket path %q holds a NUL byte: choose a plain path", path)
	case path != "" && strings.HasSuffix(path, "/"):
		return Problemf(ErrInvalidOption, "socket path %q names a directory: give the socket's file name too, such as %sctl.sock", path, path)
	}
	return nil
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
