package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/hostview"
	"github.com/ringwatch/ringwatch/internal/progstats"
	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/internal/testenv/ringchild"
	"github.com/ringwatch/ringwatch/pkg/hostrings"
)

func TestParseRingsAndTopFlags(t *testing.T) {
	cfg, err := parseRingsFlags(nil, io.Discard)
	if err != nil || cfg.JSON || cfg.Interval != time.Second || cfg.Pause != 100*time.Millisecond {
		t.Errorf("rings defaults: %+v, %v", cfg, err)
	}
	if cfg, err := parseRingsFlags([]string{"--json", "--interval", "250ms", "--pause", "2s"}, io.Discard); err != nil || !cfg.JSON ||
		cfg.Interval != 250*time.Millisecond || cfg.Pause != 2*time.Second {
		t.Errorf("rings --json --interval 250ms --pause 2s: %+v, %v", cfg, err)
	}
	tc, err := parseTopFlags(nil, io.Discard)
	if err != nil || tc.Once || tc.Interval != time.Second || tc.Pause != 100*time.Millisecond {
		t.Errorf("top defaults: %+v, %v", tc, err)
	}
	for _, bad := range []struct {
		parse func([]string, io.Writer) error
		args  []string
	}{
		{ringsParse, []string{"--interval", "0s"}},
		{ringsParse, []string{"--interval", "9ms"}},
		{ringsParse, []string{"--pause", "0s"}},
		{ringsParse, []string{"--interval", "soon"}},
		{ringsParse, []string{"--json=maybe"}},
		{ringsParse, []string{"extra"}},
		{topParse, []string{"--interval", "10ms"}},
		{topParse, []string{"--interval", "x"}},
		{topParse, []string{"--once=x"}},
		{topParse, []string{"extra"}},
	} {
		if err := bad.parse(bad.args, io.Discard); err == nil {
			t.Errorf("%v: accepted", bad.args)
		}
	}
	if code := run([]string{"rings", "--interval", "-1s"}, io.Discard, io.Discard); code != exitUsage {
		t.Errorf("rings with a bad flag exits %d, want %d", code, exitUsage)
	}
	if code := run([]string{"top", "--interval", "1ms"}, io.Discard, io.Discard); code != exitUsage {
		t.Errorf("top with a bad flag exits %d, want %d", code, exitUsage)
	}
}

func ringsParse(args []string, w io.Writer) error { _, err := parseRingsFlags(args, w); return err }
func topParse(args []string, w io.Writer) error   { _, err := parseTopFlags(args, w); return err }

// TestRingsShowsAnotherProcesssRing lists a child's unread ring, as JSON
// and as a table.
func TestRingsShowsAnotherProcesssRing(t *testing.T) {
	testenv.RequireBPF(t)
	child := ringchild.Start(t, ringchild.Ring)
	const records = 100
	child.Do(t, fmt.Sprintf("write %d", records))

	var out, errOut bytes.Buffer
	if code := run([]string{"rings", "--json", "--interval", "200ms"}, &out, &errOut); code != exitOK {
		t.Fatalf("rings --json exited %d: %s", code, errOut.String())
	}
	var rings []hostview.RingJSON
	if err := json.Unmarshal(out.Bytes(), &rings); err != nil {
		t.Fatalf("rings --json printed %q: %v", out.String(), err)
	}
	i := slices.IndexFunc(rings, func(r hostview.RingJSON) bool { return r.MapID == uint32(child.MapID) })
	if i < 0 {
		t.Fatalf("the child's ring %d is not listed: %s", child.MapID, out.String())
	}
	r := rings[i]
	written := uint64(records * ringchild.RecordBytes)
	if r.Name != ringchild.RingName || r.Type != "ringbuf" || r.CapacityBytes != ringchild.RingSize ||
		r.PendingBytes == nil || *r.PendingBytes != written || *r.ProducerPos != written || *r.ConsumerPos != 0 {
		t.Errorf("listed as %s", out.String())
	}
	// Nothing moved during the interval: no rates, never full, and stalled.
	if *r.InBytesPerSec != 0 || *r.OutBytesPerSec != 0 || r.SecondsToFull != nil || r.ConsumerPauseS != nil || !r.Stalled || r.Ours {
		t.Errorf("rates and state: in %v, out %v, to full %v, pause %v, stalled %v, ours %v; want 0, 0, null, null, true, false",
			*r.InBytesPerSec, *r.OutBytesPerSec, r.SecondsToFull, r.ConsumerPauseS, r.Stalled, r.Ours)
	}
	// Nor at the peak: no rate, never full, and the smallest ring that
	// holds what is pending (3200 bytes) is one page.
	page := uint64(os.Getpagesize())
	if r.PeakInBytesPerSec == nil || *r.PeakInBytesPerSec != 0 || *r.PeakBytes != 0 || *r.PeakPendingBytes != written ||
		r.SecondsToFullAtPeak != nil || r.ConsumerPauseAtPeakS != nil || *r.PauseS != 0.1 || *r.NeededBytes != written ||
		r.AdvisedCapacity == nil || *r.AdvisedCapacity != max(page, 4096) || r.LargestRingPauseS != nil {
		t.Errorf("sizing of an idle ring: %s", out.String())
	}
	if !slices.Contains(r.Owners, hostview.OwnerJSON{PID: child.Pid, Comm: child.Comm()}) {
		t.Errorf("owners %+v lack the child %d %s", r.Owners, child.Pid, child.Comm())
	}
	if !slices.ContainsFunc(r.Programs, func(p hostview.ProgramJSON) bool {
		return p.ID == uint32(child.ProgID) && p.Name == ringchild.ProgName
	}) {
		t.Errorf("programs %+v lack the child's %d %s", r.Programs, child.ProgID, ringchild.ProgName)
	}

	out.Reset()
	if code := run([]string{"rings", "--interval", "100ms"}, &out, &errOut); code != exitOK {
		t.Fatalf("rings exited %d: %s", code, errOut.String())
	}
	line := lineWith(out.String(), fmt.Sprintf("%d ", child.MapID))
	for _, want := range []string{ringchild.RingName, "ringbuf", "64.0KiB", "4.9% (3.1KiB)", "never", "yes",
		fmt.Sprintf("%s/%d", child.Comm(), child.Pid), ringchild.ProgName} {
		if !strings.Contains(line, want) {
			t.Errorf("table line %q lacks %q", line, want)
		}
	}
	_, below, _ := strings.Cut(out.String(), "\nSizing, at each ring's peak (its fastest 10ms sample in 100ms) for a 100ms consumer pause (--pause):\n")
	if sizing := lineWith(below, fmt.Sprintf("%d ", child.MapID)); !strings.Contains(sizing,
		"nothing produced in 100ms: any ring holds a pause at that rate; "+hostview.FormatBytes(float64(max(page, 4096)))+", the smallest for what was pending, does (now 64.0KiB)") {
		t.Errorf("sizing line %q; the output:\n%s", sizing, out.String())
	}
}

// TestRingsSizesABurstyRing: a child writes one 16 KiB record every 20ms
// into a ring of its own, each record one step of the producer position,
// so every 10 ms span that `rings` measures holds whole records. The peak
// and the advice in `rings --json` must be whole records and follow from
// one another; the wall-clock length of the spans is the machine's
// business, so the test holds the figures to what was written, not to a
// rate.
func TestRingsSizesABurstyRing(t *testing.T) {
	testenv.RequireBPF(t)
	child := ringchild.Start(t, ringchild.BurstRing)
	child.Do(t, "bursts 20ms")
	var out, errOut bytes.Buffer
	if code := run([]string{"rings", "--json", "--interval", "300ms", "--pause", "250ms"}, &out, &errOut); code != exitOK {
		t.Fatalf("rings --json exited %d: %s", code, errOut.String())
	}
	var rings []hostview.RingJSON
	if err := json.Unmarshal(out.Bytes(), &rings); err != nil {
		t.Fatalf("rings --json printed %q: %v", out.String(), err)
	}
	i := slices.IndexFunc(rings, func(r hostview.RingJSON) bool { return r.MapID == uint32(child.MapID) })
	if i < 0 {
		t.Fatalf("the child's ring %d is not listed: %s", child.MapID, out.String())
	}
	r := rings[i]
	const record = ringchild.BurstRecordBytes
	if r.PeakBytes == nil || *r.PeakBytes == 0 || *r.PeakBytes%record != 0 || *r.PeakBytes > *r.ProducerPos ||
		*r.PeakPendingBytes%record != 0 || *r.ProducerPos%record != 0 {
		t.Fatalf("peak of %v bytes with %v pending (producer at %v); want whole %d-byte records, some", r.PeakBytes, r.PeakPendingBytes, r.ProducerPos, record)
	}
	rate, span := *r.PeakInBytesPerSec, *r.PeakSpanS
	if span < hostrings.DefaultMinSpan.Seconds() || math.Abs(rate-float64(*r.PeakBytes)/span) > 1e-6*rate {
		t.Errorf("peak rate %v over %vs; want peak_bytes / peak_span_seconds, over %v or more", rate, span, hostrings.DefaultMinSpan)
	}
	free := float64(ringchild.BurstRingSize - *r.PendingBytes)
	if r.SecondsToFullAtPeak == nil || math.Abs(*r.SecondsToFullAtPeak-free/rate) > 1e-6 ||
		math.Abs(*r.ConsumerPauseAtPeakS-ringchild.BurstRingSize/rate) > 1e-6 {
		t.Errorf("full at peak in %v, an empty ring in %v; want %v and %v", r.SecondsToFullAtPeak, r.ConsumerPauseAtPeakS, free/rate, ringchild.BurstRingSize/rate)
	}
	need := uint64(math.Ceil(rate*0.25)) + *r.PeakPendingBytes
	capacity := uint64(os.Getpagesize())
	for capacity < need {
		capacity *= 2
	}
	if *r.PauseS != 0.25 || *r.NeededBytes != need || r.AdvisedCapacity == nil || *r.AdvisedCapacity != capacity {
		t.Errorf("advice for 250ms: need %v, capacity %v; want %d, %d", *r.NeededBytes, r.AdvisedCapacity, need, capacity)
	}
	if err := abi.CheckRingSize(int(capacity)); err != nil {
		t.Errorf("advised %d, which the kernel refuses: %v", capacity, err)
	}
	t.Logf("peak %d bytes over %.1fms (%.0f B/s), %d pending; %d bytes hold 250ms", *r.PeakBytes, 1000*span, rate, *r.PeakPendingBytes, capacity)
}

// lineWith is the first line of s that starts with prefix.
func lineWith(s, prefix string) string {
	for l := range strings.Lines(s) {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// runCount is the kernel's run count of program id.
func runCount(t *testing.T, id ebpf.ProgramID) uint64 {
	t.Helper()
	progs, err := progstats.List()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(progs, func(p progstats.Program) bool { return p.ID == id })
	if i < 0 {
		t.Fatalf("program %d not listed", id)
	}
	return progs[i].RunCount
}

// TestTopOnceShowsTheRingAndLeavesStatsOff prints one frame with a child's
// ring and program, and checks the run statistics are off once top is done.
func TestTopOnceShowsTheRingAndLeavesStatsOff(t *testing.T) {
	testenv.RequireBPF(t)
	child := ringchild.Start(t, ringchild.Ring)
	child.Do(t, "write 10")
	var out, errOut bytes.Buffer
	if code := run([]string{"top", "--once", "--interval", "200ms"}, &out, &errOut); code != exitOK {
		t.Fatalf("top --once exited %d: %s", code, errOut.String())
	}
	frame := out.String()
	if strings.Contains(frame, "\x1b[") {
		t.Errorf("--once printed terminal escapes: %q", frame)
	}
	ring := lineWith(frame, fmt.Sprintf("%-7d %-16s ringbuf", child.MapID, ringchild.RingName))
	if ring == "" || !strings.Contains(ring, "[#.........]   4.9%") && !strings.Contains(ring, "[..........]   0.5%") ||
		!strings.Contains(ring, child.Comm()) {
		t.Errorf("no line for the child's ring with its fill and owner in:\n%s", frame)
	}
	if lineWith(frame, fmt.Sprintf("%-7d %-16s", child.ProgID, ringchild.ProgName)) == "" {
		t.Errorf("no line for the child's program %d in:\n%s", child.ProgID, frame)
	}
	// top has exited: runs are no longer counted.
	before := runCount(t, child.ProgID)
	child.Do(t, "write 50")
	if after := runCount(t, child.ProgID); after != before {
		t.Errorf("run statistics still on after top exited: %d runs counted (another process may hold them on: see /proc/sys/kernel/bpf_stats_enabled)", after-before)
	}
}

// TestTopInAPseudoTerminal runs `ringwatch top` on a pseudo-terminal: it
// draws the child's ring on the alternate screen, and q ends it with exit
// status 0 and the terminal restored.
func TestTopInAPseudoTerminal(t *testing.T) {
	testenv.RequireBPF(t)
	child := ringchild.Start(t, ringchild.Ring)
	child.Do(t, "write 10")

	master, slave := openPTY(t)
	defer master.Close()
	if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 50, Col: 200}); err != nil {
		t.Fatal(err)
	}
	cmd := ringwatchCmd("top", "--interval", "200ms")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	cmd.Env = append(cmd.Env, "TERM=xterm-256color")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	output := make(chan []byte, 64)
	go func() {
		defer close(output)
		for {
			buf := make([]byte, 64<<10)
			n, err := master.Read(buf)
			if n > 0 {
				output <- buf[:n]
			}
			if err != nil {
				return
			}
		}
	}()
	var screen bytes.Buffer
	waitFor := func(what string, want string) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for !bytes.Contains(screen.Bytes(), []byte(want)) {
			select {
			case b, ok := <-output:
				if !ok {
					t.Fatalf("the terminal closed before %s; it showed %q", what, screen.String())
				}
				screen.Write(b)
			case <-deadline:
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("no %s after 20s; the terminal showed %q", what, screen.String())
			}
		}
	}
	waitFor("alternate screen", "\x1b[?1049h")
	waitFor("the child's ring", ringchild.RingName)
	if _, err := master.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	waitFor("restored screen", "\x1b[?1049l")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("top after q: %v, want exit status 0", err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("top did not exit 10s after q")
	}
}

// openPTY opens a pseudo-terminal pair (pty(7)): the master, and the slave
// for the child.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		testenv.Unavailable(t, fmt.Sprintf("needs a pseudo-terminal: %v", err))
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		t.Fatalf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		t.Fatalf("name the pseudo-terminal: %v", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Fatalf("open the pseudo-terminal's slave: %v", err)
	}
	return master, slave
}
