package snapshot

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/internal/testutil"
)

// sandbox is a temp dir holding a canary directory beside the target of
// an extraction: whatever an archive holds, the canary must not change
// and nothing else may appear beside the target.
type sandbox struct {
	parent, canary string
	before         string
	passwd         unix.Stat_t
}

func newSandbox(t testing.TB) *sandbox { return sandboxIn(t, t.TempDir()) }

// sandboxIn makes the canary in parent, an existing empty directory.
func sandboxIn(t testing.TB, parent string) *sandbox {
	sb := &sandbox{parent: parent, canary: filepath.Join(parent, "canary")}
	newTree(t, sb.canary).file("file", "canary", 0o644).dir("sub", 0o755)
	sb.before = fingerprint(t, sb.canary)
	if err := unix.Stat("/etc/passwd", &sb.passwd); err != nil {
		t.Fatal(err)
	}
	return sb
}

func (sb *sandbox) verify(t testing.TB, allowed ...string) {
	t.Helper()
	if after := fingerprint(t, sb.canary); after != sb.before {
		t.Errorf("canary changed:\nbefore:\n%s\nafter:\n%s", sb.before, after)
	}
	ents, _ := os.ReadDir(sb.parent)
	for _, e := range ents {
		if e.Name() != "canary" && !slices.Contains(allowed, e.Name()) {
			t.Errorf("%s appeared beside the target", e.Name())
		}
	}
	var st unix.Stat_t
	if err := unix.Stat("/etc/passwd", &st); err != nil || st.Nlink != sb.passwd.Nlink || st.Mtim != sb.passwd.Mtim {
		t.Errorf("/etc/passwd changed: nlink %d -> %d", sb.passwd.Nlink, st.Nlink)
	}
}

func withXattrs(e entry, kv ...string) entry {
	e.hdr.PAXRecords = map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		e.hdr.PAXRecords[paxXattrPrefix+kv[i]] = kv[i+1]
	}
	return e
}

func typed(e entry, flag byte, major, minor int64) entry {
	e.hdr.Typeflag, e.hdr.Devmajor, e.hdr.Devminor = flag, major, minor
	return e
}

// hostileCase is one hostile layer, applied with Apply into a target
// beside a canary and unpacked with Store.Unpack into a store beside it.
type hostileCase struct {
	name    string
	entries func(canary string) []entry // canary: absolute path of the canary dir
	wantErr string                      // from Apply and Unpack; "" when the row has a safe result
	check   func(t *testing.T, target, canary string)

	// For rows that are not one plain tar of entries:
	stream    func(t testing.TB) io.Reader // a fresh stream, instead of entries
	limit     int64                        // MaxLayerSize (0: the default)
	id        func(t testing.TB, canary string) ID
	unpackErr string // Unpack's error when it differs from wantErr
}

func (tc hostileCase) open(t testing.TB, canary string) io.Reader {
	if tc.stream != nil {
		return tc.stream(t)
	}
	return bytes.NewReader(makeTar(t, tc.entries(canary)...))
}

// layerID is the id the row is unpacked as: its honest diff ID unless
// the row lies.
func (tc hostileCase) layerID(t testing.TB, canary string) ID {
	if tc.id != nil {
		return tc.id(t, canary)
	}
	h := sha256.New()
	io.Copy(h, tc.open(t, canary)) // an error stops the unpack too
	return ID(hex.EncodeToString(h.Sum(nil)))
}

func isFile(name, content string) func(t *testing.T, target, canary string) {
	return func(t *testing.T, target, canary string) {
		data, err := os.ReadFile(filepath.Join(target, strings.ReplaceAll(name, "CANARY", canary)))
		if err != nil || string(data) != content {
			t.Errorf("%s = %q, %v; want %q", name, data, err, content)
		}
	}
}

// hostileLayers are layers that try to write or link outside the target;
// TestApplyHostile runs them and FuzzApply starts from them.
func hostileLayers() []hostileCase {
	return []hostileCase{
		{name: "dotdot", entries: func(c string) []entry { return []entry{reg("../canary/pwned", "x")} }, wantErr: "climbs out"},
		{name: "dotdot inside", entries: func(c string) []entry { return []entry{reg("a/../../canary/pwned", "x")} }, wantErr: "climbs out"},
		{name: "absolute", entries: func(c string) []entry { return []entry{reg(c+"/pwned", "x")} }, check: isFile("CANARY/pwned", "x")},
		{name: "symlink to / then write", entries: func(c string) []entry {
			return []entry{symlinkEntry("root", "/"), reg("root"+c+"/file", "evil")}
		}},
		// A symlink that leads nowhere inside the target is not followed
		// out of it: the write fails on the dangling link.
		{name: "dangling symlink up then write", entries: func(c string) []entry {
			return []entry{symlinkEntry("up", "../../../../../../../.."+c), reg("up/file", "evil")}
		}, wantErr: "file exists"},
		{name: "symlink up then write", entries: func(c string) []entry {
			return []entry{dirEntry(c + "/"), symlinkEntry("up", "../../../../../../../.."+c), reg("up/file", "evil")}
		}, check: isFile("CANARY/file", "evil")},
		{name: "symlink chain", entries: func(c string) []entry {
			return []entry{dirEntry(c + "/"), symlinkEntry("a", "b"), symlinkEntry("b", "c/canary"),
				symlinkEntry("c", filepath.Dir(c)), reg("a/pwned", "evil"), dirEntry("a/x/")}
		}, check: isFile("CANARY/pwned", "evil")},
		{name: "magic link", entries: func(c string) []entry {
			return []entry{symlinkEntry("m", "/proc/self/root"+c), reg("m/file", "evil")}
		}, wantErr: "file exists"},
		{name: "write over final symlink", entries: func(c string) []entry {
			return []entry{symlinkEntry("f", c+"/file"), reg("f", "evil")}
		}, check: isFile("f", "evil")},
		{name: "dir over symlink", entries: func(c string) []entry {
			e := dirEntry("s/")
			e.hdr.Mode = 0o700
			return []entry{symlinkEntry("s", c), e, reg("s/file", "evil")}
		}, check: isFile("s/file", "evil")},
		{name: "device through symlink", entries: func(c string) []entry {
			return []entry{dirEntry(c + "/"), symlinkEntry("s", c), typed(reg("s/null", ""), tar.TypeChar, 1, 3), typed(reg("s/sub", ""), tar.TypeFifo, 0, 0)}
		}},
		{name: "hardlink to /etc/passwd", entries: func(c string) []entry { return []entry{linkEntry("p", "/etc/passwd")} }, wantErr: "hardlink target"},
		{name: "hardlink dotdot", entries: func(c string) []entry { return []entry{linkEntry("p", "../canary/file")} }, wantErr: "climbs out"},
		{name: "hardlink through symlink", entries: func(c string) []entry {
			return []entry{symlinkEntry("s", c), linkEntry("h", "s/file")}
		}, wantErr: "hardlink target"},
		{name: "hardlink to symlink", entries: func(c string) []entry {
			return []entry{symlinkEntry("s", c+"/file"), linkEntry("h", "s"), reg("h", "evil")}
		}, check: isFile("h", "evil")},
		{name: "whiteout dotdot", entries: func(c string) []entry { return []entry{reg("../.wh.canary", "")} }, wantErr: "climbs out"},
		{name: "whiteout of dotdot", entries: func(c string) []entry { return []entry{reg(".wh...", "")} }, wantErr: "invalid whiteout"},
		{name: "whiteout through symlink", entries: func(c string) []entry {
			return []entry{dirEntry(c + "/"), symlinkEntry("s", c), reg("s/.wh.file", ""), reg("s/.wh.sub", "")}
		}},
		{name: "opaque through symlink", entries: func(c string) []entry {
			return []entry{dirEntry(c + "/"), symlinkEntry("s", filepath.Dir(c)), reg("s/canary/.wh..wh..opq", "")}
		}},
		{name: "root entry", entries: func(c string) []entry {
			e := dirEntry("./")
			e.hdr.Mode, e.hdr.Uid = 0o700, 4242
			return []entry{e}
		}, check: func(t *testing.T, target, _ string) {
			var st unix.Stat_t
			if unix.Lstat(target, &st); st.Mode&0o7777 != 0o700 || st.Uid != 4242 {
				t.Errorf("root mode %o uid %d, want 0700 4242", st.Mode&0o7777, st.Uid)
			}
		}},
		{name: "overlay xattrs", entries: func(c string) []entry {
			return []entry{
				withXattrs(dirEntry("d/"), xattrOpaque, "y", xattrRedirect, c, "user.keep", "1"),
				withXattrs(reg("d/f", ""), xattrUserWhiteout, "", xattrMetacopy, ""),
			}
		}, check: func(t *testing.T, target, _ string) {
			for _, p := range []string{"d", "d/f"} {
				xs, err := (&xattrReader{}).read(filepath.Join(target, p))
				if err != nil {
					t.Fatal(err)
				}
				for _, x := range xs {
					if isOverlayXattr(x.name) {
						t.Errorf("%s: overlay xattr %s taken from the tar", p, x.name)
					}
				}
				if p == "d" && (len(xs) != 1 || xs[0].name != "user.keep") {
					t.Errorf("d xattrs = %v, want user.keep only", xs)
				}
			}
		}},
		{name: "device nodes", entries: func(c string) []entry {
			return []entry{typed(reg("dev/sda", ""), tar.TypeBlock, 8, 0), typed(reg("dev/null", ""), tar.TypeChar, 1, 3), typed(reg("dev/p", ""), tar.TypeFifo, 0, 0)}
		}, check: func(t *testing.T, target, _ string) {
			for name, typ := range map[string]uint32{"dev/sda": unix.S_IFBLK, "dev/null": unix.S_IFCHR, "dev/p": unix.S_IFIFO} {
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(target, name), &st); err != nil || st.Mode&unix.S_IFMT != typ {
					t.Errorf("%s: mode %o, %v; want type %o inside the target", name, st.Mode, err, typ)
				}
			}
		}},
		{name: "duplicate entries: file, symlink out, file", entries: func(c string) []entry {
			return []entry{reg("f", "x"), symlinkEntry("f", c+"/file"), reg("f", "evil")}
		}, check: func(t *testing.T, target, c string) {
			isFile("f", "evil")(t, target, c)
			if fi, err := os.Lstat(filepath.Join(target, "f")); err != nil || !fi.Mode().IsRegular() {
				t.Errorf("f: %v, %v; want the last entry, a regular file", fi, err)
			}
		}},
		{name: "duplicate entries: dir, symlink out, write below", entries: func(c string) []entry {
			return []entry{dirEntry("d/"), reg("d/x", "1"), symlinkEntry("d", c), reg("d/y", "evil")}
		}, wantErr: "file exists"},
		{name: "decompression bomb", stream: func(t testing.TB) io.Reader {
			return gunzip(t, gzipped(t, makeTar(t, reg("zeros", string(make([]byte, 8<<20))))))
		}, limit: 1 << 20, wantErr: "larger than the limit of 1 MiB"},
		{name: "sparse file bomb", stream: func(t testing.TB) io.Reader {
			return bytes.NewReader(sparseTar(t, "big", 1<<30))
		}, limit: 1 << 20, wantErr: "larger than the limit of 1 MiB"},
		{name: "invalid gzip", stream: func(t testing.TB) io.Reader {
			// A valid gzip header, then a deflate block of the reserved type.
			return gunzip(t, append(gzipped(t, nil)[:10], 0xff, 0xff, 0xff, 0xff))
		}, wantErr: "flate: corrupt input"},
		{name: "lying diff ID", entries: func(c string) []entry { return []entry{reg("legit", "evil")} },
			id:    func(t testing.TB, _ string) ID { return layerIDOf(makeTar(t, reg("legit", "legit"))) },
			check: isFile("legit", "evil"), unpackErr: "layer content does not match its diff ID"},
		{name: "bytes after the end of the archive", stream: func(t testing.TB) io.Reader {
			return io.MultiReader(bytes.NewReader(makeTar(t, reg("a", "a"))), strings.NewReader("appended"))
		}, id: func(t testing.TB, _ string) ID { return layerIDOf(makeTar(t, reg("a", "a"))) },
			check: isFile("a", "a"), unpackErr: "layer content does not match its diff ID"},
	}
}

func TestApplyHostile(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	for _, tc := range hostileLayers() {
		t.Run(tc.name, func(t *testing.T) {
			sb := newSandbox(t)
			target := filepath.Join(sb.parent, "target")
			err := applyLayer(ctx, newLayerStream(tc.open(t, sb.canary), tc.limit, false), target)
			if checkErr(t, "Apply", err, tc.wantErr) && tc.check != nil {
				tc.check(t, target, sb.canary)
			}

			s, err := OpenOptions(filepath.Join(sb.parent, "store"), Options{MaxLayerSize: tc.limit})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			id, want := tc.layerID(t, sb.canary), tc.wantErr
			if tc.unpackErr != "" {
				want = tc.unpackErr
			}
			err = s.Unpack(ctx, id, tc.open(t, sb.canary))
			if checkErr(t, "Unpack", err, want) {
				if tc.check != nil {
					tc.check(t, s.Dir(id), sb.canary)
				}
			} else if ids, _ := s.List(); len(ids) != 0 {
				t.Errorf("a failed Unpack published %v", ids)
			}
			if err := s.Close(); err != nil {
				t.Error(err)
			}
			if ents, _ := os.ReadDir(filepath.Join(sb.parent, "store", "tmp")); len(ents) != 0 {
				t.Errorf("Unpack left %d entries in ROOT/tmp", len(ents))
			}
			sb.verify(t, "target", "store")
		})
	}
}

// checkErr reports whether err is nil as wanted, or else fails the test
// unless err contains want.
func checkErr(t *testing.T, what string, err error, want string) bool {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: %v", what, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("%s: %v, want an error containing %q", what, err, want)
	}
	return err == nil && want == ""
}

func gzipped(t testing.TB, data []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gunzip is what cache.OpenLayer hands to Unpack for a gzip layer.
func gunzip(t testing.TB, data []byte) io.Reader {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return zr
}

// sparseTar is a tar of one PAX 1.0 sparse file of size bytes holding a
// single byte at its end: a few KiB that unpack to size bytes. Go's tar
// writer cannot write sparse entries, so the extended header is made by
// hand: written as a plain file, then retyped.
func sparseTar(t testing.TB, name string, size int64) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	recs := paxRecord("GNU.sparse.major", "1") + paxRecord("GNU.sparse.minor", "0") +
		paxRecord("GNU.sparse.name", name) + paxRecord("GNU.sparse.realsize", fmt.Sprint(size))
	sparseMap := fmt.Sprintf("1\n%d\n1\n", size-1)
	body := sparseMap + string(make([]byte, 512-len(sparseMap))) + "x"
	for _, e := range []struct{ name, body string }{{"PaxHeaders/" + name, recs}, {"GNUSparseFile.0/" + name, body}} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: 0o644, Size: int64(len(e.body))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	b[156] = tar.TypeXHeader
	copy(b[148:156], "        ") // the checksum counts its own field as spaces
	sum := 0
	for _, c := range b[:512] {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// paxRecord is one "length key=value\n" record; the length counts itself.
func paxRecord(k, v string) string {
	n := len(k) + len(v) + 3
	for {
		s := fmt.Sprintf("%d %s=%s\n", n, k, v)
		if len(s) == n {
			return s
		}
		n = len(s)
	}
}

// TestSparseTar checks the helper: Go's reader sees one file of the
// claimed size.
func TestSparseTar(t *testing.T) {
	tr := tar.NewReader(bytes.NewReader(sparseTar(t, "big", 1<<30)))
	h, err := tr.Next()
	if err != nil || h.Name != "big" || h.Size != 1<<30 {
		t.Fatalf("sparseTar: %+v, %v; want big of 1 GiB", h, err)
	}
	if _, err := tr.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the sparse file: %v, want EOF", err)
	}
}
