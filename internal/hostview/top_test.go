package hostview

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/cilium/ebpf"

	"github.com/ringwatch/ringwatch/internal/progstats"
	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/pkg/hostrings"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// lineWith is the first line of s that starts with prefix.
func lineWith(s, prefix string) string {
	for l := range strings.Lines(s) {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// fakeSource is a host of two rings and two programs whose counts advance
// by hand.
type fakeSource struct {
	rings []hostrings.Ring
	peaks map[ebpf.MapID]hostrings.Span
	progs []progstats.Program
	walks int
}

func (f *fakeSource) Rings(time.Time) []hostrings.Ring { return slices.Clone(f.rings) }
func (f *fakeSource) Peak(id ebpf.MapID, _ time.Time) (hostrings.Span, bool) {
	s, ok := f.peaks[id]
	return s, ok
}
func (f *fakeSource) Programs() ([]progstats.Program, error) { return slices.Clone(f.progs), nil }
func (f *fakeSource) Walk() error                            { f.walks++; return nil }

// TestTopModel drives the view with a fake host and clock: rates from two
// readings, sorting, selection, panes, and q.
func TestTopModel(t *testing.T) {
	src := &fakeSource{
		rings: []hostrings.Ring{
			{ID: 10, Name: "quiet", Kind: hostrings.RingBuf, Capacity: 4096},
			{ID: 11, Name: "busy", Kind: hostrings.UserRingBuf, Capacity: 4096, Owners: []hostrings.Owner{{PID: 5, Comm: "writer"}}},
		},
		progs: []progstats.Program{
			{ID: 20, Name: "cheap", Type: ebpf.Kprobe, RunCount: 100, RunTime: 1000},
			{ID: 21, Name: "costly", Type: ebpf.TracePoint, RunCount: 100, RunTime: 100000, Maps: []ebpf.MapID{11}},
		},
	}
	clock := time.Unix(1000, 0)
	m := newTopModel(src, func() time.Time { return clock }, time.Second)
	m.width, m.height = 200, 40
	if cmd := m.Init(); cmd == nil {
		t.Fatal("Init scheduled no refresh")
	}
	// One second later: busy took 2048 bytes in and 1024 out; the costly
	// program ran 1000 times for 5ms in all, the cheap one 10 times for 1µs.
	clock = clock.Add(time.Second)
	src.rings[1].Producer, src.rings[1].Consumer = 2048, 1024
	src.progs[0].RunCount, src.progs[0].RunTime = 110, 2000
	src.progs[1].RunCount, src.progs[1].RunTime = 1100, 100000+5*time.Millisecond
	// Busy's peak: 2048 bytes in one 10ms sample, 200 KiB/s, so 100 ms at
	// that rate takes 20 KiB, which 32 KiB holds; with 1 KiB pending, its
	// 3 KiB free last 15 ms. Quiet was idle.
	src.peaks = map[ebpf.MapID]hostrings.Span{
		10: {Start: clock.Add(-20 * time.Millisecond), End: clock.Add(-10 * time.Millisecond)},
		11: {Start: clock.Add(-20 * time.Millisecond), End: clock.Add(-10 * time.Millisecond), Bytes: 2048},
	}
	if _, cmd := m.Update(tickMsg(clock)); cmd == nil || src.walks != 1 {
		t.Fatalf("a tick walked %d times and scheduled %v; want one walk and the next tick", src.walks, cmd)
	}
	frame := m.frame()
	busy := lineWith(frame, reverse+"11 ") // sorted by fill: busy first, selected
	for _, want := range []string{"busy", "user_ringbuf", "[###.......]  25.0%", "2.0KiB", "1.0KiB", "200.0KiB", "3s", "32.0KiB", "no", "writer/5"} {
		if !strings.Contains(busy, want) {
			t.Errorf("busy's line %q lacks %q; frame:\n%s", busy, want, frame)
		}
	}
	if want := "at its peak: fills in 15ms at 200.0KiB/s; 32.0KiB holds a 100ms pause (now 4.0KiB)"; !strings.Contains(frame, want) {
		t.Errorf("busy's details lack %q; frame:\n%s", want, frame)
	}
	// Sorted by CPU share: costly (0.5% of a CPU, 1000 runs/s, 5000ns a run) first.
	costly := lineWith(frame, "21 ")
	for _, want := range []string{"costly", "1000.0", "5000", "0.50", "11"} {
		if !strings.Contains(costly, want) {
			t.Errorf("costly's line %q lacks %q", costly, want)
		}
	}
	if i, j := strings.Index(frame, "costly"), strings.Index(frame, "cheap"); i < 0 || j < 0 || i > j {
		t.Errorf("costly is not above cheap:\n%s", frame)
	}
	// Down selects the next ring; s sorts by in-rate, then by ID.
	m.Update(tea.KeyPressMsg{Code: tea.KeyDown})
	if !strings.Contains(lineWith(m.frame(), reverse+"10 "), "quiet") {
		t.Errorf("down did not select quiet:\n%s", m.frame())
	}
	if want := "at its peak: nothing produced in 1s: any ring holds a pause at that rate; 4.0KiB, the smallest for what was pending, does (now 4.0KiB)"; !strings.Contains(m.frame(), want) && os.Getpagesize() == 4096 {
		t.Errorf("quiet's details lack %q; frame:\n%s", want, m.frame())
	}
	m.Update(tea.KeyPressMsg{Code: 's', Text: "s"})
	m.Update(tea.KeyPressMsg{Code: 's', Text: "s"})
	if f := m.frame(); !strings.Contains(f, "RINGS"+reset+" (sorted by id)") || strings.Index(f, "quiet") > strings.Index(f, "busy") {
		t.Errorf("two s presses should sort the rings by ID:\n%s", f)
	}
	// Tab: the programs pane, and its details.
	m.Update(tea.KeyPressMsg{Code: tea.KeyTab})
	if f := m.frame(); !strings.Contains(f, "> "+bold+"PROGRAMS") || !strings.Contains(f, "program 21 costly: 1100 runs") {
		t.Errorf("tab did not select the programs pane:\n%s", f)
	}
	// q quits.
	_, cmd := m.Update(tea.KeyPressMsg{Code: 'q', Text: "q"})
	if cmd == nil {
		t.Fatal("q returned no command")
	}
	if _, ok := cmd().(tea.QuitMsg); !ok {
		t.Errorf("q's command sent %T, want tea.QuitMsg", cmd())
	}
}
