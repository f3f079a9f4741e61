package consumer

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strings"
	"testing"
)

// fileOrder is the package's files in the order a record meets them, each
// depending only on the ones before it. TestFileOrder holds it to the
// files, so it is where to read the layering.
var fileOrder = []struct{ file, owns string }{
	{"doc.go", "the package comment: what the package owns and promises"},
	{"wakeup.go", "Wakeup, the modes a consumer and its producers agree on"},
	{"ring.go", "Ring, what to read, and the ring interface every walk implements: from the read position to the write position, shared memory into a batch of record slices"},
	{"ringbuf.go", "the walk of a BPF ring buffer, over memory its constructor maps (internal/ringmap) or plain Go memory in tests"},
	{"perfbuf.go", "the walk of a perf buffer, and the perf event it maps"},
	{"spsc.go", "the walk of ringwatch's SPSC queues"},
	{"flow.go", "the flow model: each ring's fill rate and the time until the first is full, after each pass"},
	{"clock.go", "CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns()"},
	{"wake.go", "the sleeper: pacing and sleeping by the flow model, and the flag-and-doorbell handshake"},
	{"consumer.go", "Consumer, which owns its rings, sleeper, counters and the epoll set it waits in (internal/epoll); Read and Drain"},
	{"open.go", "Open and OpenConfig, which put the pieces together"},
	{"overwrite.go", "Recorder, beside the Consumer: on-demand snapshots of an overwrite-mode ring buffer, copied out and never torn"},
}

// TestFileOrder checks that fileOrder lists exactly the package's files,
// and that each uses names only of the files listed before it.
func TestFileOrder(t *testing.T) {
	uses := fileUses(t)
	pos := map[string]int{}
	for i, f := range fileOrder {
		if _, dup := pos[f.file]; dup {
			t.Errorf("fileOrder lists %s twice", f.file)
		}
		pos[f.file] = i
		if _, ok := uses[f.file]; !ok {
			t.Errorf("fileOrder lists %s, which is not a file of the package", f.file)
		}
	}
	for file, deps := range uses {
		i, ok := pos[file]
		if !ok {
			t.Errorf("%s is not in fileOrder: add it where it belongs", file)
			continue
		}
		for _, dep := range deps {
			if j, ok := pos[dep]; ok && j > i {
				t.Errorf("%s uses %s, listed after it in fileOrder", file, dep)
			}
		}
	}
}

// TestFilesDependOneWay reads this package's own source and checks that no
// file uses a name declared in a file that uses a name of its own: the
// files stack up one way (fileOrder lists the order), so each can be read
// and changed knowing only those below it. A use is an identifier the parser
// did not resolve inside its file, naming a top-level declaration of
// another file; selectors, struct fields and composite-literal keys are
// not uses.
func TestFilesDependOneWay(t *testing.T) {
	uses := fileUses(t)
	// Every file must not be reachable from the files it uses.
	var reaches func(from, to string, seen map[string]bool) bool
	reaches = func(from, to string, seen map[string]bool) bool {
		if from == to {
			return true
		}
		if seen[from] {
			return false
		}
		seen[from] = true
		for _, next := range uses[from] {
			if reaches(next, to, seen) {
				return true
			}
		}
		return false
	}
	for file, deps := range uses {
		for _, dep := range deps {
			if reaches(dep, file, map[string]bool{}) {
				t.Errorf("%s uses %s, which depends on %s again", file, dep, file)
			}
		}
	}
	if len(uses["consumer.go"]) == 0 {
		t.Fatalf("consumer.go uses no other file: the check sees nothing (%v)", uses)
	}
	t.Logf("uses: %v", uses)
}

// fileUses maps each non-test file of the package to the files whose
// top-level names it uses (every file is a key, with no uses or some).
func fileUses(t *testing.T) map[string][]string {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*ast.File{}
	declaredIn := map[string]string{} // top-level name -> file
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = f
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					declaredIn[d.Name.Name] = name
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						declaredIn[s.Name.Name] = name
					case *ast.ValueSpec:
						for _, n := range s.Names {
							declaredIn[n.Name] = name
						}
					}
				}
			}
		}
	}
	uses := map[string][]string{} // file -> files it uses
	for name, f := range files {
		uses[name] = nil
		skip := map[*ast.Ident]bool{}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				skip[n.Sel] = true
			case *ast.KeyValueExpr:
				if id, ok := n.Key.(*ast.Ident); ok {
					skip[id] = true
				}
			case *ast.Field:
				for _, id := range n.Names {
					skip[id] = true
				}
			case *ast.Ident:
				def, ok := declaredIn[n.Name]
				ok = ok && n.Name != "_"
				if ok && def != name && n.Obj == nil && !skip[n] && !slices.Contains(uses[name], def) {
					uses[name] = append(uses[name], def)
				}
			}
			return true
		})
	}
	return uses
}
