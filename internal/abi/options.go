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

// ParseWakeup checks a wakeup mode a user gave; "" means WakeupAdaptive.
func ParseWakeup(name string) (Wakeup, error) {
	if name == "" {
		return WakeupAdaptive, nil
	}
	if w := Wakeup(name); slices.Contains(Wakeups(), w) {
		return w, nil
	}
	return "", Choose("wakeup mode", name, Wakeups())
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
		return 0, Problemf(ErrInvalidOption, "ring size %q is not a size such as 4MiB, 256KiB or 65536", s)
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
