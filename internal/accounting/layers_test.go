package accounting

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ringwatch/ringwatch/"

// layers are the packages of a record's trip (docs/design.md, "Layout") in
// the order their imports allow: each may depend on those before it, never
// on one after it. The transport comes after the consumer although a record
// meets it first, because it builds the consumer's readers over its maps.
var layers = []string{
	"internal/abi",
	"pkg/consumer",
	"internal/transport",
	"internal/accounting",
	"internal/metrics",
}

// lifecycle are the packages that load, attach and run the producers. The
// accounting counts what a consumer hands over and closes its books from the
// kernel's counts in the kernel's layout, so it needs none of them.
var lifecycle = []string{
	"internal/loader",
	"internal/session",
	"internal/control",
	"internal/daemon",
}

// TestLayersPointOneWay holds the imports of the packages of a record's
// trip to one direction, and keeps the accounting off the lifecycle, with
// what `go list -deps` reports (test files are not counted).
func TestLayersPointOneWay(t *testing.T) {
	for i, pkg := range layers {
		deps := moduleDeps(t, pkg)
		for _, later := range layers[i+1:] {
			if slices.Contains(deps, later) {
				t.Errorf("%s depends on %s, which sits above it (docs/design.md, \"Layout\")", pkg, later)
			}
		}
	}
	deps := moduleDeps(t, "internal/accounting")
	for _, pkg := range lifecycle {
		if slices.Contains(deps, pkg) {
			t.Errorf("internal/accounting depends on %s; it should take what it needs from internal/abi or its own types", pkg)
		}
	}
}

// moduleDeps lists, relative to the module, the packages of this module
// that pkg imports directly or indirectly, pkg itself left out.
func moduleDeps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", module+pkg).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	var deps []string
	for _, line := range strings.Fields(string(out)) {
		if rel, ok := strings.CutPrefix(line, module); ok && rel != pkg {
			deps = append(deps, rel)
		}
	}
	return deps
}
