package control

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/loader"
	"github.com/ringwatch/ringwatch/internal/testenv"
	"github.com/ringwatch/ringwatch/internal/transport"
	"github.com/ringwatch/ringwatch/pkg/consumer"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// parseSources looks up sources by name.
func parseSources(t *testing.T, names ...string) []loader.Source {
	t.Helper()
	chosen, err := loader.ParseSources(names)
	if err != nil {
		t.Fatalf("loader.ParseSources: %v", err)
	}
	return chosen
}

// loadProducers loads the producers of opts on a ringbuf transport with a
// ring of ringSize bytes (0: the default), without attaching them, and
// returns them with the reader config of their ring, for the wakeups they
// were loaded with. The producers, then the transport, are closed when t
// ends.
func loadProducers(t *testing.T, opts loader.Options, ringSize int) (*loader.Producers, consumer.Config) {
	t.Helper()
	tr, err := transport.New(abi.Ringbuf, transport.Options{RingSize: ringSize})
	if err != nil {
		t.Fatalf("transport.New: %v", err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Errorf("close transport: %v", err)
		}
	})
	// "" is adaptive to the loader but every to the consumer: say it.
	opts.Wakeup = cmp.Or(opts.Wakeup, consumer.WakeupAdaptive)
	opts.Transport = tr
	p, err := loader.Open(opts)
	if err != nil {
		t.Fatalf("loader.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close producers: %v", err)
		}
	})
	return p, tr.ReaderConfig(opts.Wakeup, 0)
}

// openProducers is loadProducers with a consumer of the ring, closed
// before the producers, and the producers attached.
func openProducers(t *testing.T, opts loader.Options, ringSize int) (*loader.Producers, *consumer.Consumer) {
	t.Helper()
	p, cfg := loadProducers(t, opts, ringSize)
	c, err := consumer.OpenConfig(cfg)
	if err != nil {
		t.Fatalf("consumer.OpenConfig: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close consumer: %v", err)
		}
	})
	if err := p.Attach(); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	return p, c
}

// openChannel loads the control program, next to producers of sources if
// any are given, and opens a Channel on it; all are closed when t ends.
func openChannel(t *testing.T, opts Options, sources ...string) *Channel {
	t.Helper()
	var ctl *loader.ControlProgram
	var err error
	if slices.Contains(sources, abi.SourceExec) {
		testenv.RequireTracefs(t) // the exec source attaches through it
	}
	if len(sources) > 0 {
		p, _ := loadProducers(t, loader.Options{Sources: parseSources(t, sources...)}, 0)
		ctl, err = p.OpenControl(loader.ControlOptions{})
	} else {
		ctl, err = loader.OpenControl(loader.ControlOptions{})
	}
	if err != nil {
		t.Fatalf("open control: %v", err)
	}
	t.Cleanup(func() { ctl.Close() })
	ch, err := Open(ctl, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := ch.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return ch
}

// monotonic reads CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns, with a
// system call of its own: a clock independent of the channel's.
func monotonic(t *testing.T) int64 {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano()
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestPingMeasuresTheRoundTrip(t *testing.T) {
	testenv.RequireUserRing(t)
	var observed []time.Duration
	ch := openChannel(t, Options{OnRoundTrip: func(d time.Duration) { observed = append(observed, d) }})
	const n = 100
	// The channel times a ping with consumer.MonotonicNow, the kernel with
	// bpf_ktime_get_ns. The test reads CLOCK_MONOTONIC itself, with
	// clock_gettime, around each ping: the kernel's timestamp must lie
	// between its readings, and the round trip within them. MonotonicNow
	// maps Go's clock onto CLOCK_MONOTONIC through an offset measured to
	// within a clock_gettime call, so the legs, which each have one end on
	// that mapped clock, are held to their bounds within clockSlack.
	const clockSlack = 10 * time.Microsecond
	for i := range uint64(n) {
		before := monotonic(t)
		pong, err := ch.Ping(ctx(t))
		after := monotonic(t)
		if err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
		if pong.ID != i+1 || pong.Accepted != i+1 || pong.Rejected != 0 {
			t.Fatalf("pong %d: %+v", i, pong)
		}
		if pong.KernelNs < before || pong.KernelNs > after {
			t.Fatalf("pong %d: the kernel read the ping at %d ns, outside the test's own readings %d to %d",
				i, pong.KernelNs, before, after)
		}
		if window := time.Duration(after - before); pong.RoundTrip <= 0 || pong.RoundTrip > window {
			t.Fatalf("pong %d: round trip %v, but Ping took %v on the test's clock", i, pong.RoundTrip, window)
		}
		toKernel, fromKernel := time.Duration(pong.KernelNs-before), time.Duration(after-pong.KernelNs)
		if pong.ToKernel < 0 || pong.ToKernel > toKernel+clockSlack || pong.FromKernel < 0 || pong.FromKernel > fromKernel+clockSlack {
			t.Fatalf("pong %d: legs %v and %v, where the test's clock allows at most %v and %v",
				i, pong.ToKernel, pong.FromKernel, toKernel, fromKernel)
		}
		if len(observed) != int(i)+1 || observed[i] != pong.RoundTrip {
			t.Fatalf("pong %d: OnRoundTrip saw %v, the pong says %v", i, observed, pong.RoundTrip)
		}
	}
	ws := ch.WriterStats()
	ds, err := ch.DrainStats()
	if err != nil {
		t.Fatal(err)
	}
	if ws.Submitted != n || ds.Accepted[abi.MsgPing] != n || ds.RepliesLost != 0 {
		t.Errorf("writer %+v, kernel %+v", ws, ds)
	}
}

func TestApplyReportsRejectedMessages(t *testing.T) {
	testenv.RequireUserRing(t)
	ch := openChannel(t, Options{}, abi.SourceExec)
	good := AppendSource(nil, abi.MsgPause, abi.RecordExec, 0)
	bad := AppendSource(nil, abi.MsgPause, 0, 0) // no source 0
	_, err := ch.Apply(ctx(t), good, bad, AppendSource(nil, abi.MsgResume, abi.RecordExec, 0))
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "1 of 3") {
		t.Fatalf("Apply with one bad message: %v, want ErrRejected saying 1 of 3", err)
	}
	// The channel goes on working, and counts from where the kernel is.
	if _, err := ch.Apply(ctx(t), good); err != nil {
		t.Fatalf("Apply after a rejection: %v", err)
	}
	ds, err := ch.DrainStats()
	if err != nil {
		t.Fatal(err)
	}
	if ds.Accepted[abi.MsgPause] != 2 || ds.Accepted[abi.MsgResume] != 1 || ds.Rejected[abi.RejectValue] != 1 {
		t.Errorf("kernel counts: %+v", ds)
	}
}

// TestApplyMoreThanTheRingHolds sends 20 full pid lists, about 80 KiB, in
// one Apply through the 64 KiB default user ring: the channel must drain
// its own earlier messages to make room, and keep them in order.
func TestApplyMoreThanTheRingHolds(t *testing.T) {
	testenv.RequireUserRing(t)
	ch := openChannel(t, Options{}, abi.SourceSyscalls)
	var msgs [][]byte
	for i := range 20 {
		pids := make([]uint32, loader.MaxSyscallPIDs)
		for j := range pids {
			pids[j] = uint32(1_000_000*(i+1) + j)
		}
		msgs = append(msgs, AppendSetPIDs(nil, pids, 0))
	}
	if total := 20 * SetPIDsSize(loader.MaxSyscallPIDs); total <= loader.DefaultUserRingSize {
		t.Fatalf("%d bytes of messages fit the ring: the test proves nothing", total)
	}
	pong, err := ch.Apply(ctx(t), msgs...)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if pong.Accepted != 21 || ch.WriterStats().Full == 0 {
		t.Errorf("pong %+v, writer %+v: want 21 accepted after the ring was full", pong, ch.WriterStats())
	}
}

// TestRefusalsNameOptionsForTheClient holds a refusal that names an
// option to reach the client with the option, so that ctl can name it by
// its flag: the server's message names no flag.
func TestRefusalsNameOptionsForTheClient(t *testing.T) {
	_, err := parseRequest([]byte(`{"actions":[{"op":"set_pids","pids":[1]}]}`), []string{abi.SourceExec})
	b, jerr := json.Marshal(refuse(err))
	if jerr != nil {
		t.Fatal(jerr)
	}
	var resp Response
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatal(err)
	}
	got := resp.Err()
	var oe *abi.OptionError
	if !errors.As(got, &oe) || oe.Option != "Sources" || oe.Value != abi.SourceExec {
		t.Fatalf("Err() = %#v, want the refused Sources %q", got, abi.SourceExec)
	}
	const plain = "action 1 (set_pids): this ringwatch run does not carry the syscalls source (it carries exec): start it with Sources exec,syscalls"
	if got.Error() != plain {
		t.Errorf("Err() = %q, want %q", got, plain)
	}
	flags := func(option string) string { return "--source" }
	if text := oe.Text(flags); !strings.HasSuffix(text, "(it carries exec): start it with --source exec,syscalls") {
		t.Errorf("Text = %q, want it to end with the flag", text)
	}
	if (Response{Applied: 1}).Err() != nil {
		t.Error("a Response without Error has an Err")
	}
}

func TestActionsAreCheckedBeforeAnythingIsSent(t *testing.T) {
	carried := []string{abi.SourceExec}
	for _, tc := range []struct {
		a    Action
		want string
	}{
		{Action{Op: "reboot"}, `unknown operation "reboot"`},
		{Action{Op: OpPause, Source: "forks"}, `unknown source "forks"`},
		{Action{Op: OpPause, Source: abi.SourceSyscalls}, "does not carry the syscalls source"},
		{Action{Op: OpSetPIDs, PIDs: []uint32{1}}, "start it with Sources exec,syscalls"},
		{Action{Op: OpPause, Source: abi.SourceExec, Every: 3}, "takes only a source"},
	} {
		if _, err := tc.a.encode(carried); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error saying %q", tc.a, err, tc.want)
		}
	}
	both := []string{abi.SourceExec, abi.SourceSyscalls}
	if _, err := (Action{Op: OpSetPIDs, PIDs: make([]uint32, loader.MaxSyscallPIDs+1)}).encode(both); err == nil ||
		!strings.Contains(err.Error(), "at most 1024") {
		t.Errorf("too many pids: %v", err)
	}
	if _, err := (Action{Op: OpSetPIDs, PIDs: []uint32{5, 0}}).encode(both); err == nil || !strings.Contains(err.Error(), "pid 0") {
		t.Errorf("pid 0: %v", err)
	}
	m, err := (Action{Op: OpSetSampling, Source: abi.SourceSyscalls, Every: 100}).encode(both)
	if err != nil || len(m) != SourceSize {
		t.Errorf("set_sampling: %x, %v", m, err)
	}
}

func TestServerAppliesRequestsAndRefusesBadOnes(t *testing.T) {
	testenv.RequireUserRing(t)
	ch := openChannel(t, Options{}, abi.SourceExec)
	path := filepath.Join(t.TempDir(), "sub", "ctl.sock")
	srv, err := Listen(path, ch, []string{abi.SourceExec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v, mode %v; want 0600", err, fi.Mode())
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory: %v, mode %v; want 0700", err, fi.Mode())
	}

	resp, err := Send(ctx(t), path, Request{Actions: []Action{
		{Op: OpSetSampling, Source: abi.SourceExec, Every: 10},
		{Op: OpPause, Source: abi.SourceExec},
	}})
	if err != nil || resp.Error != "" || resp.Applied != 2 || resp.RoundTrip <= 0 {
		t.Fatalf("good request: %+v, %v", resp, err)
	}
	resp, err = Send(ctx(t), path, Request{Actions: []Action{
		{Op: OpResume, Source: abi.SourceExec},
		{Op: OpPause, Source: "forks"},
	}})
	if err != nil || resp.Applied != 0 || !strings.Contains(resp.Error, `action 2 (pause): unknown source "forks"`) {
		t.Fatalf("bad request: %+v, %v", resp, err)
	}
	resp, err = Send(ctx(t), path, Request{})
	if err != nil || !strings.Contains(resp.Error, "no actions") {
		t.Fatalf("empty request: %+v, %v", resp, err)
	}
	// Over the size limit: the run says so, and the client hears it even
	// though the run stopped reading and closed.
	resp, err = Send(ctx(t), path, Request{Actions: []Action{{Op: OpPause, Source: strings.Repeat("x", maxRequest)}}})
	if err != nil || !strings.Contains(resp.Error, "longer than the 64 KiB a request may be") {
		t.Fatalf("oversized request: %+v, %v", resp, err)
	}
	// Only the good request reached the kernel: its two messages and a ping.
	ds, err := ch.DrainStats()
	if err != nil {
		t.Fatal(err)
	}
	if ds.AcceptedTotal() != 3 || ds.Accepted[abi.MsgResume] != 0 || ds.RejectedTotal() != 0 {
		t.Errorf("kernel counts: %+v", ds)
	}

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after Close: %v", err)
	}
	if _, err := Send(ctx(t), path, Request{}); err == nil || !strings.Contains(err.Error(), "no ringwatch run is listening") {
		t.Errorf("Send to a closed server: %v", err)
	}
}

func TestListenReplacesOnlyStaleSockets(t *testing.T) {
	testenv.RequireUserRing(t)
	ch := openChannel(t, Options{})
	dir := t.TempDir()

	// A socket nobody answers on any more is replaced.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	srv, err := Listen(stale, ch, nil)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer srv.Close()

	// A socket that answers is somebody's: refused.
	if other, err := Listen(stale, ch, nil); err == nil {
		other.Close()
		t.Fatal("Listen took over a live socket")
	} else if !strings.Contains(err.Error(), "another ringwatch is listening") {
		t.Errorf("live socket: %v", err)
	}

	// A file that is not a socket is left alone.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if other, err := Listen(file, ch, nil); err == nil {
		other.Close()
		t.Fatal("Listen replaced a regular file")
	} else if !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Errorf("the regular file now holds %q", b)
	}
}

// TestCheckSocketChangesNothing is the stale-socket check a run makes before
// it loads anything: it tells a live socket from a stale one and from a
// file, and removes nothing.
func TestCheckSocketChangesNothing(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	live := filepath.Join(dir, "live.sock")
	ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: live, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, path := range []string{"", filepath.Join(dir, "none.sock"), stale} {
		if err := CheckSocket(path); err != nil {
			t.Errorf("CheckSocket(%q): %v, want nil", path, err)
		}
	}
	var inUse *abi.OptionError
	if err := CheckSocket(live); !errors.Is(err, ErrSocketInUse) || !errors.As(err, &inUse) || inUse.Value != live ||
		!strings.Contains(err.Error(), "another ringwatch is listening on "+live) {
		t.Errorf("CheckSocket(live): %v, want a refusal wrapping ErrSocketInUse", err)
	}
	if err := CheckSocket(file); err == nil || errors.Is(err, ErrSocketInUse) || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("CheckSocket(file): %v", err)
	}
	// A link to the live socket is in use too; a link to the stale one is
	// not a socket Listen may replace.
	liveLink, staleLink := filepath.Join(dir, "live.link"), filepath.Join(dir, "stale.link")
	for link, target := range map[string]string{liveLink: live, staleLink: stale} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	if err := CheckSocket(liveLink); !errors.Is(err, ErrSocketInUse) || !errors.As(err, &inUse) || inUse.Value != liveLink {
		t.Errorf("CheckSocket(link to live): %v, want a refusal wrapping ErrSocketInUse", err)
	}
	if err := CheckSocket(staleLink); err == nil || errors.Is(err, ErrSocketInUse) || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("CheckSocket(link to stale): %v", err)
	}
	for _, path := range []string{stale, file} {
		if _, err := os.Lstat(path); err != nil {
			t.Errorf("%s after CheckSocket: %v", path, err)
		}
	}
}
