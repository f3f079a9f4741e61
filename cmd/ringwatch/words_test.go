package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/ringwatch/ringwatch/internal/cli"
	"github.com/ringwatch/ringwatch/internal/control"
)

// TestLibraryRefusalsNameTheFlags holds the messages whose options the
// libraries name their own way (abi.OptionError) to the flags the command
// printed before the libraries stopped naming flags.
func TestLibraryRefusalsNameTheFlags(t *testing.T) {
	// A run that carries exec only, asked for a pid list: the answer
	// names run's --source, as ctl prints it.
	answer := `{"applied":0,"roundtrip_ns":0,` +
		`"error":"action 1 (set_pids): this ringwatch run does not carry the syscalls source (it carries exec): start it with Sources exec,syscalls",` +
		`"refused":[{"option":"Sources","value":"exec","message":"this ringwatch run does not carry the syscalls source (it carries exec): start it with {Sources} exec,syscalls"}]}`
	var resp control.Response
	if err := json.Unmarshal([]byte(answer), &resp); err != nil {
		t.Fatal(err)
	}
	want := "action 1 (set_pids): this ringwatch run does not carry the syscalls source (it carries exec): start it with --source exec,syscalls"
	if got := cli.Reword(resp.Err(), flagOf).Error(); got != want {
		t.Errorf("ctl prints %q, want %q", got, want)
	}

	// Nothing listens where ctl sends: it names its --socket and run's
	// --ctl.socket.
	sock := filepath.Join(t.TempDir(), "none.sock")
	_, err := control.Send(t.Context(), sock, control.Request{})
	want = fmt.Sprintf("no ringwatch run is listening on %s: start one with 'ringwatch run', or give --socket the --ctl.socket it was started with", sock)
	if got := cli.Reword(err, flagOf).Error(); got != want {
		t.Errorf("ctl prints %q, want %q", got, want)
	}
}
