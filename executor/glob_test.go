package executor_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/builderdev/builder/internal/testutil"
)

// TestGlobThroughSymlink is issue 13's hole 6: a COPY glob whose
// directory is a symlink used to be read on the host. In a stage the
// link must resolve inside the stage's rootfs, as docker resolves it; in
// the context a link leading outside is an error, as it is for a source
// without a wildcard. host stands for any host directory: its file's name
// must appear neither in an error nor in the image, and nothing in it, in
// the context or in the busybox rootfs may change.
func TestGlobThroughSymlink(t *testing.T) {
	umoci := testutil.RequireTool(t, "umoci")
	e := newEnv(t)
	host := t.TempDir()
	writeFiles(t, host, map[string]string{"host-only-file": "host\n"})
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{"sub/in.txt": "in\n"})
	up, err := filepath.Rel(ctxDir, host)
	if err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"leak": host, "leakrel": up, "inside": "sub"} {
		if err := os.Symlink(target, filepath.Join(ctxDir, link)); err != nil {
			t.Fatal(err)
		}
	}
	before := map[string]map[string]string{"host": treeOf(t, host), "context": treeOf(t, ctxDir), "busybox": treeOf(t, e.base)}

	stage := func(run string) string {
		return "FROM busybox:test AS s1\nRUN " + strings.ReplaceAll(run, "HOST", host) + "\nFROM busybox:test\n"
	}
	cases := []struct {
		name, df string
		want     string   // the build's error, or "" for success
		files    []string // for success: what the image has under x/
	}{
		{"stage link to a path the stage has", stage("mkdir -p HOST && echo s > HOST/stage-file && ln -s HOST /leakdir") +
			"COPY --from=s1 /leakdir/* /x/\n", "", []string{"stage-file"}},
		{"stage link to a path the stage lacks", stage("ln -s HOST /leakdir") + "COPY --from=s1 /leakdir/* /x/\n",
			"Dockerfile:4: COPY failed: no source files were specified: /leakdir/* matches nothing", nil},
		{"stage link to /etc", stage("ln -s /etc /leakdir") + "COPY --from=s1 /leakdir/* /x/\n", "", []string{"group", "passwd"}},
		{"stage relative link climbing out", stage("mkdir /d && ln -s "+strings.Repeat("../", 40)+"..HOST /d/up") + "COPY --from=s1 /d/up/* /x/\n",
			"Dockerfile:4: COPY failed: no source files were specified: /d/up/* matches nothing", nil},
		{"stage link in the middle", stage("mkdir -p HOST/in && echo s > HOST/in/f && ln -s HOST /leakdir") + "COPY --from=s1 /leakdir/*/f /x/\n",
			"", []string{"f"}},
		{"context link out", "FROM busybox:test\nCOPY leak/* /x/\n",
			"Dockerfile:2: COPY failed: leak: symlink leak points outside the build context (" + host + ")", nil},
		{"context relative link out", "FROM busybox:test\nCOPY leakrel/* /x/\n",
			"Dockerfile:2: COPY failed: leakrel: symlink leakrel points outside the build context (" + up + ")", nil},
		{"context link inside", "FROM busybox:test\nCOPY inside/* /x/\n", "", []string{"in.txt"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := e.build(t, ctxDir, c.df, &buildOpts{noCache: true})
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != c.want {
				t.Fatalf("error %q, want %q", got, c.want)
			}
			if err != nil {
				return
			}
			rootfs := unpack(t, e, umoci, res)
			ents, err := os.ReadDir(filepath.Join(rootfs, "x"))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, d := range ents {
				names = append(names, d.Name())
			}
			if !slices.Equal(names, c.files) {
				t.Errorf("x/ holds %q, want %q", names, c.files)
			}
			if _, err := os.Lstat(filepath.Join(rootfs, "x/host-only-file")); err == nil {
				t.Error("the image holds the host's file")
			}
		})
	}
	for what, tree := range map[string]string{"host": host, "context": ctxDir, "busybox": e.base} {
		if diff := diffMaps(before[what], treeOf(t, tree)); diff != "" {
			t.Errorf("the %s directory changed:\n%s", what, diff)
		}
	}
}

// diffMaps lists the keys whose values differ between a and b.
func diffMaps(a, b map[string]string) string {
	var lines []string
	for k, v := range a {
		if b[k] != v {
			lines = append(lines, k+": "+v+" → "+b[k])
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			lines = append(lines, k+": new "+v)
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
