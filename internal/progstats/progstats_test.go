package progstats

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestAverageRun(t *testing.T) {
	if got := (Program{RunCount: 4, RunTime: 100}).AverageRun(); got != 25 {
		t.Errorf("100ns over 4 runs: %v, want 25ns", got)
	}
	if got := (Program{}).AverageRun(); got != 0 {
		t.Errorf("no runs: %v, want 0", got)
	}
}

// loadProgram loads a socket filter that reads map m once (so it uses m)
// and returns 0.
func loadProgram(t testing.TB) (*ebpf.Program, *ebpf.Map) {
	t.Helper()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "ps_test_array", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "ps_test_prog", Type: ebpf.SocketFilter, License: "MIT",
		Instructions: asm.Instructions{
			asm.StoreImm(asm.RFP, -4, 0, asm.Word),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.FnMapLookupElem.Call(),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog, m
}

func ids(t testing.TB, prog *ebpf.Program, m *ebpf.Map) (ebpf.ProgramID, ebpf.MapID) {
	t.Helper()
	pi, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	mi, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := pi.ID()
	mid, _ := mi.ID()
	return pid, mid
}

func lookup(t *testing.T, id ebpf.ProgramID) Program {
	t.Helper()
	progs, err := List()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(progs, func(p Program) bool { return p.ID == id })
	if i < 0 {
		t.Fatalf("program %d is not listed", id)
	}
	return progs[i]
}

// run runs prog k times in the kernel, through BPF_PROG_TEST_RUN with a
// repeat count (a socket filter needs an Ethernet header's worth of data).
func run(t testing.TB, prog *ebpf.Program, k int) {
	t.Helper()
	if _, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 14), Repeat: uint32(k)}); err != nil {
		t.Fatal(err)
	}
}

// TestRunCount runs a program K times with statistics on: it shows K runs
// and a run time; with them off again, further runs are not counted.
func TestRunCount(t *testing.T) {
	testenv.RequireBPF(t)
	prog, m := loadProgram(t)
	progID, mapID := ids(t, prog, m)

	p := lookup(t, progID)
	if p.Name != "ps_test_prog" || p.Type != ebpf.SocketFilter || !slices.Equal(p.Maps, []ebpf.MapID{mapID}) {
		t.Errorf("listed as %+v; want name ps_test_prog, a socket filter, using map %d", p, mapID)
	}
	before := p.RunCount

	stats, err := Enable()
	if err != nil {
		t.Fatal(err)
	}
	const k = 1000
	run(t, prog, k)
	p = lookup(t, progID)
	if p.RunCount-before != k || p.RunTime <= 0 {
		t.Errorf("after %d runs with statistics on: %d runs counted, run time %v", k, p.RunCount-before, p.RunTime)
	}
	if err := stats.Close(); err != nil {
		t.Fatal(err)
	}

	counted := p.RunCount
	run(t, prog, k)
	if p = lookup(t, progID); p.RunCount != counted {
		t.Errorf("statistics still on after Close: %d more runs counted (another process on this host may hold them on: see /proc/sys/kernel/bpf_stats_enabled and who holds a bpf-stats descriptor)", p.RunCount-counted)
	}
}

func TestNeedsCapSysAdmin(t *testing.T) {
	testenv.RequireBPF(t)
	for what, fn := range map[string]func() error{
		"List":   func() error { _, err := List(); return err },
		"Enable": func() error { c, err := Enable(); closeIf(c); return err },
	} {
		err := testenv.WithoutCapability(unix.CAP_SYS_ADMIN, fn)
		if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "CAP_SYS_ADMIN") {
			t.Errorf("%s without CAP_SYS_ADMIN: %v; want ErrPermission, naming CAP_SYS_ADMIN", what, err)
		}
	}
}

func closeIf(c interface{ Close() error }) {
	if c != nil {
		c.Close()
	}
}

// BenchmarkProgramRun is the cost statistics add to each run of a BPF
// program: the kernel's own timing of a small program's runs
// (BPF_PROG_TEST_RUN with a repeat count), with statistics off and on.
//
//	go test -run '^$' -bench ProgramRun -count 5 ./internal/progstats
func BenchmarkProgramRun(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	prog, _ := loadProgram(b)
	for _, on := range []bool{false, true} {
		b.Run(map[bool]string{false: "stats=off", true: "stats=on"}[on], func(b *testing.B) {
			if on {
				stats, err := Enable()
				if err != nil {
					b.Fatal(err)
				}
				defer stats.Close()
			}
			const repeat = 100000
			var total float64
			for b.Loop() {
				_, per, err := prog.Benchmark(make([]byte, 14), repeat, nil)
				if err != nil {
					b.Fatal(err)
				}
				total += float64(per.Nanoseconds())
			}
			b.ReportMetric(total/float64(b.N), "ns/prog-run")
			b.ReportMetric(0, "ns/op")
		})
	}
}
