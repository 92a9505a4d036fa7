package executor_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/builderdev/builder/internal/testutil"
)

// TestAddArchives checks ADD's unpacking of local archives, made by the
// real compressors: a tar plain or compressed with gzip, bzip2, xz or zstd
// is unpacked into the destination; a compressed file that holds no tar,
// a file named like an archive that is not one, and COPY of an archive
// are copied as they are, as docker does.
func TestAddArchives(t *testing.T) {
	umoci := testutil.RequireTool(t, "umoci")
	compressors := map[string][]string{
		"tar.gz":  {testutil.RequireTool(t, "gzip"), "-k"},
		"tar.bz2": {testutil.RequireTool(t, "bzip2"), "-k"},
		"tar.xz":  {testutil.RequireTool(t, "xz"), "-k"},
		"tar.zst": {testutil.RequireTool(t, "zstd"), "-q"},
	}
	e := newEnv(t)
	ctxDir := t.TempDir()

	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	for _, f := range []struct{ name, body string }{{"a.txt", "a\n"}, {"sub/b.txt", "b\n"}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o640, Size: int64(len(f.body)), Typeflag: tar.TypeReg, Uid: 7, Gid: 8})
		tw.Write([]byte(f.body))
	}
	tw.Close()
	writeFile(t, filepath.Join(ctxDir, "tree.tar"), tarball.Bytes())
	for ext, argv := range compressors {
		cmd := exec.Command(argv[0], append(argv[1:], "tree.tar")...)
		cmd.Dir = ctxDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", argv[0], err, out)
		}
		if _, err := os.Stat(filepath.Join(ctxDir, "tree."+ext)); err != nil {
			t.Fatal(err)
		}
	}
	var note bytes.Buffer
	zw := gzip.NewWriter(&note)
	zw.Write([]byte("not a tar\n"))
	zw.Close()
	writeFile(t, filepath.Join(ctxDir, "note.txt.gz"), note.Bytes())
	writeFile(t, filepath.Join(ctxDir, "fake.tar.gz"), []byte("plain text\n"))

	df := `FROM busybox:test
ADD tree.tar /plain/
ADD tree.tar.gz /gz/
ADD tree.tar.bz2 /bz2/
ADD tree.tar.xz /xz/
ADD tree.tar.zst /zst/
ADD note.txt.gz fake.tar.gz /kept/
COPY tree.tar.gz /copied/
`
	res, err := e.build(t, ctxDir, df, nil)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := unpack(t, e, umoci, res)
	for _, dir := range []string{"plain", "gz", "bz2", "xz", "zst"} {
		for name, want := range map[string]string{"a.txt": "a\n", "sub/b.txt": "b\n"} {
			p := filepath.Join(rootfs, dir, name)
			got, err := os.ReadFile(p)
			if err != nil || string(got) != want {
				t.Errorf("/%s/%s = %q, %v; want %q", dir, name, got, err, want)
				continue
			}
			fi, _ := os.Stat(p)
			if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o640 || st.Uid != 7 || st.Gid != 8 {
				t.Errorf("/%s/%s: mode %v owner %d:%d, want 0640 7:8 as in the tar", dir, name, fi.Mode(), st.Uid, st.Gid)
			}
		}
	}
	for name, want := range map[string][]byte{
		"kept/note.txt.gz":   note.Bytes(),
		"kept/fake.tar.gz":   []byte("plain text\n"),
		"copied/tree.tar.gz": mustRead(t, filepath.Join(ctxDir, "tree.tar.gz")),
	} {
		if got, err := os.ReadFile(filepath.Join(rootfs, name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("/%s: %d bytes, %v; want the context file as it is (%d bytes)", name, len(got), err, len(want))
		}
	}
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
