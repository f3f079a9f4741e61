package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/ringwatch/ringwatch/internal/abi"
)

// A dump takes the flight recorder's newest window out of a running
// ringwatch: the request {"dump":true}, answered by one line, a Response
// whose Dump holds the window's books, then the window's records as JSON
// lines, oldest first, until the run closes the connection. The records
// follow the header on the same connection, so a window of any size
// travels without a second buffer of it on either side.

// DumpBooks are the books of one recorder window: what happened to every
// record the producers tried to copy into the recorder. Attempted is
// Delivered + Overwritten + Lost. Overwritten counts the records no longer
// in the window when it was read; a record copied while the window was
// being read may be counted there too, so they are exact once the
// producers are quiet.
type DumpBooks struct {
	Attempted   uint64 `json:"attempted"`
	Delivered   uint64 `json:"delivered"`
	Overwritten uint64 `json:"overwritten"`
	Lost        uint64 `json:"lost"`     // copies the recorder refused
	Pending     uint64 `json:"pending"`  // records still being written in the window: not delivered
	Invalid     uint64 `json:"invalid"`  // records in the window JSON could not carry
	Bytes       uint64 `json:"bytes"`    // the window's span in the ring
	Capacity    uint64 `json:"capacity"` // the ring's data size
}

// String is the books in one line, as ctl and the run print them.
func (b DumpBooks) String() string {
	s := fmt.Sprintf("%d records attempted = %d delivered + %d overwritten + %d lost; window %s of a %s recorder",
		b.Attempted, b.Delivered, b.Overwritten, b.Lost, abi.FormatSize(int(b.Bytes)), abi.FormatSize(int(b.Capacity)))
	if b.Pending > 0 {
		s += fmt.Sprintf("; %d still being written", b.Pending)
	}
	if b.Invalid > 0 {
		s += fmt.Sprintf("; %d not JSON-encodable", b.Invalid)
	}
	return s
}

// Dumper writes the recorder's newest window to w as JSON lines and
// returns its books. The books are known before the first line: begin is
// called with them once the window is taken, and before anything is
// written.
type Dumper interface {
	Dump(w io.Writer, begin func(DumpBooks) error) (DumpBooks, error)
}

// SetDumper lets the server answer dump requests with d; without one, it
// refuses them.
func (s *Server) SetDumper(d Dumper) { s.dumper.Store(&d) }

// dumpTimeout bounds a dump's exchange: a window of up to 2 GiB travels
// as some 10 GiB of JSON at most.
const dumpTimeout = 10 * time.Minute

// errNoRecorder is the refusal of a dump by a run that keeps no recorder.
func errNoRecorder() error {
	return abi.RefuseOption(nil, "recorder", "", "this ringwatch run keeps no recorder: start it with {recorder}, such as {recorder} 64MiB")
}

// dump answers a dump request on conn: the header, then the lines.
func (s *Server) dump(conn *net.UnixConn) {
	d := s.dumper.Load()
	if d == nil {
		_ = json.NewEncoder(conn).Encode(refuse(errNoRecorder()))
		return
	}
	_ = conn.SetDeadline(time.Now().Add(dumpTimeout))
	w := bufio.NewWriterSize(conn, 1<<20)
	began := false
	_, err := (*d).Dump(w, func(b DumpBooks) error {
		began = true
		return json.NewEncoder(w).Encode(Response{Dump: &b})
	})
	if err != nil && !began {
		_ = json.NewEncoder(conn).Encode(Response{Error: fmt.Sprintf("dump the recorder: %v", err)})
		return
	}
	_ = w.Flush()
}

// Dump asks the run listening on path for its recorder's newest window and
// copies its JSON lines to w. It returns the window's books.
func Dump(ctx context.Context, path string, w io.Writer) (DumpBooks, error) {
	conn, err := dial(ctx, path)
	if err != nil {
		return DumpBooks{}, err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("{\"dump\":true}\n")); err != nil {
		return DumpBooks{}, fmt.Errorf("send request to %s: %w", path, err)
	}
	r := bufio.NewReaderSize(conn, 1<<20)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return DumpBooks{}, fmt.Errorf("read the answer from %s: %w", path, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return DumpBooks{}, fmt.Errorf("read the answer from %s: %w", path, err)
	}
	if err := resp.Err(); err != nil {
		return DumpBooks{}, err
	}
	if resp.Dump == nil {
		return DumpBooks{}, errors.New("the run answered a dump request with no window: is it an older ringwatch?")
	}
	if _, err := io.Copy(w, r); err != nil {
		return *resp.Dump, fmt.Errorf("copy the window from %s: %w", path, err)
	}
	return *resp.Dump, nil
}

// DumpLine is [Dump], and the line that says what it took, for ctl.
func DumpLine(ctx context.Context, path string, w io.Writer) (string, error) {
	books, err := Dump(ctx, path, w)
	if err != nil {
		return "", err
	}
	return "dumped " + books.String(), nil
}
