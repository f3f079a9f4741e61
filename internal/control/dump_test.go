package control

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringwatch/ringwatch/internal/abi"
)

// lineDumper is a recorder of n JSON lines.
type lineDumper struct{ n int }

func (d lineDumper) Dump(w io.Writer, begin func(DumpBooks) error) (DumpBooks, error) {
	b := DumpBooks{Attempted: uint64(d.n) + 7, Delivered: uint64(d.n), Overwritten: 7, Capacity: 64 << 20}
	if err := begin(b); err != nil {
		return b, err
	}
	for i := range d.n {
		if _, err := fmt.Fprintf(w, "{\"seq\":%d}\n", i); err != nil {
			return b, err
		}
	}
	return b, nil
}

// TestDumpStreamsTheWindowAfterItsBooks: a window larger than any buffer
// on the way arrives whole, after the books, and a run without a recorder
// refuses the dump naming the option to start it with.
func TestDumpStreamsTheWindowAfterItsBooks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	srv, err := Listen(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	_, err = Dump(ctx, path, io.Discard)
	if oe := abi.OptionErrors(err); len(oe) != 1 || oe[0].Option != "recorder" ||
		!strings.Contains(err.Error(), "keeps no recorder") {
		t.Fatalf("dump from a run without a recorder: %v", err)
	}

	const n = 300000 // some 4 MiB of lines
	srv.SetDumper(lineDumper{n})
	var out bytes.Buffer
	books, err := Dump(ctx, path, &out)
	if err != nil {
		t.Fatal(err)
	}
	if books.Delivered != n || books.Attempted != n+7 || books.Overwritten != 7 {
		t.Errorf("books %+v", books)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != n || lines[0] != `{"seq":0}` || lines[n-1] != fmt.Sprintf(`{"seq":%d}`, n-1) {
		t.Errorf("%d lines, first %q, last %q; want %d", len(lines), lines[0], lines[len(lines)-1], n)
	}
	if want := "300007 records attempted = 300000 delivered + 7 overwritten + 0 lost"; !strings.HasPrefix(books.String(), want) {
		t.Errorf("books say %q, want it to start %q", books, want)
	}
}
