package daemon

import (
	"bytes"
	"sync"
	"testing"

	"github.com/ringwatch/ringwatch/internal/privilege"
	"github.com/ringwatch/ringwatch/internal/testenv"
)

func TestMain(m *testing.M) {
	// A run drops every capability it does not need, on every thread of
	// the process: here the test binary's, which the tests after it need.
	// What is kept stays as it is; the binary's tests in cmd/ringwatch
	// check the drop itself.
	dropPrivileges = func(privilege.Set) (privilege.Set, error) {
		cur, err := privilege.Current()
		return cur.Effective, err
	}
	testenv.Main(m)
}

// syncBuffer is a bytes.Buffer the run's goroutines may write while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
