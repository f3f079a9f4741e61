package apicheck

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
)

// InternalTypes type-checks the package in dir and returns, sorted, one line
// per place its exported API names a type of an internal package, which a
// program outside the module cannot name: "Func: param 1: .../internal/abi.TransportName".
// It looks through exported functions, constants, variables, type
// definitions and aliases, the exported fields of exported structs
// (embedded ones too), the methods of exported interfaces and the exported
// methods of exported types, into pointers, slices, maps, channels,
// function types and type arguments.
func InternalTypes(dir string) ([]string, error) {
	pkg, err := typeCheck(dir)
	if err != nil {
		return nil, err
	}
	c := checker{pkg: pkg, seen: map[*types.Named]bool{}}
	scope := pkg.Scope()
	for _, name := range scope.Names() {
		obj := scope.Lookup(name)
		if !obj.Exported() {
			continue
		}
		c.check(name, obj.Type())
		if tn, ok := obj.(*types.TypeName); ok && !tn.IsAlias() {
			named, ok := tn.Type().(*types.Named)
			if !ok {
				continue
			}
			for m := range named.Methods() {
				if m.Exported() {
					c.check(name+"."+m.Name(), m.Type())
				}
			}
		}
	}
	sort.Strings(c.found)
	return c.found, nil
}

type checker struct {
	pkg   *types.Package
	seen  map[*types.Named]bool
	found []string
}

func (c *checker) check(where string, t types.Type) {
	switch t := t.(type) {
	case *types.Alias:
		if c.internal(t.Obj().Pkg()) {
			c.report(where, t)
			return
		}
		// Another package's alias is a name a user can write (ebpf.MapID
		// stands for a type of cilium/ebpf's internal/sys); only this
		// package's own aliases are looked through.
		if t.Obj().Pkg() == c.pkg {
			c.check(where, t.Rhs())
		}
	case *types.Named:
		if c.internal(t.Obj().Pkg()) {
			c.report(where, t)
			return
		}
		for arg := range t.TypeArgs().Types() {
			c.check(where+": type argument", arg)
		}
		// A type of another public or standard package is that package's
		// promise; only this package's own types are looked into, once each.
		if t.Obj().Pkg() != c.pkg || c.seen[t.Origin()] {
			return
		}
		c.seen[t.Origin()] = true
		c.check(where, t.Underlying())
	case *types.Pointer:
		c.check(where, t.Elem())
	case *types.Slice:
		c.check(where, t.Elem())
	case *types.Array:
		c.check(where, t.Elem())
	case *types.Map:
		c.check(where+": key", t.Key())
		c.check(where, t.Elem())
	case *types.Chan:
		c.check(where, t.Elem())
	case *types.Signature:
		for i := range t.Params().Len() {
			c.check(fmt.Sprintf("%s: param %d", where, i+1), t.Params().At(i).Type())
		}
		for i := range t.Results().Len() {
			c.check(fmt.Sprintf("%s: result %d", where, i+1), t.Results().At(i).Type())
		}
	case *types.Struct:
		for f := range t.Fields() {
			if f.Exported() {
				c.check(where+"."+f.Name(), f.Type())
			}
		}
	case *types.Interface:
		for m := range t.Methods() {
			if m.Exported() {
				c.check(where+"."+m.Name(), m.Type())
			}
		}
		for e := range t.EmbeddedTypes() {
			c.check(where+": embedded", e)
		}
	case *types.Union:
		for term := range t.Terms() {
			c.check(where+": term", term.Type())
		}
	case *types.TypeParam:
		c.check(where+": constraint", t.Constraint())
	}
}

func (c *checker) report(where string, t types.Type) {
	c.found = append(c.found, where+": "+t.String())
}

// internal reports whether pkg is another package whose path has an
// internal element, which the go command forbids importing from outside the
// tree it is in.
func (c *checker) internal(pkg *types.Package) bool {
	if pkg == nil || pkg == c.pkg {
		return false
	}
	for _, elem := range strings.Split(pkg.Path(), "/") {
		if elem == "internal" {
			return true
		}
	}
	return false
}

// typeCheck parses the non-test files of the package in dir and checks them
// against the export data `go list -export` builds for its imports.
func typeCheck(dir string) (*types.Package, error) {
	path, exports, err := exportData(dir)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi os.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", dir, err)
	}
	if len(pkgs) != 1 {
		return nil, fmt.Errorf("parse %s: %d packages, want 1", dir, len(pkgs))
	}
	var files []*ast.File
	for _, p := range pkgs {
		for _, f := range p.Files {
			files = append(files, f)
		}
	}
	lookup := func(path string) (io.ReadCloser, error) {
		file, ok := exports[path]
		if !ok {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(file)
	}
	conf := types.Config{Importer: importer.ForCompiler(fset, "gc", lookup)}
	pkg, err := conf.Check(path, fset, files, nil)
	if err != nil {
		return nil, fmt.Errorf("type-check %s: %w", dir, err)
	}
	return pkg, nil
}

// exportData returns the import path of the package in dir, and maps that of
// every dependency to its compiled export data.
func exportData(dir string) (path string, exports map[string]string, err error) {
	// -deps lists the package itself last.
	cmd := exec.Command("go", "list", "-export", "-deps", "-f", "{{.ImportPath}} {{.Export}}", ".")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", nil, fmt.Errorf("list exports of %s: %w: %s", dir, err, stderr.String())
	}
	exports = map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var file string
		path, file, _ = strings.Cut(sc.Text(), " ")
		exports[path] = file
	}
	return path, exports, sc.Err()
}

// DocLines returns the number of lines `go doc` prints for the package in
// dir: what a user sees of it on one screen.
func DocLines(dir string) (int, error) {
	cmd := exec.Command("go", "doc", ".")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("run go doc in %s: %w: %s", dir, err, stderr.String())
	}
	return bytes.Count(out, []byte("\n")), nil
}

// MaxDocLines is the most `go doc` may print for a public package: one
// screen, so that a user sees the whole API at once.
const MaxDocLines = 60
