package main

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReadConsoleFramesSteps feeds a console as a guest writes it: kernel
// lines, a marker glued to the end of a kernel line, a marker of another
// nonce (a test printing one), and enough steps that the step list grows.
func TestReadConsoleFramesSteps(t *testing.T) {
	const nonce = "00aa11bb22cc33dd"
	var c strings.Builder
	c.WriteString("[    0.000000] Linux version 7.2.13\n")
	c.WriteString("@@vmtest " + nonce + " begin kernel=7.2.13 arch=x86_64 cpus=2\n")
	for i := range 9 {
		id := "pkg/p" + strconv.Itoa(i)
		c.WriteString("[    1.0] random: crng init done@@vmtest " + nonce + " start " + id + "\n")
		c.WriteString("=== RUN   TestX\n")
		c.WriteString("@@vmtest ffffffffffffffff end " + id + " rc=0 seconds=1\n") // forged: another nonce
		rc := "0"
		if i == 4 {
			rc = "1"
		}
		c.WriteString("@@vmtest " + nonce + " end " + id + " rc=" + rc + " seconds=2.5\n")
	}
	c.WriteString("@@vmtest " + nonce + " start pkg/last\n")
	c.WriteString("[   99.0] Kernel panic - not syncing\n")
	b := readConsole(strings.NewReader(c.String()), nonce, nil, time.Now())
	if !b.began || b.done {
		t.Fatalf("began %v, done %v; want began and not done", b.began, b.done)
	}
	if len(b.steps) != 10 {
		t.Fatalf("%d steps, want 10", len(b.steps))
	}
	for i, s := range b.steps[:9] {
		wantRC := 0
		if i == 4 {
			wantRC = 1
		}
		if !s.ended || s.rc != wantRC || s.seconds != 2.5 || s.id != "pkg/p"+strconv.Itoa(i) {
			t.Errorf("step %d: %+v", i, s)
		}
		// The forged end line is output, not an end.
		if len(s.output) != 2 || !strings.Contains(s.output[1], "ffffffffffffffff") {
			t.Errorf("step %d output %q", i, s.output)
		}
	}
	if last := b.steps[9]; last.ended || len(last.output) != 1 {
		t.Errorf("the step the kernel panicked in: %+v", last)
	}
}

// TestJudge turns boots into verdicts: a boot that never began, a step
// that did not end, a failing binary with its failing test named.
func TestJudge(t *testing.T) {
	tg := target{name: "x", set: "custom", arch: "amd64", cpus: 2}
	sets["custom"] = []run{{pkg: "pkg/a"}, {pkg: "pkg/b"}}
	defer delete(sets, "custom")
	for _, tc := range []struct {
		name string
		b    boot
		want []string // in the failures, in order; none: passes
	}{
		{"never began", boot{console: []string{"Oops: int3"}}, []string{"died before its first test", "Oops: int3"}},
		{"all passed", boot{began: true, done: true, steps: []stepResult{{id: "pkg/a", ended: true}, {id: "pkg/b", ended: true}}}, nil},
		{"one missing", boot{began: true, steps: []stepResult{{id: "pkg/a", ended: true}}}, []string{"pkg/b never ran"}},
		{"cut short", boot{began: true, steps: []stepResult{{id: "pkg/a", ended: true}, {id: "pkg/b", output: []string{"=== RUN   TestY"}}}},
			[]string{"pkg/b did not finish", "TestY"}},
		{"failed", boot{began: true, done: true, steps: []stepResult{{id: "pkg/a", ended: true}, {id: "pkg/b", ended: true, rc: 1,
			output: []string{"=== RUN   TestZ", "    z_test.go:1: boom", "--- FAIL: TestZ (0.1s)", "FAIL"}}}},
			[]string{"pkg/b exited 1", "TestZ:", "boom"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := outcome{t: tg, b: &tc.b, boots: 1}
			judge(&res)
			all := strings.Join(res.failures, "\n")
			if len(tc.want) == 0 {
				if all != "" || res.passed != 2 {
					t.Fatalf("failures %q, %d passed", all, res.passed)
				}
				return
			}
			for _, w := range tc.want {
				i := strings.Index(all, w)
				if i < 0 {
					t.Fatalf("failures do not say %q:\n%s", w, all)
				}
				all = all[i:]
			}
		})
	}
}

// TestWriteCPIO writes an archive and reads it back by the newc format's
// rules: the kernel would unpack these names, modes and contents.
func TestWriteCPIO(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "a.cpio")
	if err := writeCPIO(path, []cpioEntry{
		{name: "bin/busybox", mode: 0o755, src: src},
		{name: "init", mode: 0o755, data: []byte("#!/bin/sh\n")},
		{name: "usr/bin", link: "/bin"},
		{name: "tmp", dir: true, mode: 0o1777},
	}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type member struct {
		mode uint64
		data string
	}
	got := map[string]member{}
	var order []string
	for off := 0; ; {
		h := raw[off : off+110]
		if string(h[:6]) != "070701" {
			t.Fatalf("bad magic at %d: %q", off, h[:6])
		}
		field := func(i int) int {
			v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(v)
		}
		mode, size, namesize := field(1), field(6), field(11)
		name := string(raw[off+110 : off+110+namesize-1])
		off += (110 + namesize + 3) &^ 3
		data := string(raw[off : off+size])
		off += (size + 3) &^ 3
		if name == "TRAILER!!!" {
			if off != len(raw) {
				t.Errorf("%d bytes after the trailer", len(raw)-off)
			}
			break
		}
		got[name] = member{uint64(mode), data}
		order = append(order, name)
	}
	want := map[string]member{
		"bin": {0o040755, ""}, "usr": {0o040755, ""}, "tmp": {0o041777, ""},
		"bin/busybox": {0o100755, "hello"}, "init": {0o100755, "#!/bin/sh\n"}, "usr/bin": {0o120777, "/bin"},
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: mode %o data %q, want %o %q", name, got[name].mode, got[name].data, w.mode, w.data)
		}
	}
	if len(got) != len(want) {
		t.Errorf("members %v", order)
	}
	// A directory comes before what it holds.
	for i, name := range order {
		if d := filepath.Dir(name); d != "." && !bytes.Contains([]byte(strings.Join(order[:i], "\n")+"\n"), []byte(d+"\n")) {
			t.Errorf("%s before its directory %s: %v", name, d, order)
		}
	}
}

// TestDepends reads the first alternative of each dependency, as Debian's
// kernel metapackages list them.
func TestDepends(t *testing.T) {
	got := depends("dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-7.2.13+deb14-amd64 (= 7.2.13-1), linux-binary-7.2.13+deb14-amd64 (= 7.2.13-1)")
	want := []string{"dracut", "linux-base-7.2.13+deb14-amd64", "linux-binary-7.2.13+deb14-amd64"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("depends: %q, want %q", got, want)
	}
	for _, name := range []string{"linux-image-6.1.0-50-amd64", "linux-image-7.2.13+deb14-arm64"} {
		if !kernelPackage.MatchString(name) {
			t.Errorf("%s is not taken for a kernel image", name)
		}
	}
	if kernelPackage.MatchString("linux-image-amd64") {
		t.Error("the metapackage is taken for a kernel image")
	}
}

// TestEveryTargetHasItsSet checks the matrix names only sets that exist,
// and that each step gets a binary the build makes.
func TestEveryTargetHasItsSet(t *testing.T) {
	for _, tg := range matrix {
		if len(sets[tg.set]) == 0 {
			t.Errorf("%s: no set %q", tg.name, tg.set)
		}
		if _, ok := machines[tg.arch]; !ok {
			t.Errorf("%s: no machine for %s", tg.name, tg.arch)
		}
		for _, s := range steps(tg) {
			if strings.HasPrefix(s.argv[0], "/tests/") && !strings.HasSuffix(s.argv[0], ".test") {
				t.Errorf("%s: step %s runs %s", tg.name, s.id, s.argv[0])
			}
		}
	}
}

// kernelTestPackages are the module's packages whose tests ask the
// machine for BPF (a testenv.Require... call), relative to the module.
func kernelTestPackages(t *testing.T) []string {
	t.Helper()
	root := filepath.Join("..", "..")
	found := map[string]bool{}
	needs := regexp.MustCompile(`testenv\.Require(BPF|Tracefs|UserRing|SyscallProgs)\(`)
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != root) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if needs.Match(b) {
			rel, _ := filepath.Rel(root, filepath.Dir(path))
			found[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return slices.Sorted(maps.Keys(found))
}

// TestFullSetCoversTheKernelTests: every package whose tests load BPF runs
// in the full set, or is listed in hostOnly with the reason, so a package
// added (or moved) later is not left out of the matrix unseen.
func TestFullSetCoversTheKernelTests(t *testing.T) {
	inFull := map[string]bool{}
	for _, r := range sets["full"] {
		inFull[r.pkg] = true
	}
	pkgs := kernelTestPackages(t)
	if len(pkgs) < 10 {
		t.Fatalf("only %d packages with kernel tests found: %v", len(pkgs), pkgs)
	}
	for _, p := range pkgs {
		if !inFull[p] && hostOnly[p] == "" {
			t.Errorf("%s has tests that load BPF but runs in no VM: add it to the full set, or to hostOnly with why", p)
		}
	}
}

// testNames are the Test functions of a package's test files.
func testNames(t *testing.T, pkg string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", pkg, "*_test.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: no test files (%v)", pkg, err)
	}
	var names []string
	decl := regexp.MustCompile(`(?m)^func (Test\w+)\(t \*testing\.T\)`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range decl.FindAllSubmatch(b, -1) {
			names = append(names, string(m[1]))
		}
	}
	return names
}

// TestPlanNamesTestsThatExist: each test the plan runs alone, skips on a
// kernel or keeps out of the VM names at least one test of its package, so
// a test renamed or moved to another package cannot drop out of the
// matrix (or back into a kernel it fails on) with nothing said.
func TestPlanNamesTestsThatExist(t *testing.T) {
	check := func(where, pkg, patterns string) {
		names := testNames(t, pkg)
		for _, p := range strings.Split(patterns, "|") {
			re, err := regexp.Compile(p)
			if err != nil {
				t.Errorf("%s: %s: pattern %q: %v", where, pkg, p, err)
				continue
			}
			if !slices.ContainsFunc(names, re.MatchString) {
				t.Errorf("%s: %s has no test matching %q", where, pkg, p)
			}
		}
	}
	for set, runs := range sets {
		for _, r := range runs {
			if r.only != "" {
				check("set "+set, r.pkg, r.only)
			}
			if r.skip != "" {
				check("set "+set, r.pkg, r.skip)
			}
		}
	}
	for name, m := range map[string]map[string]string{"notInVM": notInVM, "benchOn6_1": benchOn6_1, "missedOn7": missedOn7} {
		for pkg, patterns := range m {
			check(name, pkg, patterns)
		}
	}
}
