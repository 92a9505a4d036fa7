package executor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/parser"
	"github.com/builderdev/builder/snapshot"
)

// copyOpts are the resolved options of one COPY or ADD.
type copyOpts struct {
	add      bool
	dest     string // absolute in the image; trailing "/" kept
	chown    string
	chmod    chmodFunc // nil: files keep their modes
	unpack   bool      // ADD: extract local archives
	inCtx    bool      // sources come from a context directory, ctxDir
	ctxDir   string    // the build context, or a --build-context directory
	ignore   *parser.Ignore
	patterns []string
	parents  bool           // --parents: sources keep their paths
	exclude  *parser.Ignore // --exclude
	// maxArchive caps what ADD unpacks from one archive, as layers are
	// capped (snapshot.Store.MaxLayerSize).
	maxArchive int64
}

func (b *build) copyOptions(ins *parser.Copy, st *imageState) (copyOpts, error) {
	o := copyOpts{add: ins.Add, chown: ins.Chown, patterns: ins.Sources, unpack: ins.Add,
		inCtx: ins.From == nil, ctxDir: b.opts.ContextDir, ignore: b.opts.Ignore, dest: ins.Dest,
		maxArchive: b.snaps.MaxLayerSize()}
	if ins.From != nil && ins.From.Dir != "" {
		// a --build-context directory: read as the build context is
		var err error
		o.inCtx, o.ctxDir = true, ins.From.Dir
		if o.ignore, err = readIgnoreFile(filepath.Join(o.ctxDir, ".dockerignore")); err != nil {
			return o, err
		}
	}
	if ins.Unpack != nil {
		o.unpack = *ins.Unpack
	}
	o.parents = ins.Parents
	var err error
	if o.exclude, err = parseExclude(ins.Exclude); err != nil {
		return o, err
	}
	if ins.Chmod != "" {
		if o.chmod, err = parseChmod(ins.Chmod); err != nil {
			return o, err
		}
	}
	if !path.IsAbs(o.dest) {
		o.dest = path.Join(st.workdir(), o.dest)
		if strings.HasSuffix(ins.Dest, "/") || ins.Dest == "." {
			o.dest += "/"
		}
	}
	return o, nil
}

// stepCopy runs COPY and ADD. Sources come from the build context or,
// with --from, from a stage or image mounted read-only beside the target.
func (b *build) stepCopy(ctx context.Context, sc *stepCtx, st *imageState, ins *parser.Copy) error {
	if err := checkStep(ins, &b.opts); err != nil {
		return err
	}
	o, err := b.copyOptions(ins, st)
	if err != nil {
		return err
	}
	kb := keyCopy(st.fsKey, ins, o.dest)
	createdBy := copyName(ins) + " " + stepArgs(sc.step)

	if ins.Add && len(ins.Sources) == 1 && isGit(ins.Sources[0]) {
		return b.stepAddGit(ctx, sc, st, ins, o, kb, createdBy)
	}
	var dl *downloads
	if ins.Add && slices.ContainsFunc(ins.Sources, isHTTP) {
		if dl, err = b.prepareDownloads(ctx, kb, ins); err != nil {
			return err
		}
		defer dl.close()
		o.patterns = slices.DeleteFunc(slices.Clone(o.patterns), isHTTP)
		if len(o.patterns) == 0 {
			return b.fsStep(ctx, sc, st, kb, createdBy, func(ctx context.Context, a *snapshot.Active) error {
				return b.copyDownloads(ctx, a, o, ins, dl)
			})
		}
	}
	if len(ins.Inline) > 0 && len(ins.Sources) == 0 {
		// The key holds every heredoc's content (copyFields).
		return b.fsStep(ctx, sc, st, kb, createdBy, func(ctx context.Context, a *snapshot.Active) error {
			return b.copyInline(ctx, a, o, ins)
		})
	}

	if !o.inCtx {
		from, err := b.copyFrom(ctx, ins.From)
		if err != nil {
			return err
		}
		addCopyFromLayers(kb, from.layers)
		if err := b.ensureChain(ctx, sc, from); err != nil {
			return err
		}
		return b.fsStep(ctx, sc, st, kb, createdBy, func(ctx context.Context, a *snapshot.Active) error {
			return b.copyFromImage(ctx, a, o, ins, from)
		})
	}
	return b.copyContext(ctx, sc, st, ins, o, kb, createdBy, dl)
}

// copyContext runs a COPY or ADD of files of the build context (and of
// heredocs beside them).
func (b *build) copyContext(ctx context.Context, sc *stepCtx, st *imageState, ins *parser.Copy, o copyOpts, kb *cache.KeyBuilder, createdBy string, dl *downloads) error {
	tree, err := openTree(o.ctxDir, true)
	if err != nil {
		return err
	}
	defer tree.Close()
	srcs, err := selectCopy(tree, o, o.ignore)
	if err != nil {
		return err
	}
	h := sha256.New()
	if err := b.hashSourcesIn(ctx, h, srcs, o.ctxDir); err != nil {
		return err
	}
	addCopySources(kb, hex.EncodeToString(h.Sum(nil)))
	if err := checkMultiDest(&o, srcs, ins); err != nil {
		return err
	}
	prevKey, reuse := b.previousCopy(sc, ins, o)
	err = b.fsStep(ctx, sc, st, kb, createdBy, func(ctx context.Context, a *snapshot.Active) error {
		var c *copier
		err := withRootfs(a.Mount, filepath.Dir(a.Upper()), func(root string) (err error) {
			c, err = copyInto(ctx, root, a.Upper(), o, srcs)
			return err
		})
		if err != nil {
			return err
		}
		// The mount is gone: new files go straight into the upper dir,
		// several at a time.
		c.reuse = reuse
		if err := c.finishDeferred(ctx, 0); err != nil {
			return err
		}
		if dl != nil {
			if err := b.copyDownloads(ctx, a, o, ins, dl); err != nil {
				return err
			}
		}
		if len(ins.Inline) > 0 {
			// After the files, as BuildKit copies them.
			return b.copyInline(ctx, a, o, ins)
		}
		return nil
	})
	if err == nil {
		b.recordCopy(prevKey, st)
	}
	return err
}

// copyFromImage runs COPY --from: the source chain and the target are
// mounted side by side on one private thread.
func (b *build) copyFromImage(ctx context.Context, a *snapshot.Active, o copyOpts, ins *parser.Copy, from *imageState) error {
	view, release, err := b.snaps.View(ctx, from.chain())
	if err != nil {
		return err
	}
	defer release()
	work := filepath.Dir(a.Upper())
	return snapshot.Private(func() error {
		srcRoot, unmountSrc, err := mountTemp(view, work)
		if err != nil {
			return err
		}
		defer unmountSrc()
		tree, err := openTree(srcRoot, false)
		if err != nil {
			return err
		}
		defer tree.Close() // before the unmount, which it would keep busy
		root, unmount, err := mountTemp(a.Mount, work)
		if err != nil {
			return err
		}
		defer unmount()
		srcs, err := selectCopy(tree, o, nil)
		if err != nil {
			return err
		}
		if err := checkMultiDest(&o, srcs, ins); err != nil {
			return err
		}
		c, err := copyInto(ctx, root, a.Upper(), o, srcs)
		if err != nil {
			return err
		}
		// The sources are mounted on this thread only: write here, one
		// at a time, once the destination is unmounted.
		unmount()
		return c.finishDeferred(ctx, 1)
	})
}

// previousCopy finds the snapshot the last run of this COPY produced, in
// any build from the same context. Its unchanged files are hardlinked into
// the new result instead of written again: on a rebuild after one file
// changed, that saves creating thousands of inodes, which is what such a
// COPY costs on ext4. Snapshots never change, so sharing inodes between
// them is safe; the copier checks owner, mode, time and content first.
func (b *build) previousCopy(sc *stepCtx, ins *parser.Copy, o copyOpts) (cache.Key, string) {
	key := keyPreviousCopy(o.ctxDir, sc.stage, ins, o.dest).Sum()
	e, err := b.cache.LookupStep(key)
	if err != nil || e.Layer == nil {
		return key, ""
	}
	id := snapshot.ID(e.Layer.DiffID.Hex)
	if !b.snaps.Exists(id) {
		return key, ""
	}
	return key, b.snaps.Dir(id)
}

// recordCopy remembers the layer this COPY step ended with.
func (b *build) recordCopy(key cache.Key, st *imageState) {
	h := st.cfg.History[len(st.cfg.History)-1]
	if h.EmptyLayer || len(st.layers) == 0 {
		return
	}
	l := st.layers[len(st.layers)-1]
	// Best effort: losing it only costs the next COPY its shortcut.
	b.cache.RecordStep(key, cache.Entry{Layer: &l})
}

// copyName is "COPY" or "ADD".
func copyName(ins *parser.Copy) string {
	if ins.Add {
		return "ADD"
	}
	return "COPY"
}

// checkMultiDest applies the rule docker documents: several sources need
// a directory destination written with a trailing slash. One wildcard
// that matches several files copies them into the destination as a
// directory, as BuildKit does.
func checkMultiDest(o *copyOpts, srcs []*source, ins *parser.Copy) error {
	if strings.HasSuffix(o.dest, "/") || o.parents {
		return nil
	}
	if len(ins.Sources)+len(ins.Inline) > 1 {
		return fmt.Errorf("when using %s with more than one source file, the destination must be a directory and end with a /", copyName(ins))
	}
	if len(srcs) > 1 {
		o.dest += "/"
	}
	return nil
}

// copyFrom returns the state whose files COPY --from reads.
func (b *build) copyFrom(ctx context.Context, f *parser.CopyFrom) (*imageState, error) {
	if f.Stage >= 0 {
		return b.waitStage(ctx, f.Stage)
	}
	st, err := b.fromImage(ctx, f.Image, b.opts.Platform, nil)
	if err != nil {
		return nil, fmt.Errorf("--from=%s: %s, so it was taken for an image, and getting that image failed: %w", f.Image, b.stageNames(), err)
	}
	return st, nil
}

// stageNames says which stages a --from could have named.
func (b *build) stageNames() string {
	var names []string
	for _, s := range b.plan.Stages {
		if s.Name != "" {
			names = append(names, s.Name)
		}
	}
	if len(names) == 0 {
		return "no stage of the Dockerfile has a name"
	}
	return "no stage of the Dockerfile has that name (stages: " + strings.Join(names, ", ") + ")"
}

// unixMode turns permission bits as chmod(1) writes them into an
// os.FileMode.
func unixMode(m uint32) os.FileMode {
	mode := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
