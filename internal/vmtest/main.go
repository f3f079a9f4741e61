package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := mainErr(); err != nil {
		fmt.Fprintf(os.Stderr, "vmtest: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	cache, out, accel, cmdline string
	targets                    []target
	quiet                      string
	retries, memMiB            int
	live                       bool
}

func mainErr() error {
	home, _ := os.UserHomeDir()
	defCache := filepath.Join(home, ".cache", "ringwatch-vm")
	if c := os.Getenv("RINGWATCH_VM_CACHE"); c != "" {
		defCache = c
	}
	var o options
	flag.StringVar(&o.cache, "cache", defCache, "where kernels, busybox and the apt lists are kept between runs (or $RINGWATCH_VM_CACHE)")
	flag.StringVar(&o.out, "out", "bin/vmtest", "where the test binaries, initramfs images, console logs and results.md go")
	names := flag.String("targets", "", "comma-separated targets to boot (default: the whole matrix; see --list)")
	flag.IntVar(&o.retries, "retries", 2, "boots again a target whose guest died before its first test, up to this many times")
	flag.StringVar(&o.accel, "accel", "tcg,thread=single", "qemu's -accel: tcg,thread=multi runs each virtual CPU on a host thread of its own, faster, but its x86 guests oops on a stale int3 when the kernel patches its text with the other CPUs running (README, \"Tested on\")")
	flag.StringVar(&o.cmdline, "cmdline", "", "more kernel command line for every boot")
	flag.IntVar(&o.memMiB, "mem", 3072, "guest memory in MiB")
	flag.BoolVar(&o.live, "live", false, "print each guest's console as it comes")
	flag.StringVar(&o.quiet, "quiet-file", "/tmp/ringwatch-quiet", "while this file exists (someone on a shared machine is measuring), wait before each build and boot; empty: never wait")
	list := flag.Bool("list", false, "list the matrix and exit")
	only := flag.String("run", "", "instead of each target's set, run these: PKG[=REGEXP] separated by spaces (for trying one test on every kernel)")
	flag.Parse()
	if *list {
		for _, t := range matrix {
			fmt.Printf("%-14s %-8s %-5s %2d CPUs  %-4s CI=%v\n", t.name, t.suite, t.arch, t.cpus, t.set, t.ci)
		}
		return nil
	}
	o.targets = slices.Clone(matrix)
	if *names != "" {
		o.targets = nil
		for n := range strings.SplitSeq(*names, ",") {
			i := slices.IndexFunc(matrix, func(t target) bool { return t.name == n })
			if i < 0 {
				var all []string
				for _, t := range matrix {
					all = append(all, t.name)
				}
				return fmt.Errorf("--targets: no target %q; the targets are %s", n, strings.Join(all, ", "))
			}
			o.targets = append(o.targets, matrix[i])
		}
	}
	if *only != "" {
		var custom []run
		for spec := range strings.FieldsSeq(*only) {
			pkg, re, _ := strings.Cut(spec, "=")
			custom = append(custom, run{pkg: strings.TrimPrefix(pkg, "./"), only: re})
		}
		sets["custom"] = custom
		for i := range o.targets {
			o.targets[i].set = "custom"
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runMatrix(ctx, o)
}

// outcome is a target's result, for the table.
type outcome struct {
	t        target
	kernel   debianKernel
	boots    int
	b        *boot
	failures []string
	passed   int
	skipped  []string
}

func runMatrix(ctx context.Context, o options) error {
	start := time.Now()
	for _, d := range []string{o.cache, o.out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for _, t := range o.targets {
		if _, err := exec.LookPath(machines[t.arch].qemu); err != nil {
			return fmt.Errorf("%s needs %s: apt-get install qemu-system-x86 qemu-system-arm", t.name, machines[t.arch].qemu)
		}
	}
	a, err := newArchive(o.cache)
	if err != nil {
		return err
	}
	built := map[string]string{} // arch -> folder of its binaries
	var results []outcome
	for _, t := range o.targets {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		k, err := fetchKernel(a, o.cache, t.suite, t.arch)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		bb, err := fetchBusybox(a, o.cache, t.arch)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		if err := waitQuiet(ctx, o.quiet); err != nil {
			return err
		}
		if built[t.arch] == "" {
			if built[t.arch], err = buildBinaries(o.out, t.arch); err != nil {
				return err
			}
		}
		initrd, err := buildInitramfs(o.out, t, built[t.arch], bb)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		res := outcome{t: t, kernel: k}
		for res.boots = 1; ; res.boots++ {
			if err := waitQuiet(ctx, o.quiet); err != nil {
				return err
			}
			logf("%s: booting Linux %s (%s %s, %s) on %d virtual CPUs, boot %d", t.name, k.Release, t.suite, k.Version, t.arch, t.cpus, res.boots)
			var live io.Writer
			if o.live {
				live = os.Stdout
			}
			b, err := runQEMU(ctx, t.arch, k.Image, initrd, t.cpus, o.memMiB, o.accel, strings.TrimSpace(o.cmdline+" "+t.cmdline), t.limit, live)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			res.b = b
			log := filepath.Join(o.out, fmt.Sprintf("%s.boot%d.log", t.name, res.boots))
			os.WriteFile(log, []byte(strings.Join(b.console, "\n")+"\n"), 0o644)
			if b.began || res.boots > o.retries || ctx.Err() != nil {
				break
			}
			logf("%s: boot %d died before the first test (%v); booting again. Its last console lines (all in %s):\n  %s",
				t.name, res.boots, b.exitErr, log, strings.Join(tail(b.console, 8), "\n  "))
		}
		judge(&res)
		results = append(results, res)
		if len(res.failures) > 0 {
			fmt.Fprintf(os.Stderr, "\nvmtest: FAIL on %s: Linux %s, %s, %d CPUs\n", t.name, k.Release, t.arch, t.cpus)
			for _, f := range res.failures {
				fmt.Fprintln(os.Stderr, f)
			}
		} else {
			logf("%s: ok, %d test binaries passed in %.0fs (boot %.0fs)", t.name, res.passed, res.b.wall.Seconds(), res.b.bootTime.Seconds())
		}
	}
	table := resultTable(results, time.Since(start))
	fmt.Print(table)
	os.WriteFile(filepath.Join(o.out, "results.md"), []byte(table), 0o644)
	for _, r := range results {
		if len(r.failures) > 0 {
			return errors.New("some tests failed in the VMs: see above")
		}
	}
	return nil
}

// waitQuiet returns once file does not exist, checking every 30 s.
func waitQuiet(ctx context.Context, file string) error {
	for said := false; file != ""; said = true {
		if _, err := os.Stat(file); err != nil {
			return nil
		}
		if !said {
			logf("%s exists: someone is measuring; waiting for it to go", file)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(30 * time.Second):
		}
	}
	return nil
}

// judge sets res's verdicts from its boot: a failure per step whose
// binary failed or did not finish, and for a boot that never ran its
// steps, one that says how it ended.
func judge(res *outcome) {
	b := res.b
	want := steps(res.t)
	head := fmt.Sprintf("%s (Linux %s, %s, %d CPUs)", res.t.name, res.kernel.Release, res.t.arch, res.t.cpus)
	if !b.began {
		res.failures = append(res.failures, fmt.Sprintf("%s: the guest died before its first test in each of %d boots (%v); last console lines:\n  %s",
			head, res.boots, b.exitErr, strings.Join(tail(b.console, 30), "\n  ")))
		return
	}
	for _, s := range want {
		i := slices.IndexFunc(b.steps, func(r stepResult) bool { return r.id == s.id })
		if i < 0 {
			res.failures = append(res.failures, fmt.Sprintf("%s: %s never ran (qemu: %v); last console lines:\n  %s",
				head, s.id, b.exitErr, strings.Join(tail(b.console, 30), "\n  ")))
			continue
		}
		r := b.steps[i]
		res.skipped = append(res.skipped, skips(r.output)...)
		switch {
		case !r.ended:
			res.failures = append(res.failures, fmt.Sprintf("%s: %s did not finish (qemu: %v); its last output:\n  %s",
				head, s.id, b.exitErr, strings.Join(tail(r.output, 40), "\n  ")))
		case r.rc != 0:
			res.failures = append(res.failures, fmt.Sprintf("%s: %s exited %d:\n%s", head, s.id, r.rc, failedTests(r.output)))
		default:
			res.passed++
		}
	}
	if !b.done && len(res.failures) == 0 {
		res.failures = append(res.failures, fmt.Sprintf("%s: the guest did not reach its end (qemu: %v)", head, b.exitErr))
	}
}

var (
	failLine = regexp.MustCompile(`^\s*--- FAIL: (\S+)`)
	skipLine = regexp.MustCompile(`^\s*--- SKIP: (\S+)`)
)

// failedTests returns, for each test that failed in a test binary's
// verbose output, its name and the lines between its RUN and its FAIL.
// Without one (the binary died, a leak check failed), the output's tail.
func failedTests(out []string) string {
	var b strings.Builder
	for i, l := range out {
		m := failLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		from := 0
		for j := i - 1; j >= 0; j-- {
			if strings.TrimSpace(out[j]) == "=== RUN   "+m[1] {
				from = j
				break
			}
		}
		fmt.Fprintf(&b, "  %s:\n    %s\n", m[1], strings.Join(out[from:i+1], "\n    "))
	}
	if b.Len() == 0 {
		return "  " + strings.Join(tail(out, 40), "\n  ") + "\n"
	}
	return b.String()
}

// skips names each test that skipped, once, with its reason: the log
// line go test -v prints just before "--- SKIP".
func skips(out []string) []string {
	var s []string
	seen := map[string]bool{}
	for i, l := range out {
		m := skipLine.FindStringSubmatch(l)
		if m == nil || seen[m[1]] {
			continue
		}
		seen[m[1]] = true
		reason := ""
		if i > 0 && strings.Contains(out[i-1], "_test.go:") {
			_, reason, _ = strings.Cut(strings.TrimSpace(out[i-1]), ": ")
		}
		s = append(s, m[1]+": "+reason)
	}
	return s
}

func tail(lines []string, n int) []string {
	return lines[max(0, len(lines)-n):]
}

// resultTable is the matrix's outcome as a Markdown table, then the tests
// each target skipped, and the total time.
func resultTable(results []outcome, took time.Duration) string {
	var b strings.Builder
	b.WriteString("\n| target | kernel | arch | CPUs | ran | boot | tests | result |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		verdict := "pass"
		if len(r.failures) > 0 {
			verdict = fmt.Sprintf("FAIL (%d)", len(r.failures))
		}
		boots := ""
		if r.boots > 1 {
			boots = fmt.Sprintf(", %d boots", r.boots)
		}
		var secs float64
		for _, s := range r.b.steps {
			secs += s.seconds
		}
		fmt.Fprintf(&b, "| %s | %s (%s) | %s | %d | %s: %d test binaries | %.0fs%s | %.0fs | %s |\n", r.t.name, r.kernel.Release, r.kernel.Version,
			r.t.arch, r.t.cpus, r.t.set, len(sets[r.t.set]), r.b.bootTime.Seconds(), boots, secs, verdict)
	}
	for _, r := range results {
		if len(r.skipped) > 0 {
			fmt.Fprintf(&b, "\n%s skipped:\n", r.t.name)
			for _, s := range r.skipped {
				fmt.Fprintf(&b, "- %s\n", s)
			}
		}
	}
	fmt.Fprintf(&b, "\nvmtest: %d targets in %v\n", len(results), took.Round(time.Second))
	return b.String()
}
