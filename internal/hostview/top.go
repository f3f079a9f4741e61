package hostview

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/cilium/ebpf"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/progstats"
	"github.com/ringwatch/ringwatch/pkg/hostrings"
)

// TopOptions are what `ringwatch top` shows, and how often.
type TopOptions struct {
	Once     bool          // one frame, from two readings Interval apart, without a terminal
	Interval time.Duration // between refreshes
	Pause    time.Duration // the consumer pause the sizing advice is for
}

// Top runs the live view on stdout until q, or prints one frame with
// o.Once: the census and the run statistics are held only for as long as
// it lasts.
func Top(stdout io.Writer, o TopOptions) (err error) {
	census, err := hostrings.Open(hostrings.Options{})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, census.Close()) }()
	stats, err := progstats.Enable()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stats.Close()) }()

	// The peaks need the positions every census sample period, more
	// often than the view refreshes.
	src := hostSource{census: census, peaks: hostrings.NewPeaks(hostrings.PeakOptions{Window: o.Interval})}
	ctx, stop := context.WithCancel(context.Background())
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		src.sample(ctx, census.Options().SampleEvery)
	}()
	defer func() { stop(); <-sampled }()
	m := newTopModel(src, time.Now, o.Interval)
	m.pause = o.Pause
	if o.Once {
		m.refresh(time.Now())
		time.Sleep(o.Interval)
		m.refresh(time.Now())
		if m.err != nil {
			return m.err
		}
		m.plain = true
		_, err := io.WriteString(stdout, m.frame())
		return err
	}
	final, err := tea.NewProgram(m, tea.WithOutput(stdout)).Run()
	if err != nil {
		return abi.RefuseOption(err, "once", "", "run the terminal view: %v (without a terminal, use {once})", err)
	}
	if fm, ok := final.(*topModel); ok && fm.err != nil {
		return fm.err
	}
	return nil
}

// topSource is what the view reads at each refresh.
type topSource interface {
	Rings(now time.Time) []hostrings.Ring
	// Peak is ring id's span of the highest producer rate since the
	// last refresh, or about.
	Peak(id ebpf.MapID, now time.Time) (hostrings.Span, bool)
	Programs() ([]progstats.Program, error)
	Walk() error
}

// hostSource reads the host: the census, walked again at each refresh, its
// peaks, fed every census sample period by sample, and every program.
type hostSource struct {
	census *hostrings.Census
	peaks  *hostrings.Peaks
}

func (h hostSource) Rings(now time.Time) []hostrings.Ring { return h.census.Sample(now) }
func (h hostSource) Peak(id ebpf.MapID, now time.Time) (hostrings.Span, bool) {
	return h.peaks.Peak(id, now)
}
func (h hostSource) Programs() ([]progstats.Program, error) { return progstats.List() }
func (h hostSource) Walk() error                            { return h.census.Walk() }

// sample feeds the peaks every period until ctx is done.
func (h hostSource) sample(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			h.peaks.Observe(h.census.Sample(time.Now())) // the reading's time, not the tick's (see Census.Run)
		}
	}
}

// progRow is one program with its rates over the last refresh.
type progRow struct {
	progstats.Program
	RunsPerSec float64
	AvgRun     time.Duration // mean time per run over the interval; the lifetime mean before there is one
	CPUShare   float64       // run time over wall time: 1 is a whole CPU
}

func progRows(prev, cur []progstats.Program, dt time.Duration) []progRow {
	rows := make([]progRow, 0, len(cur))
	for _, p := range cur {
		row := progRow{Program: p, AvgRun: p.AverageRun()}
		if i := slices.IndexFunc(prev, func(q progstats.Program) bool { return q.ID == p.ID }); i >= 0 && dt > 0 {
			runs := p.RunCount - min(prev[i].RunCount, p.RunCount)
			busy := p.RunTime - min(prev[i].RunTime, p.RunTime)
			row.RunsPerSec = float64(runs) / dt.Seconds()
			row.CPUShare = busy.Seconds() / dt.Seconds()
			if runs > 0 {
				row.AvgRun = busy / time.Duration(runs)
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// The panes and their sort orders.
const (
	paneRings = iota
	panePrograms
)

var (
	ringSorts = []string{"fill", "in", "id", "name"}
	progSorts = []string{"cpu", "runs", "avg", "id"}
)

// topModel is the view's state. Update and View are driven by Bubble Tea,
// or by a test with its own source and clock.
type topModel struct {
	src      topSource
	now      func() time.Time
	interval time.Duration
	pause    time.Duration // the consumer pause the sizing advice is for

	lastAt    time.Time
	lastRings []hostrings.Ring
	lastProgs []progstats.Program
	rings     []ringRow
	progs     []progRow
	err       error

	pane          int
	cursor        [2]int
	sort          [2]int
	width, height int
	plain         bool // no terminal styles: --once, for scripts
}

func newTopModel(src topSource, now func() time.Time, interval time.Duration) *topModel {
	return &topModel{src: src, now: now, interval: interval, pause: hostrings.DefaultPause, width: 160, height: 48}
}

// tickMsg asks for a refresh.
type tickMsg time.Time

func (m *topModel) tick() tea.Cmd {
	return tea.Tick(m.interval, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// Init takes the first reading and schedules the next.
func (m *topModel) Init() tea.Cmd {
	m.refresh(m.now())
	return m.tick()
}

// Update handles keys, window sizes and refreshes.
func (m *topModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tickMsg:
		walkErr := m.src.Walk()
		m.refresh(m.now())
		m.err = errors.Join(walkErr, m.err)
		return m, m.tick()
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tea.KeyPressMsg:
		switch msg.String() {
		case "q", "ctrl+c", "esc":
			return m, tea.Quit
		case "tab":
			m.pane = 1 - m.pane
		case "down", "j":
			m.cursor[m.pane] = min(m.cursor[m.pane]+1, max(m.rowCount()-1, 0))
		case "up", "k":
			m.cursor[m.pane] = max(m.cursor[m.pane]-1, 0)
		case "s":
			n := len(ringSorts)
			if m.pane == panePrograms {
				n = len(progSorts)
			}
			m.sort[m.pane] = (m.sort[m.pane] + 1) % n
			m.order()
		}
	}
	return m, nil
}

func (m *topModel) rowCount() int {
	if m.pane == paneRings {
		return len(m.rings)
	}
	return len(m.progs)
}

// refresh reads the source at now and computes the rates since the last
// reading.
func (m *topModel) refresh(now time.Time) {
	rings := m.src.Rings(now)
	progs, err := m.src.Programs()
	m.err = err
	dt := now.Sub(m.lastAt)
	if m.lastAt.IsZero() {
		dt = 0
	}
	m.rings = ringRows(m.lastRings, rings, dt)
	page := os.Getpagesize()
	for i := range m.rings {
		r := &m.rings[i]
		if peak, ok := m.src.Peak(r.ID, now); ok && r.HasPositions() {
			r.Advice, r.HasAdvice = hostrings.Advise(r.Ring, peak, m.pause, page), true
		}
	}
	m.progs = progRows(m.lastProgs, progs, dt)
	m.lastAt, m.lastRings, m.lastProgs = now, rings, progs
	m.order()
}

// order sorts both tables by their chosen keys, largest first (IDs and
// names ascending), and keeps the cursors in range.
func (m *topModel) order() {
	switch ringSorts[m.sort[paneRings]] {
	case "fill":
		slices.SortStableFunc(m.rings, func(a, b ringRow) int { return desc(a.Fill(), b.Fill(), a.ID < b.ID) })
	case "in":
		slices.SortStableFunc(m.rings, func(a, b ringRow) int { return desc(a.In, b.In, a.ID < b.ID) })
	case "id":
		slices.SortStableFunc(m.rings, func(a, b ringRow) int { return int(a.ID) - int(b.ID) })
	case "name":
		slices.SortStableFunc(m.rings, func(a, b ringRow) int { return strings.Compare(a.Name, b.Name) })
	}
	switch progSorts[m.sort[panePrograms]] {
	case "cpu":
		slices.SortStableFunc(m.progs, func(a, b progRow) int { return desc(a.CPUShare, b.CPUShare, a.ID < b.ID) })
	case "runs":
		slices.SortStableFunc(m.progs, func(a, b progRow) int { return desc(a.RunsPerSec, b.RunsPerSec, a.ID < b.ID) })
	case "avg":
		slices.SortStableFunc(m.progs, func(a, b progRow) int {
			return desc(float64(a.AvgRun), float64(b.AvgRun), a.ID < b.ID)
		})
	case "id":
		slices.SortStableFunc(m.progs, func(a, b progRow) int { return int(a.ID) - int(b.ID) })
	}
	m.cursor[paneRings] = min(m.cursor[paneRings], max(len(m.rings)-1, 0))
	m.cursor[panePrograms] = min(m.cursor[panePrograms], max(len(m.progs)-1, 0))
}

// desc orders larger values first, ties by lowerIDFirst.
func desc(a, b float64, lowerIDFirst bool) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	case lowerIDFirst:
		return -1
	default:
		return 1
	}
}

// View draws the frame on the terminal's alternate screen, which Bubble Tea
// leaves on exit, restoring what was there.
func (m *topModel) View() tea.View {
	v := tea.NewView(m.frame())
	v.AltScreen = true
	return v
}

const (
	reverse = "\x1b[7m"
	bold    = "\x1b[1m"
	reset   = "\x1b[0m"
)

// frame is the screen's text: a header, the rings, the programs, the
// selected row's details and the keys.
func (m *topModel) frame() string {
	var b strings.Builder
	stalled := 0
	for _, r := range m.rings {
		if r.Rates.Stalled {
			stalled++
		}
	}
	fmt.Fprintf(&b, "ringwatch top - %s - %d rings (%d stalled), %d programs, every %v\n",
		m.lastAt.Format("15:04:05"), len(m.rings), stalled, len(m.progs), m.interval)
	if m.err != nil {
		fmt.Fprintf(&b, "error: %v\n", m.err)
	}
	// Rings get the upper half of the screen, programs what is left.
	room := max(m.height-8, 4)
	ringRoom, progRoom := room/2, room-room/2

	b.WriteString("\n")
	m.title(&b, paneRings, "RINGS", ringSorts)
	header := fmt.Sprintf("%-7s %-16s %-12s %9s %-22s %10s %10s %9s %10s %9s %9s %-7s %s",
		"ID", "NAME", "TYPE", "CAPACITY", "FILL", "IN/s", "OUT/s", "OVERWR/s", "PEAK IN/s", "FULL IN", "FOR "+m.pause.String(), "STALLED", "OWNER")
	b.WriteString(m.fit(header) + "\n")
	start, rows := window(m.rings, m.cursor[paneRings], ringRoom)
	for i, r := range rows {
		m.row(&b, paneRings, start+i, ringLine(r))
	}
	b.WriteString("\n")
	m.title(&b, panePrograms, "PROGRAMS", progSorts)
	header = fmt.Sprintf("%-7s %-16s %-20s %12s %12s %8s %s", "ID", "NAME", "TYPE", "RUNS/s", "AVG ns/RUN", "CPU %", "MAPS")
	b.WriteString(m.fit(header) + "\n")
	start, progs := window(m.progs, m.cursor[panePrograms], progRoom)
	for i, p := range progs {
		m.row(&b, panePrograms, start+i, progLine(p))
	}
	b.WriteString("\n" + m.details() + "\n")
	b.WriteString("tab: rings/programs  up/down: select  s: sort  q: quit\n")
	return b.String()
}

func (m *topModel) title(b *strings.Builder, pane int, name string, sorts []string) {
	mark := "  "
	if m.pane == pane {
		mark = "> "
	}
	if m.plain {
		fmt.Fprintf(b, "%s%s (sorted by %s)\n", mark, name, sorts[m.sort[pane]])
		return
	}
	fmt.Fprintf(b, "%s%s%s%s (sorted by %s)\n", mark, bold, name, reset, sorts[m.sort[pane]])
}

func (m *topModel) row(b *strings.Builder, pane, index int, line string) {
	line = m.fit(line)
	if m.pane == pane && m.cursor[pane] == index && !m.plain {
		line = reverse + line + reset
	}
	b.WriteString(line + "\n")
}

// fit cuts a line to the terminal's width.
func (m *topModel) fit(line string) string {
	if m.width > 0 && len(line) > m.width {
		return line[:m.width]
	}
	return line
}

// details describes the selected row in full.
func (m *topModel) details() string {
	if m.pane == paneRings && m.cursor[paneRings] < len(m.rings) {
		r := m.rings[m.cursor[paneRings]]
		if r.Overwrite {
			return fmt.Sprintf("map %d %s: owners %s; programs %s; overwrite position %d, %s/s overwritten, %s of history at the rate in; at its peak: %s",
				r.ID, r.Name, owners(r.Owners), programs(r.Programs), r.OverwritePos, FormatBytes(r.Overwritten),
				formatWait(r.History), sizingSentence(r, m.interval))
		}
		return fmt.Sprintf("map %d %s: owners %s; programs %s; consumer may pause %s before an empty ring fills; at its peak: %s",
			r.ID, r.Name, owners(r.Owners), programs(r.Programs), formatWait(r.ConsumerGrace), sizingSentence(r, m.interval))
	}
	if m.pane == panePrograms && m.cursor[panePrograms] < len(m.progs) {
		p := m.progs[m.cursor[panePrograms]]
		return fmt.Sprintf("program %d %s: %d runs, %v in all since statistics were on", p.ID, p.Name, p.RunCount, p.RunTime)
	}
	return ""
}

// window is the rows to show, at most n, scrolled so that the cursor is
// among them, and the index of the first.
func window[T any](rows []T, cursor, n int) (int, []T) {
	start := 0
	if cursor >= n {
		start = cursor - n + 1
	}
	return start, rows[min(start, len(rows)):min(start+n, len(rows))]
}

func ringLine(r ringRow) string {
	name := r.Name
	if r.Ours {
		name += "*"
	}
	if !r.HasPositions() {
		return fmt.Sprintf("%-7d %-16s %-12s %9s %-22s %10s %10s %9s %10s %9s %9s %-7s %s", r.ID, clip(name, 16), "perf_array",
			strconv.Itoa(r.CPUs)+" CPUs", "-", "-", "-", "-", "-", "-", "-", "-", owners(r.Owners))
	}
	peak, advised, overwritten, full := "-", "-", "-", formatWait(r.ToFull)
	if r.HasAdvice {
		peak, advised = FormatBytes(r.Advice.Rate), "none"
		if r.Advice.Capacity != 0 {
			advised = FormatBytes(float64(r.Advice.Capacity))
		}
	}
	if r.Overwrite {
		// Sized by the history it keeps, not a pause: the details say it.
		overwritten, full, advised = FormatBytes(r.Overwritten), "-", "-"
	}
	kind := string(r.Kind)
	if r.Overwrite {
		kind = "rb/overwrite" // ringbuf/overwrite, in the column's 12
	}
	return fmt.Sprintf("%-7d %-16s %-12s %9s %-22s %10s %10s %9s %10s %9s %9s %-7s %s", r.ID, clip(name, 16), kind,
		FormatBytes(float64(r.Capacity)), fillBar(r.Fill()), FormatBytes(r.In), FormatBytes(r.Out), overwritten, peak,
		full, advised, yesNo(r.Rates.Stalled), owners(r.Owners))
}

// fillBar is a ten-cell bar and the percentage: [###.......]  30.0%.
func fillBar(f float64) string {
	cells := int(f*10 + 0.5)
	return fmt.Sprintf("[%s%s] %5.1f%%", strings.Repeat("#", cells), strings.Repeat(".", 10-cells), 100*f)
}

func progLine(p progRow) string {
	maps := make([]string, len(p.Maps))
	for i, id := range p.Maps {
		maps[i] = strconv.FormatUint(uint64(id), 10)
	}
	return fmt.Sprintf("%-7d %-16s %-20s %12.1f %12d %8.2f %s", p.ID, clip(p.Name, 16), clip(p.Type.String(), 20), p.RunsPerSec,
		p.AvgRun.Nanoseconds(), 100*p.CPUShare, strings.Join(maps, ","))
}

var _ tea.Model = (*topModel)(nil)

// clip cuts s to n bytes, marking the cut with "~", so that columns stay
// aligned.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "~"
}
