package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ringwatch/ringwatch/internal/abi"
	"github.com/ringwatch/ringwatch/internal/loader"
)

// DefaultSocket is where `ringwatch run` listens for `ringwatch ctl`.
const DefaultSocket = "/run/ringwatch/ctl.sock"

// Operations an Action may ask for.
const (
	OpSetPIDs     = "set_pids"
	OpSetSampling = "set_sampling"
	OpPause       = "pause"
	OpResume      = "resume"
)

// Action is one change to the producers' settings.
type Action struct {
	Op     string   `json:"op"`
	Source string   `json:"source,omitempty"` // set_sampling, pause, resume
	PIDs   []uint32 `json:"pids,omitempty"`   // set_pids; empty means every process but ringwatch
	Every  uint32   `json:"every,omitempty"`  // set_sampling: keep one event in Every; 0 and 1 keep all
}

// Request is what a client sends: actions, applied in order.
type Request struct {
	Actions []Action `json:"actions"`
	// Dump asks for the flight recorder's window instead: see [Dump].
	Dump bool `json:"dump,omitempty"`
}

// Response is the server's answer.
type Response struct {
	// Applied is how many actions the kernel acted on: all or, with
	// Error set, none that can be relied on.
	Applied   int    `json:"applied"`
	RoundTrip int64  `json:"roundtrip_ns"` // of the ping that confirmed them
	Error     string `json:"error,omitempty"`
	// Refused are the options Error names, so that the client can name
	// them as its user knows them (see Err).
	Refused []*abi.OptionError `json:"refused,omitempty"`
	// Dump, in the answer to a dump, is the window's books; its JSON
	// lines follow.
	Dump *DumpBooks `json:"dump,omitempty"`
}

// Err is the server's refusal or failure, nil if none: an error whose
// message is Error, and which wraps each of Refused.
func (r Response) Err() error {
	if r.Error == "" {
		return nil
	}
	return &refusal{msg: r.Error, refused: r.Refused}
}

type refusal struct {
	msg     string
	refused []*abi.OptionError
}

func (r *refusal) Error() string { return r.msg }

func (r *refusal) Unwrap() []error {
	errs := make([]error, len(r.refused))
	for i, oe := range r.refused {
		errs[i] = oe
	}
	return errs
}

// maxRequest bounds what the server reads from one client: a request with
// a full pid list is about 12 KiB of JSON.
const maxRequest = 64 << 10

// exchangeTimeout bounds how long one request may take.
const exchangeTimeout = 10 * time.Second

// encode checks a and turns it into its message. carried names the
// sources the running producers carry.
func (a Action) encode(carried []string) ([]byte, error) {
	if a.Op == OpSetPIDs {
		if a.Source != "" || a.Every != 0 {
			return nil, fmt.Errorf("set_pids takes only pids")
		}
		if !slices.Contains(carried, abi.SourceSyscalls) {
			return nil, abi.RefuseOption(nil, "Sources", strings.Join(carried, ","),
				"this ringwatch run does not carry the syscalls source (it carries %s): start it with {Sources} %s,syscalls",
				strings.Join(carried, ","), strings.Join(carried, ","))
		}
		if len(a.PIDs) > loader.MaxSyscallPIDs {
			return nil, fmt.Errorf("%d pids given, at most %d fit the filter", len(a.PIDs), loader.MaxSyscallPIDs)
		}
		if slices.Contains(a.PIDs, 0) {
			return nil, fmt.Errorf("pid 0 is not a process")
		}
		// With no pids, every process but this one, as at start.
		return AppendSetPIDs(nil, a.PIDs, uint32(os.Getpid())), nil
	}

	var t abi.MessageType
	switch a.Op {
	case OpSetSampling:
		t = abi.MsgSetSampling
	case OpPause:
		t = abi.MsgPause
	case OpResume:
		t = abi.MsgResume
	default:
		return nil, fmt.Errorf("unknown operation %q: choose from %s, %s, %s, %s", a.Op, OpSetPIDs, OpSetSampling, OpPause, OpResume)
	}
	if len(a.PIDs) > 0 || (t != abi.MsgSetSampling && a.Every != 0) {
		return nil, fmt.Errorf("%s takes only a source", a.Op)
	}
	typ := abi.RecordTypeOf(a.Source)
	if typ == 0 {
		return nil, abi.Choose("source", a.Source, loader.SourceNames())
	}
	if !slices.Contains(carried, a.Source) {
		return nil, fmt.Errorf("this ringwatch run does not carry the %s source (it carries %s)", a.Source, strings.Join(carried, ","))
	}
	return AppendSource(nil, t, typ, a.Every), nil
}

// A Server listens on a unix socket for requests and applies them through
// a Channel.
type Server struct {
	ln      *net.UnixListener
	ch      *Channel
	carried []string
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
	dumper  atomic.Pointer[Dumper] // see SetDumper
}

// Listen creates the socket at path and serves requests on it until Close.
// The directory is created mode 0700 if missing, the socket is mode 0600,
// and every connection is checked with SO_PEERCRED: only root and this
// process's own user are served. A socket left at path by a ringwatch that
// is gone is replaced; one that answers is not, nor anything else at path:
// that error is an *abi.OptionError for the option "control socket".
func Listen(path string, ch *Channel, carried []string) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create the control socket's directory: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on control socket %s: %w", path, err)
	}
	// Between bind and chmod the socket has the umask's mode; the
	// SO_PEERCRED check below is what keeps others out in any case.
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, errors.Join(fmt.Errorf("restrict control socket %s: %w", path, err), ln.Close())
	}
	s := &Server{ln: ln, ch: ch, carried: carried}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Go(s.serve)
	return s, nil
}

// ErrSocketInUse is what CheckSocket's and Listen's refusal of a socket that
// another ringwatch answers on wraps: an [*abi.OptionError] for the option
// "control socket".
var ErrSocketInUse = errors.New("control socket in use")

func socketInUse(path string) error {
	return abi.RefuseOption(ErrSocketInUse, "control socket", path,
		"another ringwatch is listening on %s: stop it, or give this one another {control socket} (or {control socket} '' for none)", path)
}

// CheckSocket is the one check of what is at a control socket's path,
// changing nothing: nil for nothing there (or an empty path) and for a
// stale socket, one nobody answers on, which Listen replaces; a
// refusal wrapping [ErrSocketInUse] when another ringwatch answers; otherwise why path
// cannot be listened on. A run calls it before loading anything, so that a
// second run beside a first fails fast.
func CheckSocket(path string) error {
	if path == "" {
		return nil
	}
	_, err := stale(path)
	return err
}

// stale reports whether path holds a socket nobody answers on, or why it
// cannot be listened on.
func stale(path string) (bool, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check control socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		// A link to a socket another ringwatch answers on is that run's,
		// as the run's check before loading always said.
		if fi.Mode().Type() == fs.ModeSymlink {
			if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
				conn.Close()
				return false, socketInUse(path)
			}
		}
		return false, abi.RefuseOption(nil, "control socket", path, "%s exists and is not a socket: remove it, or choose another {control socket}", path)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return false, socketInUse(path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return false, fmt.Errorf("check control socket %s: %w", path, err)
	}
	return true, nil
}

// removeStale removes a socket at path that nobody answers on, and refuses
// anything else but nothing.
func removeStale(path string) error {
	isStale, err := stale(path)
	if err != nil || !isStale {
		return err
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale control socket %s: %w", path, err)
	}
	return nil
}

// Path is where the server listens.
func (s *Server) Path() string { return s.ln.Addr().String() }

func (s *Server) serve() {
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			return // closed; any other accept error would repeat forever
		}
		s.wg.Go(func() {
			defer conn.Close()
			s.handle(conn)
		})
	}
}

func (s *Server) handle(conn *net.UnixConn) {
	ctx, cancel := context.WithTimeout(s.ctx, exchangeTimeout)
	defer cancel()
	_ = conn.SetDeadline(time.Now().Add(exchangeTimeout))
	resp, dump := s.respond(ctx, conn)
	if dump {
		s.dump(conn)
		return
	}
	// A client that went away cannot be told anything more.
	_ = json.NewEncoder(conn).Encode(resp)
}

func (s *Server) respond(ctx context.Context, conn *net.UnixConn) (_ Response, dump bool) {
	if err := checkPeer(conn); err != nil {
		return Response{Error: err.Error()}, false
	}
	line, err := bufio.NewReader(io.LimitReader(conn, maxRequest)).ReadBytes('\n')
	if errors.Is(err, io.EOF) && len(line) == maxRequest {
		return Response{Error: fmt.Sprintf("request longer than the %d KiB a request may be: send fewer pids or actions at a time",
			maxRequest>>10)}, false
	}
	if err != nil {
		return Response{Error: fmt.Sprintf("read request: %v", err)}, false
	}
	if isDump(line) {
		return Response{}, true
	}
	msgs, err := parseRequest(line, s.carried)
	if err != nil {
		return refuse(err), false
	}
	pong, err := s.ch.Apply(ctx, msgs...)
	if err != nil {
		return Response{Error: err.Error(), RoundTrip: int64(pong.RoundTrip)}, false
	}
	return Response{Applied: len(msgs), RoundTrip: int64(pong.RoundTrip)}, false
}

// refuse is the answer to a request err refuses: its message, and the
// options it names for the client to name its own way.
// isDump reports whether line is a dump request: {"dump":true}, no actions.
func isDump(line []byte) bool {
	var req Request
	return json.Unmarshal(line, &req) == nil && req.Dump && len(req.Actions) == 0
}

func refuse(err error) Response {
	return Response{Error: err.Error(), Refused: abi.OptionErrors(err)}
}

// parseRequest decodes a client's request, one line of JSON, into the
// messages of its actions, for a run that carries the sources carried. It
// fails unless every action is sound: nothing is sent otherwise.
func parseRequest(line []byte, carried []string) ([][]byte, error) {
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return nil, fmt.Errorf("request is not JSON: %w", err)
	}
	if len(req.Actions) == 0 {
		return nil, errors.New("request has no actions")
	}
	msgs := make([][]byte, len(req.Actions))
	for i, a := range req.Actions {
		var err error
		if msgs[i], err = a.encode(carried); err != nil {
			return nil, fmt.Errorf("action %d (%s): %w", i+1, a.Op, err)
		}
	}
	return msgs, nil
}

// checkPeer admits root and this process's own user.
func checkPeer(conn *net.UnixConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("read peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return fmt.Errorf("read peer credentials: %w", err)
	}
	if credErr != nil {
		return fmt.Errorf("read peer credentials: %w", credErr)
	}
	if cred.Uid != 0 && cred.Uid != uint32(os.Geteuid()) {
		return fmt.Errorf("permission denied: uid %d may not control ringwatch; run ringwatch ctl as root (sudo)", cred.Uid)
	}
	return nil
}

// Close stops listening, removes the socket, cancels requests in flight
// and waits for their handlers. It is idempotent.
func (s *Server) Close() error {
	s.cancel()
	err := s.ln.Close()
	s.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Send connects to the server at path, sends req and returns its answer.
// A Response with Error set is returned with a nil error: the server
// refused or failed the request, and Error (or Err) says why. With no
// server at path, the error is an *abi.OptionError for the option
// "socket", path, which it tells to match the server's "control socket".
func Send(ctx context.Context, path string, req Request) (Response, error) {
	conn, err := dial(ctx, path)
	if err != nil {
		return Response{}, err
	}
	defer conn.Close()
	b, err := json.Marshal(req)
	if err != nil {
		return Response{}, fmt.Errorf("encode request: %w", err)
	}
	_, writeErr := conn.Write(append(b, '\n'))
	// A run that refuses this peer answers at once and closes, so the write
	// can fail with EPIPE after the answer is already in the socket: read
	// it either way, and report the write only if there is no answer.
	var resp Response
	if err := json.NewDecoder(io.LimitReader(conn, maxRequest)).Decode(&resp); err != nil {
		if writeErr != nil {
			return Response{}, fmt.Errorf("send request to %s: %w", path, writeErr)
		}
		return Response{}, fmt.Errorf("read the answer from %s: %w", path, err)
	}
	return resp, nil
}

// dial connects to the run listening on path, saying what to do when none
// does; the connection's deadline is ctx's.
func dial(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, abi.RefuseOption(nil, "socket", path,
			"no ringwatch run is listening on %s: start one with 'ringwatch run', or give {socket} the {control socket} it was started with", path)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("permission denied on %s: run ringwatch ctl as root (sudo)", path)
	case errors.Is(err, syscall.ECONNREFUSED):
		return nil, fmt.Errorf("nothing answers on %s: the ringwatch run that made it is gone", path)
	case err != nil:
		return nil, fmt.Errorf("connect to %s: %w", path, err)
	}
	// The exchange, not only the connect, ends with ctx's deadline.
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	return conn, nil
}

// SendActions sends actions to the run listening on path, as `ringwatch
// ctl` does, and returns, once the kernel has applied them all, what was
// done in words for its user: "applied 2 (pause, set_pids); confirmed by
// a ping in 80µs". Its errors are Send's, and the run's refusal
// ([Response.Err]).
func SendActions(ctx context.Context, path string, actions []Action) (string, error) {
	resp, err := Send(ctx, path, Request{Actions: actions})
	if err == nil {
		err = resp.Err()
	}
	if err != nil {
		return "", err
	}
	ops := make([]string, len(actions))
	for i, a := range actions {
		ops[i] = a.Op
	}
	return fmt.Sprintf("applied %d (%s); confirmed by a ping in %v",
		resp.Applied, strings.Join(ops, ", "), time.Duration(resp.RoundTrip)), nil
}
