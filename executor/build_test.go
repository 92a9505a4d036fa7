package executor_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/internal/testutil"
	"github.com/builderdev/builder/registry"
	"github.com/builderdev/builder/snapshot"
	"github.com/builderdev/builder/store"
)

var update = flag.Bool("update", false, "rewrite want.json and want.files of the Dockerfile cases")

// env is a store with a busybox base image tagged "busybox:test".
type env struct {
	root  string
	st    *store.Store
	store *cache.Store // st's halves, which most tests look into
	snaps *snapshot.Store
	base  string // busybox rootfs dir, to diff results against
}

func newEnv(t testing.TB) *env {
	t.Helper()
	testutil.RequireRoot(t)
	root := t.TempDir()
	st, err := store.Open(root, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{root: root, st: st, store: st.Cache(), snaps: st.Snapshots(), base: testutil.BusyboxRootfs(t)}

	ctxDir := t.TempDir()
	writeTar(t, filepath.Join(ctxDir, "rootfs.tar"), e.base)
	if _, err := e.build(t, ctxDir, "FROM scratch\nADD rootfs.tar /\nCMD [\"sh\"]\n", &buildOpts{tags: []string{"busybox:test"}}); err != nil {
		t.Fatalf("building the busybox base: %v", err)
	}
	return e
}

type buildOpts struct {
	args        map[string]string
	target      string
	noCache     bool
	noCacheFor  []string // --no-cache-filter
	jobs        int
	epoch       *time.Time
	events      *[]executor.Event
	compression string
	network     string // Options.Network
	allowHost   bool   // Options.AllowNetworkHost
	platform    v1.Platform
	tags        []string
	verifyCache bool
	debugKeys   bool
	maxLayers   int // Options.MaxLayers
	squash      executor.Squash
}

// build builds dockerfile (the text) on the context ctxDir through a
// Request, as the command line does: the ignore file, the lock, the tags.
func (e *env) build(t testing.TB, ctxDir, dockerfile string, o *buildOpts) (*executor.Result, error) {
	t.Helper()
	return e.buildWith(t, ctxDir, dockerfile, o, nil)
}

// buildWith is build with options that buildOpts lacks set by set.
func (e *env) buildWith(t testing.TB, ctxDir, dockerfile string, o *buildOpts, set func(*executor.Options)) (*executor.Result, error) {
	t.Helper()
	if o == nil {
		o = &buildOpts{}
	}
	rep := executor.Discard
	if o.events != nil {
		var mu = make(chan struct{}, 1)
		rep = executor.ReporterFunc(func(ev executor.Event) {
			mu <- struct{}{}
			*o.events = append(*o.events, ev)
			<-mu
		})
	}
	req := executor.Request{
		ContextDir: ctxDir,
		Dockerfile: "-",
		Stdin:      strings.NewReader(dockerfile),
		BuildArgs:  o.args,
		Target:     o.target,
		Tags:       o.tags,
		Options: executor.Options{
			Resolver:         registry.NewResolver(e.store, nil, registry.PullNever),
			Reporter:         rep,
			Platform:         o.platform,
			NoCache:          o.noCache,
			NoCacheStages:    o.noCacheFor,
			Jobs:             o.jobs,
			SourceDateEpoch:  o.epoch,
			Compression:      cache.Compression{Format: o.compression},
			Network:          o.network,
			AllowNetworkHost: o.allowHost,
			VerifyCache:      o.verifyCache,
			DebugKeys:        o.debugKeys,
			MaxLayers:        o.maxLayers,
			Squash:           o.squash,
		},
	}
	if set != nil {
		set(&req.Options)
	}
	prep, err := executor.Prepare(req)
	if err != nil {
		return nil, err
	}
	return prep.Run(context.Background(), e.st)
}

// TestDockerfiles builds every case under testdata/dockerfiles and checks
// the image config and history (want.json), the files the build added,
// changed or removed relative to the busybox base, unpacked by umoci
// (want.files), or the one-line error (want.err). A case may give build
// args (args, one K=V a line) and a --target (target).
func TestDockerfiles(t *testing.T) {
	umoci := testutil.RequireTool(t, "umoci")
	e := newEnv(t)
	cases, err := filepath.Glob("../testdata/dockerfiles/*/Dockerfile")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no cases found: %v", err)
	}
	for _, df := range cases {
		dir := filepath.Dir(df)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			runCase(t, e, umoci, dir)
		})
	}
}

func runCase(t *testing.T, e *env, umoci, dir string) {
	text, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	ctxDir := filepath.Join(dir, "context")
	if _, err := os.Stat(ctxDir); err != nil {
		ctxDir = t.TempDir()
	} else {
		ctxDir = prepareContext(t, ctxDir)
	}
	o := &buildOpts{args: readArgs(t, filepath.Join(dir, "args"))}
	if target, err := os.ReadFile(filepath.Join(dir, "target")); err == nil {
		o.target = strings.TrimSpace(string(target))
	}
	res, err := e.build(t, ctxDir, string(text), o)
	wantErr, _ := os.ReadFile(filepath.Join(dir, "want.err"))
	if len(wantErr) > 0 {
		if err == nil {
			t.Fatalf("build succeeded, want error %q", strings.TrimSpace(string(wantErr)))
		}
		if got := err.Error(); got != strings.TrimSpace(string(wantErr)) {
			t.Fatalf("error = %q\nwant    %q", got, strings.TrimSpace(string(wantErr)))
		}
		return
	}
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	golden(t, filepath.Join(dir, "want.json"), configSummary(res.Config))
	if _, err := os.Stat(filepath.Join(dir, "want.files")); err == nil || *update {
		rootfs := unpack(t, e, umoci, res)
		golden(t, filepath.Join(dir, "want.files"), []byte(diffTree(t, e.base, rootfs)))
	}
}

// prepareContext copies a case's context into a temp dir, turning files
// named *.symlink into symlinks to their content, since git keeps no
// owners and checkouts vary.
func prepareContext(t *testing.T, src string) string {
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case strings.HasSuffix(p, ".symlink"):
			link, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.Symlink(strings.TrimSpace(string(link)), strings.TrimSuffix(target, ".symlink"))
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fi, _ := d.Info()
			return os.WriteFile(target, data, fi.Mode().Perm())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func readArgs(t *testing.T, p string) map[string]string {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	args := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		args[k] = v
	}
	return args
}

// configSummary is what a case checks of the config: everything but
// times, and each history entry's text and empty_layer.
func configSummary(c *v1.ConfigFile) []byte {
	type hist struct {
		CreatedBy  string `json:"created_by"`
		EmptyLayer bool   `json:"empty_layer,omitempty"`
	}
	var h []hist
	for _, e := range c.History {
		h = append(h, hist{e.CreatedBy, e.EmptyLayer})
	}
	out, _ := json.MarshalIndent(struct {
		Author  string    `json:"author,omitempty"`
		Config  v1.Config `json:"config"`
		Layers  int       `json:"layers"`
		History []hist    `json:"history"`
	}{c.Author, c.Config, len(c.RootFS.DiffIDs), h}, "", "  ")
	return append(out, '\n')
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// unpack exports the image to an OCI layout and unpacks it with umoci, a
// client that checks the layout strictly, and returns the rootfs.
func unpack(t *testing.T, e *env, umoci string, res *executor.Result) string {
	t.Helper()
	img, err := e.store.Image(res.Image.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(t.TempDir(), "layout")
	if err := cache.ExportLayout(layout, img, "case"); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	out, err := exec.Command(umoci, "unpack", "--image", layout+":case:latest", bundle).CombinedOutput()
	if err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	return filepath.Join(bundle, "rootfs")
}

// diffTree lists what differs between base and got: one line per path,
// "+ path desc" for new or changed entries and "- path" for removed ones.
func diffTree(t *testing.T, base, got string) string {
	b, g := treeOf(t, base), treeOf(t, got)
	var lines []string
	for p, d := range g {
		if b[p] != d {
			lines = append(lines, "+ "+p+" "+d)
		}
	}
	for p := range b {
		if _, ok := g[p]; !ok {
			lines = append(lines, "- "+p)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

// treeOf describes every entry: type, mode, owner, and content hash,
// link target, xattrs, or link count where it applies. Directory
// mtimes are left out; they change with every write.
func treeOf(t *testing.T, root string) map[string]string {
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%s %o %d:%d", typeName(fi.Mode()), uint32(st.Mode)&0o7777, st.Uid, st.Gid)
		switch {
		case fi.Mode().IsRegular():
			sum, err := fileSum(p)
			if err != nil {
				return err
			}
			desc += " " + sum
			if data, err := os.ReadFile(p); err == nil && len(data) <= 200 && utf8.Valid(data) && !bytes.ContainsAny(data, "\x00\r") {
				desc += " " + strconv.Quote(string(data))
			}
			if st.Nlink > 1 {
				desc += fmt.Sprintf(" nlink=%d", st.Nlink)
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode()&fs.ModeDevice != 0:
			desc += fmt.Sprintf(" %d,%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if x := xattrs(p); x != "" {
			desc += " " + x
		}
		m[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func typeName(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "dir"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeCharDevice != 0:
		return "chardev"
	case m&fs.ModeDevice != 0:
		return "blockdev"
	}
	return "file"
}

func fileSum(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

func xattrs(p string) string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return ""
	}
	var out []string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		v := make([]byte, 1024)
		vn, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			continue
		}
		out = append(out, name+"="+hex.EncodeToString(v[:vn]))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// writeTar writes dir as a tar with numeric owners 0:0 and sorted
// entries, as a base image layer.
func writeTar(t testing.TB, path, dir string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(data)
			return err
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
}
