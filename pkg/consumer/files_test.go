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

// TestFilesDependOneWay reads this package's own source and checks that no
// file uses a name declared in a file that uses a name of its own: the
// files stack up one way (doc.go lists the order), so each can be read and
// changed knowing only those below it. A use is an identifier the parser
// did not resolve inside its file, naming a top-level declaration of
// another file; selectors, struct fields and composite-literal keys are
// not uses.
func TestFilesDependOneWay(t *testing.T) {
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
