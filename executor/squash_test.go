package executor_test

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/internal/testutil"
)

// deepSteps is how many filesystem steps the generated Dockerfile has:
// more than docker's 125 layers.
const deepSteps = 200

// deepDockerfile writes a context whose Dockerfile has n steps that
// delete files, replace directories with files and back, recreate
// deleted directories (overlay makes them opaque), make hardlinks to
// files of lower layers, change owners and modes, and ADD archives that
// carry xattrs. last is the text of the last RUN.
func deepDockerfile(t *testing.T, n int, last string) string {
	t.Helper()
	ctxDir := t.TempDir()
	var df strings.Builder
	df.WriteString("FROM busybox:test\nRUN mkdir -p /d /links /x && echo 0 > /d/base\n")
	// Numbered from 11, so that every step that refers to an earlier one
	// (i-11 at most) finds what it needs.
	for i := 11; i < n+9; i++ {
		switch i % 10 {
		case 0:
			name := fmt.Sprintf("x%d.tar", i)
			writeXattrTar(t, filepath.Join(ctxDir, name), i)
			fmt.Fprintf(&df, "ADD %s /x/\n", name)
			if i%50 == 0 {
				fmt.Fprintf(&df, "ENV STEP=%d\n", i)
			}
		case 1:
			fmt.Fprintf(&df, "RUN mkdir -p /d/%d/sub && echo %d > /d/%d/f && echo %d > /d/%d/sub/g && chown %d:%d /d/%d/f && chmod 4751 /d/%d/f\n", i, i, i, i, i, i, i+1, i, i)
		case 2:
			if i/10%3 == 0 { // these directories, and the links to them, stay
				fmt.Fprintf(&df, "RUN touch /d/%d/kept\n", i-11)
			} else {
				fmt.Fprintf(&df, "RUN rm -rf /d/%d\n", i-11)
			}
		case 3:
			fmt.Fprintf(&df, "RUN rm -rf /flip && echo %d > /flip\n", i)
		case 4:
			fmt.Fprintf(&df, "RUN rm -f /flip && mkdir -p /flip/%d && echo %d > /flip/%d/x\n", i, i, i)
		case 5:
			fmt.Fprintf(&df, "RUN ln /d/%d/f /links/%d && ln /d/%d/sub/g /links/g%d && ln /d/base /links/base%d\n", i-4, i, i-4, i, i)
		case 6:
			fmt.Fprintf(&df, "RUN rm -rf /opq && mkdir /opq && echo %d > /opq/%d\n", i, i)
		case 7:
			fmt.Fprintf(&df, "RUN echo %d >> /d/%d/f && mkdir -p /wr && echo %d > /wr/%d\n", i, i-6, i, i)
		case 8:
			fmt.Fprintf(&df, "RUN rm -rf /wr && mkdir /wr && echo %d > /wr/again", i)
			if i/10%2 == 0 {
				fmt.Fprintf(&df, " && rm -f /links/base%d", i-3)
			}
			df.WriteString("\n")
		case 9:
			fmt.Fprintf(&df, "RUN ln -sfn /d/%d /sym%d && touch -d @%d /d/%d/t\n", i-8, i%3, 1600000000+i, i-8)
		}
	}
	fmt.Fprintf(&df, "RUN %s\n", last)
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return ctxDir
}

// writeXattrTar writes an archive with x/<i> and x/common, each with a
// user xattr of value i, common also with a file capability.
func writeXattrTar(t *testing.T, path string, i int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, name := range []string{fmt.Sprint(i), "common"} {
		body := []byte(fmt.Sprintf("%d\n", i))
		pax := map[string]string{"SCHILY.xattr.user.step": fmt.Sprint(i)}
		if name == "common" {
			pax["SCHILY.xattr.security.capability"] = capNetRaw
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg,
			Format: tar.FormatPAX, PAXRecords: pax}); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// fsManifest describes an unpacked rootfs: every path with its type,
// mode, owner, mtime, content hash or link target, xattrs, and the
// group of paths sharing its inode.
func fsManifest(t *testing.T, root string) []string {
	t.Helper()
	type info struct {
		desc string
		key  [2]uint64
	}
	infos := map[string]info{}
	groups := map[[2]uint64][]string{}
	var walk func(rel string)
	walk = func(rel string) {
		ents, err := os.ReadDir(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			p := filepath.Join(rel, e.Name())
			abs := filepath.Join(root, p)
			var st unix.Stat_t
			if err := unix.Lstat(abs, &st); err != nil {
				t.Fatal(err)
			}
			desc := fmt.Sprintf("%o %d:%d", st.Mode, st.Uid, st.Gid)
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				desc += fmt.Sprintf(" mtime=%d", st.Mtim.Sec)
			}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFREG:
				data, err := os.ReadFile(abs)
				if err != nil {
					t.Fatal(err)
				}
				desc += fmt.Sprintf(" %x", sha256.Sum256(data))
			case unix.S_IFLNK:
				target, _ := os.Readlink(abs)
				desc += " -> " + target
			}
			if x := xattrs(abs); x != "" {
				desc += " " + x
			}
			key := [2]uint64{uint64(st.Dev), st.Ino}
			infos[p] = info{desc, key}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				groups[key] = append(groups[key], p)
			}
			if e.IsDir() {
				walk(p)
			}
		}
	}
	walk("")
	var lines []string
	for p, in := range infos {
		line := p + " " + in.desc
		if g := groups[in.key]; len(g) > 1 {
			sort.Strings(g)
			line += " links=" + strings.Join(g, ",")
		}
		lines = append(lines, line)
	}
	sort.Strings(lines)
	return lines
}

// umociTree unpacks a stored image with umoci and returns its manifest.
func umociTree(t *testing.T, e *env, umoci string, rec cache.ImageRecord) []string {
	t.Helper()
	rootfs := unpack(t, e, umoci, &executor.Result{Image: rec})
	defer os.RemoveAll(filepath.Dir(rootfs))
	return fsManifest(t, rootfs)
}

func diffManifests(want, got []string) string {
	w, g := map[string]bool{}, map[string]bool{}
	for _, l := range want {
		w[l] = true
	}
	for _, l := range got {
		g[l] = true
	}
	var b strings.Builder
	for _, l := range want {
		if !g[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range got {
		if !w[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

// checkHistory checks the OCI rule and that every step of the original
// history is still there, in order.
func checkHistory(t *testing.T, cfg *v1.ConfigFile, orig []v1.History) {
	t.Helper()
	if err := executor.CheckHistory(cfg); err != nil {
		t.Error(err)
	}
	i := 0
	for _, h := range cfg.History {
		if i < len(orig) && h.CreatedBy == orig[i].CreatedBy {
			i++
		}
	}
	if i != len(orig) {
		t.Errorf("history lost step %d (%q)", i+1, orig[i].CreatedBy)
	}
}

// TestLayerLimits builds a 200-step Dockerfile without a limit, with the
// default --max-layers, with --squash and --squash-all, and flattens it
// to 1 and 50 layers: each result, unpacked by umoci, must be the
// original's filesystem (paths, types, contents, modes, owners, mtimes,
// xattrs, hardlink groups) and keep every history entry.
func TestLayerLimits(t *testing.T) {
	umoci := testutil.RequireTool(t, "umoci")
	skopeo := testutil.RequireTool(t, "skopeo")
	e := newEnv(t)
	ctxDir := deepDockerfile(t, deepSteps, "echo last > /last")
	df, err := os.ReadFile(filepath.Join(ctxDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	full, err := e.build(t, ctxDir, string(df), &buildOpts{maxLayers: -1})
	if err != nil {
		t.Fatalf("building %d steps: %v", deepSteps, err)
	}
	// One step (rm -rf of a directory not made yet) adds no layer.
	if n := len(full.Config.RootFS.DiffIDs); n != deepSteps {
		t.Fatalf("unlimited build has %d layers, want %d", n, deepSteps)
	}
	want := umociTree(t, e, umoci, full.Image)
	// The fixture must hold what the comparison is about.
	all := strings.Join(want, "\n")
	for _, what := range []string{"links=d/21/sub/g,links/g25", "links=d/201/sub/g,links/g205", "user.step=", "security.capability=", "opq/206 ", "flip/204/x ", "wr/again "} {
		if !strings.Contains(all, what) {
			t.Fatalf("the unmerged image lacks %q:\n%s", what, all)
		}
	}
	for _, gone := range []string{"d/11/", "links/base185", "flip/194", "opq/196"} {
		if strings.Contains(all, gone) {
			t.Fatalf("the unmerged image holds %q, which a step deleted", gone)
		}
	}

	var results []limitResult
	for _, tc := range []struct {
		name   string
		o      buildOpts
		layers int
	}{
		{"default", buildOpts{}, executor.DefaultMaxLayers},
		{"squash", buildOpts{squash: executor.SquashNew}, 2},
		{"squash-all", buildOpts{squash: executor.SquashAll}, 1},
	} {
		var events []executor.Event
		o := tc.o
		o.events = &events
		res, err := e.build(t, ctxDir, string(df), &o)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for _, ev := range events {
			if ev.Kind == executor.StepDone && ev.ID > 1 {
				t.Errorf("%s: step %s ran again; the per-step layers should be cached", tc.name, ev.Name)
				break
			}
		}
		results = append(results, limitResult{tc.name, res.Image, res.Config, tc.layers, events})
	}
	for _, max := range []int{1, 50} {
		var events []executor.Event
		rec, cfg, err := executor.Flatten(context.Background(), e.st, full.Image, executor.FlattenOptions{MaxLayers: max,
			Reporter: executor.ReporterFunc(func(ev executor.Event) { events = append(events, ev) })})
		if err != nil {
			t.Fatalf("flatten to %d: %v", max, err)
		}
		results = append(results, limitResult{fmt.Sprintf("flatten %d", max), rec, cfg, max, events})
	}
	t.Run("podman", func(t *testing.T) { checkPodmanRuns(t, e, results) })
	t.Run("last step changed", func(t *testing.T) { checkLastStepChange(t, e, ctxDir, results[0].cfg) })
	for _, r := range results {
		t.Run(r.name, func(t *testing.T) { checkLimitResult(t, e, umoci, skopeo, r, full.Config, want) })
	}
}

// exportArchive writes a stored image as a docker-load archive.
func exportArchive(t *testing.T, e *env, rec cache.ImageRecord, tag string) string {
	t.Helper()
	img, err := e.store.Image(rec.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "image.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := cache.Export(f, img, tag, cache.FormatDocker); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDeepBaseUnderLimit builds FROM a 300-layer image: RUN works on it
// and the result comes out under the default limit, its history whole.
func TestDeepBaseUnderLimit(t *testing.T) {
	e := newEnv(t)
	makeDeepBase(t, e.store, 300, "deep:300")
	df := "FROM deep:300\nRUN cat /bottom /top && echo more > /more\nRUN cat /more\n"
	out, res, err := e.runOutput(t, df)
	if err != nil {
		t.Fatalf("RUN on a 300-layer base: %v\n%s", err, out)
	}
	if out != "bottomtop\nmore" {
		t.Errorf("RUN printed %q", out)
	}
	if n := len(res.Config.RootFS.DiffIDs); n > executor.DefaultMaxLayers {
		t.Errorf("%d layers, want at most %d", n, executor.DefaultMaxLayers)
	}
	if err := executor.CheckHistory(res.Config); err != nil {
		t.Error(err)
	}
	if n := len(res.Config.History); n < 302 {
		t.Errorf("history has %d entries, want the base's 300, two RUNs and the merges", n)
	}
	// The merged image reads the same: a step on it sees the bottom, the
	// top, the deletions and the last RUN's file.
	tag := "merged:1"
	if err := e.store.Tag(tag, res.Image.Manifest); err != nil {
		t.Fatal(err)
	}
	script := "cat /bottom /top /over /more; test ! -e /gone && test ! -e /gone2 && echo gone; ls /opq; ls /layers | wc -l"
	out, _, err = e.runOutput(t, "FROM "+tag+"\nRUN "+script+"\n")
	if err != nil {
		t.Fatalf("RUN on the merged image: %v\n%s", err, out)
	}
	if want := "bottomtop10more\ngone\nb\n299"; out != want {
		t.Errorf("RUN on the merged image printed\n%s\nwant\n%s", out, want)
	}
}

// limitResult is one image TestLayerLimits made from the 200-step build.
type limitResult struct {
	name   string
	rec    cache.ImageRecord
	cfg    *v1.ConfigFile
	layers int // at most
	events []executor.Event
}

// checkLimitResult checks one merged image against the unmerged one,
// whose config is orig and whose unpacked filesystem is want.
func checkLimitResult(t *testing.T, e *env, umoci, skopeo string, r limitResult, orig *v1.ConfigFile, want []string) {
	t.Helper()
	if n := len(r.cfg.RootFS.DiffIDs); n > r.layers || n < 1 {
		t.Errorf("%d layers, want at most %d", n, r.layers)
	}
	if r.name == "default" && len(r.cfg.RootFS.DiffIDs) != executor.DefaultMaxLayers {
		t.Errorf("%d layers, want exactly %d: merge no more than needed", len(r.cfg.RootFS.DiffIDs), executor.DefaultMaxLayers)
	}
	if r.name == "squash" && r.cfg.RootFS.DiffIDs[0] != orig.RootFS.DiffIDs[0] {
		t.Errorf("--squash rewrote the base layer")
	}
	checkHistory(t, r.cfg, orig.History)
	merged := 0
	for _, ev := range r.events {
		if ev.Kind == executor.LayersMerged {
			merged++
		}
	}
	if merged != 1 {
		t.Errorf("%d LayersMerged events, want 1", merged)
	}
	if d := diffManifests(want, umociTree(t, e, umoci, r.rec)); d != "" {
		t.Errorf("filesystem differs from the unmerged image's:\n%s", d)
	}
	layout := filepath.Join(t.TempDir(), "layout")
	img, err := e.store.Image(r.rec.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.ExportLayout(layout, img, "img"); err != nil {
		t.Fatal(err)
	}
	if got := skopeoConfig(t, skopeo, "oci:"+layout+":img:latest"); len(got.History) != len(r.cfg.History) {
		t.Errorf("skopeo reads %d history entries, want %d", len(got.History), len(r.cfg.History))
	}
}

// checkPodmanRuns runs the merged images with containers-storage's
// overlay driver, which refuses images deeper than 128 layers.
func checkPodmanRuns(t *testing.T, e *env, results []limitResult) {
	p := newPodmanOverlay(t)
	for _, r := range results {
		if r.name == "squash-all" || r.name == "flatten 50" {
			continue // the same merge as their neighbours; podman is slow
		}
		tag := "limits:" + strings.ReplaceAll(r.name, " ", "-")
		p.load(t, exportArchive(t, e, r.rec, tag))
		out, err := p.runErr(tag, "sh", "-c", "cat /last /x/common /wr/again && ls /opq && test ! -e /d/11 && echo ok")
		if want := "last\n200\n208\n206\nok\n"; err != nil || out != want {
			t.Errorf("podman (overlay) run %s: %q, %v, want %q\n%s", r.name, out, err, want, stderrOf(err))
		}
	}
}

// checkLastStepChange rebuilds with another last RUN: only the top layer
// may differ from first's, so a push uploads one layer.
func checkLastStepChange(t *testing.T, e *env, ctxDir string, first *v1.ConfigFile) {
	df := deepDockerfileText(t, deepSteps, "echo other > /last")
	res, err := e.build(t, ctxDir, df, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := first.RootFS.DiffIDs, res.Config.RootFS.DiffIDs
	if len(a) != len(b) {
		t.Fatalf("%d layers, then %d", len(a), len(b))
	}
	for i := range a {
		if same := a[i] == b[i]; same != (i < len(a)-1) {
			t.Errorf("layer %d of %d: same=%v after changing the last step", i+1, len(a), same)
		}
	}
}

// deepDockerfileText is the Dockerfile deepDockerfile writes.
func deepDockerfileText(t *testing.T, n int, last string) string {
	t.Helper()
	df, err := os.ReadFile(filepath.Join(deepDockerfile(t, n, last), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	return string(df)
}
