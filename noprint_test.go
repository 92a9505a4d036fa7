package builder_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCoreNeverPrints keeps STYLE.md P11: outside cmd/builder, library
// code returns errors and emits events; it never prints, logs or exits.
// A call marked "//nolint:forbidigo" on its line (the RUN child, which must
// not return) is allowed.
func TestCoreNeverPrints(t *testing.T) {
	forbidden := map[string]map[string]bool{
		"fmt": {"Print": true, "Printf": true, "Println": true},
		"log": {"*": true},
		"os":  {"Exit": true, "Stdout": true, "Stderr": true},
	}
	for _, dir := range []string{"parser", "snapshot", "cache", "registry", "executor", "internal/fsutil"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, file, src, 0)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(string(src), "\n")
			ast.Inspect(f, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				pkg, ok := sel.X.(*ast.Ident)
				if !ok || forbidden[pkg.Name] == nil {
					return true
				}
				if !forbidden[pkg.Name]["*"] && !forbidden[pkg.Name][sel.Sel.Name] {
					return true
				}
				pos := fset.Position(sel.Pos())
				if strings.Contains(lines[pos.Line-1], "//nolint:forbidigo") {
					return true
				}
				t.Errorf("%s: %s.%s in a core package: return an error or emit an event instead", pos, pkg.Name, sel.Sel.Name)
				return true
			})
		}
	}
}
