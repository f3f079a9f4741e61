package abi

import (
	"errors"
	"fmt"
	"os"
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

// OptionError is an option's value a library refuses: which option, which
// value, and why. Its message names options as the library's API does (a
// field such as CPUsPerRing), never as a program's flags, so a program
// with other flags can still use the library: it writes the message with
// its own names through [OptionError.Text]. It unwraps to Err, which
// [RefuseOption] sets to the kind it is given, such as ErrInvalidOption.
type OptionError struct {
	Option string `json:"option"` // the option refused, as its library names it
	Value  string `json:"value"`  // the value refused, as given
	// Message is the whole message, in which each option it names, Option
	// included, is written in braces: "{CPUsPerRing} 2 applies only to
	// {Transport} percpu-ringbuf". A literal brace is doubled.
	Message string `json:"message"`
	Err     error  `json:"-"`
}

// RefuseOption is the OptionError of kind for option's value. format and
// args say why, as for fmt.Sprintf; an option format names is written in
// braces, such as {Consumers}, and the braces in args are taken literally.
func RefuseOption(kind error, option string, value any, format string, args ...any) *OptionError {
	literal := strings.NewReplacer("{", "{{", "}", "}}")
	escaped := make([]any, len(args))
	for i, a := range args {
		switch a := a.(type) {
		case string:
			escaped[i] = literal.Replace(a)
		case error:
			escaped[i] = literal.Replace(a.Error())
		default:
			escaped[i] = a
		}
	}
	return &OptionError{Option: option, Value: fmt.Sprint(value), Message: fmt.Sprintf(format, escaped...), Err: kind}
}

// Words is a line a library prints, such as a note or a hint, with each
// option it names, written in braces as for [RefuseOption], called
// name(option); a nil name keeps the library's names. Programs pass their
// flags' names, as [OptionError.Text] does for errors.
func Words(name func(option string) string, format string, args ...any) string {
	if name == nil {
		name = func(option string) string { return option }
	}
	return RefuseOption(nil, "", "", format, args...).Text(name)
}

// Error names each option as the library does.
func (e *OptionError) Error() string { return e.Text(func(option string) string { return option }) }

func (e *OptionError) Unwrap() error { return e.Err }

// Text is the message with each option it names called name(option).
func (e *OptionError) Text(name func(option string) string) string {
	var b strings.Builder
	rest := e.Message
	for rest != "" {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:i])
		rest = rest[i:]
		switch {
		case strings.HasPrefix(rest, "{{"), strings.HasPrefix(rest, "}}"):
			b.WriteByte(rest[0])
			rest = rest[2:]
		case rest[0] == '{' && strings.Contains(rest, "}"):
			end := strings.IndexByte(rest, '}')
			b.WriteString(name(rest[1:end]))
			rest = rest[end+1:]
		default: // a lone brace: keep it
			b.WriteByte(rest[0])
			rest = rest[1:]
		}
	}
	return b.String()
}

// OptionErrors are the OptionErrors in err's tree, however deep, in the
// order errors.As would meet them.
func OptionErrors(err error) []*OptionError {
	switch e := err.(type) {
	case *OptionError:
		return []*OptionError{e}
	case interface{ Unwrap() error }:
		return OptionErrors(e.Unwrap())
	case interface{ Unwrap() []error }:
		var found []*OptionError
		for _, inner := range e.Unwrap() {
			found = append(found, OptionErrors(inner)...)
		}
		return found
	}
	return nil
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

// sizeUnits are the binary units FormatSize writes, largest first.
var sizeUnits = []struct {
	suffix string
	shift  uint
}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}}

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
