package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// A FlagSet's values check what they are given as the command line is
// read: a flag's value of the wrong type or out of its range, or a flag
// given twice, is refused with a message that names the flag, quotes what
// was given and says what is valid. Checks that take several flags
// together, or the names a list may hold, come after parsing, in the
// command, from the packages that define the options.

// MaxCount is the largest count a flag takes when nothing smaller bounds
// it: the largest 32-bit int, so a count fits every platform's int.
const MaxCount = math.MaxInt32

// FlagSet is a flag.FlagSet whose flags are checked values. Its name, as
// messages and the help give it, is the command's: "ringwatch run".
type FlagSet struct{ *flag.FlagSet }

// NewFlagSet returns an empty FlagSet for the command name.
func NewFlagSet(name string) FlagSet {
	return FlagSet{flag.NewFlagSet(name, flag.ContinueOnError)}
}

// refusal is what every value here has: what it was given, and why the
// last value was refused, in words that name the flag.
type refusal struct {
	name  string
	given []string
	err   error
}

func (r *refusal) refused() error { return r.err }

// refuse records why value is refused; format says what is valid.
func (r *refusal) refuse(format string, args ...any) error {
	r.err = fmt.Errorf(format, args...)
	return r.err
}

// once records value and refuses a flag given a second time.
func (r *refusal) once(value string) error {
	r.given = append(r.given, value)
	if len(r.given) > 1 {
		return r.refuse("--%s is given twice (%q, then %q): give it once", r.name, r.given[0], value)
	}
	return nil
}

// StringValue is a string flag; what it may hold is checked after parsing.
type StringValue struct {
	refusal
	p *string
}

func (v *StringValue) String() string   { return *v.p }
func (v *StringValue) typeName() string { return "string" }
func (v *StringValue) Set(s string) error {
	if err := v.once(s); err != nil {
		return err
	}
	*v.p = s
	return nil
}

// String defines a string flag.
func (fs FlagSet) String(name, value, usage string) *string {
	v := &StringValue{refusal{name: name}, new(string)}
	*v.p = value
	fs.Var(v, name, usage)
	return v.p
}

// IntValue is an integer flag from min to max; note, if any, says what a
// value means, for the message that refuses one.
type IntValue struct {
	refusal
	p        *int
	min, max int
	note     string
}

func (v *IntValue) String() string   { return strconv.Itoa(*v.p) }
func (v *IntValue) typeName() string { return "int" }

// valid says which values the flag takes.
func (v *IntValue) valid() string {
	s := fmt.Sprintf("%d to %d", v.min, v.max)
	if v.max == MaxCount {
		s = fmt.Sprintf("%d or more", v.min)
	}
	if v.note != "" {
		s += " (" + v.note + ")"
	}
	return s
}

func (v *IntValue) Set(s string) error {
	if err := v.once(s); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	if errors.Is(err, strconv.ErrRange) {
		return v.refuse("--%s %s is out of range: give %s", v.name, s, v.valid())
	}
	if err != nil {
		return v.refuse("--%s %q is not a whole number: give %s", v.name, s, v.valid())
	}
	if n < v.min || n > v.max {
		return v.refuse("--%s %d is out of range: give %s", v.name, n, v.valid())
	}
	*v.p = n
	return nil
}

// Int defines an integer flag that takes min to max (MaxCount for no
// bound of its own).
func (fs FlagSet) Int(name string, value, min, max int, note, usage string) *int {
	v := &IntValue{refusal: refusal{name: name}, p: new(int), min: min, max: max, note: note}
	*v.p = value
	fs.Var(v, name, usage)
	return v.p
}

// DurationValue is a duration flag of at least min: 0 or 1ns.
type DurationValue struct {
	refusal
	p       *time.Duration
	min     time.Duration
	example string
}

func (v *DurationValue) String() string   { return v.p.String() }
func (v *DurationValue) typeName() string { return "duration" }

func (v *DurationValue) Set(s string) error {
	if err := v.once(s); err != nil {
		return err
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return v.refuse("--%s %q is not a duration: give a number and a unit (ns, us, ms, s, m or h), such as %s",
			v.name, s, v.example)
	case d < v.min && v.min > 0:
		return v.refuse("--%s %s is not positive: give a duration such as %s", v.name, s, v.example)
	case d < v.min:
		return v.refuse("--%s %s is negative: give 0 or a duration such as %s", v.name, s, v.example)
	}
	*v.p = d
	return nil
}

// Duration defines a duration flag; positive refuses 0, and example is a
// valid value for the message that refuses another.
func (fs FlagSet) Duration(name string, value time.Duration, positive bool, example, usage string) *time.Duration {
	v := &DurationValue{refusal: refusal{name: name}, p: new(time.Duration), example: example}
	if positive {
		v.min = 1
	}
	*v.p = value
	fs.Var(v, name, usage)
	return v.p
}

// BoolValue is a flag given alone for true, or as --name=false.
type BoolValue struct {
	refusal
	p *bool
}

func (v *BoolValue) String() string   { return strconv.FormatBool(*v.p) }
func (v *BoolValue) typeName() string { return "" }
func (v *BoolValue) IsBoolFlag() bool { return true }

func (v *BoolValue) Set(s string) error {
	if err := v.once(s); err != nil {
		return err
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return v.refuse("--%s=%s is not true or false: give --%s alone, or --%s=false", v.name, s, v.name, v.name)
	}
	*v.p = b
	return nil
}

// Bool defines a boolean flag.
func (fs FlagSet) Bool(name string, value bool, usage string) *bool {
	v := &BoolValue{refusal{name: name}, new(bool)}
	*v.p = value
	fs.Var(v, name, usage)
	return v.p
}

// ActionValue is a flag that may be given any number of times, each time
// handed to do, which says what is wrong with a value it refuses.
type ActionValue struct {
	refusal
	do func(string) error
}

func (v *ActionValue) String() string   { return "" }
func (v *ActionValue) typeName() string { return "value" }

func (v *ActionValue) Set(s string) error {
	if err := v.do(s); err != nil {
		return v.refuse("--%s %q: %w", v.name, s, err)
	}
	return nil
}

// Action defines a repeatable flag.
func (fs FlagSet) Action(name, usage string, do func(string) error) {
	fs.Var(&ActionValue{refusal{name: name}, do}, name, usage)
}

// ListValue is a repeatable flag that collects its values, each one
// checked as it is given; the first one given replaces the default.
type ListValue struct {
	refusal
	p         *[]string
	isDefault bool
	typ       string
	check     func(string) error
}

func (l *ListValue) typeName() string { return l.typ }

func (l *ListValue) String() string {
	if l == nil || l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l *ListValue) Set(s string) error {
	if err := l.check(s); err != nil {
		return l.refuse("%w", err)
	}
	if l.isDefault {
		*l.p, l.isDefault = nil, false
	}
	*l.p = append(*l.p, s)
	return nil
}

// List defines a repeatable flag whose values, typeName in the help, are
// each checked by check, which names the flag in the error it returns.
func (fs FlagSet) List(name, typeName string, value []string, usage string, check func(string) error) *[]string {
	l := &ListValue{refusal: refusal{name: name}, p: new([]string), isDefault: true, typ: typeName, check: check}
	*l.p = value
	fs.Var(l, name, usage)
	return l.p
}

// Parse parses args and prints nothing: --help returns flag.ErrHelp for
// the caller to print the help (PrintUsage), and any other error names the
// flag and says what is valid, in place of the flag package's words and
// its full help.
func (fs FlagSet) Parse(args []string) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.FlagSet.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		if err == nil && fs.NArg() > 0 {
			return fs.unexpectedArgument(fs.Arg(0))
		}
		return err
	}
	var refused error
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := f.Value.(interface{ refused() error }); ok && v.refused() != nil {
			refused = v.refused()
		}
	})
	if refused != nil {
		return refused
	}
	// The flag package's own errors, which no value saw.
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Errorf("unknown flag --%s: %s takes %s", name, fs.Name(), strings.Join(fs.Names(), ", "))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		if f := fs.Lookup(name); f != nil {
			return fmt.Errorf("--%s needs a value: %s", name, f.Usage)
		}
	}
	if arg, ok := strings.CutPrefix(msg, "bad flag syntax: "); ok {
		return fmt.Errorf("bad flag syntax %q: give flags as --name value or --name=value", arg)
	}
	return err
}

// Given reports whether the command line gave flag name.
func (fs FlagSet) Given(name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// Names lists fs's flags as they are typed: "--count", ...
func (fs FlagSet) Names() []string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, "--"+f.Name) })
	return names
}

// unexpectedArgument is the error for an argument that is not a flag.
func (fs FlagSet) unexpectedArgument(arg string) error {
	if fs.Lookup(arg) != nil {
		return fmt.Errorf("unexpected argument %q: flags start with --: did you mean --%s?", arg, arg)
	}
	if _, err := strconv.ParseBool(arg); err == nil {
		return fmt.Errorf("unexpected argument %q: a flag that is true or false takes its value after =, such as --json=false", arg)
	}
	return fmt.Errorf("unexpected argument %q: %s takes only flags (see --help)", arg, fs.Name())
}

// PrintUsage prints a command's help: its text, its flags, its examples.
func (fs FlagSet) PrintUsage(w io.Writer, usage, examples string) {
	fmt.Fprint(w, usage)
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(w, "  --%s", f.Name)
		name, _ := flag.UnquoteUsage(f)
		if v, ok := f.Value.(interface{ typeName() string }); ok {
			name = v.typeName()
		}
		if name != "" {
			fmt.Fprintf(w, " %s", name)
		}
		fmt.Fprintf(w, "\n      %s", f.Usage)
		if f.DefValue != "" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
	fmt.Fprint(w, examples)
}
