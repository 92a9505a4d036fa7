package executor_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCopyExclude follows BuildKit's testExcludedFilesOnCopy: --exclude
// patterns (.dockerignore syntax) apply inside a directory source to paths
// relative to it, and to the files a wildcard source matched; an
// excluded file is neither copied nor part of the cache key.
func TestCopyExclude(t *testing.T) {
	e := newEnv(t)
	files := map[string]string{
		"dir1/file-101.png": "2", "dir1/file-102.txt": "3", "dir1/file-103.jpeg": "4",
		"dir2/file-201.pdf": "6", "dir2/file-202.jpeg": "7", "dir2/file-203.png": "8",
		"dir3/file-301.mp3": "9", "dir3/file-302.mpeg": "10",
		"dir4/file-401.txt": "11", "hom1.txt": "h1", "hom2.md": "h2",
	}
	ctxDir := writeContext(t, "", files)
	os.Symlink("file-401.txt", filepath.Join(ctxDir, "dir4/file-402.txt"))
	df := `FROM busybox:test
COPY --exclude=*/*.png --exclude=*/*.jpeg . /1
COPY --exclude=*/*.pdf --exclude=*/*.txt . /2
ADD --exclude=*.mp3 dir3/ /3/
COPY --exclude=*.mp3 --exclude=*.jpeg --exclude=*.png --exclude=*.pdf --exclude=*.txt dir* /4/
ADD --exclude=* dir* /6
COPY --exclude=*.txt hom* /7/
COPY --exclude=dir1 --exclude=!dir1/file-102.txt --exclude=dir2 --exclude=dir3 --exclude=dir4 --exclude=hom* --exclude=Dockerfile . /8
`
	res, err := e.build(t, ctxDir, df, nil)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := imageFiles(t, e, res)
	want := map[string]string{ // "" : absent
		"1/dir1/file-101.png": "", "1/dir1/file-102.txt": "3", "1/dir1/file-103.jpeg": "",
		"1/dir2/file-201.pdf": "6", "1/dir2/file-202.jpeg": "", "1/dir3/file-301.mp3": "9",
		"1/dir4/file-402.txt": "-> file-401.txt",
		"2/dir1/file-101.png": "2", "2/dir1/file-102.txt": "", "2/dir2/file-201.pdf": "",
		"2/dir4/file-401.txt": "", "2/dir4/file-402.txt": "",
		"3/file-301.mp3": "", "3/file-302.mpeg": "10",
		"4/file-101.png": "", "4/file-302.mpeg": "10", "4/file-401.txt": "", "4/file-301.mp3": "",
		"7/hom1.txt": "", "7/hom2.md": "h2",
		"8/dir1/file-102.txt": "3", "8/dir1/file-101.png": "", "8/dir2": "",
	}
	for p, w := range want {
		full := filepath.Join(rootfs, p)
		fi, err := os.Lstat(full)
		switch {
		case w == "" && err == nil:
			t.Errorf("/%s was copied, want it excluded", p)
		case w == "":
		case err != nil:
			t.Errorf("/%s: %v", p, err)
		case fi.Mode()&os.ModeSymlink != 0:
			if l, _ := os.Readlink(full); "-> "+l != w {
				t.Errorf("/%s -> %s, want %s", p, l, w)
			}
		default:
			if got, _ := os.ReadFile(full); string(got) != w {
				t.Errorf("/%s = %q, want %q", p, got, w)
			}
		}
	}
	if items, err := os.ReadDir(filepath.Join(rootfs, "6")); err != nil || len(items) != 0 {
		t.Errorf("/6 with everything excluded: %d entries, %v; want an empty directory", len(items), err)
	}

	// An excluded file changes no key: the COPY that leaves it out hits.
	os.WriteFile(filepath.Join(ctxDir, "dir1/file-101.png"), []byte("changed"), 0o644)
	again, err := e.build(t, ctxDir, "FROM busybox:test\nCOPY --exclude=*/*.png . /1\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(ctxDir, "dir1/file-101.png"), []byte("changed again"), 0o644)
	third, err := e.build(t, ctxDir, "FROM busybox:test\nCOPY --exclude=*/*.png . /1\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Image.ID != third.Image.ID {
		t.Error("changing an excluded file changed the image")
	}
}

// TestCopyParents follows BuildKit's testCopyParents and
// testCopyRelativeParents ("**" matches any number of directories there):
// sources keep their paths below the destination, from the first "/./"
// pivot on when there is one.
func TestCopyParents(t *testing.T) {
	e := newEnv(t)
	ctxDir := writeContext(t, "", map[string]string{"foo1/foo2/bar": "testing", "foo1/foo2/baz": "testing2"})
	df := `FROM busybox:test AS base
WORKDIR /test
RUN mkdir -p a/b/c/d/e a/b2/c/d/e a/b/c2/d/e a/b/c2/d/e2 && touch a/b/c/d/foo a/b/c/d/e/bay a/b2/c/d/e/bar a/b/c2/d/e/baz a/b/c2/d/e2/baz

FROM busybox:test
COPY --parents foo1/foo2/bar /
WORKDIR /test
COPY --parents foo1/foo2/ba* .
COPY --from=base --parents /test/a/b/./c/d /middle/
COPY --from=base --parents /test/a/b/c/d/. /end/
COPY --from=base --parents ./test/a/b/c/d /start/
COPY --from=base --parents /test/a/./b/./c /double/
COPY --from=base --parents /test/a/./*/c /wildcard/
COPY --from=base --parents /test/a/b*/./c/**/e /doublewildcard/
COPY --from=base --parents /test/a/b/c*/./d/**/baz /test/a/b*/./c/**/bar /doubleinputs/
`
	res, err := e.build(t, ctxDir, df, nil)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := imageFiles(t, e, res)
	for _, p := range []string{
		"foo1/foo2/bar", "test/foo1/foo2/bar", "test/foo1/foo2/baz",
		"middle/c/d/e", "middle/c/d/foo",
		"end/test/a/b/c/d/e", "end/test/a/b/c/d/foo",
		"start/test/a/b/c/d/e", "start/test/a/b/c/d/foo",
		"double/b/c/d/e", "double/b/c/d/foo",
		"wildcard/b/c/d/e", "wildcard/b2/c/d/e/bar",
		"doublewildcard/c/d/e", "doublewildcard/c/d/e/bay", "doublewildcard/c/d/e/bar",
		"doubleinputs/d/e/baz", "doubleinputs/d/e2/baz", "doubleinputs/c/d/e/bar",
	} {
		if _, err := os.Lstat(filepath.Join(rootfs, p)); err != nil {
			t.Errorf("/%s: %v", p, err)
		}
	}
	for _, p := range []string{"middle/a", "middle/e", "middle/test", "doubleinputs/d/e/bay"} {
		if _, err := os.Lstat(filepath.Join(rootfs, p)); err == nil {
			t.Errorf("/%s exists; the pivot should have cut it", p)
		}
	}
}

// TestCopyFilesAndHeredoc: one COPY of context files and a heredoc, as
// BuildKit allows; the heredoc's content is in the key.
func TestCopyFilesAndHeredoc(t *testing.T) {
	e := newEnv(t)
	ctxDir := writeContext(t, "", map[string]string{"a.txt": "from the context\n"})
	df := "FROM busybox:test\nCOPY a.txt <<EOF /dst/\nfrom %s\nEOF\n"
	res, err := e.build(t, ctxDir, strings.Replace(df, "%s", "the heredoc", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := imageFiles(t, e, res)
	for p, want := range map[string]string{"dst/a.txt": "from the context\n", "dst/EOF": "from the heredoc\n"} {
		if got := readImageFile(t, rootfs, p); got != want {
			t.Errorf("/%s = %q, want %q", p, got, want)
		}
	}
	res, err = e.build(t, ctxDir, strings.Replace(df, "%s", "elsewhere", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := readImageFile(t, imageFiles(t, e, res), "dst/EOF"); got != "from elsewhere\n" {
		t.Errorf("after the heredoc changed: %q", got)
	}
}
