package executor_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/internal/testutil"
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

// unexpand turns the host directory's path back into HOST.
func (h *hostileEnv) unexpand(s string) string { return strings.ReplaceAll(s, h.host, "HOST") }

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
			setup: func(t *testing.T, h *hostileEnv, ctx string) {
				h.link(t, ctx, "sub/up", strings.Repeat("../", 30)+"..")
			},
			df:  "COPY sub/upHOST/secret /x\n",
			err: "Dockerfile:2: COPY failed: sub/upHOST/secret: symlink sub/up points outside the build context (" + strings.Repeat("../", 30) + "..)"},
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
		// Docker leaves sockets out of the context: one named is missing,
		// a glob does not match them, a copied directory has none.
		{name: "socket",
			setup: func(t *testing.T, h *hostileEnv, ctx string) { listenUnix(t, filepath.Join(ctx, "sock")) },
			df:    "COPY sock /x\n",
			err:   "Dockerfile:2: COPY failed: stat sock: no such file in build context (a socket cannot be copied)"},
		{name: "link to a socket",
			setup: func(t *testing.T, h *hostileEnv, ctx string) {
				listenUnix(t, filepath.Join(ctx, "sock"))
				h.link(t, ctx, "link", "sock")
			},
			df:  "COPY link /x\n",
			err: "Dockerfile:2: COPY failed: stat link: no such file in build context (a socket cannot be copied)"},
		{name: "glob matching a socket",
			setup: func(t *testing.T, h *hostileEnv, ctx string) {
				writeFiles(t, ctx, map[string]string{"s1": "plain\n"})
				listenUnix(t, filepath.Join(ctx, "s2"))
			},
			df:    "COPY s* /x/\n",
			layer: []string{"x/ dir 755", "x/s1 file 644 \"plain\\n\""}},
		{name: "glob matching only a socket",
			setup: func(t *testing.T, h *hostileEnv, ctx string) { listenUnix(t, filepath.Join(ctx, "sock")) },
			df:    "COPY so* /x/\n",
			err:   "Dockerfile:2: COPY failed: no source files were specified: so* matches nothing"},
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

// bigFiles are two files whose hashing takes the build long enough for a
// swap started as it opens the first to be done before it reads further.
func bigFiles() map[string]string {
	return map[string]string{"a1": strings.Repeat("1", 32<<20), "a2": strings.Repeat("2", 32<<20)}
}

// contextEntry matches the layer entries of a1, a2 and adir.
var contextEntry = regexp.MustCompile(`^x/(\d{5} file 644 "x"|a[12] file 644 "33554432 bytes")$`)

// manyFiles is a directory adir whose listing takes the build long enough
// for a swap started as it opens adir to be done before it lists the next
// source, and the files of d.
func manyFiles() map[string]string {
	m := map[string]string{"d/inside": "inside\n"}
	for i := range 2000 {
		m[fmt.Sprintf("adir/%05d", i)] = "x"
	}
	return m
}

// TestHostileContextSwapped swaps a file or a directory of the context for
// a link to a host file or directory at a set point of the build: once its
// sources are resolved (when it opens the first file to hash it), or once
// a source is hashed (when it closes it). The build must fail with one of
// the row's errors, or copy what the context held; never a host file.
func TestHostileContextSwapped(t *testing.T) {
	e := newEnv(t)
	host := t.TempDir()
	writeFiles(t, host, map[string]string{"secret": hostSecret, "host-only-file": hostSecret})
	cases := []struct {
		name  string
		files map[string]string
		link  string // other -> this, HOST as in hostileEnv.link; "" for a FIFO
		swap  swapAt
		df    string
		errs  []string // HOST as in hostileEnv.link
	}{
		{name: "directory, once resolved", files: map[string]string{"d/secret": "inside\n"}, link: "HOST",
			swap: swapAt{".", "a1", unix.IN_OPEN, "d", "other"},
			df:   "COPY a1 a2 d/secret /x/\n",
			errs: []string{"Dockerfile:2: COPY failed: d/secret changed while the build was reading it; build again",
				"Dockerfile:2: COPY failed: d/secret: symlink d points outside the build context (HOST)"}},
		{name: "file, once resolved", files: map[string]string{"f": "inside\n"}, link: "HOST/secret",
			swap: swapAt{".", "a1", unix.IN_OPEN, "f", "other"},
			df:   "COPY a1 a2 f /x/\n",
			errs: []string{"Dockerfile:2: COPY failed: f changed while the build was reading it; build again",
				"Dockerfile:2: COPY failed: f: symlink f points outside the build context (HOST/secret)"}},
		{name: "directory copied whole, once resolved", files: manyFiles(), link: "HOST",
			swap: swapAt{".", "adir", unix.IN_OPEN, "d", "other"},
			df:   "COPY adir d /x/\n",
			errs: []string{"Dockerfile:2: COPY failed: d changed while the build was reading it; build again",
				"Dockerfile:2: COPY failed: d: symlink d points outside the build context (HOST)"}},
		// A hang guard, not a timing assertion: the build takes a second.
		{name: "file swapped for a FIFO, once resolved", files: map[string]string{"f": "inside\n"},
			swap: swapAt{".", "a1", unix.IN_OPEN, "f", "other"},
			df:   "COPY a1 a2 f /x/\n",
			errs: []string{"Dockerfile:2: COPY failed: f changed while the build was reading it; build again"}},
		{name: "directory, once hashed", files: map[string]string{"d/secret": "inside\n"}, link: "HOST",
			swap: swapAt{"d", "secret", unix.IN_CLOSE_NOWRITE, "d", "other"},
			df:   "COPY a1 a2 d/secret /x/\n",
			errs: []string{"Dockerfile:2: COPY failed: d/secret changed while the build was reading it; build again"}},
		{name: "file, once hashed", files: map[string]string{"f": "inside\n"}, link: "HOST/secret",
			swap: swapAt{".", "f", unix.IN_CLOSE_NOWRITE, "f", "other"},
			df:   "COPY a1 a2 f /x/\n",
			errs: []string{"Dockerfile:2: COPY failed: f changed while the build was reading it; build again"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.TempDir()
			h := &hostileEnv{host: host}
			df := "FROM busybox:test\n" + c.df
			writeFiles(t, ctx, bigFiles())
			writeFiles(t, ctx, c.files)
			writeFiles(t, ctx, map[string]string{"Dockerfile": df})
			if c.link != "" {
				h.link(t, ctx, "other", c.link)
			} else {
				mkfifoAt(t, filepath.Join(ctx, "other"))
			}
			before := treeOf(t, host)
			stop := c.swap.arm(t, ctx)
			res, err, hung := buildWithin(t, e, ctx, df, 15*time.Second)
			if !stop() {
				t.Fatalf("the build never got to the swap (%s of %s)", map[uint32]string{unix.IN_OPEN: "open", unix.IN_CLOSE_NOWRITE: "close"}[c.swap.mask], c.swap.name)
			}
			var problems []string
			if hung {
				problems = append(problems, "the build hung until the test opened the FIFO for writing")
			}
			if err != nil && !slices.Contains(c.errs, h.unexpand(err.Error())) {
				problems = append(problems, fmt.Sprintf("error %q, want one of %q", err, c.errs))
			}
			if err == nil {
				var odd []string // what the context's adir and a1, a2 do not explain
				layer := lastLayerEntries(t, e, res)
				for _, l := range layer {
					if !contextEntry.MatchString(l) {
						odd = append(odd, l)
					}
				}
				problems = append(problems, fmt.Sprintf("the build succeeded: its layer holds %d entries, among them %q", len(layer), odd))
			}
			if diff := diffMaps(before, treeOf(t, host)); diff != "" {
				t.Errorf("the host directory changed:\n%s", diff)
			}
			reportProblems(t, problems)
		})
	}
}

// TestHostileContextChanging changes a context all the time while builds
// read it: a file is swapped with a link to a host file, a directory with
// a link to a host directory, and a file is rewritten. Every build must
// fail with one of the row's errors or copy something the context held;
// no build may copy a host file or hang, and the host must not change.
// Where each build gets caught is chance: TestHostileContextSwapped pins
// the moments down.
func TestHostileContextChanging(t *testing.T) {
	e := newEnv(t)
	host := t.TempDir()
	writeFiles(t, host, map[string]string{"secret": hostSecret, "host-only-file": hostSecret})
	cases := []struct {
		name   string
		rounds int
		setup  func(t *testing.T, h *hostileEnv, ctx string) (stop func())
		df     string
		errs   []string                  // HOST as in hostileEnv.link
		ok     func(layer []string) bool // for a build that succeeds
	}{
		{name: "file and a link to a host file", rounds: 100,
			setup: func(t *testing.T, h *hostileEnv, ctx string) func() {
				writeFiles(t, ctx, map[string]string{"f": "inside\n"})
				h.link(t, ctx, "other", "HOST/secret")
				return swapper(t, filepath.Join(ctx, "f"), filepath.Join(ctx, "other"))
			},
			df: "COPY f /x\n",
			errs: []string{"Dockerfile:2: COPY failed: f: symlink f points outside the build context (HOST/secret)",
				"Dockerfile:2: COPY failed: f changed while the build was reading it; build again"},
			ok: func(l []string) bool { return slices.Equal(l, []string{`x file 644 "inside\n"`}) }},
		{name: "directory and a link to a host directory", rounds: 100,
			setup: func(t *testing.T, h *hostileEnv, ctx string) func() {
				writeFiles(t, ctx, map[string]string{"d/secret": "inside\n"})
				h.link(t, ctx, "other", "HOST")
				return swapper(t, filepath.Join(ctx, "d"), filepath.Join(ctx, "other"))
			},
			df: "COPY d/secret /x\n",
			errs: []string{"Dockerfile:2: COPY failed: d/secret: symlink d points outside the build context (HOST)",
				"Dockerfile:2: COPY failed: d/secret changed while the build was reading it; build again"},
			ok: func(l []string) bool { return slices.Equal(l, []string{`x file 644 "inside\n"`}) }},
		{name: "file rewritten", rounds: 30,
			setup: func(t *testing.T, h *hostileEnv, ctx string) func() { return grower(t, filepath.Join(ctx, "f")) },
			df:    "COPY f /x\n",
			errs:  []string{"Dockerfile:2: COPY failed: f changed while the build was reading it; build again"},
			// The copy is checked against the hash that went into the key:
			// a build that succeeds copied one state of the file.
			ok: func(l []string) bool { return len(l) == 1 && strings.HasPrefix(l[0], "x file 644 ") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.TempDir()
			h := &hostileEnv{host: host}
			df := "FROM busybox:test\n" + c.df
			writeFiles(t, ctx, map[string]string{"Dockerfile": df})
			before := treeOf(t, host)
			stop := c.setup(t, h, ctx)
			outcomes := map[string]int{}
			var problems []string
			for range c.rounds {
				res, err := buildGuarded(t, e, ctx, df)
				if err != nil {
					outcomes[h.unexpand(err.Error())]++
					if !slices.Contains(c.errs, h.unexpand(err.Error())) {
						problems = append(problems, fmt.Sprintf("error %q, want one of %q", err, c.errs))
					}
					continue
				}
				layer := lastLayerEntries(t, e, res)
				outcomes[strings.Join(layer, "; ")]++
				if !c.ok(layer) {
					problems = append(problems, fmt.Sprintf("the layer holds %q", layer))
				}
			}
			stop()
			t.Logf("outcomes of %d builds: %v", c.rounds, outcomes)
			if diff := diffMaps(before, treeOf(t, host)); diff != "" {
				t.Errorf("the host directory changed:\n%s", diff)
			}
			reportProblems(t, problems)
		})
	}
}

// TestHostileContextUnreadable builds contexts holding files and a
// directory the builder cannot read. Root reads a mode 000 file anyway
// (CAP_DAC_OVERRIDE), so the builder runs without CAP_DAC_OVERRIDE and
// CAP_DAC_READ_SEARCH (setpriv drops them from its bounding set), as it
// would meet a file it cannot read on a FUSE or root-squashed NFS mount.
// It cannot build anything that way (overlayfs needs CAP_DAC_OVERRIDE for
// its mode 000 work dir), but the context is read, and must fail, before
// anything is mounted. Each row must fail with its exact error, leave the
// context as it was and leave nothing mounted.
func TestHostileContextUnreadable(t *testing.T) {
	testutil.RequireRoot(t)
	setpriv := testutil.RequireTool(t, "setpriv")
	bin := builderBinary(t)
	root := cliStore(t, bin)
	cases := []struct {
		name, df string
		err      string // paths relative to the context, never its host path
	}{
		{"file", "COPY unreadable /x\n", "Dockerfile:2: COPY failed: open unreadable: permission denied"},
		{"file in a copied dir", "COPY d /x/\n", "Dockerfile:2: COPY failed: open d/unreadable: permission denied"},
		{"file in a glob", "COPY unread* /x/\n", "Dockerfile:2: COPY failed: open unreadable: permission denied"},
		{"dir", "COPY closed /x/\n", "Dockerfile:2: COPY failed: open closed: permission denied"},
		{"file in a dir", "COPY closed/f /x\n", "Dockerfile:2: COPY failed: lstat closed/f: permission denied"},
		{"dir in a copied dir", "COPY . /x/\n", "Dockerfile:2: COPY failed: open closed: permission denied"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := writeContext(t, "FROM busybox:test\n"+c.df, map[string]string{
				"unreadable": "secret\n", "d/unreadable": "secret\n", "d/plain": "plain\n", "closed/f": "secret\n",
			})
			for _, p := range []string{"unreadable", "d/unreadable", "closed"} {
				if err := os.Chmod(filepath.Join(ctx, p), 0); err != nil {
					t.Fatal(err)
				}
			}
			before := treeOf(t, ctx)
			cmd := exec.Command(setpriv, "--bounding-set=-dac_override,-dac_read_search", "--",
				bin, "--root", root, "build", "-q", ctx)
			cmd.Env = append(os.Environ(), "BUILDER_ROOT=")
			out, err := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != 1 || strings.TrimSpace(string(out)) != c.err {
				t.Errorf("builder without CAP_DAC_OVERRIDE: exit %d (%v)\n%s\nwant exit 1 and\n%s", code, err, out, c.err)
			}
			if diff := diffMaps(before, treeOf(t, ctx)); diff != "" {
				t.Errorf("the context changed:\n%s", diff)
			}
			if m := mountsBelow(t, root); len(m) > 0 {
				t.Errorf("mounts left under the store: %q", m)
			}
		})
	}
}
