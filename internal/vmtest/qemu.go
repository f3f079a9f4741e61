package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// machine says how qemu emulates one architecture: the system, the
// console, and the machine options. There is no KVM on the CI machine:
// everything is TCG.
type machine struct {
	qemu    string
	args    []string
	console string
}

var machines = map[string]machine{
	"amd64": {qemu: "qemu-system-x86_64", console: "ttyS0", args: []string{"-cpu", "max"}},
	// -cpu max gives the guest the newest Armv8/v9 features qemu emulates
	// (LSE atomics among them); pauth-impdef makes pointer
	// authentication cheap to emulate (qemu's default QARMA algorithm
	// is a large part of the run time otherwise).
	"arm64": {qemu: "qemu-system-aarch64", console: "ttyAMA0", args: []string{"-M", "virt", "-cpu", "max,pauth-impdef=on"}},
}

// boot is the outcome of one boot.
type boot struct {
	began, done bool
	steps       []stepResult
	console     []string // every line, for the log
	wall        time.Duration
	bootTime    time.Duration // from qemu's start to the begin marker
	exitErr     error
}

// stepResult is one step's outcome, as the guest's markers report it.
type stepResult struct {
	id      string
	rc      int
	seconds float64
	output  []string
	ended   bool
}

var endLine = regexp.MustCompile(`^end (\S+) rc=(\d+) seconds=([0-9.]+)`)

// runQEMU boots kernel with initrd on cpus virtual CPUs and reads the
// console until the guest powers off or limit passes. live, if not nil,
// gets each console line as it comes.
func runQEMU(ctx context.Context, arch, kernel, initrd string, cpus, memMiB int, accel, extraCmdline string, limit time.Duration, live io.Writer) (*boot, error) {
	m, ok := machines[arch]
	if !ok {
		return nil, fmt.Errorf("no machine for architecture %q", arch)
	}
	nonceBytes := make([]byte, 8)
	rand.Read(nonceBytes)
	nonce := hex.EncodeToString(nonceBytes)
	cmdline := fmt.Sprintf("console=%s panic=-1 loglevel=4 vmtest.nonce=%s %s", m.console, nonce, extraCmdline)
	args := append([]string{"-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
		"-accel", accel, "-m", strconv.Itoa(memMiB), "-smp", strconv.Itoa(cpus),
		"-kernel", kernel, "-initrd", initrd, "-append", strings.TrimSpace(cmdline)}, m.args...)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.qemu, args...)
	cmd.Stdin = nil
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", m.qemu, err)
	}
	b := readConsole(out, nonce, live, start)
	b.exitErr = cmd.Wait()
	b.wall = time.Since(start)
	if ctx.Err() != nil {
		b.exitErr = fmt.Errorf("qemu ran past %v and was killed", limit)
	}
	return b, nil
}

// readConsole reads a guest's console to its end: every line into
// b.console, and the steps as the markers of this boot's nonce frame them.
// Markers of another nonce are output like any other.
func readConsole(out io.Reader, nonce string, live io.Writer, start time.Time) *boot {
	b := &boot{}
	prefix := marker + " " + nonce + " "
	cur := -1 // index of the step running, in b.steps
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		b.console = append(b.console, line)
		if live != nil {
			fmt.Fprintln(live, line)
		}
		// A marker may follow kernel output on the same line.
		i := strings.Index(line, prefix)
		if i < 0 {
			if cur >= 0 {
				b.steps[cur].output = append(b.steps[cur].output, line)
			}
			continue
		}
		if i > 0 && cur >= 0 {
			b.steps[cur].output = append(b.steps[cur].output, line[:i])
		}
		word := line[i+len(prefix):]
		switch {
		case strings.HasPrefix(word, "begin "):
			b.began = true
			b.bootTime = time.Since(start)
		case strings.HasPrefix(word, "start "):
			b.steps = append(b.steps, stepResult{id: strings.TrimSpace(strings.TrimPrefix(word, "start "))})
			cur = len(b.steps) - 1
		case strings.HasPrefix(word, "end "):
			if m := endLine.FindStringSubmatch(word); m != nil && cur >= 0 && m[1] == b.steps[cur].id {
				s := &b.steps[cur]
				s.rc, _ = strconv.Atoi(m[2])
				s.seconds, _ = strconv.ParseFloat(m[3], 64)
				s.ended = true
			}
			cur = -1
		case word == "done":
			b.done = true
		}
	}
	return b
}

// logf prints a line of the harness's own progress.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "vmtest: "+format+"\n", args...)
}
