package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
)

// buildBinaries builds, for arch, every test binary a set runs and the two
// commands the tests start (ringwatch and examples/getpidloop), static
// (CGO_ENABLED=0, as `make build` builds ringwatch), into out/ARCH.
func buildBinaries(out, arch string) (string, error) {
	dir, err := filepath.Abs(filepath.Join(out, arch))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var pkgs []string
	for name, set := range sets {
		if name == "custom" {
			continue
		}
		for _, r := range set {
			if r.pkg != "" && !slices.Contains(pkgs, "./"+r.pkg) {
				pkgs = append(pkgs, "./"+r.pkg)
			}
		}
	}
	slices.Sort(pkgs)
	logf("building %d test binaries and ringwatch for %s in %s", len(pkgs), arch, dir)
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	cmds := [][]string{
		append([]string{"test", "-c", "-trimpath", "-o", dir + "/"}, pkgs...),
		{"build", "-trimpath", "-o", filepath.Join(dir, "ringwatch"), "./cmd/ringwatch"},
		{"build", "-trimpath", "-o", filepath.Join(dir, "getpidloop"), "./examples/getpidloop"},
	}
	for _, args := range cmds {
		cmd := exec.Command("go", args...)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("go %v for %s: %w", args, arch, err)
		}
	}
	return dir, nil
}

// buildInitramfs packs t's guest: busybox, init, the test binaries of t's
// set with their package files, and the commands.
func buildInitramfs(out string, t target, bins, busybox string) (string, error) {
	repo, err := os.Getwd()
	if err != nil {
		return "", err
	}
	env := []string{
		"RINGWATCH_VMTEST=" + strconv.Itoa(t.cpus),
		// internal/testenv runs these instead of building them: the
		// guest has no Go toolchain.
		"RINGWATCH_TEST_RINGWATCH=/bin/ringwatch",
		"RINGWATCH_TEST_GETPIDLOOP=/bin/getpidloop",
		"RINGWATCH_BIN=/bin/ringwatch",
	}
	if t.ci {
		env = append(env, "CI=1")
	}
	st := steps(t)
	entries := guestFiles(busybox, initScript(st, env))
	entries = append(entries,
		cpioEntry{name: "bin/ringwatch", mode: 0o755, src: filepath.Join(bins, "ringwatch")},
		cpioEntry{name: "bin/getpidloop", mode: 0o755, src: filepath.Join(bins, "getpidloop")})
	for _, f := range repoFiles {
		entries = append(entries, cpioEntry{name: filepath.Join("src", f), mode: 0o644, src: filepath.Join(repo, f)})
	}
	var done []string
	for _, r := range sets[t.set] {
		if r.pkg == "" || slices.Contains(done, r.pkg) {
			continue
		}
		done = append(done, r.pkg)
		entries = append(entries, cpioEntry{name: "tests/" + testBinary(r.pkg), mode: 0o755, src: filepath.Join(bins, testBinary(r.pkg))},
			cpioEntry{name: filepath.Join("src", r.pkg), dir: true, mode: 0o755})
		files, err := packageFiles(repo, r.pkg)
		if err != nil {
			return "", err
		}
		entries = append(entries, files...)
	}
	path := filepath.Join(out, t.name+".cpio")
	return path, writeCPIO(path, entries)
}
