package progstats

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ErrPermission is wrapped by errors that need CAP_SYS_ADMIN.
var ErrPermission = os.ErrPermission

// Program is one BPF program on the host, as the kernel describes it.
type Program struct {
	ID   ebpf.ProgramID
	Name string // as given at load time, at most 15 bytes; may be empty
	Type ebpf.ProgramType
	Maps []ebpf.MapID // the maps the program uses, in the kernel's order

	// RunCount and RunTime are the kernel's counts while statistics were
	// enabled (by anyone): they do not move while they are off.
	RunCount uint64
	RunTime  time.Duration
}

// AverageRun is the mean time of one run, or 0 before the first counted run.
func (p Program) AverageRun() time.Duration {
	if p.RunCount == 0 {
		return 0
	}
	return p.RunTime / time.Duration(p.RunCount)
}

// List returns every BPF program on the host, in ID order. Programs that go
// away while they are listed are left out. Without CAP_SYS_ADMIN it returns
// an error wrapping [ErrPermission].
func List() ([]Program, error) {
	var progs []Program
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return progs, nil
		}
		if err != nil {
			return nil, explain("list BPF programs", err)
		}
		id = next
		p, err := describe(id)
		if errors.Is(err, os.ErrNotExist) {
			continue // unloaded since the ID was listed
		}
		if err != nil {
			return nil, explain(fmt.Sprintf("read BPF program %d", id), err)
		}
		progs = append(progs, p)
	}
}

func describe(id ebpf.ProgramID) (Program, error) {
	prog, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return Program{}, err
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		return Program{}, err
	}
	stats, err := prog.Stats()
	if err != nil {
		return Program{}, err
	}
	maps, _ := info.MapIDs()
	return Program{ID: id, Name: info.Name, Type: info.Type, Maps: slices.Clone(maps),
		RunCount: stats.RunCount, RunTime: stats.Runtime}, nil
}

// Enable turns the kernel's run statistics on (BPF_STATS_RUN_TIME) until the
// returned closer is closed, or this process exits. If others hold them on
// too, they stay on until the last one lets go. Without CAP_SYS_ADMIN it
// returns an error wrapping [ErrPermission].
func Enable() (io.Closer, error) {
	c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return nil, explain("enable BPF run statistics", err)
	}
	return c, nil
}

func explain(what string, err error) error {
	if errors.Is(err, unix.EPERM) {
		// unix.EPERM is os.ErrPermission for errors.Is.
		return fmt.Errorf("%s: %w (this needs CAP_SYS_ADMIN: run as root)", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
