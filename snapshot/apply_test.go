package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/internal/testutil"
)

func TestApplySemantics(t *testing.T) {
	testutil.RequireRoot(t)
	target := filepath.Join(t.TempDir(), "t")
	newTree(t, target).file("x/old", "old", 0o644).dir("keep", 0o755).file("keep/a", "a", 0o644)
	setuid := reg("bin/su", "su")
	setuid.hdr.Mode, setuid.hdr.Uid, setuid.hdr.Gid = 0o4755, 0, 0
	capped := withXattrs(reg("bin/ping", "ping"), "security.capability", capNetRaw)
	capped.hdr.Uid = 1
	data := makeTar(t,
		reg("dup", "1"), reg("dup", "2"),
		dirEntry("d/"), reg("d/child", "c"), reg("d", "now a file"),
		reg("x", "file replaces a dir"),
		dirEntry("keep/"), reg("keep/b", "b"),
		reg("./dot/slash", "clean"),
		setuid, capped,
		reg("deep/er/file", "parents made"),
		reg(".wh.gone", ""),
		reg(".wh..wh.plnk", ""), // aufs metadata: ignored
		entry{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "git commit"}}},
	)
	if err := Apply(context.Background(), bytes.NewReader(data), target); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"bin dir 0755 0:0", "bin/ping file 0644 1:0 size=4", "bin/su file 4755 0:0 size=2",
		"d file 0644 0:0 size=10", "deep dir 0755 0:0", "deep/er dir 0755 0:0", "deep/er/file file 0644 0:0 size=12",
		"dot dir 0755 0:0", "dot/slash file 0644 0:0 size=5", "dup file 0644 0:0 size=1",
		"gone whiteout 0:0", "keep dir 0755 0:0", "keep/a file 0644 0:0 size=1", "keep/b file 0644 0:0 size=1",
		"x file 0644 0:0 size=19",
	}
	var got []string
	for _, l := range manifest(t, target) {
		f := strings.Fields(l)
		short := strings.Join(f[:min(4, len(f))], " ")
		for _, x := range f[min(4, len(f)):] {
			if strings.HasPrefix(x, "size=") {
				short += " " + x
			}
		}
		if strings.Contains(l, "security.capability") != (f[0] == "bin/ping") {
			t.Errorf("capability misplaced: %s", l)
		}
		got = append(got, short)
	}
	if d := diffLines(want, got); d != "" {
		t.Errorf("tree after Apply:\n%s", d)
	}
	if data, _ := os.ReadFile(filepath.Join(target, "dup")); string(data) != "2" {
		t.Errorf("dup = %q, want the later entry", data)
	}
}

func TestExtract(t *testing.T) {
	testutil.RequireRoot(t)
	tests := []struct {
		name    string
		entries func(canary string) []entry
		wantErr string
		want    map[string]string // path inside root -> content ("" = must exist)
	}{
		{"dotdot", func(c string) []entry { return []entry{reg("../x", "x")} }, "climbs out", nil},
		{"absolute", func(c string) []entry { return []entry{reg("/abs", "a")} }, "", map[string]string{"data/abs": "a"}},
		{"symlink to / then write", func(c string) []entry {
			return []entry{symlinkEntry("l", "/"), reg("l/etc/owned", "o"), reg("l"+c+"/file", "evil")}
		}, "", map[string]string{"etc/owned": "o"}},
		{"dangling symlink up then write", func(c string) []entry {
			return []entry{symlinkEntry("l", "../../../../../.."+c), reg("l/file", "evil")}
		}, "file exists", nil},
		{"symlink up then write", func(c string) []entry {
			return []entry{symlinkEntry("l", "../../../../../../etc"), reg("l/new", "n")}
		}, "", map[string]string{"etc/new": "n"}},
		{"hardlink to /etc/passwd", func(c string) []entry { return []entry{linkEntry("p", "/etc/passwd")} }, "hardlink target", nil},
		{"hardlink through symlink stays in root", func(c string) []entry {
			return []entry{symlinkEntry("e", "/etc"), linkEntry("p", "e/passwd")}
		}, "", map[string]string{"data/p": "inside root\n"}},
		{"whiteouts are plain files", func(c string) []entry {
			return []entry{reg(".wh.existing", "w"), reg("sub/.wh..wh..opq", "o")}
		}, "", map[string]string{"data/.wh.existing": "w", "data/sub/.wh..wh..opq": "o", "data/existing": "old", "data/sub/keep": "k"}},
		{"replace and merge", func(c string) []entry {
			return []entry{reg("existing", "new"), dirEntry("sub/"), reg("sub/new", "n")}
		}, "", map[string]string{"data/existing": "new", "data/sub/keep": "k", "data/sub/new": "n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sb := newSandbox(t)
			root := filepath.Join(sb.parent, "root")
			newTree(t, root).file("etc/passwd", "inside root\n", 0o644).
				file("data/existing", "old", 0o644).file("data/sub/keep", "k", 0o644).
				symlink("app", "/data")
			err := Extract(bytes.NewReader(makeTar(t, tc.entries(sb.canary)...)), root, "/app")
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Extract: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Extract: %v, want an error containing %q", err, tc.wantErr)
			}
			sb.verify(t, "root")
			for p, want := range tc.want {
				data, err := os.ReadFile(filepath.Join(root, strings.ReplaceAll(p, "CANARY", sb.canary)))
				if err != nil || (want != "" && string(data) != want) {
					t.Errorf("%s = %q, %v; want %q", p, data, err, want)
				}
			}
		})
	}
}

func TestExtractOwnersAndModes(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	newTree(t, root).dir("dest", 0o755)
	f := reg("f", "x")
	f.hdr.Mode, f.hdr.Uid, f.hdr.Gid = 0o4711, 1234, 5678
	d := dirEntry("d/")
	d.hdr.Mode, d.hdr.Uid = 0o1770, 99
	if err := Extract(bytes.NewReader(makeTar(t, f, d)), root, "/dest"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		p         string
		mode, uid uint32
	}{{"dest/f", 0o4711, 1234}, {"dest/d", 0o1770, 99}} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, c.p), &st); err != nil || st.Mode&0o7777 != c.mode || st.Uid != c.uid {
			t.Errorf("%s: mode %o uid %d (%v), want %o %d", c.p, st.Mode&0o7777, st.Uid, err, c.mode, c.uid)
		}
	}
}

// TestExtractInMount is ADD as the executor runs it: into a merged
// overlay, in a private mount namespace, through a symlink of the image.
func TestExtractInMount(t *testing.T) {
	testutil.RequireRoot(t)
	s := openStoreT(t, t.TempDir())
	base := unpackT(t, s, makeTar(t, dirEntry("data/"), reg("data/old", "old"), symlinkEntry("app", "/data")))
	a, err := s.Prepare(context.Background(), []ID{base})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	archive := makeTar(t, reg("new", "n"), reg("old", "replaced"), symlinkEntry("up", "../../.."), reg("up/etc/evil", "e"))
	err = inMount(t, a.Mount, func(root string) {
		if err := Extract(bytes.NewReader(archive), root, "/app"); err != nil {
			t.Errorf("Extract: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	got := tarEntries(t, layerOf(t, a.Upper()))
	want := []string{"data/ 5 0 0755", "data/new 0 1 0644", "data/old 0 8 0644", "data/up 2 0 0777 -> ../../..", "etc/ 5 0 0755", "etc/evil 0 1 0644"}
	if !slices.Equal(got, want) {
		t.Errorf("upper after ADD:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestApplyWhiteoutSameLayer: a whiteout hides only what lower layers
// hold (OCI image spec), checked through a real overlay of a lower layer
// and the applied one, whatever the order of the entries.
func TestApplyWhiteoutSameLayer(t *testing.T) {
	testutil.RequireRoot(t)
	s := openStoreT(t, t.TempDir())
	ctx := context.Background()
	var lower []entry
	for _, n := range []string{"f", "d", "e", "g", "h", "k"} {
		lower = append(lower, reg(n+"/old", "lower"), reg(n+"-file", "lower"))
	}
	lowerID := unpackT(t, s, makeTar(t, lower...))
	layer := makeTar(t,
		reg("f-file", "upper"), reg(".wh.f-file", ""), // entry first: it stays
		dirEntry("d/"), reg("d/new", "upper"), reg(".wh.d", ""), // dir first: opaque
		reg(".wh.e", ""), dirEntry("e/"), reg("e/new", "upper"), // whiteout first: opaque
		reg(".wh.g", ""), reg("g/new", "upper"), // parent made implicitly: opaque
		reg(".wh.h-file", ""), reg("h-file", "upper"), // whiteout then file
		reg(".wh.k", ""), reg(".wh.k-file", ""), // plain deletions
	)
	upperID := unpackT(t, s, layer)
	m, release, err := s.View(ctx, []ID{lowerID, upperID})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	var got []string
	err = inMount(t, m, func(root string) {
		for _, l := range manifest(t, root) {
			name := strings.Fields(l)[0]
			data, _ := os.ReadFile(filepath.Join(root, name))
			got = append(got, name+"="+string(data))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"d=", "d/new=upper", "d-file=lower", "e=", "e/new=upper", "e-file=lower",
		"f=", "f/old=lower", "f-file=upper", "g=", "g/new=upper", "g-file=lower",
		"h=", "h/old=lower", "h-file=upper",
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("merged view:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestApplyXattrEdges: xattrs the kernel refuses on an entry type, and
// host labels, are dropped rather than failing the layer or being kept.
func TestApplyXattrEdges(t *testing.T) {
	testutil.RequireRoot(t)
	target := filepath.Join(t.TempDir(), "t")
	data := makeTar(t,
		withXattrs(symlinkEntry("l", "x"), "user.note", "on a symlink", "trusted.kept", "1"),
		withXattrs(typed(reg("fifo", ""), tar.TypeFifo, 0, 0), "user.note", "on a fifo"),
		withXattrs(reg("f", "x"), "security.selinux", "system_u:object_r:etc_t:s0", "user.note", "kept"),
	)
	if err := Apply(context.Background(), bytes.NewReader(data), target); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := map[string][]string{"l": {"trusted.kept"}, "fifo": nil, "f": {"user.note"}}
	for name, names := range want {
		xs, err := (&xattrReader{}).read(filepath.Join(target, name))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, x := range xs {
			got = append(got, x.name)
		}
		if !slices.Equal(got, names) {
			t.Errorf("%s: xattrs %v, want %v", name, got, names)
		}
	}
	// The label a host gives a file never goes into a layer either.
	if err := unix.Lsetxattr(filepath.Join(target, "f"), "security.selinux", []byte("system_u:object_r:etc_t:s0"), 0); err != nil {
		t.Fatalf("labelling f: %v", err)
	}
	entries := strings.Join(tarEntries(t, layerOf(t, target)), "\n")
	if !strings.Contains(entries, "f 0 1 0644 SCHILY.xattr.user.note\n") || strings.Contains(entries, "selinux") {
		t.Errorf("layer entries:\n%s\nwant f with user.note and no label", entries)
	}
}

// TestApplyUmask: the root of a layer without a "./" entry is 0755 (it
// becomes the merged "/"), and so are the parents the tar does not list.
func TestApplyUmask(t *testing.T) {
	testutil.RequireRoot(t)
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	target := filepath.Join(t.TempDir(), "t")
	if err := Apply(context.Background(), bytes.NewReader(makeTar(t, reg("a/b", "x"))), target); err != nil {
		t.Fatal(err)
	}
	checkRoot(t, target, 0o755, 0)
	checkRoot(t, filepath.Join(target, "a"), 0o755, 0)
}

// TestExtractLimit: an ADD archive is held to the same limit as a layer,
// for its stream and for the files it makes.
func TestExtractLimit(t *testing.T) {
	testutil.RequireRoot(t)
	for _, c := range []struct {
		name string
		data func(t *testing.T) io.Reader
	}{
		{"gzip bomb", func(t *testing.T) io.Reader {
			return gunzip(t, gzipped(t, makeTar(t, reg("zeros", string(make([]byte, 4<<20))))))
		}},
		{"sparse bomb", func(t *testing.T) io.Reader { return bytes.NewReader(sparseTar(t, "big", 16<<20)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			sb := newSandbox(t)
			root := filepath.Join(sb.parent, "root")
			newTree(t, root).dir("dest", 0o755)
			err := ExtractLimit(c.data(t), root, "/dest", 1<<20)
			var sl *SizeLimitError
			if !errors.As(err, &sl) || sl.Limit != 1<<20 {
				t.Errorf("ExtractLimit = %v, want a SizeLimitError of 1 MiB", err)
			}
			sb.verify(t, "root")
			if err := ExtractLimit(c.data(t), root, "/dest", -1); err != nil {
				t.Errorf("ExtractLimit without a limit: %v", err)
			}
		})
	}
}
