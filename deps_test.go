// Package builder_test holds the module-wide checks that belong to no one
// package: this file keeps every import pointing down DESIGN.md's package
// table (STYLE.md P1).
package builder_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/builderdev/builder"

// allowed lists, for each package of the module (relative to the module
// path), the module packages it may import: DESIGN.md's table, plus
// internal/fsutil, the leaf of shared file helpers (atomic writes, locks),
// and internal/units, the leaf that formats sizes for messages.
// "*" allows every package of the module except internal/testutil.
// A package that is not listed here fails the test until it is added, so
// a new package is placed in the design on purpose.
var allowed = map[string][]string{
	"":                  {}, // this test-only package
	"parser":            {"internal/units"},
	"snapshot":          {"internal/fsutil", "internal/units"},
	"cache":             {"internal/fsutil"},
	"registry":          {"cache", "internal/units"},
	"executor":          {"parser", "snapshot", "cache", "store", "executor/container", "internal/fsutil"},
	"cmd/builder":       {"*"}, // anything but internal/testutil
	"internal/fsutil":   {},
	"internal/units":    {},
	"internal/testutil": {},

	// The RUN runtime knows nothing of builds; the child mounts the
	// rootfs, a snapshot.Mount, itself.
	"executor/container": {"snapshot", "internal/fsutil", "internal/units"},
	// One root's cache and snapshots, opened together, with the build
	// lock and the administration over both.
	"store": {"cache", "snapshot", "internal/fsutil"},
}

// testAllowed are module packages a package's tests may import beyond
// what the package itself may: the executor's tests build with the real
// resolver, which lives in registry, a package the executor is kept
// independent of (it only declares the Resolver interface).
var testAllowed = map[string][]string{
	"executor": {"registry"},
}

// external limits third-party packages (matched by path prefix) to the
// module packages that own what they do. Matching is on whole path
// elements: "…/v1/remote" covers "…/v1/remote/transport".
var external = []struct {
	prefix string
	only   []string // module packages that may import it; "internal/*" is every internal package
	why    string
}{
	{"github.com/moby/buildkit", []string{"parser"}, "Dockerfile syntax belongs to parser"},
	{"github.com/spf13/pflag", []string{"cmd/builder"}, "flags are read only in cmd/builder"},
	{"github.com/schollz/progressbar", []string{"cmd/builder"}, "rendering belongs to cmd/builder"},
	{"golang.org/x/sys/unix", []string{"snapshot", "executor", "executor/container", "internal/*"}, "system calls belong to snapshot, executor and the RUN runtime"},
	{"github.com/google/go-containerregistry/pkg/v1/remote", []string{"registry", "internal/testutil"}, "registry access belongs to registry"},
	{"github.com/google/go-containerregistry/pkg/authn", []string{"registry", "internal/testutil"}, "credentials belong to registry"},
}

// pkg is the part of `go list -json` the check reads.
type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

func TestImports(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < len(allowed)-1 {
		t.Fatalf("go list found %d packages, expected at least %d: is the test run from the module root?", len(pkgs), len(allowed)-1)
	}
	for _, msg := range checkImports(pkgs) {
		t.Error(msg)
	}
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	// -e lists packages that do not compile too: their imports still count.
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,TestImports,XTestImports", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// checkImports returns one message per import that breaks the rules.
func checkImports(pkgs []pkg) []string {
	var msgs []string
	for _, p := range pkgs {
		rel, ok := relPath(p.ImportPath)
		if !ok {
			continue
		}
		may, known := allowed[rel]
		if !known {
			msgs = append(msgs, fmt.Sprintf("package %s is not in deps_test.go's table: add it with the imports DESIGN.md gives it", p.ImportPath))
			continue
		}
		for _, imp := range p.Imports {
			if m := checkImport(rel, imp, may, false); m != "" {
				msgs = append(msgs, m)
			}
		}
		for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
			if m := checkImport(rel, imp, may, true); m != "" {
				msgs = append(msgs, m+" (in a test)")
			}
		}
	}
	slices.Sort(msgs)
	return slices.Compact(msgs)
}

// checkImport checks one import of the module package rel. Tests may also
// import internal/testutil and their own package (external tests), and are
// free in their third-party imports: the limits above are on what a
// package does, not on how its tests set things up.
func checkImport(rel, imp string, may []string, inTest bool) string {
	name := displayName(rel)
	if dep, ok := relPath(imp); ok {
		switch {
		case dep == "cmd/builder":
			return fmt.Sprintf("%s imports %s: nothing may import the command", name, imp)
		case dep == "internal/testutil" && inTest:
			return ""
		case dep == "internal/testutil":
			return fmt.Sprintf("%s imports %s: only _test.go files may import it", name, imp)
		case inTest && dep == rel:
			return ""
		case inTest && slices.Contains(testAllowed[rel], dep):
			return ""
		case !slices.Contains(may, dep) && !slices.Contains(may, "*"):
			return fmt.Sprintf("%s imports %s: DESIGN.md lets %s import only %s", name, imp, name, list(may))
		}
		return ""
	}
	if inTest {
		return ""
	}
	for _, e := range external {
		if imp == e.prefix || strings.HasPrefix(imp, e.prefix+"/") {
			if !slices.ContainsFunc(e.only, func(o string) bool { return o == rel || o == "internal/*" && strings.HasPrefix(rel, "internal/") }) {
				return fmt.Sprintf("%s imports %s: only %s may (%s)", name, imp, list(e.only), e.why)
			}
		}
	}
	return ""
}

// relPath returns an import path relative to the module, and whether it is
// in the module at all.
func relPath(importPath string) (string, bool) {
	if importPath == module {
		return "", true
	}
	rel, ok := strings.CutPrefix(importPath, module+"/")
	return rel, ok
}

func displayName(rel string) string {
	if rel == "" {
		return module
	}
	return rel
}

func list(pkgs []string) string {
	if len(pkgs) == 0 {
		return "nothing of the module"
	}
	return strings.Join(pkgs, ", ")
}

// TestCheckImports makes sure the check itself fails for each kind of
// offence, naming the offending import.
func TestCheckImports(t *testing.T) {
	m := func(rel string) string { return module + "/" + rel }
	for _, c := range []struct {
		name string
		pkg  pkg
		want string // substring of the only message; "" for none
	}{
		{"command imports anything", pkg{ImportPath: m("cmd/builder"), Imports: []string{m("executor"), m("internal/newhelper")}}, ""},
		{"allowed", pkg{ImportPath: m("registry"), Imports: []string{m("cache"), "github.com/google/go-containerregistry/pkg/v1/remote"}}, ""},
		{"upward", pkg{ImportPath: m("cache"), Imports: []string{m("executor")}}, "cache imports " + m("executor")},
		{"sideways", pkg{ImportPath: m("parser"), Imports: []string{m("snapshot")}}, "parser imports " + m("snapshot")},
		{"command", pkg{ImportPath: m("executor"), XTestImports: []string{m("cmd/builder")}}, "nothing may import the command"},
		{"testutil outside tests", pkg{ImportPath: m("cache"), Imports: []string{m("internal/testutil")}}, "only _test.go files"},
		{"testutil in tests", pkg{ImportPath: m("cache"), TestImports: []string{m("internal/testutil")}, XTestImports: []string{m("cache")}}, ""},
		{"upward in a test", pkg{ImportPath: m("cache"), XTestImports: []string{m("executor")}}, "cache imports " + m("executor") + ": DESIGN.md lets cache import only internal/fsutil (in a test)"},
		{"a test-only import in a test", pkg{ImportPath: m("executor"), XTestImports: []string{m("registry")}}, ""},
		{"a test-only import outside tests", pkg{ImportPath: m("executor"), Imports: []string{m("registry")}}, "executor imports " + m("registry") + ": DESIGN.md lets executor import only parser, snapshot, cache, store, executor/container, internal/fsutil"},
		{"upward from a leaf", pkg{ImportPath: m("internal/units"), Imports: []string{m("parser")}}, "internal/units imports " + m("parser") + ": DESIGN.md lets internal/units import only nothing of the module"},
		{"buildkit", pkg{ImportPath: m("executor"), Imports: []string{"github.com/moby/buildkit/frontend/dockerfile/shell"}}, "executor imports github.com/moby/buildkit/frontend/dockerfile/shell"},
		{"pflag", pkg{ImportPath: m("executor"), Imports: []string{"github.com/spf13/pflag"}}, "executor imports github.com/spf13/pflag"},
		{"progressbar", pkg{ImportPath: m("cache"), Imports: []string{"github.com/schollz/progressbar/v3"}}, "progressbar"},
		{"unix", pkg{ImportPath: m("cache"), Imports: []string{"golang.org/x/sys/unix"}}, "cache imports golang.org/x/sys/unix"},
		{"unix in internal", pkg{ImportPath: m("internal/fsutil"), Imports: []string{"golang.org/x/sys/unix"}}, ""},
		{"unix in a command-like path", pkg{ImportPath: m("cmd/builder"), Imports: []string{"golang.org/x/sys/unix"}}, "cmd/builder imports golang.org/x/sys/unix"},
		{"remote subpackage", pkg{ImportPath: m("cmd/builder"), Imports: []string{"github.com/google/go-containerregistry/pkg/v1/remote/transport"}}, "cmd/builder imports github.com/google/go-containerregistry/pkg/v1/remote/transport"},
		{"authn", pkg{ImportPath: m("executor"), Imports: []string{"github.com/google/go-containerregistry/pkg/authn"}}, "authn"},
		{"prefix is whole elements", pkg{ImportPath: m("cache"), Imports: []string{"github.com/google/go-containerregistry/pkg/v1/remoteish"}}, ""},
		{"unknown package", pkg{ImportPath: m("newpkg")}, "not in deps_test.go's table"},
		{"container runtime", pkg{ImportPath: m("executor/container"), Imports: []string{m("snapshot"), "golang.org/x/sys/unix"}}, ""},
		{"container runtime upward", pkg{ImportPath: m("executor/container"), Imports: []string{m("executor")}}, "executor/container imports " + m("executor")},
		{"container runtime sideways", pkg{ImportPath: m("executor/container"), Imports: []string{m("cache")}}, "executor/container imports " + m("cache")},
		{"outside the module", pkg{ImportPath: "example.com/other", Imports: []string{m("cmd/builder")}}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := checkImports([]pkg{c.pkg})
			switch {
			case c.want == "" && len(got) != 0:
				t.Errorf("checkImports(%+v) = %q, want no message", c.pkg, got)
			case c.want != "" && (len(got) != 1 || !strings.Contains(got[0], c.want)):
				t.Errorf("checkImports(%+v) = %q, want one message containing %q", c.pkg, got, c.want)
			}
		})
	}
}
