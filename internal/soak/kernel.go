package soak

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// BPFObjects are the IDs of BPF programs, maps and links.
type BPFObjects struct {
	Programs []ebpf.ProgramID
	Maps     []ebpf.MapID
	Links    []link.ID
}

// Len is how many objects o lists.
func (o BPFObjects) Len() int { return len(o.Programs) + len(o.Maps) + len(o.Links) }

// HeldObjects lists the BPF objects pid holds a file descriptor of, read
// from /proc/PID/fdinfo, and the maps its programs use. Unlike a snapshot
// of the whole kernel, it is not confused by other processes loading BPF
// programs at the same time.
func HeldObjects(pid int) (BPFObjects, error) {
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return BPFObjects{}, err
	}
	var o BPFObjects
	seenMap := map[ebpf.MapID]bool{}
	addMap := func(id ebpf.MapID) {
		if !seenMap[id] {
			seenMap[id] = true
			o.Maps = append(o.Maps, id)
		}
	}
	for _, e := range entries {
		info, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		fields := fdinfoFields(string(info))
		switch {
		case fields["link_id"] != "":
			o.Links = append(o.Links, link.ID(atoi(fields["link_id"])))
		case fields["prog_id"] != "":
			o.Programs = append(o.Programs, ebpf.ProgramID(atoi(fields["prog_id"])))
		case fields["map_id"] != "":
			addMap(ebpf.MapID(atoi(fields["map_id"])))
		}
	}
	for _, id := range o.Programs {
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		if info, err := prog.Info(); err == nil {
			if ids, ok := info.MapIDs(); ok {
				for _, m := range ids {
					addMap(m)
				}
			}
		}
		prog.Close()
	}
	return o, nil
}

func fdinfoFields(s string) map[string]string {
	fields := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	return fields
}

func atoi(s string) uint32 {
	n, _ := strconv.ParseUint(s, 10, 32)
	return uint32(n)
}

// StillAlive lists the objects of o the kernel still has.
func StillAlive(o BPFObjects) (BPFObjects, error) {
	var left BPFObjects
	for _, id := range o.Programs {
		p, err := ebpf.NewProgramFromID(id)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return BPFObjects{}, fmt.Errorf("look up program %d: %w", id, err)
		}
		p.Close()
		left.Programs = append(left.Programs, id)
	}
	for _, id := range o.Maps {
		m, err := ebpf.NewMapFromID(id)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return BPFObjects{}, fmt.Errorf("look up map %d: %w", id, err)
		}
		m.Close()
		left.Maps = append(left.Maps, id)
	}
	for _, id := range o.Links {
		l, err := link.NewFromID(id)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return BPFObjects{}, fmt.Errorf("look up link %d: %w", id, err)
		}
		l.Close()
		left.Links = append(left.Links, id)
	}
	return left, nil
}

// ShutdownListener breaks pid's TCP listening socket on port from outside,
// as a failing network stack would: it takes a duplicate of the process's
// descriptor with pidfd_getfd(2) (Linux 5.6; needs ptrace rights over
// pid) and shuts it down. The kernel then fails the process's accept(2)
// with EINVAL (inet_shutdown moves a listening socket to TCP_CLOSE,
// net/ipv4/af_inet.c).
func ShutdownListener(pid, port int) error {
	fd, err := listeningFD(pid, port)
	if err != nil {
		return err
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	dup, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return fmt.Errorf("pidfd_getfd %d of %d: %w", fd, pid, err)
	}
	defer unix.Close(dup)
	if err := unix.Shutdown(dup, unix.SHUT_RDWR); err != nil {
		return fmt.Errorf("shut down listening socket: %w", err)
	}
	return nil
}

// listeningFD finds pid's descriptor of the TCP socket listening on port:
// the socket's inode from /proc/PID/net/tcp{,6}, matched against the
// descriptors' links.
func listeningFD(pid, port int) (int, error) {
	inodes := map[string]bool{}
	for _, file := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, file))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			// sl local_address rem_address st ... inode (field 9)
			if len(f) < 10 || f[3] != "0A" { // TCP_LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil && int(p) == port {
				inodes[f[9]] = true
			}
		}
	}
	if len(inodes) == 0 {
		return -1, fmt.Errorf("no socket listening on port %d in pid %d's network namespace", port, pid)
	}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return -1, err
	}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if inode, ok := strings.CutPrefix(target, "socket:["); ok && inodes[strings.TrimSuffix(inode, "]")] {
			return int(atoi(e.Name())), nil
		}
	}
	return -1, fmt.Errorf("pid %d holds no descriptor of the socket listening on port %d", pid, port)
}
