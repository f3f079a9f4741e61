package hostrings_test

import (
	"testing"

	"github.com/ringwatch/ringwatch/internal/apicheck"
)

// TestAPINamesNoInternalType holds the exported API to types a program
// outside this module can name.
func TestAPINamesNoInternalType(t *testing.T) { apicheck.RequireNoInternalTypes(t, ".") }

// TestGoDocFitsScreen holds `go doc` of the package to one screen.
func TestGoDocFitsScreen(t *testing.T) { apicheck.RequireDocFitsScreen(t, ".") }
