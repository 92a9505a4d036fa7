package executor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/internal/testutil"
	"github.com/builderdev/builder/registry"
	"github.com/builderdev/builder/store"
)

// builderBinary builds cmd/builder into the test's temp dir, for tests
// that need a real builder process: one they can kill, or several at
// once. The go build cache makes this about a second.
func builderBinary(t *testing.T) string {
	t.Helper()
	goBin := testutil.RequireTool(t, "go")
	bin := filepath.Join(t.TempDir(), "builder")
	cmd := exec.Command(goBin, "build", "-o", bin, "../cmd/builder")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/builder: %v\n%s", err, out)
	}
	return bin
}

// cliResult is what a builder process left behind.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs the builder binary on the store root with args and returns
// its output and exit status; it fails the test only if it cannot start.
func runCLI(t *testing.T, bin, root string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--root", root}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "BUILDER_ROOT=")
	err := cmd.Run()
	res := cliResult{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running builder %s: %v", strings.Join(args, " "), err)
		}
		res.code = ee.ExitCode()
	}
	return res
}

// mustCLI is runCLI for commands that must succeed.
func mustCLI(t *testing.T, bin, root string, args ...string) string {
	t.Helper()
	r := runCLI(t, bin, root, args...)
	if r.code != 0 {
		t.Fatalf("builder %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// writeContext makes a build context dir holding a Dockerfile and files.
func writeContext(t *testing.T, dockerfile string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	writeFiles(t, dir, map[string]string{"Dockerfile": dockerfile})
	return dir
}

// countingTransport counts the HTTP requests a registry client makes.
type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// buildPulling builds dockerfile on a store opened afresh at root, as a
// new builder process would, with FROM allowed to pull through tr.
func buildPulling(t *testing.T, root, ctxDir, dockerfile string, tr http.RoundTripper) (*executor.Result, error) {
	t.Helper()
	st, err := store.Open(root, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	client := registry.New(st.Cache(), registry.Options{Transport: tr})
	prep, err := executor.Prepare(executor.Request{ContextDir: ctxDir, Dockerfile: "-", Stdin: strings.NewReader(dockerfile),
		Options: executor.Options{Resolver: registry.NewResolver(st.Cache(), client, registry.PullMissing)}})
	if err != nil {
		t.Fatal(err)
	}
	return prep.Run(context.Background(), st)
}

// TestFromRegistry pulls a base pushed to a real distribution registry
// into an empty store, checks the result, then stops the registry and
// rebuilds: the base must come from the store without a single request.
func TestFromRegistry(t *testing.T) {
	testutil.RequireRoot(t)
	umoci := testutil.RequireTool(t, "umoci")
	root := t.TempDir()
	ctxDir := t.TempDir()
	base := testutil.BusyboxImage(t)
	baseDiffIDs, err := base.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var addr, df string
	var first *executor.Result

	// The registry lives only as long as this subtest.
	t.Run("pull", func(t *testing.T) {
		addr = testutil.StartRegistry(t)
		ref := addr + "/base/busybox:1"
		testutil.PushImage(t, ref, base)
		df = "FROM " + ref + "\nRUN echo pulled > /pulled\nENV GREETING=hi\n"
		tr := &countingTransport{}
		res, err := buildPulling(t, root, ctxDir, df, tr)
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		if tr.n.Load() == 0 {
			t.Fatal("the first build made no registry request")
		}
		first = res
		checkPulledImage(t, res.Config, baseDiffIDs.RootFS.DiffIDs[0])
		st, err := store.Open(root, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		rootfs := unpack(t, &env{store: st.Cache()}, umoci, res)
		if got, err := os.ReadFile(filepath.Join(rootfs, "pulled")); err != nil || string(got) != "pulled\n" {
			t.Errorf("/pulled = %q, %v; want \"pulled\\n\"", got, err)
		}
		if fi, err := os.Stat(filepath.Join(rootfs, "bin/busybox")); err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("/bin/busybox from the pulled base: %v", err)
		}

		missing := addr + "/nope:1"
		_, err = buildPulling(t, root, ctxDir, "FROM "+missing+"\nRUN true\n", tr)
		if err == nil {
			t.Fatal("FROM a missing image succeeded")
		}
		t.Logf("missing image: %v", err)
		if msg := err.Error(); !strings.Contains(msg, missing) || strings.Contains(msg, "\n") {
			t.Errorf("error for a missing image = %q, want one line naming %s", msg, missing)
		}
	})
	if t.Failed() {
		return
	}

	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("the registry at %s still answers after its subtest ended", addr)
	}
	tr := &countingTransport{}
	res, err := buildPulling(t, root, ctxDir, df, tr)
	if err != nil {
		t.Fatalf("rebuild with the registry stopped: %v", err)
	}
	if n := tr.n.Load(); n != 0 {
		t.Errorf("the rebuild made %d registry requests, want 0", n)
	}
	if res.Image.ID != first.Image.ID {
		t.Errorf("rebuild gave image %s, want %s", res.Image.ID, first.Image.ID)
	}
	// A new step on the pulled base needs its layer unpacked from the store.
	if _, err := buildPulling(t, root, ctxDir, df+"RUN test -s /pulled && busybox true\n", tr); err != nil {
		t.Fatalf("new step on the pulled base with the registry stopped: %v", err)
	}
	if n := tr.n.Load(); n != 0 {
		t.Errorf("a new step on the pulled base made %d registry requests, want 0", n)
	}
	// An image never pulled, with the registry gone: one line naming it.
	other := addr + "/base/other:1"
	_, err = buildPulling(t, root, ctxDir, "FROM "+other+"\nRUN true\n", tr)
	t.Logf("unreachable registry: %v", err)
	if err == nil || !strings.Contains(err.Error(), other) || strings.Contains(err.Error(), "\n") {
		t.Errorf("FROM %s with the registry stopped: %v, want one line naming the image", other, err)
	}
}

func checkPulledImage(t *testing.T, cfg *v1.ConfigFile, baseDiffID v1.Hash) {
	t.Helper()
	if n := len(cfg.RootFS.DiffIDs); n != 2 || cfg.RootFS.DiffIDs[0] != baseDiffID {
		t.Errorf("diff IDs = %v, want the base's %s and one more", cfg.RootFS.DiffIDs, baseDiffID)
	}
	wantEnv := []string{"PATH=" + testutil.BusyboxPath, "GREETING=hi"}
	if !slices.Equal(cfg.Config.Env, wantEnv) {
		t.Errorf("Env = %q, want %q", cfg.Config.Env, wantEnv)
	}
	if !slices.Equal(cfg.Config.Cmd, []string{"sh"}) {
		t.Errorf("Cmd = %q, want the base's [sh]", cfg.Config.Cmd)
	}
	if cfg.OS != "linux" || cfg.Architecture == "" {
		t.Errorf("platform = %s/%s", cfg.OS, cfg.Architecture)
	}
	var created []string
	for _, h := range cfg.History {
		created = append(created, h.CreatedBy)
	}
	if len(created) < 3 || !strings.Contains(created[0], "testutil") {
		t.Errorf("history = %q, want the base's entry first, then the RUN and ENV", created)
	}
}

// TestCLIMissingImage runs the real command line on a FROM the registry
// lacks: exit status 1 and an error line that names the image.
func TestCLIMissingImage(t *testing.T) {
	testutil.RequireRoot(t)
	bin := builderBinary(t)
	addr := testutil.StartRegistry(t)
	missing := addr + "/nope:1"
	ctxDir := writeContext(t, "FROM "+missing+"\nRUN true\n", nil)
	r := runCLI(t, bin, t.TempDir(), "build", "--progress", "plain", ctxDir)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	last := lastLine(r.stderr)
	t.Logf("stderr:\n%s", r.stderr)
	if !strings.Contains(last, missing) {
		t.Errorf("last stderr line %q does not name %s; stderr:\n%s", last, missing, r.stderr)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if !strings.HasPrefix(lines[i], "builder: hint:") {
			return lines[i]
		}
	}
	return ""
}

// clientsDockerfile writes files whose type, mode, owner and content the
// client tests compare after a round trip through each output format.
const clientsDockerfile = `FROM busybox:test
COPY --chown=33:44 --chmod=0640 conf.txt /etc/app/conf.txt
RUN mkdir -m 0750 /data && chown 1000:1000 /data && echo built > /data/out && chmod 0664 /data/out \
 && echo ro > /data/ro && chown 1000:1000 /data/ro && chmod 0400 /data/ro && ln -s out /data/link && cp /bin/busybox /data/suid && chmod 4755 /data/suid && ln /data/suid /data/suid-hl \
 && mkdir /data/empty /data/dir && echo old > /data/dir/old
RUN echo second >> /data/out && rm /etc/app/conf.txt && echo new > /etc/app/conf2.txt \
 && rm -r /data/dir && mkdir /data/dir && echo new > /data/dir/new
USER 1000
WORKDIR /data
CMD ["cat", "/data/out"]
`

// wantClientFiles is what clientsDockerfile leaves: path → "type mode
// uid:gid" as treeOf describes it, without the content hash.
var wantClientFiles = map[string]string{
	"etc/app":            "dir 755 33:44", // made by COPY --chown, owned as docker does
	"etc/app/conf2.txt":  "file 644 0:0",
	"data":               "dir 750 1000:1000",
	"data/out":           "file 664 0:0",
	"data/ro":            "file 400 1000:1000",
	"data/link":          "symlink 777 0:0",
	"data/suid":          "file 4755 0:0",
	"data/suid-hl":       "file 4755 0:0",
	"data/dir/old":       "",
	"data/dir/new":       "file 644 0:0",
	"data/empty":         "dir 755 0:0",
	"etc/app/conf.txt":   "",
	"etc/resolv.conf":    "",
	"etc/hosts":          "",
	"etc/hostname":       "",
	"data/out (content)": "built\nsecond\n",
}

// checkClientFiles compares an unpacked rootfs with wantClientFiles; an
// empty want means the path must not exist.
func checkClientFiles(t *testing.T, rootfs string) {
	t.Helper()
	tree := treeOf(t, rootfs)
	for p, want := range wantClientFiles {
		if name, ok := strings.CutSuffix(p, " (content)"); ok {
			if got, err := os.ReadFile(filepath.Join(rootfs, name)); err != nil || string(got) != want {
				t.Errorf("%s holds %q (%v), want %q", name, got, err, want)
			}
			continue
		}
		got, ok := tree[p]
		switch {
		case want == "" && ok:
			t.Errorf("%s exists (%s), want it absent", p, got)
		case want != "" && !strings.HasPrefix(got+" ", want+" "):
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
}

// TestClientsReadOutputs hands what builder produces to real clients:
// skopeo reads the store and an OCI archive, podman loads a docker
// archive and runs it with runc, umoci unpacks an OCI layout.
func TestClientsReadOutputs(t *testing.T) {
	skopeo := testutil.RequireTool(t, "skopeo")
	umoci := testutil.RequireTool(t, "umoci")
	e := newEnv(t)
	bin := builderBinary(t)
	ctxDir := writeContext(t, clientsDockerfile, map[string]string{"conf.txt": "conf\n"})
	out := t.TempDir()
	id := strings.TrimSpace(mustCLI(t, bin, e.root, "build", "-q", "-t", "clients:1", ctxDir))
	rec, err := e.store.Lookup("clients:1")
	if err != nil || rec.ID.String() != id {
		t.Fatalf("lookup clients:1 = %v, %v; want image %s", rec.ID, err, id)
	}

	t.Run("skopeo-store", func(t *testing.T) {
		got := skopeoInspect(t, skopeo, "oci:"+e.root+":clients:1")
		if got.Digest != rec.Manifest.Digest.String() {
			t.Errorf("skopeo digest %s, want %s", got.Digest, rec.Manifest.Digest)
		}
		if len(got.Layers) != 4 {
			t.Errorf("skopeo lists %d layers, want 4 (base, COPY, 2 RUN)", len(got.Layers))
		}
		cfg := skopeoConfig(t, skopeo, "oci:"+e.root+":clients:1")
		if cfg.Config.User != "1000" || cfg.Config.WorkingDir != "/data" || !slices.Equal(cfg.Config.Cmd, []string{"cat", "/data/out"}) {
			t.Errorf("config user %q workdir %q cmd %q", cfg.Config.User, cfg.Config.WorkingDir, cfg.Config.Cmd)
		}
		if cfg.RootFS.DiffIDs[3] != mustDiffIDs(t, e, rec)[3] {
			t.Error("skopeo's diff IDs differ from the store's")
		}
	})

	t.Run("oci-archive", func(t *testing.T) {
		f := filepath.Join(out, "img.oci.tar")
		mustCLI(t, bin, e.root, "build", "-q", "-t", "clients:1", "--output", "type=oci,dest="+f, ctxDir)
		got := skopeoInspect(t, skopeo, "oci-archive:"+f)
		// The archive holds the image as it leaves the machine: the
		// stored manifest with its held layers compressed.
		out, err := e.store.Outgoing(context.Background(), rec.Manifest.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := out.Digest(); got.Digest != want.String() {
			t.Errorf("oci archive digest %s, want %s", got.Digest, want)
		}
	})

	t.Run("oci-layout-umoci", func(t *testing.T) {
		d := filepath.Join(out, "layout")
		mustCLI(t, bin, e.root, "build", "-q", "-t", "clients:1", "--output", "type=oci-layout,dest="+d, ctxDir)
		bundle := filepath.Join(out, "bundle")
		if b, err := exec.Command(umoci, "unpack", "--image", d+":clients:1", bundle).CombinedOutput(); err != nil {
			t.Fatalf("umoci unpack: %v\n%s", err, b)
		}
		rootfs := filepath.Join(bundle, "rootfs")
		checkClientFiles(t, rootfs)
		a, errA := os.Stat(filepath.Join(rootfs, "data/suid"))
		b, errB := os.Stat(filepath.Join(rootfs, "data/suid-hl"))
		if errA != nil || errB != nil || !os.SameFile(a, b) {
			t.Errorf("data/suid and data/suid-hl are not one hard-linked file (%v, %v)", errA, errB)
		}
	})

	t.Run("docker-podman", func(t *testing.T) {
		f := filepath.Join(out, "img.docker.tar")
		mustCLI(t, bin, e.root, "build", "-q", "-t", "clients:1", "--output", "type=docker,dest="+f, ctxDir)
		p := newPodman(t)
		p.load(t, f)
		if got := p.run(t, "clients:1"); got != "built\nsecond\n" {
			t.Errorf("podman run (CMD) printed %q, want the RUN steps' output", got)
		}
		got := p.run(t, "clients:1", "sh", "-c", "id -u; pwd; stat -c '%a %u:%g %h' /data /data/out /data/ro /data/suid; readlink /data/link; "+
			"cat /data/ro /data/out; ls /data/dir; test ! -e /etc/app/conf.txt && echo removed")
		want := "1000\n/data\n750 1000:1000 4\n664 0:0 1\n400 1000:1000 1\n4755 0:0 2\nout\nro\nbuilt\nsecond\nnew\nremoved\n"
		if got != want {
			t.Errorf("podman run printed\n%s\nwant\n%s", got, want)
		}
	})
}

func mustDiffIDs(t *testing.T, e *env, rec cache.ImageRecord) []v1.Hash {
	t.Helper()
	img, err := e.store.Image(rec.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cfg.RootFS.DiffIDs
}

type skopeoInfo struct {
	Digest string
	Layers []string
	Env    []string
}

func skopeoInspect(t *testing.T, skopeo, ref string) skopeoInfo {
	t.Helper()
	out, err := exec.Command(skopeo, "inspect", ref).Output()
	if err != nil {
		t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, stderrOf(err))
	}
	var info skopeoInfo
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("skopeo inspect %s: %v", ref, err)
	}
	return info
}

func skopeoConfig(t *testing.T, skopeo, ref string) *v1.ConfigFile {
	t.Helper()
	out, err := exec.Command(skopeo, "inspect", "--config", ref).Output()
	if err != nil {
		t.Fatalf("skopeo inspect --config %s: %v\n%s", ref, err, stderrOf(err))
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("skopeo inspect --config %s: %v", ref, err)
	}
	return cfg
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// podman runs podman on storage in the test's temp dirs only, with the
// vfs driver (no mounts left on the host) and runc: crun refuses this
// host's hybrid cgroups (KERNEL.md §1).
type podman struct {
	bin    string
	global []string
}

func newPodman(t *testing.T) *podman {
	t.Helper()
	bin := testutil.RequireTool(t, "podman")
	runc := testutil.RequireTool(t, "/usr/sbin/runc")
	// Not t.TempDir: podman refuses a runroot longer than 50 bytes.
	d, err := os.MkdirTemp("", "podman-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return &podman{bin: bin, global: []string{
		"--root", filepath.Join(d, "root"), "--runroot", filepath.Join(d, "runroot"),
		"--tmpdir", filepath.Join(d, "tmp"), "--storage-driver", "vfs",
		"--events-backend", "none", "--runtime", runc, "--cgroup-manager", "cgroupfs",
	}}
}

func (p *podman) cmd(args ...string) *exec.Cmd {
	return exec.Command(p.bin, append(slices.Clone(p.global), args...)...)
}

func (p *podman) load(t *testing.T, archive string) {
	t.Helper()
	if out, err := p.cmd("load", "-i", archive).CombinedOutput(); err != nil {
		t.Fatalf("podman load: %v\n%s", err, out)
	}
}

// run runs a container and returns its stdout. podman's default rlimits
// (nofile and nproc over a million) exceed this host's hard limits, which
// root cannot raise without CAP_SYS_RESOURCE, so runc would refuse them.
func (p *podman) run(t *testing.T, image string, args ...string) string {
	t.Helper()
	out, err := p.runErr(image, args...)
	if err != nil {
		t.Fatalf("podman run %s %q: %v\n%s", image, args, err, stderrOf(err))
	}
	return out
}

func (p *podman) runErr(image string, args ...string) (string, error) {
	full := append([]string{"run", "--rm", "--network", "none",
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", image}, args...)
	out, err := p.cmd(full...).Output()
	return string(out), err
}

// waitStatus reports how a finished process ended, for messages.
func waitStatus(ps *os.ProcessState) string {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf("killed by %v", ws.Signal())
	}
	return fmt.Sprintf("exit %d", ps.ExitCode())
}
