package executor_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/executor"
	"github.com/builderdev/builder/internal/testutil"
)

// imageFiles unpacks a result and returns its rootfs.
func imageFiles(t *testing.T, e *env, res *executor.Result) string {
	t.Helper()
	return unpack(t, e, testutil.RequireTool(t, "umoci"), res)
}

func readImageFile(t *testing.T, rootfs, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(rootfs, name))
	if err != nil {
		t.Fatalf("reading %s from the image: %v", name, err)
	}
	return string(data)
}

// mustBeAbsent fails for each path the image holds: mount points made
// only for a mount must not reach the layer.
func mustBeAbsent(t *testing.T, rootfs string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(filepath.Join(rootfs, p)); err == nil {
			t.Errorf("the image holds %s, a mount point of a RUN --mount", p)
		}
	}
}

// TestRunMountTmpfs: a tmpfs is there during the step, empty, and
// neither it, its content nor its mount point's parents reach the layer.
func TestRunMountTmpfs(t *testing.T) {
	e := newEnv(t)
	df := `FROM busybox:test
RUN --mount=type=tmpfs,target=/newdir/t,size=1m sh -ec 'test -z "$(ls /newdir/t)"; echo x > /newdir/t/f; grep " /newdir/t tmpfs " /proc/mounts > /seen'
`
	res, err := e.build(t, t.TempDir(), df, nil)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := imageFiles(t, e, res)
	if got := readImageFile(t, rootfs, "seen"); !strings.Contains(got, "size=1024k") {
		t.Errorf("mount line %q, want a tmpfs of size 1024k", got)
	}
	mustBeAbsent(t, rootfs, "newdir")
}

// TestRunMountBind binds the context (what COPY would see: no ignored
// file), a stage and an image; read-only by default, and rw changes
// thrown away. A changed context file misses the cache.
func TestRunMountBind(t *testing.T) {
	e := newEnv(t)
	ctxDir := writeContext(t, "", map[string]string{"src/a.txt": "one\n", "src/ignored.txt": "no\n", ".dockerignore": "src/ignored.txt\n"})
	df := `FROM busybox:test AS stage
RUN echo from-stage > /f

FROM busybox:test
RUN --mount=type=bind,source=src,target=/src sh -ec 'cat /src/a.txt > /from-context; test ! -e /src/ignored.txt; ! touch /src/x 2>/dev/null'
RUN --mount=type=bind,target=/ctx,rw sh -ec 'echo changed > /ctx/src/a.txt; touch /ctx/new'
RUN --mount=type=bind,from=stage,source=/f,target=/m/f cat /m/f > /from-stage
RUN --mount=type=bind,from=busybox:test,source=/etc,target=/img sh -c 'cat /img/passwd | head -1 > /from-image'
RUN --mount=type=bind,from=stage,target=/st,rw sh -ec 'echo x > /st/f; rm /st/bin/busybox'
`
	res, err := e.build(t, ctxDir, df, nil)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := imageFiles(t, e, res)
	for name, want := range map[string]string{"from-context": "one\n", "from-stage": "from-stage\n", "from-image": "root:x:0:0:root:/root:/bin/sh\n"} {
		if got := readImageFile(t, rootfs, name); got != want {
			t.Errorf("/%s = %q, want %q", name, got, want)
		}
	}
	mustBeAbsent(t, rootfs, "src", "ctx", "m", "img", "st")
	if data, _ := os.ReadFile(filepath.Join(ctxDir, "src/a.txt")); string(data) != "one\n" {
		t.Errorf("the rw bind wrote through to the context: %q", data)
	}
	if _, err := os.Stat(filepath.Join(ctxDir, "new")); err == nil {
		t.Error("the rw bind created a file in the context")
	}

	// The stage the rw mount changed is unchanged for the next step.
	df2 := df + "RUN --mount=type=bind,from=stage,target=/st cat /st/f > /after\n"
	res, err = e.build(t, ctxDir, df2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := readImageFile(t, imageFiles(t, e, res), "after"); got != "from-stage\n" {
		t.Errorf("after a rw mount of the stage, /f = %q", got)
	}

	// A changed context file changes the key of the step that binds it.
	os.WriteFile(filepath.Join(ctxDir, "src/a.txt"), []byte("two\n"), 0o644)
	res, err = e.build(t, ctxDir, df, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := readImageFile(t, imageFiles(t, e, res), "from-context"); got != "two\n" {
		t.Errorf("after changing the context, /from-context = %q (a stale cache hit)", got)
	}
}

// TestRunMountCache: a cache mount keeps what a step left there between
// two --no-cache builds, is not in the layer, is counted by Usage and
// removed by prune; mode, uid and gid apply to a new one.
func TestRunMountCache(t *testing.T) {
	e := newEnv(t)
	df := `FROM busybox:test
RUN --mount=type=cache,target=/var/cache/dl,uid=7,gid=8,mode=0750 sh -ec 'stat -c "%u:%g %a" /var/cache/dl > /owner; if [ -e /var/cache/dl/file ]; then cp /var/cache/dl/file /got; else echo downloaded > /var/cache/dl/file; echo first > /got; fi'
`
	build := func() string {
		res, err := e.build(t, t.TempDir(), df, &buildOpts{noCache: true})
		if err != nil {
			t.Fatal(err)
		}
		rootfs := imageFiles(t, e, res)
		mustBeAbsent(t, rootfs, "var/cache/dl/file")
		if got := readImageFile(t, rootfs, "owner"); got != "7:8 750\n" {
			t.Errorf("cache dir %q, want 7:8 750", got)
		}
		return readImageFile(t, rootfs, "got")
	}
	if got := build(); got != "first\n" {
		t.Fatalf("first build: /got = %q", got)
	}
	if got := build(); got != "downloaded\n" {
		t.Fatalf("second build: /got = %q, want the file the first build left in the cache", got)
	}
	u, err := e.st.Usage()
	if err != nil || u.CacheMounts != 1 || u.CacheMountsSize == 0 {
		t.Errorf("usage: %d cache mounts of %d bytes (%v), want 1 holding the file", u.CacheMounts, u.CacheMountsSize, err)
	}
	rep, err := e.st.Prune(context.Background(), cache.PruneOptions{})
	if err != nil || rep.CacheMounts != 1 {
		t.Fatalf("prune: %+v, %v; want one cache mount removed", rep, err)
	}
	if got := build(); got != "first\n" {
		t.Fatalf("after prune: /got = %q, want an empty cache again", got)
	}
}

// TestRunMountCacheFrom: a new cache mount with from= starts with the
// source's content, later mounts inside an earlier one's target are set
// up after it whatever the order of the options, and ro cannot be
// written.
func TestRunMountCacheFrom(t *testing.T) {
	e := newEnv(t)
	df := `FROM busybox:test AS seed
RUN mkdir /data && echo seeded > /data/f

FROM busybox:test
RUN --mount=type=cache,id=inner,target=/outer/inner,from=seed,source=/data --mount=type=tmpfs,target=/outer sh -ec 'cat /outer/inner/f > /got; echo more > /outer/inner/g'
RUN --mount=type=cache,id=inner,target=/c,ro sh -ec 'cat /c/g > /got2; ! touch /c/x 2>/dev/null'
`
	res, err := e.build(t, t.TempDir(), df, nil)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := imageFiles(t, e, res)
	for p, want := range map[string]string{"got": "seeded\n", "got2": "more\n"} {
		if got := readImageFile(t, rootfs, p); got != want {
			t.Errorf("/%s = %q, want %q", p, got, want)
		}
	}
	mustBeAbsent(t, rootfs, "outer", "c")
}

// TestRunMountCacheLocked: two builds at once whose steps use one cache
// mount with sharing=locked take turns: each step claims the directory
// with mkdir, and the other would find it claimed.
func TestRunMountCacheLocked(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			df := "FROM busybox:test\nRUN --mount=type=cache,id=shared-dl,target=/c,sharing=locked sh -ec 'mkdir /c/busy; sleep 1; rmdir /c/busy; echo " + string(rune('a'+i)) + " > /x'\n"
			_, errs[i] = e.build(t, t.TempDir(), df, &buildOpts{noCache: true})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("build %d: %v (both held the locked cache mount at once)", i, err)
		}
	}
}

// TestRunMountSecret: a file secret and an env secret reach the step
// (the file on a read-only noexec tmpfs, mode 0400 unless mode=), never a
// layer, history, key, event or any file of the store; the mount point
// leaves no directory behind; a missing optional secret is a note.
func TestRunMountSecret(t *testing.T) {
	e := newEnv(t)
	fileValue, envValue := "file-secret-"+randHex(t, 8), "env-secret-"+randHex(t, 8)
	secretFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(secretFile, []byte(fileValue), 0o600)
	id1, v1, err := executor.ParseSecret("id=token,src="+secretFile, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	id2, v2, err := executor.ParseSecret("id=apikey", func(k string) (string, bool) { return envValue, k == "apikey" })
	if err != nil {
		t.Fatal(err)
	}
	// The Dockerfile holds only hashes of the values: it is in the history.
	sum := func(v string) string { h := sha256.Sum256([]byte(v)); return hex.EncodeToString(h[:]) }
	df := `FROM busybox:test
RUN --mount=type=secret,id=token sh -ec 'test "$(sha256sum < /run/secrets/token | cut -d" " -f1)" = ` + sum(fileValue) + `; stat -c %a /run/secrets/token > /mode; grep " /run/secrets/token " /proc/mounts > /mountline'
RUN --mount=type=secret,id=token,target=/newdir/s,mode=0440 --mount=type=secret,id=apikey,env=API_KEY sh -ec 'test "$(sha256sum < /newdir/s | cut -d" " -f1)" = ` + sum(fileValue) + `; test "$(printf %s "$API_KEY" | sha256sum | cut -d" " -f1)" = ` + sum(envValue) + `; stat -c %a /newdir/s > /mode2'
RUN --mount=type=secret,id=absent sh -c 'test ! -e /run/secrets/absent'
`
	var events []executor.Event
	res, err := e.buildWith(t, t.TempDir(), df, &buildOpts{events: &events}, func(o *executor.Options) {
		o.Secrets = map[string][]byte{id1: v1, id2: v2}
	})
	if err != nil {
		t.Fatal(err)
	}
	rootfs := imageFiles(t, e, res)
	if got := readImageFile(t, rootfs, "mode"); got != "400\n" {
		t.Errorf("secret mode %q, want 400", got)
	}
	if got := readImageFile(t, rootfs, "mode2"); got != "440\n" {
		t.Errorf("secret mode with mode=0440: %q", got)
	}
	if got := readImageFile(t, rootfs, "mountline"); !strings.Contains(got, "tmpfs ro,nosuid,nodev,noexec") {
		t.Errorf("secret mount %q, want a read-only nosuid nodev noexec tmpfs", got)
	}
	mustBeAbsent(t, rootfs, "run", "newdir")
	note := false
	for _, ev := range events {
		note = note || strings.Contains(ev.Line, "secret absent was not given")
		for _, v := range []string{fileValue, envValue} {
			if strings.Contains(ev.Line, v) || (ev.Err != nil && strings.Contains(ev.Err.Error(), v)) {
				t.Errorf("an event holds a secret: %+v", ev)
			}
		}
	}
	if !note {
		t.Error("no note that the optional secret was not given")
	}
	for _, h := range res.Config.History {
		if strings.Contains(h.CreatedBy, envValue) {
			t.Errorf("history holds the env secret: %s", h.CreatedBy)
		}
	}
	e.st.Close() // flush nothing pending; the store is read as files below
	grepTree(t, e.root, fileValue, envValue)
}

// grepTree fails for every file under root that holds one of values,
// compressed blobs included (decompressed through the store's sniffer).
func grepTree(t *testing.T, root string, values ...string) {
	t.Helper()
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		if r, err := cache.DecompressLayer(bytes.NewReader(data)); err == nil {
			if plain, err := io.ReadAll(io.LimitReader(r, 256<<20)); err == nil {
				data = append(data, plain...)
			}
			r.Close()
		}
		for _, v := range values {
			if bytes.Contains(data, []byte(v)) {
				t.Errorf("%s holds a secret", p)
			}
		}
		return nil
	})
}

// TestRunMountSSH: a step lists the key of an ssh-agent the test starts
// (with a key it generates) through the socket --ssh forwards, as
// "ssh-add -l" lists it on the host.
func TestRunMountSSH(t *testing.T) {
	e := newEnv(t)
	agentBin := testutil.RequireTool(t, "ssh-agent")
	keygen := testutil.RequireTool(t, "ssh-keygen")
	sshAdd := testutil.RequireTool(t, "ssh-add")
	goBin := testutil.RequireTool(t, "go")
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "probe-key", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	sock := filepath.Join(dir, "agent.sock")
	agent := exec.Command(agentBin, "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	env := append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	for attempt := 0; ; attempt++ {
		add := exec.Command(sshAdd, key)
		add.Env = env
		out, err := add.CombinedOutput()
		if err == nil {
			break // the agent is up once it takes the key
		}
		if attempt == 1000 {
			t.Fatalf("ssh-add: %v\n%s", err, out)
		}
	}
	list := exec.Command(sshAdd, "-l")
	list.Env = env
	want, err := list.Output()
	if err != nil {
		t.Fatal(err)
	}
	ctxDir := t.TempDir()
	build := exec.Command(goBin, "build", "-o", filepath.Join(ctxDir, "agentprobe"), "./testdata/agentprobe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building agentprobe: %v\n%s", err, out)
	}
	id, path, err := executor.ParseSSH("default", func(k string) (string, bool) { return sock, k == "SSH_AUTH_SOCK" })
	if err != nil {
		t.Fatal(err)
	}
	df := "FROM busybox:test\nCOPY agentprobe /agentprobe\n" +
		"RUN --mount=type=ssh sh -c 'test \"$SSH_AUTH_SOCK\" = /run/buildkit/ssh_agent.0 && /agentprobe > /keys'\n" +
		"RUN --mount=type=ssh --mount=type=ssh sh -c 'test -S /run/buildkit/ssh_agent.0 && test -S /run/buildkit/ssh_agent.1'\n" +
		// The step's user reaches the agent through a socket it owns.
		"USER 1000:1000\nRUN --mount=type=ssh,uid=1000 /agentprobe > /tmp/keys-as-user\n"
	res, err := e.buildWith(t, ctxDir, df, nil, func(o *executor.Options) { o.SSH = map[string]string{id: path} })
	if err != nil {
		t.Fatal(err)
	}
	rootfs := imageFiles(t, e, res)
	// ssh-add -l: "256 SHA256:… probe-key (ED25519)".
	fields := strings.Fields(string(want))
	if len(fields) < 3 {
		t.Fatalf("ssh-add -l: %q", want)
	}
	for _, p := range []string{"keys", "tmp/keys-as-user"} {
		if got := readImageFile(t, rootfs, p); got != fields[1]+" "+fields[2]+"\n" {
			t.Errorf("/%s: the step listed %q; ssh-add -l on the host lists %q", p, got, want)
		}
	}
	mustBeAbsent(t, rootfs, "run")

	// A key file instead of a socket: the builder serves it as an agent.
	id, path, err = executor.ParseSSH("default="+key, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	res, err = e.buildWith(t, ctxDir, df, &buildOpts{noCache: true}, func(o *executor.Options) { o.SSH = map[string]string{id: path} })
	if err != nil {
		t.Fatal(err)
	}
	if got := readImageFile(t, imageFiles(t, e, res), "keys"); !strings.HasPrefix(got, fields[1]+" ") {
		t.Errorf("with the key file: the step listed %q, want the key %s", got, fields[1])
	}
}

// TestRunMountFromLaterStage: unlike COPY --from, RUN --mount from= may
// not name a stage further down the file (BuildKit: "stage needs to be
// defined before current command"); it is refused when the Dockerfile is
// read.
func TestRunMountFromLaterStage(t *testing.T) {
	e := newEnv(t)
	df := `FROM busybox:test AS first
RUN --mount=type=bind,from=later,source=/made,target=/m cat /m > /got

FROM busybox:test AS later
RUN echo made-later > /made
`
	_, err := e.build(t, t.TempDir(), df, &buildOpts{target: "first"})
	want := "Dockerfile:2: RUN --mount from=later: stage later is defined after this one; a RUN mount can read only a stage defined before it"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant %s", err, want)
	}
}

// TestRunMountRelativeTarget: a relative target is below WORKDIR, as
// BuildKit places it.
func TestRunMountRelativeTarget(t *testing.T) {
	e := newEnv(t)
	df := "FROM busybox:test\nWORKDIR /work\nRUN --mount=type=tmpfs,target=scratch sh -c 'grep \" /work/scratch tmpfs \" /proc/mounts > /found'\n"
	res, err := e.build(t, t.TempDir(), df, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := readImageFile(t, imageFiles(t, e, res), "found"); got == "" {
		t.Error("no tmpfs at /work/scratch")
	}
}
