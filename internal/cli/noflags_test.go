package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// aFlag is a command-line flag written in a message, such as --consumers.
var aFlag = regexp.MustCompile(`(^|[^-\w])--[a-z][a-z0-9.-]*`)

// messageFuncs are the calls whose string arguments become an error's or a
// user's message.
var messageFuncs = map[string]bool{
	"Errorf": true, "New": true, "Sprintf": true, "Fprintf": true, "Printf": true,
	"Problemf": true, "problemf": true, "RefuseOption": true, "Choose": true,
}

// flagsInMessages returns, for each message in src that names a flag,
// "file:line: text". A message is a string literal passed to one of
// messageFuncs, or a field of a composite literal of a type whose name
// ends in Error or Problem.
func flagsInMessages(fset *token.FileSet, name, src string) ([]string, error) {
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var found []string
	check := func(e ast.Expr) {
		ast.Inspect(e, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err == nil && aFlag.MatchString(s) {
				found = append(found, fset.Position(lit.Pos()).String()+": "+s)
			}
			return true
		})
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			var fn string
			switch f := n.Fun.(type) {
			case *ast.Ident:
				fn = f.Name
			case *ast.SelectorExpr:
				fn = f.Sel.Name
			case *ast.IndexExpr: // a generic call, such as Choose[T]
				if sel, ok := f.X.(*ast.SelectorExpr); ok {
					fn = sel.Sel.Name
				}
			}
			if messageFuncs[fn] {
				for _, arg := range n.Args {
					check(arg)
				}
			}
		case *ast.CompositeLit:
			t := n.Type
			if u, ok := t.(*ast.UnaryExpr); ok {
				t = u.X
			}
			var typ string
			switch t := t.(type) {
			case *ast.Ident:
				typ = t.Name
			case *ast.SelectorExpr:
				typ = t.Sel.Name
			}
			if strings.HasSuffix(typ, "Error") || strings.HasSuffix(typ, "Problem") {
				for _, elt := range n.Elts {
					check(elt)
				}
			}
		}
		return true
	})
	return found, nil
}

func TestFlagsInMessagesFindsAPlantedFlag(t *testing.T) {
	for _, tc := range []struct {
		src   string
		found int
	}{
		{`package p; import "fmt"; var e = fmt.Errorf("bad: give --consumers 2")`, 1},
		{`package p; import "errors"; var e = errors.New("--ctl.socket is taken")`, 1},
		{`package p; var e = abi.Problemf(abi.ErrInvalidOption, "%d: choose --ring-size 4MiB", 3)`, 1},
		{`package p; var e = abi.RefuseOption(nil, "X", 1, "{X} %d: try --x", 1)`, 1},
		{`package p; var e = &abi.OptionError{Option: "X", Message: "use --x"}`, 1},
		{`package p; var e = &Problem{Msg: "a " + "--flag b"}`, 1},
		{`package p; var e = fmt.Errorf("run dpkg-deb -x %s", f)`, 0},             // one dash is not a flag
		{`package p; var e = fmt.Errorf("{Consumers} %d: give 1 or more", n)`, 0}, // an option, named as the library does
		{`package p; var args = []string{"--socket", s}`, 0},                      // arguments, not a message
		{`package p; var e = fmt.Errorf("a -- b")`, 0},
	} {
		found, err := flagsInMessages(token.NewFileSet(), "planted.go", tc.src)
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		if len(found) != tc.found {
			t.Errorf("%s: found %q, want %d", tc.src, found, tc.found)
		}
	}
}

// TestLibrariesNameNoFlag reads the Go sources of every library (every
// package under internal/ and pkg/ but a main one and internal/cli, tests
// left out): no message they build names a flag. A library refuses an
// option with an abi.OptionError that names the option its own way, and
// the command names the flag (cli.Reword).
func TestLibrariesNameNoFlag(t *testing.T) {
	root := filepath.Join("..", "..")
	// internal/cli is the command line's own package, not a library of
	// options: its FlagSet refuses a value naming the flag (--name), and
	// its messages teach flag syntax (--name=value). It alone is exempt.
	commandLine := filepath.Join(root, "internal", "cli")
	fset := token.NewFileSet()
	var files int
	for _, top := range []string{"internal", "pkg"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() && path == commandLine {
				return filepath.SkipDir
			}
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			head, err := parser.ParseFile(fset, path, src, parser.PackageClauseOnly)
			if err != nil {
				return err
			}
			if head.Name.Name == "main" {
				return nil
			}
			files++
			found, err := flagsInMessages(fset, path, string(src))
			for _, f := range found {
				t.Errorf("a library names a flag: %s", f)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files < 50 {
		t.Fatalf("read %d library files: is the tree where the test looks for it?", files)
	}
}
