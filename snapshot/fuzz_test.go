package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/internal/testutil"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the fuzz seed corpus under testdata/fuzz")

// fuzzDir stands for the sandbox's parent directory in seed layers: the
// fuzz target rewrites it to the real temp dir, so absolute symlinks and
// names in the seeds aim at the real canary.
const fuzzDir = "/fuzz-sandbox"

// TestFuzzSeeds checks that testdata/fuzz/FuzzApply holds a seed for
// every hostile layer of TestApplyHostile, so the fuzzer starts from them;
// with -update-seeds it writes the missing ones
// (go test -run TestFuzzSeeds -update-seeds).
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzApply")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range hostileLayers() {
		if tc.entries == nil {
			continue // a stream too big or too odd for a seed
		}
		data := makeTar(t, tc.entries(fuzzDir+"/canary")...)
		sum := sha256.Sum256(data)
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"
		p := filepath.Join(dir, hex.EncodeToString(sum[:8]))
		if *updateSeeds {
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(p); err != nil || string(got) != body {
			t.Errorf("seed for hostile layer %q missing or stale in %s (run with -update-seeds)", tc.name, dir)
		}
	}
}

// tooCostly reports tars that would only make the fuzzer slow: big or
// sparse files (a sparse header may claim terabytes), many entries.
func tooCostly(data []byte) bool {
	tr := tar.NewReader(bytes.NewReader(data))
	for n := 0; ; n++ {
		h, err := tr.Next()
		if err != nil {
			return false
		}
		if n > 200 || h.Size > 1<<20 || h.Typeflag == tar.TypeGNUSparse || h.PAXRecords["GNU.sparse.size"] != "" ||
			h.PAXRecords["GNU.sparse.realsize"] != "" {
			return true
		}
	}
}

// rewriteFuzzDir re-encodes a tar with fuzzDir replaced by dir in names
// and link targets; ok is false if data is not a readable tar.
func rewriteFuzzDir(data []byte, dir string) (out []byte, ok bool) {
	var buf bytes.Buffer
	tr, tw := tar.NewReader(bytes.NewReader(data)), tar.NewWriter(&buf)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, false
		}
		h.Name = strings.ReplaceAll(h.Name, fuzzDir, dir)
		h.Linkname = strings.ReplaceAll(h.Linkname, fuzzDir, dir)
		if tw.WriteHeader(h) != nil {
			return nil, false
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return nil, false
		}
	}
	return buf.Bytes(), tw.Close() == nil
}

// FuzzApply: whatever the bytes, Apply writes nothing outside its target.
// The t.Skip calls in the fuzz targets below discard inputs too costly to
// be worth fuzzing; they are not prerequisites. Root, which
// FuzzWhiteoutRoundTrip needs, is checked with testutil.RequireRoot (fatal
// under CI=true).
//
// Each worker process keeps one sandbox (see fuzzWorkDir) and empties its
// targets after every input: a fresh temp dir and canary per input cost
// milliseconds, and fuzzing stalled.
func FuzzApply(f *testing.F) {
	f.Add(makeTar(f, reg("a", "x"), symlinkEntry("l", "/"), reg("l/b", "y")))
	work := fuzzWorkDir(f)
	var sb *sandbox
	f.Fuzz(func(t *testing.T, data []byte) {
		if tooCostly(data) {
			t.Skip()
		}
		if sb == nil {
			sb = sandboxIn(t, work(t))
		}
		raw, aimed := filepath.Join(sb.parent, "raw"), filepath.Join(sb.parent, "aimed")
		Apply(context.Background(), bytes.NewReader(data), raw)
		if rewritten, ok := rewriteFuzzDir(data, sb.parent); ok {
			Apply(context.Background(), bytes.NewReader(rewritten), aimed)
		}
		sb.verify(t, "raw", "aimed")
		if t.Failed() {
			sb = nil // a canary written through stays written: start afresh
			return
		}
		clearDir(t, sb.parent, "canary")
	})
}

// fuzzWorkDir returns a function giving a fresh, empty directory for a
// fuzz worker process to reuse across inputs, removed when the target
// ends. It lies on /dev/shm when that is a tmpfs: on ext4, creating and
// deleting a temp dir tree per input costs milliseconds of inode
// allocation, most of a fuzz execution.
func fuzzWorkDir(f *testing.F) func(t *testing.T) string {
	base := os.TempDir()
	var st unix.Statfs_t
	if unix.Statfs("/dev/shm", &st) == nil && st.Type == unix.TMPFS_MAGIC {
		base = "/dev/shm"
	}
	var dirs []string
	f.Cleanup(func() {
		for _, d := range dirs {
			os.RemoveAll(d)
		}
	})
	return func(t *testing.T) string {
		d, err := os.MkdirTemp(base, "builder-"+f.Name()+"-")
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
		return d
	}
}

// clearDir removes everything in dir but the names kept.
func clearDir(t *testing.T, dir string, keep ...string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !slices.Contains(keep, e.Name()) {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// FuzzWhiteoutRoundTrip: an upper dir in overlay format (whiteouts,
// opaque dirs, hardlinks, symlinks, odd names and modes) survives
// WriteLayer then Apply unchanged. The bytes are a small program that
// builds the upper.
func FuzzWhiteoutRoundTrip(f *testing.F) {
	testutil.RequireRoot(f)
	f.Add([]byte{0, 0, 7, 1, 1, 0, 2, 2, 1, 3, 3, 0, 0, 4, 2})
	f.Add([]byte{3, 0, 0, 2, 1, 1, 2, 2, 1, 5, 3, 0, 0, 5, 1, 5, 6, 0, 4, 7, 3, 6, 1, 1})
	work := fuzzWorkDir(f)
	dir := ""
	f.Fuzz(func(t *testing.T, prog []byte) {
		if len(prog) > 3*64 {
			t.Skip()
		}
		if dir == "" {
			dir = work(t)
		}
		defer clearDir(t, dir)
		src := filepath.Join(dir, "upper")
		buildUpper(t, src, prog)
		var layer bytes.Buffer
		if err := WriteLayer(&layer, src, WriteOptions{}); err != nil {
			t.Fatalf("WriteLayer: %v", err)
		}
		dst := filepath.Join(dir, "applied")
		if err := Apply(context.Background(), &layer, dst); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		if d := diffLines(manifest(t, src), manifest(t, dst)); d != "" {
			t.Errorf("round trip changed the tree:\n%s", d)
		}
	})
}

var fuzzNames = []string{"a", "b c", "ünï", "名前", ".hidden", "x.wh", "-", strings.Repeat("long", 40), "z"}

// buildUpper runs prog, three bytes per operation: what to make, its
// name, and an argument (parent directory, mode, link target).
func buildUpper(t *testing.T, root string, prog []byte) {
	tr := newTree(t, root)
	dirs, files := []string{"."}, []string(nil)
	whiteout := ""
	for i := 0; i+2 < len(prog); i += 3 {
		op, arg := prog[i]%7, int(prog[i+2])
		parent := dirs[arg%len(dirs)]
		p := filepath.Join(parent, fuzzNames[int(prog[i+1])%len(fuzzNames)])
		if _, err := os.Lstat(tr.p(p)); err == nil {
			continue
		}
		switch op {
		case 0:
			tr.file(p, strings.Repeat("data", arg), os.FileMode(arg*0o1111)&0o777)
			tr.chmod(p, uint32(arg)<<4&0o7777|0o600)
			files = append(files, p)
		case 1, 2:
			tr.dir(p, 0o755)
			if op == 2 {
				tr.xattr(p, xattrOpaque, "y")
			}
			dirs = append(dirs, p)
		case 3:
			if whiteout == "" { // all whiteouts of an upper share one inode
				tr.whiteout(p)
				whiteout = p
			} else {
				tr.link(p, whiteout)
			}
		case 4:
			tr.symlink(p, fuzzNames[arg%len(fuzzNames)])
		case 5:
			if len(files) > 0 {
				tr.link(p, files[arg%len(files)])
			}
		case 6:
			tr.mknod(p, unix.S_IFIFO|0o640, 0, 0).chown(p, arg, arg/2)
		}
	}
	tr.times(t0)
}
