package executor_test

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/executor"
)

// hostSecret is what the host directory's files hold: it must never
// reach an image.
const hostSecret = "host secret\n"

// hostileContext is one row of TestHostileContexts: a context with
// something hostile in it, a Dockerfile whose line 2 uses it, and either
// the exact error or the exact entries of the layer line 2 makes.
type hostileContext struct {
	name  string
	setup func(t *testing.T, h *hostileEnv, ctx string)
	df    string   // after "FROM busybox:test\n"; HOST and UP as in hostileEnv.link
	err   string   // HOST and UP as in df
	layer []string // the last layer's entries, as lastLayerEntries lists them
}

// hostileEnv is a host directory outside every context, holding files
// that a context's symlinks point at.
type hostileEnv struct {
	host string // absolute
	up   string // host relative to a context dir
}

// link makes a symlink at ctx/name whose target names the host directory:
// HOST stands for its absolute path, UP for its path relative to ctx.
func (h *hostileEnv) link(t *testing.T, ctx, name, target string) {
	t.Helper()
	p := filepath.Join(ctx, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(h.expand(target), p); err != nil {
		t.Fatal(err)
	}
}

func (h *hostileEnv) expand(s string) string {
	return strings.NewReplacer("HOST", h.host, "UP", h.up).Replace(s)
}

func mkfifoAt(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
}

// listenUnix leaves a listening unix socket at p until the test ends.
func listenUnix(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
}

var hostileRows = func() []hostileContext {
	return []hostileContext{
		{name: "absolute link to a host file",
			setup: func(t *testing.T, h *hostileEnv, ctx string) { h.link(t, ctx, "link", "HOST/secret") },
			df:    "COPY link /x\n",
			err:   "Dockerfile:2: COPY failed: link: symlink link points outside the build context (HOST/secret)"},
		{name: "relative link to a host file",
			setup: func(t *testing.T, h *hostileEnv, ctx string) { h.link(t, ctx, "link", "UP/secret") },
			df:    "COPY link /x\n",
			err:   "Dockerfile:2: COPY failed: link: symlink link points outside the build context (UP/secret)"},
		{name: "absolute link to a host dir, on the way",
			setup: func(t *testing.T, h *hostileEnv, ctx string) { h.link(t, ctx, "hostdir", "HOST") },
			df:    "COPY hostdir/secret /x\n",
			err:   "Dockerfile:2: COPY failed: hostdir/secret: symlink hostdir points outside the build context (HOST)"},
		{name: "relative link to a host dir, copied whole",
			setup: func(t *testing.T, h *hostileEnv, ctx string) { h.link(t, ctx, "hostdir", "UP") },
			df:    "COPY hostdir/ /x/\n",
			err:   "Dockerfile:2: COPY failed: hostdir: symlink hostdir points outside the build context (UP)"},
		{name: "glob matching a link to a host file",
			setup: func(t *testing.T, h *hostileEnv, ctx string) {
				writeFiles(t, ctx, map[string]string{"l2": "inside\n"})
				h.link(t, ctx, "l1", "HOST/secret")
			},
			df:  "COPY l* /x/\n",
			err: "Dockerfile:2: COPY failed: l1: symlink l1 points outside the build context (HOST/secret)"},
		{name: "glob under a link to a host dir",
			setup: func(t *testing.T, h *hostileEnv, ctx string) { h.link(t, ctx, "sub/hostdir", "HOST") },
			df:    "COPY sub/*/* /x/\n",
			err:   "Dockerfile:2: COPY failed: sub/hostdir: symlink sub/hostdir points outside the build context (HOST)"},
		{name: "chain of links, the second leading out",
			setup: func(t *testing.T, h *hostileEnv, ctx string) {
				h.link(t, ctx, "a", "b")
				h.link(t, ctx, "b", "HOST")
			},
			df:  "COPY a/secret /x\n",
			err: "Dockerfile:2: COPY failed: a/secret: symlink b points outside the build context (HOST)"},
		{name: "link climbing out of a subdir",
			setup: func(t *testing.T, h *hostileEnv, ctx string) { h.link(t, ctx, "sub/up", strings.Repeat("../", 30)+"..") },
			df:    "COPY sub/upHOST/secret /x\n",
			err:   "Dockerfile:2: COPY failed: sub/upHOST/secret: symlink sub/up points outside the build context (" + strings.Repeat("../", 30) + "..)"},
		{name: "source climbing out",
			df:  "COPY UP/secret /x\n",
			err: "Dockerfile:2: COPY failed: forbidden path outside the build context: UP/secret"},
		{name: "link to an ignored file",
			setup: func(t *testing.T, h *hostileEnv, ctx string) {
				writeFiles(t, ctx, map[string]string{"secret.txt": hostSecret, ".dockerignore": "secret.txt\n"})
				h.link(t, ctx, "link", "secret.txt")
			},
			df:  "COPY link /x\n",
			err: "Dockerfile:2: COPY failed: stat link: no such file in build context (excluded by .dockerignore)"},
		{name: "links inside a copied dir stay links",
			setup: func(t *testing.T, h *hostileEnv, ctx string) {
				writeFiles(t, ctx, map[string]string{"d/plain": "plain\n"})
				h.link(t, ctx, "d/abs", "HOST/secret")
				h.link(t, ctx, "d/rel", "../UP/secret")
			},
			df: "COPY d/ /x/\n",
			layer: []string{"x/ dir 755", "x/abs symlink 777 -> HOST/secret", "x/plain file 644 \"plain\\n\"",
				"x/rel symlink 777 -> ../UP/secret"}},
		{name: "fifo",
			setup: func(t *testing.T, h *hostileEnv, ctx string) { mkfifoAt(t, filepath.Join(ctx, "fifo")) },
			df:    "COPY fifo /x\n",
			layer: []string{"x fifo 644"}},
		{name: "fifo added",
			setup: func(t *testing.T, h *hostileEnv, ctx string) { mkfifoAt(t, filepath.Join(ctx, "fifo")) },
			df:    "ADD fifo /x\n",
			layer: []string{"x fifo 644"}},
		{name: "fifo in a copied dir",
			setup: func(t *testing.T, h *hostileEnv, ctx string) {
				writeFiles(t, ctx, map[string]string{"d/plain": "plain\n"})
				mkfifoAt(t, filepath.Join(ctx, "d/fifo"))
			},
			df:    "COPY d /x\n",
			layer: []string{"x/ dir 755", "x/fifo fifo 644", "x/plain file 644 \"plain\\n\""}},
		{name: "link to a fifo",
			setup: func(t *testing.T, h *hostileEnv, ctx string) {
				mkfifoAt(t, filepath.Join(ctx, "fifo"))
				h.link(t, ctx, "link", "fifo")
			},
			df:    "COPY link /x\n",
			layer: []string{"x fifo 644"}},
		{name: "socket",
			setup: func(t *testing.T, h *hostileEnv, ctx string) { listenUnix(t, filepath.Join(ctx, "sock")) },
			df:    "COPY sock /x\n",
			layer: nil},
		{name: "socket in a copied dir",
			setup: func(t *testing.T, h *hostileEnv, ctx string) {
				writeFiles(t, ctx, map[string]string{"d/plain": "plain\n"})
				listenUnix(t, filepath.Join(ctx, "d/sock"))
			},
			df:    "COPY d /x\n",
			layer: []string{"x/ dir 755", "x/plain file 644 \"plain\\n\""}},
	}
}()

// TestHostileContexts builds a table of contexts holding links out of the
// context, FIFOs and sockets. Each row must give its exact error, which
// names the Dockerfile line and neither the context's host path nor
// anything of the host directory the links point at that the context does
// not itself name, or its exact layer; the host directory, the context
// and the busybox rootfs must not change, and no build may hang.
func TestHostileContexts(t *testing.T) {
	e := newEnv(t)
	host := t.TempDir()
	writeFiles(t, host, map[string]string{"secret": hostSecret, "host-only-file": hostSecret, "sub/inner": hostSecret})
	for _, c := range hostileRows {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.TempDir()
			up, err := filepath.Rel(ctx, host)
			if err != nil {
				t.Fatal(err)
			}
			h := &hostileEnv{host: host, up: up}
			df := "FROM busybox:test\n" + h.expand(c.df)
			writeFiles(t, ctx, map[string]string{"Dockerfile": df})
			if c.setup != nil {
				c.setup(t, h, ctx)
			}
			before := map[string]map[string]string{"host": treeOf(t, host), "context": treeOf(t, ctx), "busybox": treeOf(t, e.base)}
			res, err := buildGuarded(t, e, ctx, df)
			checkHostileResult(t, e, h, ctx, res, err, h.expand(c.err), c.layer)
			for what, dir := range map[string]string{"host": host, "context": ctx, "busybox": e.base} {
				if diff := diffMaps(before[what], treeOf(t, dir)); diff != "" {
					t.Errorf("the %s directory changed:\n%s", what, diff)
				}
			}
		})
	}
}

// buildGuarded builds without the cache and fails the test if the build
// hangs, as a read of a FIFO with no writer would: it then opens every
// FIFO of the context for writing, which lets such a read end.
func buildGuarded(t *testing.T, e *env, ctx, df string) (*executor.Result, error) {
	t.Helper()
	type result struct {
		res *executor.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := e.build(t, ctx, df, &buildOpts{noCache: true})
		done <- result{res, err}
	}()
	select {
	case r := <-done:
		return r.res, r.err
	case <-time.After(60 * time.Second): // a hang guard, not a timing assertion
		filepath.WalkDir(ctx, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type()&fs.ModeNamedPipe != 0 {
				if f, err := os.OpenFile(p, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
			}
			return nil
		})
		<-done
		t.Fatal("the build hung")
		return nil, nil
	}
}

// checkHostileResult compares a build's outcome with a row's: the exact
// error, or the exact entries of the image's last layer.
func checkHostileResult(t *testing.T, e *env, h *hostileEnv, ctx string, res *executor.Result, err error, wantErr string, wantLayer []string) {
	t.Helper()
	if err != nil {
		msg := err.Error()
		if msg != wantErr {
			t.Errorf("error\n  %s\nwant\n  %s", msg, wantErr)
		}
		if strings.Contains(msg, ctx) || strings.Contains(msg, "host-only-file") || strings.Contains(msg, "sub/inner") {
			t.Errorf("the error names a host path: %s", msg)
		}
		return
	}
	if wantErr != "" {
		t.Fatalf("the build succeeded, want %q", wantErr)
	}
	var want []string
	for _, l := range wantLayer {
		want = append(want, h.expand(l))
	}
	if got := lastLayerEntries(t, e, res); !slices.Equal(got, want) {
		t.Errorf("the layer holds\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// lastLayerEntries lists the entries of the image's last layer made by the
// step after FROM: name, type, mode, and content or link target; nil if
// the step made no layer.
func lastLayerEntries(t *testing.T, e *env, res *executor.Result) []string {
	t.Helper()
	img, err := e.store.Image(res.Image.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) < 2 {
		return nil
	}
	rc, err := layers[len(layers)-1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []string
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		desc := fmt.Sprintf("%s %s %o", hdr.Name, typeName(hdr.FileInfo().Mode()), hdr.Mode&0o7777)
		switch hdr.Typeflag {
		case tar.TypeReg:
			data, _ := io.ReadAll(tr)
			if strings.Contains(string(data), hostSecret) {
				t.Errorf("the layer holds the host's secret in %s", hdr.Name)
			}
			desc += fmt.Sprintf(" %q", data)
		case tar.TypeSymlink:
			desc += " -> " + hdr.Linkname
		}
		out = append(out, desc)
	}
}
