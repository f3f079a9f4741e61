package hostrings

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
)

// Owner is a process that holds a file descriptor of a ring's map.
type Owner struct {
	PID  int
	Comm string // /proc/PID/comm: the thread group leader's name, at most 15 bytes
}

// bpfMapLink is what /proc/PID/fd/N links to for a BPF map's descriptor
// (kernel/bpf/syscall.c: bpf_map_new_fd makes an anon inode named
// "bpf-map").
const bpfMapLink = "anon_inode:bpf-map"

// parseMapID returns the map_id field of a BPF map's /proc/PID/fdinfo/N
// (kernel/bpf/syscall.c, bpf_map_show_fdinfo: "map_id:\t%u").
func parseMapID(fdinfo []byte) (ebpf.MapID, bool) {
	s := bufio.NewScanner(bytes.NewReader(fdinfo))
	for s.Scan() {
		key, value, ok := strings.Cut(s.Text(), ":")
		if !ok || key != "map_id" {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSpace(value), 10, 32)
		if err != nil {
			return 0, false
		}
		return ebpf.MapID(id), true
	}
	return 0, false
}

// scanOwners walks /proc (procRoot) and returns, for every map ID in want,
// the processes holding a descriptor of it. Processes that exit during the
// walk, or whose descriptors cannot be read, are passed over.
func scanOwners(procRoot string, want map[ebpf.MapID]bool) map[ebpf.MapID][]Owner {
	owners := map[ebpf.MapID][]Owner{}
	procs, err := os.ReadDir(procRoot)
	if err != nil {
		return owners
	}
	for _, proc := range procs {
		pid, err := strconv.Atoi(proc.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join(procRoot, proc.Name())
		fds, err := os.ReadDir(filepath.Join(dir, "fd"))
		if err != nil {
			continue
		}
		var held []ebpf.MapID
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join(dir, "fd", fd.Name())); err != nil || target != bpfMapLink {
				continue
			}
			info, err := os.ReadFile(filepath.Join(dir, "fdinfo", fd.Name()))
			if err != nil {
				continue
			}
			if id, ok := parseMapID(info); ok && want[id] && !slices.Contains(held, id) {
				held = append(held, id)
			}
		}
		if len(held) == 0 {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
		owner := Owner{PID: pid, Comm: strings.TrimSpace(string(comm))}
		for _, id := range held {
			owners[id] = append(owners[id], owner)
		}
	}
	return owners
}
