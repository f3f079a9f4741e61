package apicheck

import "testing"

// RequireNoInternalTypes fails t for each exported name of the package in
// dir whose signature names an internal/ package's type: a program outside
// this module could not use it (apicheck's own test shows the check failing
// on a planted package).
func RequireNoInternalTypes(t *testing.T, dir string) {
	t.Helper()
	found, err := InternalTypes(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("exported API names an internal type: %s", f)
	}
}

// RequireDocFitsScreen fails t when `go doc` of the package in dir prints
// more than MaxDocLines lines.
func RequireDocFitsScreen(t *testing.T, dir string) {
	t.Helper()
	n, err := DocLines(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n > MaxDocLines {
		t.Errorf("go doc prints %d lines, more than %d: shorten the package comment or export fewer names", n, MaxDocLines)
	}
}
