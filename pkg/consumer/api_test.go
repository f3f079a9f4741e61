package consumer_test

import (
	"testing"

	"github.com/ringwatch/ringwatch/internal/apicheck"
)

// TestAPINamesNoInternalType holds the exported API to types a program
// outside this module can name: an internal/ package's type in a signature
// would make the function or field unusable there (apicheck's own test
// shows the check failing on a planted package).
func TestAPINamesNoInternalType(t *testing.T) {
	found, err := apicheck.InternalTypes(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("exported API names an internal type: %s", f)
	}
}

// TestGoDocFitsScreen holds `go doc` of the package to one screen.
func TestGoDocFitsScreen(t *testing.T) {
	n, err := apicheck.DocLines(".")
	if err != nil {
		t.Fatal(err)
	}
	if n > apicheck.MaxDocLines {
		t.Errorf("go doc prints %d lines, more than %d: shorten the package comment or export fewer names", n, apicheck.MaxDocLines)
	}
}
