package executor_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builderdev/builder/internal/testutil"
)

// gitRepo is a repository served read-only over git's dumb HTTP protocol
// on loopback, as BuildKit's tests serve theirs.
type gitRepo struct {
	t        *testing.T
	git, dir string
	url      string
}

func newGitRepo(t *testing.T) *gitRepo {
	r := &gitRepo{t: t, git: testutil.RequireTool(t, "git"), dir: t.TempDir()}
	r.run("init", "-q", "-b", "main")
	srv := httptest.NewServer(http.FileServer(http.Dir(r.dir)))
	t.Cleanup(srv.Close)
	r.url = srv.URL + "/.git"
	return r
}

func (r *gitRepo) run(args ...string) string {
	r.t.Helper()
	cmd := exec.Command(r.git, append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
	cmd.Dir = r.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files, commits them and refreshes what the dumb
// protocol serves; it returns the commit id.
func (r *gitRepo) commit(files map[string]string) string {
	r.t.Helper()
	writeFiles(r.t, r.dir, files)
	r.run("add", "-A")
	r.run("commit", "-q", "-m", "c")
	r.run("update-server-info")
	return r.run("rev-parse", "HEAD")
}

// TestAddGit: ADD of a repository over HTTP at a tag, a branch and a
// subdirectory, with and without --keep-git-dir; the commit is the key,
// so a moved branch is fetched again and an unchanged one is a hit.
func TestAddGit(t *testing.T) {
	e := newEnv(t)
	repo := newGitRepo(t)
	first := repo.commit(map[string]string{"README": "v1\n", "sub/a.txt": "a1\n"})
	repo.run("tag", "v1")
	repo.run("update-server-info")
	repo.commit(map[string]string{"README": "v2\n"})

	df := "FROM busybox:test\n" +
		"ADD " + repo.url + "#v1 /tag\n" +
		"ADD --keep-git-dir=true " + repo.url + "#main /kept\n" +
		"ADD " + repo.url + "#main:sub /sub\n" +
		"ADD --checksum=" + first[:12] + " " + repo.url + "#v1 /pinned\n"
	ctxDir := t.TempDir()
	res, err := e.build(t, ctxDir, df, nil)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := imageFiles(t, e, res)
	for p, want := range map[string]string{"tag/README": "v1\n", "tag/sub/a.txt": "a1\n", "kept/README": "v2\n", "sub/a.txt": "a1\n", "pinned/README": "v1\n"} {
		if got := readImageFile(t, rootfs, p); got != want {
			t.Errorf("/%s = %q, want %q", p, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(rootfs, "kept/.git/HEAD")); err != nil {
		t.Errorf("--keep-git-dir: %v", err)
	}
	mustBeAbsent(t, rootfs, "tag/.git", "sub/README")

	again, err := e.build(t, ctxDir, df, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Image.ID != res.Image.ID {
		t.Error("an unchanged repository gave another image")
	}
	repo.commit(map[string]string{"README": "v3\n"})
	res, err = e.build(t, ctxDir, df, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := readImageFile(t, imageFiles(t, e, res), "kept/README"); got != "v3\n" {
		t.Errorf("after main moved: %q", got)
	}

	_, err = e.build(t, ctxDir, "FROM busybox:test\nADD --checksum=0000000 "+repo.url+"#v1 /x\n", nil)
	if err == nil || !strings.Contains(err.Error(), "not --checksum=0000000") {
		t.Errorf("a wrong commit checksum: %v", err)
	}
}
