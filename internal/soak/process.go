package soak

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Run is a `ringwatch run` started from outside: its process, its stderr
// and its metrics endpoint.
type Run struct {
	Cmd        *exec.Cmd
	MetricsURL string
	Socket     string // its --ctl.socket

	bin    string
	mu     sync.Mutex
	stderr strings.Builder
	done   chan struct{} // closed once stderr is read to its end
	client *http.Client
}

var metricsLine = regexp.MustCompile(`metrics on (http://\S+)`)

// Start starts bin with args (the words after "run") and waits until it
// says where its metrics are. sysProcAttr may be nil. The run is killed if
// it has not said so within a minute.
func Start(bin string, args []string, sysProcAttr *syscall.SysProcAttr) (*Run, error) {
	cmd := exec.Command(bin, append([]string{"run"}, args...)...)
	cmd.SysProcAttr = sysProcAttr
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	r := &Run{Cmd: cmd, bin: bin, done: make(chan struct{}),
		client: &http.Client{Timeout: 30 * time.Second}}
	for i, a := range args {
		if a == "--ctl.socket" && i+1 < len(args) {
			r.Socket = args[i+1]
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start ringwatch run: %w", err)
	}
	found := make(chan string, 1)
	go func() {
		defer close(r.done)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			r.mu.Lock()
			r.stderr.WriteString(line + "\n")
			r.mu.Unlock()
			if m := metricsLine.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case url := <-found:
		r.MetricsURL = url
		return r, nil
	case <-r.done:
		err := cmd.Wait()
		return nil, fmt.Errorf("ringwatch run ended before serving metrics (%v): %s", err, r.Stderr())
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("ringwatch run did not start serving metrics within a minute: %s", r.Stderr())
	}
}

// Pid is the run's process id.
func (r *Run) Pid() int { return r.Cmd.Process.Pid }

// Stderr is what the run wrote on stderr so far.
func (r *Run) Stderr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stderr.String()
}

// Scrape gets /metrics and parses it; the duration is the HTTP request's,
// from sending to the end of the body.
func (r *Run) Scrape(ctx context.Context) (Scrape, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.MetricsURL, nil)
	if err != nil {
		return Scrape{}, 0, err
	}
	start := time.Now()
	resp, err := r.client.Do(req)
	if err != nil {
		return Scrape{}, 0, fmt.Errorf("scrape: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	took := time.Since(start)
	if err != nil {
		return Scrape{}, took, fmt.Errorf("scrape: read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return Scrape{}, took, fmt.Errorf("scrape: %s: %s", resp.Status, body)
	}
	s, err := ParseScrape(strings.NewReader(string(body)))
	return s, took, err
}

// Ctl runs `ringwatch ctl` on the run's socket with args.
func (r *Run) Ctl(args ...string) error {
	cmd := exec.Command(r.bin, append([]string{"ctl", "--socket", r.Socket, "--timeout", "20s"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ringwatch ctl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Signal sends sig to the run.
func (r *Run) Signal(sig os.Signal) error { return r.Cmd.Process.Signal(sig) }

// Wait waits for the run to exit, at most timeout (then it is killed),
// and returns its exit status and all it wrote on stderr.
func (r *Run) Wait(timeout time.Duration) (int, string, error) {
	exited := make(chan error, 1)
	go func() {
		<-r.done // stderr read to its end first, as exec.Cmd requires
		exited <- r.Cmd.Wait()
	}()
	var err error
	select {
	case err = <-exited:
	case <-time.After(timeout):
		_ = r.Cmd.Process.Kill()
		<-exited
		return -1, r.Stderr(), fmt.Errorf("ringwatch run did not exit within %v; killed", timeout)
	}
	r.client.CloseIdleConnections()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), r.Stderr(), nil
	}
	if err != nil {
		return -1, r.Stderr(), err
	}
	return 0, r.Stderr(), nil
}

// Stop sends SIGINT and waits for the exit, as Wait does.
func (r *Run) Stop(timeout time.Duration) (int, string, error) {
	if err := r.Signal(os.Interrupt); err != nil {
		return -1, r.Stderr(), fmt.Errorf("interrupt ringwatch run: %w", err)
	}
	return r.Wait(timeout)
}

// Resources is what /proc says of a process.
type Resources struct {
	RSSKiB uint64
	FDs    int
}

// ReadResources reads pid's resident set size and counts its open file
// descriptors.
func ReadResources(pid int) (Resources, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Resources{}, err
	}
	var res Resources
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			res.RSSKiB, err = strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return Resources{}, fmt.Errorf("parse VmRSS %q: %w", rest, err)
			}
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return Resources{}, err
	}
	res.FDs = len(fds)
	return res, nil
}
