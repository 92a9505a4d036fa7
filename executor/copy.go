package executor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/parser"
	"github.com/builderdev/builder/snapshot"
)

// copyOpts are the resolved options of one COPY or ADD.
type copyOpts struct {
	add      bool
	dest     string // absolute in the image; trailing "/" kept
	chown    string
	chmod    *os.FileMode
	unpack   bool // ADD: extract local archives
	inCtx    bool
	ignore   *parser.Ignore
	patterns []string
}

// stepCopy runs COPY and ADD. Sources come from the build context or,
// with --from, from a stage or image mounted read-only beside the target.
func (b *build) stepCopy(ctx context.Context, sc *stepCtx, s *parser.Stage, st *imageState, ins *parser.Copy, used []string) error {
	if err := unsupportedCopy(ins); err != nil {
		return err
	}
	o := copyOpts{add: ins.Add, chown: ins.Chown, patterns: ins.Sources, unpack: ins.Add,
		inCtx: ins.From == nil, ignore: b.opts.Ignore}
	if ins.Unpack != nil {
		o.unpack = *ins.Unpack
	}
	if ins.Chmod != "" {
		m, err := strconv.ParseUint(ins.Chmod, 8, 32)
		if err != nil || m > 0o7777 {
			return fmt.Errorf("invalid --chmod=%s: want an octal mode such as 0755", ins.Chmod)
		}
		mode := unixMode(uint32(m))
		o.chmod = &mode
	}
	o.dest = ins.Dest
	if !path.IsAbs(o.dest) {
		o.dest = path.Join(st.workdir(), o.dest)
		if strings.HasSuffix(ins.Dest, "/") || ins.Dest == "." {
			o.dest += "/"
		}
	}

	kb := cache.NewKeyBuilder()
	kb.AddString("parent", st.fsKey.String())
	kb.AddString("copy", instructionJSON(ins))
	kb.AddString("dest", o.dest)

	var srcs []*source
	var from *imageState
	if o.inCtx {
		var err error
		srcs, err = selectSources(b.opts.ContextDir, o.patterns, o.ignore, true)
		if err != nil {
			return err
		}
		for _, s := range srcs {
			if err := s.walk(o.ignore, true); err != nil {
				return err
			}
		}
		h := sha256.New()
		if err := b.hashSources(h, srcs); err != nil {
			return err
		}
		kb.AddString("sources", hex.EncodeToString(h.Sum(nil)))
	} else {
		var err error
		if from, err = b.copyFrom(ctx, ins.From); err != nil {
			return err
		}
		// The source's layers identify its content exactly.
		for _, l := range from.layers {
			kb.AddString("from-layer", l.DiffID.String())
		}
		if err := b.ensureChain(ctx, sc, from); err != nil {
			return err
		}
	}
	if err := checkMultiDest(o, srcs, ins); err != nil {
		return err
	}
	createdBy := copyName(ins) + " " + stepArgs(sc.step)
	var prevKey cache.Key
	reuse := ""
	if from == nil {
		prevKey, reuse = b.previousCopy(sc, ins, o)
	}
	err := b.fsStep(ctx, sc, st, kb, createdBy, func(ctx context.Context, a *snapshot.Active) error {
		if from == nil {
			var c *copier
			err := withRootfs(a.Mount, func(root string) (err error) {
				c, err = copyInto(ctx, root, a.Upper(), o, srcs)
				return err
			})
			if err != nil {
				return err
			}
			// The mount is gone: new files go straight into the upper
			// dir, several at a time.
			c.reuse = reuse
			return c.finishDeferred(0)
		}
		view, release, err := b.opts.Snapshots.View(ctx, from.chain())
		if err != nil {
			return err
		}
		defer release()
		return snapshot.Private(func() error {
			srcRoot, unmountSrc, err := mountTemp(view)
			if err != nil {
				return err
			}
			defer unmountSrc()
			root, unmount, err := mountTemp(a.Mount)
			if err != nil {
				return err
			}
			defer unmount()
			srcs, err := selectSources(srcRoot, o.patterns, nil, false)
			if err != nil {
				return err
			}
			if err := checkMultiDest(o, srcs, ins); err != nil {
				return err
			}
			c, err := copyInto(ctx, root, a.Upper(), o, srcs)
			if err != nil {
				return err
			}
			// The sources are mounted on this thread only: write here,
			// one at a time, once the destination is unmounted.
			unmount()
			return c.finishDeferred(1)
		})
	})
	if err == nil && from == nil {
		b.recordCopy(prevKey, st)
	}
	return err
}

// previousCopy finds the snapshot the last run of this COPY produced, in
// any build from the same context. Its unchanged files are hardlinked into
// the new result instead of written again: on a rebuild after one file
// changed, that saves creating thousands of inodes, which is what such a
// COPY costs on ext4. Snapshots never change, so sharing inodes between
// them is safe; the copier checks owner, mode, times and content first.
func (b *build) previousCopy(sc *stepCtx, ins *parser.Copy, o copyOpts) (cache.Key, string) {
	kb := cache.NewKeyBuilder()
	kb.AddString("previous-copy", b.opts.ContextDir)
	kb.AddString("stage", sc.stage)
	kb.AddString("copy", instructionJSON(ins))
	kb.AddString("dest", o.dest)
	key := kb.Sum()
	e, err := b.opts.Store.LookupStep(key)
	if err != nil || e.Layer == nil {
		return key, ""
	}
	id := snapshot.ID(e.Layer.DiffID.Hex)
	if !b.opts.Snapshots.Exists(id) {
		return key, ""
	}
	return key, b.opts.Snapshots.Dir(id)
}

// recordCopy remembers the layer this COPY step ended with.
func (b *build) recordCopy(key cache.Key, st *imageState) {
	h := st.cfg.History[len(st.cfg.History)-1]
	if h.EmptyLayer || len(st.layers) == 0 {
		return
	}
	l := st.layers[len(st.layers)-1]
	// Best effort: losing it only costs the next COPY its shortcut.
	b.opts.Store.RecordStep(key, cache.Entry{Layer: &l})
}

// copyName is "COPY" or "ADD".
func copyName(ins *parser.Copy) string {
	if ins.Add {
		return "ADD"
	}
	return "COPY"
}

func unsupportedCopy(ins *parser.Copy) error {
	what := copyName(ins)
	switch {
	case len(ins.Inline) > 0:
		return fmt.Errorf("%s with a heredoc is not supported yet", what)
	case len(ins.Exclude) > 0:
		return fmt.Errorf("%s --exclude is not supported yet", what)
	case ins.Parents:
		return fmt.Errorf("%s --parents is not supported yet", what)
	case ins.Checksum != "":
		return fmt.Errorf("ADD --checksum is not supported yet")
	}
	for _, s := range ins.Sources {
		if ins.Add && (strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "git@")) {
			return fmt.Errorf("ADD of a URL (%s) is not supported yet", s)
		}
	}
	return nil
}

// checkMultiDest applies docker's rule: several sources need a directory
// destination written with a trailing slash.
func checkMultiDest(o copyOpts, srcs []*source, ins *parser.Copy) error {
	multi := len(srcs) > 1
	for _, p := range o.patterns {
		if hasGlob(p) && len(srcs) > 1 {
			multi = true
		}
	}
	if multi && !strings.HasSuffix(o.dest, "/") {
		return fmt.Errorf("when using %s with more than one source file, the destination must be a directory and end with a /", copyName(ins))
	}
	return nil
}

// copyFrom returns the state whose files COPY --from reads.
func (b *build) copyFrom(ctx context.Context, f *parser.CopyFrom) (*imageState, error) {
	if f.Stage >= 0 {
		return b.waitStage(ctx, f.Stage)
	}
	return b.fromImage(ctx, f.Image, b.opts.Platform, nil)
}

// copyInto copies the sources into the rootfs mounted at root, whose
// upper dir is upper. Directories, and files that replace something the
// image has, are made through the mount, which gets whiteouts, copy-up and
// symlinks in the image right. Files new to the image are only recorded:
// finishDeferred writes them into the upper dir once it is unmounted,
// without overlay's cost per file (a COPY of 20,000 files spent most of
// its time there).
func copyInto(ctx context.Context, root, upper string, o copyOpts, srcs []*source) (*copier, error) {
	uid, gid := 0, 0
	if o.chown != "" {
		var err error
		if uid, gid, err = lookupChown(root, o.chown); err != nil {
			return nil, err
		}
	}
	c := &copier{ctx: ctx, root: root, upper: upper, uid: uid, gid: gid, chmod: o.chmod, inUpper: map[string]bool{}}
	for _, s := range srcs {
		if err := s.walk(o.ignore, o.inCtx); err != nil {
			return nil, err
		}
		if err := c.copySource(o, s); err != nil {
			return nil, err
		}
	}
	return c, nil
}

type copier struct {
	ctx         context.Context
	root, upper string
	uid, gid    int
	chmod       *os.FileMode
	deferred    []deferredFile
	dirs        []dirTime       // directory times to set last
	inUpper     map[string]bool // dirs known to exist in the upper dir
	reuse       string          // a previous result of this COPY to link unchanged files from
}

// deferredFile is a regular file to write straight into the upper dir.
type deferredFile struct {
	rel  string // relative to the rootfs
	src  string
	fi   os.FileInfo
	mode os.FileMode
}

type dirTime struct {
	rel string
	mt  time.Time
}

func (c *copier) copySource(o copyOpts, s *source) error {
	destIsDir := strings.HasSuffix(o.dest, "/")
	dest := path.Clean(o.dest)
	if s.fi.IsDir() {
		existed := false
		if p, err := securejoin.SecureJoin(c.root, dest); err == nil {
			_, err := os.Lstat(p)
			existed = err == nil
		}
		dir, err := mkdirAllIn(c.root, dest, 0o755, c.uid, c.gid)
		if err != nil {
			return fmt.Errorf("creating %s: %w", dest, err)
		}
		if !existed {
			// A directory the COPY creates takes its source's time, as
			// BuildKit does, so the layer does not depend on the clock.
			c.dirs = append(c.dirs, dirTime{rel: c.rel(dir), mt: s.fi.ModTime()})
		}
		return c.copyEntries(dir, s.entries)
	}
	if o.add && o.unpack && s.fi.Mode().IsRegular() {
		if ok, err := c.extractArchive(s.abs, dest); ok || err != nil {
			return err
		}
	}
	// A file lands inside dest when dest is (or names) a directory.
	target := dest
	if !destIsDir {
		if p, err := securejoin.SecureJoin(c.root, dest); err == nil {
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				destIsDir = true
			}
		}
	}
	if destIsDir {
		target = path.Join(dest, path.Base(s.rel))
		if s.rel == "." {
			target = dest
		}
	}
	parent, err := mkdirAllIn(c.root, path.Dir(target), 0o755, c.uid, c.gid)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path.Dir(target), err)
	}
	return c.copyEntry(filepath.Join(parent, path.Base(target)), s.abs, s.fi)
}

// copyEntries copies a directory's walked entries below dir. Each
// entry's parent is the target of its parent entry, which copyEntry made a
// real directory, so no path is resolved twice and no symlink in the image
// is followed.
func (c *copier) copyEntries(dir string, entries []entry) error {
	targets := map[string]string{".": dir}
	for _, e := range entries {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		parent, ok := targets[path.Dir(e.rel)]
		if !ok {
			return fmt.Errorf("internal: no parent for %s", e.rel)
		}
		target := filepath.Join(parent, path.Base(e.rel))
		if err := c.copyEntry(target, e.abs, e.fi); err != nil {
			return err
		}
		if e.fi.IsDir() {
			targets[e.rel] = target
			c.dirs = append(c.dirs, dirTime{rel: c.rel(target), mt: e.fi.ModTime()})
		}
	}
	return nil
}

// rel is target's path relative to the mounted root.
func (c *copier) rel(target string) string {
	r, err := filepath.Rel(c.root, target)
	if err != nil {
		return target
	}
	return r
}

// ensureInUpper makes sure the directory at merged path dir exists in the
// upper dir, copying it up (with its ancestors) when only a lower layer
// has it: a chown to its own owner is enough for overlay to copy it up.
func (c *copier) ensureInUpper(dir string) error {
	rel := c.rel(dir)
	if c.inUpper[rel] {
		return nil
	}
	up := filepath.Join(c.upper, rel)
	if fi, err := os.Lstat(up); err == nil && fi.IsDir() {
		c.inUpper[rel] = true
		return nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return err
	}
	if err := os.Lchown(dir, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("copying up %s: %w", rel, err)
	}
	if fi, err := os.Lstat(up); err != nil || !fi.IsDir() {
		return fmt.Errorf("copying up %s: not in the upper dir after chown", rel)
	}
	c.inUpper[rel] = true
	return nil
}

// finishDeferred writes the recorded files into the upper dir, with up to
// workers at once (0: one per CPU), then sets directory times, which the
// writes would otherwise change.
func (c *copier) finishDeferred(workers int) error {
	write := func(i int) error {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		d := c.deferred[i]
		if c.reuse != "" && d.linkFrom(c.reuse, c.upper, c.uid, c.gid) {
			return nil
		}
		return d.write(c.upper, c.uid, c.gid)
	}
	var err error
	if workers == 1 {
		for i := range c.deferred {
			if err = write(i); err != nil {
				break
			}
		}
	} else {
		err = parallel(len(c.deferred), write)
	}
	if err != nil {
		return err
	}
	for i := len(c.dirs) - 1; i >= 0; i-- {
		d := c.dirs[i]
		p := filepath.Join(c.upper, d.rel)
		if _, err := os.Lstat(p); err == nil {
			os.Chtimes(p, d.mt, d.mt)
		}
	}
	return nil
}

// linkFrom hardlinks the file from the same path in a previous result of
// the COPY when that file is exactly what write would make: same owner,
// mode, time, size and bytes. It reports whether it did.
func (d deferredFile) linkFrom(prev, upper string, uid, gid int) bool {
	cand := filepath.Join(prev, d.rel)
	var st unix.Stat_t
	if err := unix.Lstat(cand, &st); err != nil {
		return false
	}
	want := uint32(d.mode.Perm())
	if d.mode&fs.ModeSetuid != 0 {
		want |= unix.S_ISUID
	}
	if d.mode&fs.ModeSetgid != 0 {
		want |= unix.S_ISGID
	}
	if d.mode&fs.ModeSticky != 0 {
		want |= unix.S_ISVTX
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o7777 != want ||
		int(st.Uid) != uid || int(st.Gid) != gid || st.Size != d.fi.Size() ||
		st.Mtim.Nano() != d.fi.ModTime().UnixNano() {
		return false
	}
	if same, err := sameContent(cand, d.src); err != nil || !same {
		return false
	}
	return os.Link(cand, filepath.Join(upper, d.rel)) == nil
}

// comparePool recycles sameContent's buffers: a COPY compares thousands
// of files, and fresh buffers for each kept the garbage collector busy.
var comparePool = sync.Pool{New: func() any { return new([2][64 << 10]byte) }}

func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	bufs := comparePool.Get().(*[2][64 << 10]byte)
	defer comparePool.Put(bufs)
	ba, bb := bufs[0][:], bufs[1][:]
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == io.EOF || eb == io.ErrUnexpectedEOF, nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil {
			return false, eb
		}
	}
}

func (d deferredFile) write(upper string, uid, gid int) error {
	p := filepath.Join(upper, d.rel)
	in, err := os.Open(d.src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := out.ReadFrom(in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", d.src, err)
	}
	// Owner before mode: a chown clears the setuid bits.
	if err := out.Chown(uid, gid); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(d.mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chtimes(p, d.fi.ModTime(), d.fi.ModTime())
}

// copyEntry creates target (a host path inside root whose parent exists)
// as a copy of the file src.
func (c *copier) copyEntry(target, src string, fi os.FileInfo) error {
	mode := fi.Mode()
	if c.chmod != nil && mode&fs.ModeSymlink == 0 {
		mode = mode&^(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) | *c.chmod
	}
	existing, err := os.Lstat(target)
	exists := err == nil
	switch {
	case fi.IsDir():
		if exists && existing.IsDir() {
			return nil // merge into what the image has, keeping its metadata
		}
		if exists {
			if err := os.RemoveAll(target); err != nil {
				return err
			}
		}
		if err := os.Mkdir(target, 0o700); err != nil {
			return err
		}
	case mode&fs.ModeSymlink != 0:
		link, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if exists {
			if err := removeForReplace(target, existing); err != nil {
				return err
			}
		}
		if err := os.Symlink(link, target); err != nil {
			return err
		}
		return c.finish(target, fi, mode, true)
	case mode.IsRegular():
		if !exists {
			if err := c.ensureInUpper(filepath.Dir(target)); err != nil {
				return err
			}
			c.deferred = append(c.deferred, deferredFile{rel: c.rel(target), src: src, fi: fi, mode: mode})
			return nil
		}
		if err := removeForReplace(target, existing); err != nil {
			return err
		}
		if err := copyFileData(target, src); err != nil {
			return err
		}
	case mode&fs.ModeNamedPipe != 0:
		if exists {
			if err := removeForReplace(target, existing); err != nil {
				return err
			}
		}
		if err := mkfifo(target); err != nil {
			return err
		}
	case mode&fs.ModeSocket != 0:
		return nil // sockets cannot be copied; docker skips them too
	default:
		return fmt.Errorf("%s: unsupported file type %s", src, mode.Type())
	}
	return c.finish(target, fi, mode, false)
}

func removeForReplace(target string, existing os.FileInfo) error {
	if existing.IsDir() {
		return fmt.Errorf("cannot replace directory %s with a file", target)
	}
	return os.Remove(target)
}

// finish sets owner, mode and times, in that order: a chown clears the
// setuid bits, so the mode must come after it.
func (c *copier) finish(target string, fi os.FileInfo, mode os.FileMode, symlink bool) error {
	if err := os.Lchown(target, c.uid, c.gid); err != nil {
		return err
	}
	if symlink {
		return lutimes(target, fi.ModTime())
	}
	if err := os.Chmod(target, mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return err
	}
	return os.Chtimes(target, fi.ModTime(), fi.ModTime())
}

func copyFileData(target, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := out.ReadFrom(in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return out.Close()
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
