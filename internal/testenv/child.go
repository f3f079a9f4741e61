package testenv

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary, run again by StartSyscallChild, act as
// the child instead of running tests. Main checks it.
const helperEnv = "RINGWATCH_TESTENV_CHILD"

// SyscallChild is a separate process that makes getpid() system calls, on
// command, from one locked OS thread: a syscall source of known pid, tid and
// count, outside the test process, whose own syscalls ringwatch leaves out.
type SyscallChild struct {
	Pid, Tid int
	cmd      *exec.Cmd
	in       io.WriteCloser
	out      *bufio.Reader
}

// StartSyscallChild starts the child; it is killed when t ends.
func StartSyscallChild(t testing.TB) *SyscallChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=syscalls")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start syscall child: %v", err)
	}
	c := &SyscallChild{Pid: cmd.Process.Pid, cmd: cmd, in: in, out: bufio.NewReader(outPipe)}
	t.Cleanup(func() {
		c.in.Close()
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("syscall child: %v", err)
		}
	})
	line, err := c.out.ReadString('\n')
	if err != nil {
		t.Fatalf("read syscall child's tid: %v", err)
	}
	if c.Tid, err = strconv.Atoi(strings.TrimSpace(line)); err != nil {
		t.Fatalf("syscall child sent %q for its tid", line)
	}
	return c
}

// Getpid makes the child call getpid() n times from its locked thread, and
// returns when it has.
func (c *SyscallChild) Getpid(t testing.TB, n int) {
	t.Helper()
	if _, err := fmt.Fprintf(c.in, "%d\n", n); err != nil {
		t.Fatalf("command syscall child: %v", err)
	}
	if line, err := c.out.ReadString('\n'); err != nil || line != "done\n" {
		t.Fatalf("syscall child answered %q, %v", line, err)
	}
}

// Pin keeps every thread of the child on cpu, so that its system calls are
// recorded on that CPU's ring alone.
func (c *SyscallChild) Pin(t testing.TB, cpu int) {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", c.Pid))
	if err != nil {
		t.Fatalf("list the syscall child's threads: %v", err)
	}
	var set unix.CPUSet
	set.Set(cpu)
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			t.Fatalf("pin thread %d of the syscall child to CPU %d: %v", tid, cpu, err)
		}
	}
}

// runSyscallChild is the child's side: report the thread id, then for each
// count read from stdin make that many getpid() calls and say done.
func runSyscallChild() {
	runtime.LockOSThread()
	fmt.Println(unix.Gettid())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		n, err := strconv.Atoi(in.Text())
		if err != nil {
			fmt.Fprintf(os.Stderr, "syscall child: bad count %q\n", in.Text())
			os.Exit(2)
		}
		for range n {
			unix.Getpid()
		}
		fmt.Println("done")
	}
}
