package soak

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/cpus"
	"github.com/ringwatch/ringwatch/internal/testenv"
)

// childEnv makes the test binary, run again, a flood process
// ("flood:CPU") or the baseline HTTP server ("http") instead of running
// tests.
const childEnv = "RINGWATCH_SOAK_CHILD"

func TestMain(m *testing.M) {
	switch child := os.Getenv(childEnv); {
	case strings.HasPrefix(child, "flood:"):
		flood(strings.TrimPrefix(child, "flood:"))
	case child == "http":
		serveBaseline()
	}
	testenv.Main(m, func() {
		if built.dir != "" {
			os.RemoveAll(built.dir)
		}
	})
}

// flood calls getpid(2) as fast as it can, forever, from one thread pinned
// to cpu.
func flood(cpu string) {
	n, err := strconv.Atoi(cpu)
	if err != nil {
		fmt.Fprintf(os.Stderr, "flood: bad CPU %q\n", cpu)
		os.Exit(2)
	}
	runtime.LockOSThread()
	if err := cpus.PinThread(n); err != nil {
		fmt.Fprintf(os.Stderr, "flood: pin to CPU %d: %v\n", n, err)
		os.Exit(1)
	}
	for {
		unix.Getpid()
	}
}

// startLoad starts one getpid flood per CPU and an exec churn of /bin/true,
// all killed when t ends (and when this process dies). It returns the
// floods' pids.
func startLoad(t *testing.T) []int {
	t.Helper()
	var pids []int
	start := func(cmd *exec.Cmd) {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %v: %v", cmd.Args, err)
		}

		t.Cleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		})
	}
	for cpu := range runtime.NumCPU() {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=flood:"+strconv.Itoa(cpu))
		start(cmd)
		pids = append(pids, cmd.Process.Pid)
	}
	start(exec.Command("/bin/sh", "-c", "while :; do /bin/true; done"))
	return pids
}

// built is the ringwatch the tests built, once for all of them; TestMain
// removes it.
var built struct {
	once sync.Once
	dir  string
	err  error
}

// serveBaseline serves a fixed page of the size of a ringwatch scrape on a
// loopback port it prints, until killed: the soak times it beside
// ringwatch's /metrics, to tell ringwatch's own delays from the machine's.
func serveBaseline() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintf(os.Stderr, "baseline: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr())
	page := []byte(strings.Repeat("baseline_metric_total{label=\"value\"} 12345\n", 400))
	err = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(page) }))
	fmt.Fprintf(os.Stderr, "baseline: %v\n", err)
	os.Exit(1)
}

// startBaseline starts the baseline server, killed when t ends, and
// returns its URL.
func startBaseline(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=http")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start baseline server: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("read baseline server's address: %v", err)
	}
	return "http://" + strings.TrimSpace(addr) + "/"
}

// ringwatchBinary is the ringwatch to drive: $RINGWATCH_BIN (make soak
// builds bin/ringwatch), or one built for the tests.
func ringwatchBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("RINGWATCH_BIN"); bin != "" {
		return bin
	}
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "ringwatch-soak-"); built.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(built.dir, "ringwatch"), "github.com/ringwatch/ringwatch/cmd/ringwatch")
		// As make build does: without cgo, so the run drops its
		// capabilities as it would when deployed.
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("build ringwatch: %w\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return filepath.Join(built.dir, "ringwatch")
}

// requireRun stops t unless ringwatch run can work here: root, BPF,
// tracefs.
func requireRun(t *testing.T) {
	t.Helper()
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
}

// waitGone fails t unless every object of held is gone from the kernel
// within 10 seconds (the kernel frees maps after an RCU grace period).
func waitGone(t *testing.T, held BPFObjects) {
	t.Helper()
	if held.Len() == 0 {
		t.Fatal("the run held no BPF object: nothing to check")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		left, err := StillAlive(held)
		if err != nil {
			t.Fatal(err)
		}
		if left.Len() == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("BPF objects the run held are still in the kernel after it exited: %+v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
