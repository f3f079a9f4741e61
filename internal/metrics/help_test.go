package metrics

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// maxHelp bounds a help text: one short sentence, with the details in
// docs/metrics.md's table, where a reader of a dashboard looks them up.
const maxHelp = 80

// TestHelpIsOneSentence reads every help text in this package's source (the
// second argument of prometheus.NewDesc, the Help of an Opts) and holds it
// to one sentence of at most maxHelp characters that names no flag: a flag
// is the command's business, and a metric outlives its spelling.
func TestHelpIsOneSentence(t *testing.T) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var helps []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			var lit ast.Expr
			switch n := n.(type) {
			case *ast.CallExpr:
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "NewDesc" && len(n.Args) > 1 {
					lit = n.Args[1]
				}
			case *ast.KeyValueExpr:
				if id, ok := n.Key.(*ast.Ident); ok && id.Name == "Help" {
					lit = n.Value
				}
			}
			if lit == nil {
				return true
			}
			bl, ok := lit.(*ast.BasicLit)
			if !ok || bl.Kind != token.STRING {
				t.Errorf("%s: help text is not a string literal, so this test cannot read it", fset.Position(lit.Pos()))
				return true
			}
			help, err := strconv.Unquote(bl.Value)
			if err != nil {
				t.Fatal(err)
			}
			helps = append(helps, help)
			return true
		})
	}
	if len(helps) < 30 {
		t.Fatalf("found %d help texts: has the way metrics are declared changed?", len(helps))
	}
	for _, h := range helps {
		switch {
		case len(h) > maxHelp:
			t.Errorf("help text of %d characters, more than %d: %q", len(h), maxHelp, h)
		case !strings.HasSuffix(h, "."):
			t.Errorf("help text is not a sentence ending in a full stop: %q", h)
		case strings.Contains(strings.TrimSuffix(h, "."), ". ") || strings.Contains(h, ";"):
			t.Errorf("help text is more than one sentence: %q", h)
		case strings.Contains(h, "--"):
			t.Errorf("help text names a flag: %q", h)
		}
	}
}
