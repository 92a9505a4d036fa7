package builder_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCoreNeverPrints keeps STYLE.md P11: outside cmd/builder, library
// code returns errors and emits events; it never prints, logs or exits.
// A call marked "//nolint:forbidigo" on its line (the RUN child, which must
// not return) is allowed. Every package `go list` finds is checked, so a
// new package is covered without being named here.
func TestCoreNeverPrints(t *testing.T) {
	pkgs := libraryPackages(t, ".")
	if len(pkgs) < len(allowed)-2 {
		t.Fatalf("go list found %d library packages, expected at least %d: is the test run from the module root?", len(pkgs), len(allowed)-2)
	}
	for _, p := range pkgs {
		for _, msg := range printsIn(t, p.files) {
			t.Error(msg)
		}
	}
}

// TestCoreNeverPrintsFindsNewPackages makes a module with a package no
// list names that prints, a command that may print, and a package of
// tests only, and checks that the print in the new package is the one
// found.
func TestCoreNeverPrintsFindsNewPackages(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":                   "module " + module + "\n\ngo 1.22\n",
		"brandnew/new.go":          "package brandnew\n\nimport \"fmt\"\n\nfunc Hello() { fmt.Println(\"hello\") }\n",
		"brandnew/exit_windows.go": "package brandnew\n\nimport \"os\"\n\nfunc Bye() { os.Exit(1) }\n",
		"brandnew/print_test.go":   "package brandnew\n\nimport \"fmt\"\n\nfunc init() { fmt.Println(\"tests may\") }\n",
		"cmd/builder/main.go":      "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"the command may\") }\n",
		"testsonly/x_test.go":      "package testsonly\n\nimport \"fmt\"\n\nfunc init() { fmt.Println(\"tests may\") }\n",
	}
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var msgs []string
	for _, p := range libraryPackages(t, dir) {
		msgs = append(msgs, printsIn(t, p.files)...)
	}
	want := []string{
		filepath.Join(dir, "brandnew/exit_windows.go") + ":5:14: os.Exit",
		filepath.Join(dir, "brandnew/new.go") + ":5:16: fmt.Println",
	}
	if len(msgs) != len(want) {
		t.Fatalf("messages = %q, want one for each of %q", msgs, want)
	}
	for i, w := range want {
		if !strings.HasPrefix(msgs[i], w+" ") {
			t.Errorf("message %d = %q, want it to start with %q", i, msgs[i], w)
		}
	}
}

// libPkg is a library package: its import path and its non-test Go
// files, whatever their build constraints.
type libPkg struct {
	importPath string
	files      []string
}

// libraryPackages lists the packages of the module in dir, except the
// command, which prints by design, and packages of tests only.
func libraryPackages(t *testing.T, dir string) []libPkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Dir,GoFiles,CgoFiles,IgnoredGoFiles", "./...")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []libPkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath, Dir                   string
			GoFiles, CgoFiles, IgnoredGoFiles []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		if rel, _ := relPath(p.ImportPath); rel == "cmd/builder" {
			continue
		}
		var files []string
		for _, f := range slices.Concat(p.GoFiles, p.CgoFiles, p.IgnoredGoFiles) {
			if strings.HasSuffix(f, ".go") && !strings.HasSuffix(f, "_test.go") {
				files = append(files, filepath.Join(p.Dir, f))
			}
		}
		if len(files) > 0 {
			slices.Sort(files)
			pkgs = append(pkgs, libPkg{p.ImportPath, files})
		}
	}
	return pkgs
}

// printsIn returns one message for each print, log or exit in files.
func printsIn(t *testing.T, files []string) []string {
	t.Helper()
	forbidden := map[string]map[string]bool{
		"fmt": {"Print": true, "Printf": true, "Println": true},
		"log": {"*": true},
		"os":  {"Exit": true, "Stdout": true, "Stderr": true},
	}
	var msgs []string
	for _, file := range files {
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
			msgs = append(msgs, fmt.Sprintf("%s: %s.%s in a core package: return an error or emit an event instead", pos, pkg.Name, sel.Sel.Name))
			return true
		})
	}
	return msgs
}
