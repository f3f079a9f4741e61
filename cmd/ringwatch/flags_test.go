package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ringwatch/ringwatch/internal/cli"
	"github.com/ringwatch/ringwatch/internal/cpus"
	"github.com/ringwatch/ringwatch/internal/testenv"
)

// commandFlags are each command's flag set, as its --help lists them, and
// its parse function. TestEveryFlagRefusesBadValues enumerates the sets,
// so a flag added to a command without rows in badCommandLines fails it.
// A new command goes here, with its xxxFlags function and its rows.
var commandFlags = map[string]struct {
	flags func() cli.FlagSet
	parse func([]string, io.Writer) error
}{
	"run": {func() cli.FlagSet { fs, _ := runFlags(); return fs },
		func(a []string, w io.Writer) error { _, err := parseRunFlags(a, w); return err }},
	"ctl": {func() cli.FlagSet { fs, _ := ctlFlags(); return fs },
		func(a []string, w io.Writer) error { _, err := parseCtlFlags(a, w); return err }},
	"ping": {func() cli.FlagSet { fs, _ := pingFlags(); return fs },
		func(a []string, w io.Writer) error { _, err := parsePingFlags(a, w); return err }},
	"bench": {func() cli.FlagSet { fs, _ := benchFlags(allowedCPUs()); return fs },
		func(a []string, w io.Writer) error { _, err := parseBenchFlags(a, w); return err }},
	"rings": {func() cli.FlagSet { fs, _ := ringsFlags(); return fs },
		func(a []string, w io.Writer) error { _, err := parseRingsFlags(a, w); return err }},
	"top": {func() cli.FlagSet { fs, _ := topFlags(); return fs },
		func(a []string, w io.Writer) error { _, err := parseTopFlags(a, w); return err }},
}

// badCommandLine is a command line a user might type that must be refused
// with exit status 2 before anything is loaded: the message must name flag
// (as --flag) and contain want, which says what is valid.
type badCommandLine struct {
	command, flag string
	args          []string
	want          string
}

// badCommandLines has rows for every flag of every command: empty,
// negative, huge, wrong unit, wrong type, duplicates in lists, unknown
// names, contradictions. Rows for "a flag without its value", "a flag
// given twice" and "a boolean flag given a non-boolean" are made for every
// flag by allFlagRows.
//
// Adding a flag or a command? Add its rows here (command, flag name as in
// its FlagSet, the arguments, and the part of the message that says what
// is valid), and the command to commandFlags: the test fails for a flag
// with no row of its own here.
func badCommandLines() []badCommandLine {
	allowed := allowedCPUs()
	ncpus, firstCPU, lastCPU := len(allowed), allowed[0], allowed[len(allowed)-1]
	mayUse := "it may use " + cpus.AllowedPhrase(allowed) + " (its CPU affinity, set by taskset or a container's cpuset)"
	longSocket := "/tmp/" + strings.Repeat("s", 120)
	manyPIDs := make([]string, 1025)
	for i := range manyPIDs {
		manyPIDs[i] = strconv.Itoa(i + 1)
	}
	tooManyPIDs := strings.Join(manyPIDs, ",")
	rows := func(command, flag string, want string, args ...[]string) []badCommandLine {
		var out []badCommandLine
		for _, a := range args {
			out = append(out, badCommandLine{command, flag, a, want})
		}
		return out
	}
	v := func(flag string, values ...string) [][]string { // --flag value, one line each
		var out [][]string
		for _, value := range values {
			out = append(out, []string{"--" + flag, value})
		}
		return out
	}
	var all []badCommandLine
	add := func(r ...badCommandLine) { all = append(all, r...) }

	// ringwatch run
	add(rows("run", "source", "--source is empty: choose from exec, syscalls", v("source", "", " ")...)...)
	add(rows("run", "source", `--source: "exec" is listed twice: give each once`, v("source", "exec,exec", "exec, exec")...)...)
	add(rows("run", "source", `has an empty item: separate the items with single commas`, v("source", "exec,", "exec,,syscalls", ",")...)...)
	add(rows("run", "source", `--source: unknown source "EXEC": choose from exec, syscalls`, v("source", "EXEC")...)...)
	add(rows("run", "source", `unknown source "exec;syscalls": choose from exec, syscalls`, v("source", "exec;syscalls")...)...)
	add(rows("run", "transport", "choose from ringbuf, percpu-ringbuf, perfbuf, spsc",
		v("transport", "", " ", " ringbuf", "pigeon", "RINGBUF", "ringbuf,spsc", "-1")...)...)
	add(rows("run", "wakeup", "choose from adaptive, every, busy", v("wakeup", "", " ", "never", "every,busy", "1")...)...)
	add(rows("run", "cpus-per-ring", "is not a whole number: give 1 or more", v("cpus-per-ring", "", "abc", "1e30", "2.5", "0x10", "two")...)...)
	add(rows("run", "cpus-per-ring", "is out of range: give 1 or more", v("cpus-per-ring", "0", "-1", "99999999999999999999")...)...)
	add(badCommandLine{"run", "cpus-per-ring", []string{"--cpus-per-ring", "2"}, "--cpus-per-ring 2 applies only to --transport percpu-ringbuf"})
	add(rows("run", "consumers", "give 0 or more (0 is one consumer per 4 rings)", v("consumers", "", "-1", "abc", "1e30", "99999999999999999999")...)...)
	add(rows("run", "consumer-cpus", "is not a CPU or a range of CPUs: give CPU numbers and ranges, such as 0,2 or 0-3",
		v("consumer-cpus", "abc", "-1", "1-0", "0,", "1.5", "0-")...)...)
	add(badCommandLine{"run", "consumer-cpus", []string{"--consumer-cpus", fmt.Sprintf("%d,%[1]d", firstCPU)},
		fmt.Sprintf("CPU %d is listed twice: give each once", firstCPU)})
	add(rows("run", "consumer-cpus", "CPU 4096 is not one this process may run on: "+mayUse, v("consumer-cpus", "4096")...)...)
	gap := firstCPU + 1 // the first CPU above the first allowed one that is not allowed
	for slices.Contains(allowed, gap) {
		gap++
	}
	add(rows("run", "consumer-cpus", fmt.Sprintf("CPU %d is not one this process may run on: %s", gap, mayUse),
		v("consumer-cpus", fmt.Sprintf("%d-99999999999", firstCPU), strconv.Itoa(gap))...)...)
	add(rows("run", "ring-size", "is not a size: give a number of bytes, with KiB, MiB or GiB (binary units) or no unit",
		v("ring-size", "", "-4MiB", "64XB", "5 parsecs", "4MB", "1e30", "4.5MiB", "lots")...)...)
	add(rows("run", "ring-size", "is larger than a ring can be (2GiB: the kernel takes a 32-bit size): choose 2GiB or less",
		v("ring-size", "99999999999999999999", "4GiB", "99999999999999GiB")...)...)
	add(rows("run", "ring-size", "is not a power-of-two multiple of the page size", v("ring-size", "0", "3MiB", "1KiB", "6000")...)...)
	add(rows("run", "recorder", "is not a size: give a number of bytes", v("recorder", "-4MiB", "64XB", "lots")...)...)
	add(rows("run", "recorder", "choose 2GiB or less", v("recorder", "4GiB")...)...)
	add(rows("run", "recorder", "is not a power-of-two multiple of the page size", v("recorder", "0", "3MiB", "1KiB")...)...)
	add(rows("run", "recorder.dump-dir", `--recorder.dump-dir "": give a directory, with --recorder`,
		[]string{"--recorder", "64MiB", "--recorder.dump-dir", ""}, []string{"--recorder.dump-dir", ""})...)
	add(rows("run", "recorder.dump-dir", `--recorder.dump-dir "/tmp": give a directory, with --recorder`, v("recorder.dump-dir", "/tmp")...)...)
	add(rows("run", "web.listen-address", "is not host:port: give one such as 127.0.0.1:9477",
		v("web.listen-address", "", "abc", "127.0.0.1", "::1")...)...)
	add(rows("run", "web.listen-address", "is not a number from 0 to 65535", v("web.listen-address", ":99999", ":-1", ":http", ":")...)...)
	add(rows("run", "web.listen-address", "is not a host name or address", v("web.listen-address", "a b:80", "a/b:80")...)...)
	add(rows("run", "web.listen-address", "is not host:port: give one such as 127.0.0.1:9477", v("web.listen-address", "vsock://:9477")...)...)
	add(badCommandLine{"run", "web.listen-address", []string{"--web.listen-address", ":9477", "--web.listen-address", ":x"}, "is not a number from 0 to 65535"})
	add(rows("run", "web.systemd-socket", "does not apply with --web.systemd-socket, which serves on the sockets systemd passes",
		[]string{"--web.systemd-socket", "--web.listen-address", ":9477"}, []string{"--web.listen-address", "127.0.0.1:9477", "--web.systemd-socket=true"})...)
	add(rows("run", "web.config.file", "names a directory: give the file, such as /etc/ringwatch/web-config.yml",
		v("web.config.file", "/etc/ringwatch/", "/")...)...)
	add(rows("run", "web.telemetry-path", "must start with /: give one such as /metrics", v("web.telemetry-path", "", "metrics")...)...)
	add(rows("run", "web.telemetry-path", "--web.telemetry-path / is the landing page's", v("web.telemetry-path", "/")...)...)
	add(rows("run", "web.telemetry-path", "holds a character a URL path cannot", v("web.telemetry-path", "/a b", "/m?x", "/{x}", "/a%zz", "/m#x")...)...)
	add(rows("run", "output", "choose none or json", v("output", "", "yaml", "JSON")...)...)
	add(rows("run", "duration", "is not a duration: give a number and a unit (ns, us, ms, s, m or h), such as 30s",
		v("duration", "", "5 parsecs", "5", "1e30", "abc", "9999999999h")...)...)
	add(rows("run", "duration", "is negative: give 0 or a duration such as 30s", v("duration", "-1s", "-1ns")...)...)
	add(rows("run", "pid", "--pid limits the syscalls source, which --source exec leaves out: add it, such as --source exec,syscalls",
		v("pid", "12")...)...)
	for _, value := range []string{"x", "0", "-5", "99999999999", "1e30", "4194305"} {
		add(badCommandLine{"run", "pid", []string{"--source", "syscalls", "--pid", value},
			fmt.Sprintf("--pid: %q is not a process id: give whole numbers from 1 to 4194304", value)})
	}
	add(badCommandLine{"run", "pid", []string{"--source", "syscalls", "--pid", "12,12"}, `--pid: "12" is listed twice`})
	add(badCommandLine{"run", "pid", []string{"--source", "syscalls", "--pid", "1,,2"}, "has an empty item"})
	add(badCommandLine{"run", "pid", []string{"--source", "syscalls", "--pid", tooManyPIDs}, "1025 process ids given: at most 1024 fit the filter"})
	add(rows("run", "ctl.socket", "is 125 bytes, and a unix socket's path can be at most 107", v("ctl.socket", longSocket)...)...)
	add(rows("run", "ctl.socket", "names a directory: give the socket's file name too, such as /tmp/ctl.sock", v("ctl.socket", "/tmp/")...)...)
	add(badCommandLine{"run", "host-rings", []string{"--host-rings=off"}, "--host-rings=off is not true or false: give --host-rings alone, or --host-rings=false"})
	add(badCommandLine{"run", "prog-stats", []string{"--prog-stats=2"}, "give --prog-stats alone, or --prog-stats=false"})

	// ringwatch ctl: its actions are flags, checked as they are read.
	for _, value := range []string{"0", "-5", "1e30", "x", "99999999999"} {
		add(badCommandLine{"ctl", "pid", []string{"--pid", value},
			fmt.Sprintf("%q is not a process id: give whole numbers from 1 to 4194304", value)})
	}
	add(rows("ctl", "pid", `"1" is listed twice: give each once`, v("pid", "1,1")...)...)
	add(rows("ctl", "pid", "has an empty item", v("pid", "1,,2", ",")...)...)
	add(rows("ctl", "pid", "1025 process ids given: at most 1024", v("pid", tooManyPIDs)...)...)
	add(rows("ctl", "pause", "choose from exec, syscalls", v("pause", "", "forks", "exec,syscalls", " exec", "EXEC")...)...)
	add(rows("ctl", "resume", "choose from exec, syscalls", v("resume", "", "forks", "syscalls,syscalls")...)...)
	add(rows("ctl", "sample", "not SOURCE=N: give a source and one event in how many to record, such as syscalls=100",
		v("sample", "", "syscalls", "100")...)...)
	add(rows("ctl", "sample", "is not a whole number from 1 to 4294967295", v("sample", "syscalls=0", "syscalls=-1", "syscalls=99999999999",
		"syscalls=abc", "syscalls=1e30", "syscalls=")...)...)
	add(rows("ctl", "sample", "choose from exec, syscalls", v("sample", "forks=2", "=2")...)...)
	add(badCommandLine{"ctl", "socket", []string{"--pause", "exec", "--socket", ""},
		"--socket is empty: give the --ctl.socket of the ringwatch run to change (default /run/ringwatch/ctl.sock)"})
	add(badCommandLine{"ctl", "socket", []string{"--pause", "exec", "--socket", longSocket}, "a unix socket's path can be at most 107"})
	add(badCommandLine{"ctl", "socket", []string{"--pause", "exec", "--socket", "/tmp/"}, "names a directory"})
	add(rows("ctl", "timeout", "is not positive: give a duration such as 10s", v("timeout", "0s", "0", "-1s")...)...)
	add(rows("ctl", "timeout", "is not a duration: give a number and a unit", v("timeout", "", "5 parsecs", "1e30", "10")...)...)

	// ringwatch ping
	add(rows("ping", "count", "give 1 to 1000000", v("count", "", "0", "-1", "abc", "1e30", "99999999999999999999", "1000001", "1.5")...)...)
	add(rows("ping", "interval", "is negative: give 0 or a duration such as 10ms", v("interval", "-1s")...)...)
	add(rows("ping", "interval", "is not a duration: give a number and a unit", v("interval", "", "5 parsecs", "5", "1e30")...)...)
	add(rows("ping", "timeout", "is not positive: give a duration such as 1s", v("timeout", "0", "-1s")...)...)
	add(rows("ping", "timeout", "is not a duration", v("timeout", "", "abc", "1 second")...)...)

	// ringwatch bench
	scenarios := "choose from drain, saturation, latency, roundtrip, scale, producer"
	add(rows("bench", "scenario", scenarios, v("scenario", "", "speed", "Drain")...)...)
	add(rows("bench", "scenario", `"drain" is listed twice`, v("scenario", "drain,drain")...)...)
	add(rows("bench", "scenario", "has an empty item", v("scenario", "drain,")...)...)
	add(rows("bench", "transport", "choose from ringbuf, percpu-ringbuf, perfbuf, spsc", v("transport", "", "pigeon")...)...)
	add(rows("bench", "transport", `"ringbuf" is listed twice`, v("transport", "ringbuf,ringbuf")...)...)
	add(rows("bench", "size", "choose from 16, 64, 256, 1024, 4096", v("size", "", "100", "-16", "1e30", "64B", "0")...)...)
	add(rows("bench", "size", `"64" is listed twice`, v("size", "64,64")...)...)
	add(rows("bench", "wakeup", "choose from adaptive, every, busy", v("wakeup", "", "never")...)...)
	add(rows("bench", "wakeup", `"every" is listed twice`, v("wakeup", "every,every")...)...)
	add(badCommandLine{"bench", "wakeup", []string{"--scenario", "drain", "--wakeup", "every"},
		"--wakeup applies only to --scenario saturation or latency, which --scenario drain leaves out"})
	add(badCommandLine{"bench", "peers", []string{"--peers=no"}, "--peers=no is not true or false: give --peers alone, or --peers=false"})
	add(rows("bench", "ring-size", "is not a size", v("ring-size", "", "5 parsecs", "64XB")...)...)
	add(rows("bench", "ring-size", "choose 2GiB or less", v("ring-size", "99999999999999999999")...)...)
	add(rows("bench", "ring-size", "try 4MiB", v("ring-size", "3MiB")...)...)
	add(rows("bench", "records", "give 1 or more", v("records", "", "0", "-1", "abc", "1e30", "99999999999999999999")...)...)
	add(badCommandLine{"bench", "records", []string{"--scenario", "drain", "--records", "5"},
		"--records applies only to --scenario saturation, which --scenario drain leaves out"})
	add(rows("bench", "max-time", "is negative: give 0 or a duration such as 5s", v("max-time", "-1s")...)...)
	add(rows("bench", "max-time", "is not a duration", v("max-time", "", "5 parsecs", "5")...)...)
	add(badCommandLine{"bench", "max-time", []string{"--scenario", "drain", "--max-time", "1s"},
		"--max-time applies only to --scenario saturation or scale"})
	add(rows("bench", "rates", "give comma-separated whole numbers, 1 or more (records per second)", v("rates", "0", "x", "-5", "1e30", "99999999999999999999")...)...)
	add(rows("bench", "rates", "--rates is empty", v("rates", "")...)...)
	add(rows("bench", "rates", `"10" is listed twice`, v("rates", "10,10")...)...)
	add(rows("bench", "rates", "latency keeps each record's delivery time: keep rate times duration at most 100000000", v("rates", "1000000000")...)...)
	add(badCommandLine{"bench", "rates", []string{"--scenario", "drain", "--rates", "10"}, "--rates applies only to --scenario latency"})
	add(rows("bench", "duration", "is not positive: give a duration such as 3s", v("duration", "0s", "-1s")...)...)
	add(rows("bench", "duration", "is not a duration", v("duration", "", "3 fortnights")...)...)
	add(badCommandLine{"bench", "duration", []string{"--scenario", "drain", "--duration", "1s"}, "--duration applies only to --scenario latency"})
	add(rows("bench", "pings", "give 1 to 1000000", v("pings", "", "0", "-1", "abc", "2000000")...)...)
	add(badCommandLine{"bench", "pings", []string{"--scenario", "drain", "--pings", "5"}, "--pings applies only to --scenario roundtrip"})
	cpuRange := fmt.Sprintf("give %d to %d (CPUs this process may run on: %s)", firstCPU, lastCPU, cpus.FormatList(allowed))
	add(rows("bench", "producer-cpu", cpuRange, v("producer-cpu", "", strconv.Itoa(firstCPU-1), "4096", "abc")...)...)
	if ncpus >= 2 { // the defaults are the first two allowed CPUs
		add(rows("bench", "producer-cpu", fmt.Sprintf("--producer-cpu %d and --consumer-cpu %[1]d must be two different CPUs", allowed[1]),
			v("producer-cpu", strconv.Itoa(allowed[1]))...)...)
	}
	add(rows("bench", "consumer-cpu", cpuRange, v("consumer-cpu", "", strconv.Itoa(firstCPU-1), "4096", "1e30")...)...)
	add(rows("bench", "consumer-cpu", fmt.Sprintf("--producer-cpu %d and --consumer-cpu %[1]d must be two different CPUs", firstCPU),
		v("consumer-cpu", strconv.Itoa(firstCPU))...)...)
	// A CPU between two the process may use passes the range, and is
	// refused by name.
	for i := 1; i < ncpus; i++ {
		if gap := allowed[i-1] + 1; gap < allowed[i] {
			add(rows("bench", "consumer-cpu", fmt.Sprintf("--consumer-cpu %d: CPU %[1]d is not one this process may run on: %s", gap, mayUse),
				v("consumer-cpu", strconv.Itoa(gap))...)...)
			break
		}
	}
	for _, value := range []string{"0", "-1", "4096", "x"} {
		add(badCommandLine{"bench", "producers", []string{"--scenario", "scale", "--producers", value},
			fmt.Sprintf("give comma-separated whole numbers from 1 to %d (each on a CPU of its own: this process may run on %s)", ncpus, cli.Plural(ncpus, "CPU"))})
	}
	add(badCommandLine{"bench", "producers", []string{"--scenario", "scale", "--producers", "1,1"}, `"1" is listed twice`})
	add(badCommandLine{"bench", "producers", []string{"--producers", "1"}, "--producers applies only to --scenario scale"})
	add(rows("bench", "consumers", "give 0 or more (0 is one consumer per 4 rings)", v("consumers", "-2", "abc", "")...)...)
	add(badCommandLine{"bench", "consumers", []string{"--consumers", "2"}, "--consumers applies only to --scenario scale"})
	add(badCommandLine{"bench", "quick", []string{"--quick=x"}, "give --quick alone, or --quick=false"})
	add(badCommandLine{"bench", "json", []string{"--json=2"}, "give --json alone, or --json=false"})

	add(rows("run", "host-rings.pause", "is not positive: give a duration such as 100ms", v("host-rings.pause", "0", "-1s")...)...)
	add(rows("run", "host-rings.pause", "is not a duration: give a number and a unit", v("host-rings.pause", "", "100", "soon", "1e30")...)...)
	add(badCommandLine{"run", "host-rings.pause", []string{"--host-rings=false", "--host-rings.pause", "1s"},
		"--host-rings.pause sizes the host rings, which --host-rings=false turns off: leave one of them out"})

	// ringwatch rings and top
	add(badCommandLine{"rings", "json", []string{"--json=yes"}, "give --json alone, or --json=false"})
	add(rows("rings", "interval", "is not positive: give a duration such as 1s", v("interval", "0", "-1s")...)...)
	add(rows("rings", "interval", "is not a duration: give a number and a unit", v("interval", "", "1 second", "1", "1e30")...)...)
	add(rows("rings", "interval", "give 10ms or more (the peak rate is taken over 10ms census samples)", v("interval", "1ns", "9ms")...)...)
	add(rows("rings", "pause", "is not positive: give a duration such as 100ms", v("pause", "0", "0s", "-100ms")...)...)
	add(rows("rings", "pause", "is not a duration: give a number and a unit", v("pause", "", "100", "a moment", "1e30")...)...)
	add(badCommandLine{"top", "once", []string{"--once=0.5"}, "give --once alone, or --once=false"})
	add(rows("top", "interval", "is not positive: give a duration such as 1s", v("interval", "0", "-1s")...)...)
	add(rows("top", "interval", "give 100ms or more", v("interval", "10ms", "99ms")...)...)
	add(rows("top", "interval", "is not a duration: give a number and a unit", v("interval", "", "2 blinks", "1")...)...)
	add(rows("top", "pause", "is not positive: give a duration such as 100ms", v("pause", "0", "-5ms")...)...)
	add(rows("top", "pause", "is not a duration: give a number and a unit", v("pause", "", "100", "a blink")...)...)
	return all
}

// allFlagRows are, for every flag of cmd, the command lines every flag
// must refuse: the flag without its value (a boolean, with a value that
// is not one), and a flag that takes one value given twice.
func allFlagRows(cmd string, fs cli.FlagSet) []badCommandLine {
	var out []badCommandLine
	fs.VisitAll(func(f *flag.Flag) {
		name := "--" + f.Name
		switch v := f.Value.(type) {
		case *cli.BoolValue:
			out = append(out, badCommandLine{cmd, f.Name, []string{name + "=maybe"}, name + "=maybe is not true or false"})
		case *cli.ActionValue, *cli.ListValue:
			// Repeatable by design: ctl's actions apply in order, and
			// run serves on every --web.listen-address.
			out = append(out, badCommandLine{cmd, f.Name, []string{name}, name + " needs a value: " + f.Usage})
			return
		default:
			_ = v
			out = append(out, badCommandLine{cmd, f.Name, []string{name}, name + " needs a value: " + f.Usage})
		}
		given := name + "=" + f.DefValue
		out = append(out, badCommandLine{cmd, f.Name, []string{given, given},
			fmt.Sprintf("%s is given twice (%q, then %q): give it once", name, f.DefValue, f.DefValue)})
	})
	return out
}

// TestEveryFlagRefusesBadValues runs every bad command line through the
// real dispatch: each must exit 2 with its message, naming the flag, and
// the hint to --help, before anything is loaded (the parse alone refuses
// it, so the test needs no root and loads nothing).
func TestEveryFlagRefusesBadValues(t *testing.T) {
	rows := map[string][]badCommandLine{}
	for _, r := range badCommandLines() {
		if _, ok := commandFlags[r.command]; !ok {
			t.Fatalf("row for unknown command %q", r.command)
		}
		rows[r.command] = append(rows[r.command], r)
	}
	for cmd, c := range commandFlags {
		t.Run(cmd, func(t *testing.T) {
			if cmd == "bench" {
				testenv.RequireCPUs(t, 2) // else every bench line is refused for that
			}
			covered := map[string]bool{}
			for _, r := range rows[cmd] {
				covered[r.flag] = true
			}
			fs := c.flags()
			fs.VisitAll(func(f *flag.Flag) {
				if !covered[f.Name] {
					t.Errorf("ringwatch %s --%s has no rows in badCommandLines: add its bad values there", cmd, f.Name)
				}
			})
			for _, r := range append(rows[cmd], allFlagRows(cmd, fs)...) {
				checkRefused(t, c.parse, r)
			}
		})
	}
}

// checkRefused runs r through parse, then, if parse refuses it, through
// the real dispatch: it must exit 2 with r's message on one line, naming
// the flag, and the pointer to --help.
func checkRefused(t *testing.T, parse func([]string, io.Writer) error, r badCommandLine) {
	t.Helper()
	if fs := commandFlags[r.command].flags(); fs.Lookup(r.flag) == nil {
		t.Errorf("row for ringwatch %s --%s: no such flag", r.command, r.flag)
		return
	}
	// The parse alone must refuse it; only then is the command run, so a
	// line wrongly accepted never starts any work.
	if err := parse(r.args, io.Discard); err == nil {
		t.Errorf("ringwatch %s %q was accepted; want it refused saying %q", r.command, r.args, r.want)
		return
	}
	var stdout, stderr bytes.Buffer
	code := run(append([]string{r.command}, r.args...), &stdout, &stderr)
	msg := stderr.String()
	if code != exitUsage || stdout.Len() != 0 || !strings.Contains(msg, r.want) || !strings.Contains(msg, "--"+r.flag) ||
		!strings.HasPrefix(msg, "ringwatch "+r.command+": ") ||
		!strings.HasSuffix(msg, "\nSee 'ringwatch "+r.command+" --help'.\n") || strings.Count(msg, "\n") != 2 {
		t.Errorf("ringwatch %s %q: exit %d, stdout %q, stderr:\n%s\nwant exit %d and one line naming --%s, saying %q, then the pointer to --help",
			r.command, r.args, code, stdout.String(), msg, exitUsage, r.flag, r.want)
	}
}

// TestWrongCommandLinesBeyondFlags are what is typed around the flags:
// commands, arguments, unknown flags.
func TestWrongCommandLinesBeyondFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "Usage:"},
		{[]string{"frobnicate"}, `ringwatch: unknown command "frobnicate"`},
		{[]string{"--source", "exec"}, `ringwatch: unknown command "--source"`},
		{[]string{"version", "extra"}, `ringwatch version: unexpected argument "extra": version takes none`},
		{[]string{"help", "nope"}, `ringwatch help: "nope" is not a command: give one of run, ctl, ping, bench, rings, top, or nothing`},
		{[]string{"help", "run", "ctl"}, `"run ctl" is not a command`},
		{[]string{"run", "extra"}, `ringwatch run: unexpected argument "extra": ringwatch run takes only flags (see --help)`},
		{[]string{"run", "source", "exec"}, `unexpected argument "source": flags start with --: did you mean --source?`},
		{[]string{"run", "--", "--source", "exec"}, `unexpected argument "--source"`},
		{[]string{"run", "--no-such-flag"}, "unknown flag --no-such-flag: ringwatch run takes --consumer-cpus, --consumers, --cpus-per-ring, --ctl.socket, --duration"},
		{[]string{"run", "---source", "exec"}, `bad flag syntax "---source": give flags as --name value or --name=value`},
		{[]string{"run", "--=exec"}, `bad flag syntax "--=exec"`},
		{[]string{"ctl"}, "ringwatch ctl: nothing to do: give an action, such as --pid 1234 or --pause exec"},
		{[]string{"ctl", "pause", "exec"}, `unexpected argument "pause": flags start with --: did you mean --pause?`},
		{[]string{"ctl", "--pause", "exec", "now"}, `unexpected argument "now"`},
		{[]string{"ctl", "--stop"}, "unknown flag --stop: ringwatch ctl takes --pause, --pid, --resume, --sample, --socket, --timeout"},
		{[]string{"ping", "host"}, `ringwatch ping: unexpected argument "host"`},
		{[]string{"ping", "-c", "5"}, "unknown flag --c: ringwatch ping takes --count, --interval, --timeout"},
		{[]string{"bench", "drain"}, `ringwatch bench: unexpected argument "drain"`},
		{[]string{"bench", "--peers", "false"}, `unexpected argument "false": a flag that is true or false takes its value after =, such as --json=false`},
		{[]string{"bench", "--verbose"}, "unknown flag --verbose: ringwatch bench takes"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("ringwatch %q: exit %d, stderr:\n%s\nwant exit %d saying %q", tc.args, code, stderr.String(), exitUsage, tc.want)
		}
	}
}

// TestHelpIsUnchangedByCheckedFlags: every command's --help names each
// flag with the type the flag package would give it, and its default,
// and 'ringwatch help COMMAND' prints the same.
func TestHelpIsUnchangedByCheckedFlags(t *testing.T) {
	for cmd, want := range map[string][]string{
		"run":   {"  --cpus-per-ring int\n", "  --duration duration\n", "  --source string\n", `(default "4MiB")`, `(default "0s")`},
		"ctl":   {"  --pid value\n", "  --timeout duration\n", `(default "10s")`},
		"ping":  {"  --count int\n", "  --interval duration\n", `(default "10")`, `(default "1s")`},
		"bench": {"  --peers\n", "  --json\n", "  --records int\n", `(default "true")`, `(default "false")`},
	} {
		var viaFlag, viaHelp bytes.Buffer
		if code := run([]string{cmd, "--help"}, io.Discard, &viaFlag); code != exitOK {
			t.Errorf("%s --help exits %d", cmd, code)
		}
		if code := run([]string{"help", cmd}, io.Discard, &viaHelp); code != exitOK || viaHelp.String() != viaFlag.String() {
			t.Errorf("help %s exits %d and prints something else than %s --help", cmd, code, cmd)
		}
		for _, w := range want {
			if !strings.Contains(viaFlag.String(), w) {
				t.Errorf("%s --help lacks %q:\n%s", cmd, w, viaFlag.String())
			}
		}
	}
}

// TestExamplesInTheHelpAreAccepted parses every example command line each
// command's help gives: the checks must not refuse what the help teaches.
// An example that needs more CPUs than this process may run on may be refused
// for that reason alone.
func TestExamplesInTheHelpAreAccepted(t *testing.T) {
	examples := runExamples + ctlExamples + pingExamples + benchExamples
	n := 0
	for line := range strings.Lines(examples) {
		fields := strings.Fields(line)
		if len(fields) > 0 && fields[0] == "sudo" {
			fields = fields[1:]
		}
		if len(fields) < 2 || fields[0] != "ringwatch" {
			continue
		}
		if i := slices.Index(fields, ">"); i >= 0 {
			fields = fields[:i]
		}
		n++
		c := commandFlags[fields[1]]
		if err := c.parse(fields[2:], io.Discard); err != nil && !strings.Contains(err.Error(), "this process may run on") {
			t.Errorf("the help's example %q is refused: %v", strings.TrimSpace(line), err)
		}
	}
	if n < 12 {
		t.Errorf("found %d examples in the help, want every command's", n)
	}
}

// allowedCPUs are the CPUs this test process may run on, as the commands
// see them.
func allowedCPUs() []int {
	allowed, err := cpus.Allowed()
	if err != nil {
		panic(err) // a process always has its affinity to read
	}
	return allowed
}
