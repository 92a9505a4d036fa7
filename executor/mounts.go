package executor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/executor/container"
	"github.com/builderdev/builder/parser"
	"github.com/builderdev/builder/snapshot"
)

// stepMounts are a RUN's --mount options made ready: what the container
// mounts, what its environment gains (env secrets, SSH_AUTH_SOCK), and
// what to undo once the step is over. Nothing here is in a layer: every
// target is a mount point of the stub layer (container.Mount).
type stepMounts struct {
	mounts  []container.Mount
	env     []string
	release []func() error
}

func (m *stepMounts) close() {
	for i := len(m.release) - 1; i >= 0; i-- {
		m.release[i]()
	}
}

// mountKey adds to a RUN's key what its mounts contribute to the result:
// the kind and target of each, and the content of bind sources. A
// cache mount's content, a secret's value and an ssh agent are never
// keyed, as BuildKit keys them.
func (b *build) mountKey(ctx context.Context, sc *stepCtx, kb *cache.KeyBuilder, ins *parser.Run, workdir string) (contextSums, error) {
	sums := contextSums{}
	targets, err := mountTargets(ins, workdir)
	if err != nil {
		return nil, err
	}
	for i, m := range ins.Mounts {
		target := targets[i]
		kb.AddString("run.mount", m.Type+" "+target)
		switch m.Type {
		case "bind":
			kb.AddString("run.mount.source", m.Source)
			kb.AddString("run.mount.rw", strconv.FormatBool(!m.ReadOnly))
			if m.From == "" {
				sum, err := b.contextSum(ctx, m.Source)
				if err != nil {
					return nil, err
				}
				kb.AddString("run.mount.context-files", sum)
				sums[i] = sum
				continue
			}
			from, err := b.mountFrom(ctx, sc, m)
			if err != nil {
				return nil, err
			}
			for _, l := range from.layers {
				kb.AddString("run.mount.from-layer", l.DiffID.String())
			}
		case "tmpfs":
			kb.AddString("run.mount.size", strconv.FormatInt(m.Size, 10))
		}
	}
	return sums, nil
}

// contextSums are, by mount index, the hashes the key of a RUN took of
// the context files its bind mounts show, which the copies it mounts
// must match.
type contextSums map[int]string

// mountTargets are where a RUN's mounts go, in order.
func mountTargets(ins *parser.Run, workdir string) ([]string, error) {
	var out []string
	ssh := 0
	for _, m := range ins.Mounts {
		t, err := mountTarget(m, workdir, ssh)
		if err != nil {
			return nil, err
		}
		if m.Type == "ssh" {
			ssh++
		}
		out = append(out, t)
	}
	return out, nil
}

// mountTarget is where a mount goes, with BuildKit's defaults (an ssh
// mount's numbered among the RUN's ssh mounts); a relative target is
// below the working directory.
func mountTarget(m parser.RunMount, workdir string, ssh int) (string, error) {
	t := m.Target
	if t == "" && m.Type == "secret" {
		id := m.ID
		if id == "" {
			id = path.Base(m.Source)
		}
		t = "/run/secrets/" + id
	}
	if t == "" && m.Type == "ssh" {
		t = "/run/buildkit/ssh_agent." + strconv.Itoa(ssh)
	}
	if t == "" {
		return "", fmt.Errorf("RUN --mount=type=%s needs a target", m.Type)
	}
	if path.IsAbs(t) {
		t = path.Clean(t)
	} else {
		t = path.Join("/", workdir, t)
	}
	if t == "/" {
		return "", fmt.Errorf("RUN --mount=type=%s: invalid mount target %q", m.Type, m.Target)
	}
	return t, nil
}

// prepareMounts sets up every mount of a RUN step in work, a directory of
// the step's that goes when the step is over.
func (b *build) prepareMounts(ctx context.Context, sc *stepCtx, ins *parser.Run, sums contextSums, workdir, work string) (*stepMounts, error) {
	sm := &stepMounts{}
	targets, err := mountTargets(ins, workdir)
	if err != nil {
		return nil, err
	}
	for i, m := range ins.Mounts {
		target := targets[i]
		dir := filepath.Join(work, "mount-"+strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			sm.close()
			return nil, err
		}
		if err := b.prepareMount(ctx, sc, sm, m, target, dir, sums[i]); err != nil {
			sm.close()
			return nil, fmt.Errorf("--mount=type=%s,target=%s: %w", m.Type, target, err)
		}
	}
	return sm, nil
}

func (b *build) prepareMount(ctx context.Context, sc *stepCtx, sm *stepMounts, m parser.RunMount, target, dir, sum string) error {
	switch m.Type {
	case "tmpfs":
		sm.mounts = append(sm.mounts, container.Mount{Target: target, Tmpfs: true, Size: m.Size, NoSuid: true})
		return nil
	case "bind":
		return b.bindMount(ctx, sc, sm, m, target, dir, sum)
	case "cache":
		return b.cacheMount(ctx, sc, sm, m, target)
	case "secret":
		return b.secretMount(sc, sm, m, target)
	case "ssh":
		return b.sshMount(sm, m, target, dir)
	}
	return fmt.Errorf("unknown mount type %q", m.Type)
}

// bindMount binds a directory of the context, a stage or an image,
// read-only unless rw, and then on a copy (the context) or an overlay
// (a stage) whose changes are thrown away with the step.
func (b *build) bindMount(ctx context.Context, sc *stepCtx, sm *stepMounts, m parser.RunMount, target, dir, sum string) error {
	if m.From == "" {
		// A copy of what COPY would see: .dockerignore applies, and the
		// context cannot change under the step nor be written through.
		if err := b.contextCopy(ctx, m.Source, dir, sum); err != nil {
			return err
		}
		sm.mounts = append(sm.mounts, container.Mount{Target: target, Source: dir, ReadOnly: m.ReadOnly})
		return nil
	}
	from, err := b.mountFrom(ctx, sc, m)
	if err != nil {
		return err
	}
	if err := b.ensureChain(ctx, sc, from); err != nil {
		return err
	}
	view, release, err := b.snaps.View(ctx, from.chain())
	if err != nil {
		return err
	}
	sm.release = append(sm.release, release)
	if !m.ReadOnly {
		view.Upper, view.Work = filepath.Join(dir, "upper"), filepath.Join(dir, "work")
		for _, d := range []string{view.Upper, view.Work} {
			if err := os.Mkdir(d, 0o755); err != nil {
				return err
			}
		}
	}
	sm.mounts = append(sm.mounts, container.Mount{Target: target, Overlay: &view, SubPath: m.Source, ReadOnly: m.ReadOnly})
	return nil
}

// mountFrom is the state a from= names: a stage, or an image.
func (b *build) mountFrom(ctx context.Context, sc *stepCtx, m parser.RunMount) (*imageState, error) {
	if m.Stage >= 0 {
		return b.waitStage(ctx, m.Stage)
	}
	st, err := b.fromImage(ctx, m.From, b.opts.Platform, nil)
	if err != nil {
		return nil, fmt.Errorf("from=%s: %s, so it was taken for an image, and getting that image failed: %w", m.From, b.stageNames(), err)
	}
	return st, nil
}

// contextSources selects the context files under rel, as COPY rel would.
func (b *build) contextSources(rel string) (*srcTree, []*source, error) {
	if rel == "" {
		rel = "."
	}
	tree, err := openTree(b.opts.ContextDir, true)
	if err != nil {
		return nil, nil, err
	}
	srcs, err := selectSources(tree, []string{rel}, b.opts.Ignore)
	if err != nil {
		tree.Close()
		return nil, nil, err
	}
	for _, s := range srcs {
		if err := s.walk(b.opts.Ignore); err != nil {
			tree.Close()
			return nil, nil, err
		}
	}
	return tree, srcs, nil
}

// contextSum hashes the context files a bind mount of rel shows.
func (b *build) contextSum(ctx context.Context, rel string) (string, error) {
	tree, srcs, err := b.contextSources(rel)
	if err != nil {
		return "", err
	}
	defer tree.Close()
	h := sha256.New()
	if err := b.hashSources(ctx, h, srcs); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// contextCopy copies the context files under rel into dir, which then
// holds what a bind mount of rel shows: the files the key hashed (want),
// each checked as it is copied, as COPY checks them.
func (b *build) contextCopy(ctx context.Context, rel, dir, want string) error {
	tree, srcs, err := b.contextSources(rel)
	if err != nil {
		return err
	}
	defer tree.Close()
	h := sha256.New()
	if err := b.hashSources(ctx, h, srcs); err != nil {
		return err
	}
	if hex.EncodeToString(h.Sum(nil)) != want {
		return fmt.Errorf("the build context under %s changed while the build was reading it; build again", rel)
	}
	// dir is a plain directory, its own "upper": nothing to mount.
	c, err := copyInto(ctx, dir, dir, copyOpts{dest: "/", inCtx: true}, srcs)
	if err != nil {
		return err
	}
	return c.finishDeferred(ctx, 0)
}

// cacheMount binds a directory of the store that outlives the build.
func (b *build) cacheMount(ctx context.Context, sc *stepCtx, sm *stepMounts, m parser.RunMount, target string) error {
	id := m.ID
	if id == "" {
		id = target
	}
	cm, err := b.opts.Store.CacheMount(id, m.Sharing)
	if err != nil {
		return err
	}
	sm.release = append(sm.release, cm.Release)
	if cm.Created {
		if err := b.fillCacheMount(ctx, sc, m, cm.Dir); err != nil {
			os.RemoveAll(cm.Dir) // so that the next build fills it again
			return err
		}
	}
	sm.mounts = append(sm.mounts, container.Mount{Target: target, Source: cm.Dir, ReadOnly: m.ReadOnly})
	return nil
}

// fillCacheMount gives a new cache directory its mode and owner (BuildKit:
// 0755 root unless mode, uid, gid), and with from= the content of source
// in that stage or image.
func (b *build) fillCacheMount(ctx context.Context, sc *stepCtx, m parser.RunMount, dir string) error {
	mode := os.FileMode(0o755)
	if m.Mode != nil {
		mode = unixMode(*m.Mode)
	}
	uid, gid := 0, 0
	if m.UID != nil {
		uid = *m.UID
	}
	if m.GID != nil {
		gid = *m.GID
	}
	if m.From != "" {
		from, err := b.mountFrom(ctx, sc, m)
		if err != nil {
			return err
		}
		if err := b.ensureChain(ctx, sc, from); err != nil {
			return err
		}
		if err := b.copyOutOf(ctx, from, m.Source, dir); err != nil {
			return err
		}
	}
	if err := os.Lchown(dir, uid, gid); err != nil {
		return err
	}
	return os.Chmod(dir, mode)
}

// copyOutOf copies the tree at rel in st's filesystem into dir.
func (b *build) copyOutOf(ctx context.Context, st *imageState, rel, dir string) error {
	view, release, err := b.snaps.View(ctx, st.chain())
	if err != nil {
		return err
	}
	defer release()
	if rel == "" {
		rel = "."
	}
	return snapshot.Private(func() error {
		root, unmount, err := mountTemp(view, filepath.Dir(dir))
		if err != nil {
			return err
		}
		defer unmount()
		tree, err := openTree(root, false)
		if err != nil {
			return err
		}
		defer tree.Close()
		srcs, err := selectSources(tree, []string{rel}, nil)
		if err != nil {
			return err
		}
		c, err := copyInto(ctx, dir, dir, copyOpts{dest: "/"}, srcs)
		if err != nil {
			return err
		}
		return c.finishDeferred(ctx, 1)
	})
}

// maxSecretSize is BuildKit's bound on a secret's value.
const maxSecretSize = 500 << 10

// secretID is the id a secret mount reads: id=, else the base name of
// its target (BuildKit's default).
func secretID(m parser.RunMount) string {
	if m.ID != "" {
		return m.ID
	}
	if m.Source != "" {
		return m.Source
	}
	return path.Base(m.Target)
}

// secretMount puts a secret on a tmpfs of its own (nodev, nosuid,
// noexec, read-only) at its target, or in a variable with env=. Its
// value crosses to the container in the spec pipe only: it is in no
// layer, key, history, log line or file of the store.
func (b *build) secretMount(sc *stepCtx, sm *stepMounts, m parser.RunMount, target string) error {
	id := secretID(m)
	data, ok := b.opts.Secrets[id]
	if !ok {
		if m.Required {
			return fmt.Errorf("secret %s is required: pass --secret id=%s,src=FILE", id, id)
		}
		sc.log("[note] secret %s was not given (--secret id=%s): the step runs without it", id, id)
		return nil
	}
	if len(data) > maxSecretSize {
		return fmt.Errorf("secret %s is larger than 500 KB", id)
	}
	if m.Env != nil {
		name := *m.Env
		if name == "" {
			name = id
		}
		sm.env = append(sm.env, name+"="+string(data))
		if m.Target == "" {
			return nil // env= alone puts it in the environment only
		}
	}
	mode := uint32(0o400)
	if m.Mode != nil {
		mode = *m.Mode
	}
	f := container.File{Name: "secret", Data: data, Mode: mode}
	if m.UID != nil {
		f.UID = *m.UID
	}
	if m.GID != nil {
		f.GID = *m.GID
	}
	sm.mounts = append(sm.mounts, container.Mount{Target: target, Tmpfs: true, Size: maxSecretSize + 64<<10,
		File: f.Name, Files: []container.File{f}, ReadOnly: true, NoExec: true, NoSuid: true})
	return nil
}
