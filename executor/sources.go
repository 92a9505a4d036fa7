package executor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/internal/fsutil"
	"github.com/builderdev/builder/parser"
)

// source is one top-level match of a COPY/ADD source: a file or a
// directory, and (once walked) everything under it.
type source struct {
	tree    *srcTree
	rel     string      // slash path relative to the source root, as matched (names the copy)
	ctxRel  string      // the same path with symlinks resolved (what ignore rules see, what is opened)
	sum     v1.Hash     // content hash of a regular file, once hashed
	fi      os.FileInfo // of the resolved path
	entries []entry     // for a directory: its contents, parents first, sorted
	keep    string      // COPY --parents: the path below the destination
}

// entry is a file under a directory source.
type entry struct {
	rel string // slash path relative to the directory source
	fi  os.FileInfo
	sum v1.Hash // content hash of a regular file, once hashed
}

// file is the source itself as a file of its tree.
func (s *source) file() srcFile {
	return srcFile{tree: s.tree, path: s.ctxRel, name: s.rel, fi: s.fi}
}

// entryFile is the entry e of the directory source s as a file of its
// tree.
func (s *source) entryFile(e *entry) srcFile {
	return srcFile{tree: s.tree, path: path.Join(s.ctxRel, e.rel), name: path.Join(s.rel, e.rel), fi: e.fi}
}

// sourceError is a source that does not exist in the context, so the
// message can say so the way docker does.
type sourceError struct {
	path string
	msg  string
}

func (e *sourceError) Error() string { return e.msg }

// selectSources resolves COPY/ADD source patterns in the tree t. In the
// build context, ignored paths do not exist and a symlink leading outside
// it is an error. In a mounted image, symlinks resolve inside it.
// Sockets are left out, as docker leaves them out of the context: a glob
// does not match them, and one named is missing.
func selectSources(t *srcTree, patterns []string, ig *parser.Ignore) ([]*source, error) {
	var out []*source
	for _, pat := range patterns {
		rel := strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(pat)), "/")
		if t.inContext && escapes(pat) {
			return nil, fmt.Errorf("forbidden path outside the build context: %s", pat)
		}
		if rel == "" {
			rel = "."
		}
		glob := hasGlob(rel)
		matches := []string{rel}
		if glob {
			m, err := globIn(t, rel, ig)
			if err != nil {
				return nil, err
			}
			matches = m
		}
		n := len(out)
		for _, m := range matches {
			s, err := resolveSource(t, m, ig)
			if err != nil {
				return nil, err
			}
			if s.fi.Mode()&fs.ModeSocket != 0 {
				if glob {
					continue
				}
				return nil, errSocket(m, t.where())
			}
			s.rel = m
			out = append(out, s)
		}
		if glob && len(out) == n {
			return nil, &sourceError{pat, fmt.Sprintf("no source files were specified: %s matches nothing", pat)}
		}
	}
	return out, nil
}

// escapes reports whether a source path climbs out of its root ("../x").
func escapes(p string) bool {
	c := path.Clean(filepath.ToSlash(p))
	return c == ".." || strings.HasPrefix(c, "../")
}

func hasGlob(p string) bool { return strings.ContainsAny(p, "*?[") }

// resolveSource looks up rel in the tree, following symlinks component by
// component; in the context, a link that leads outside it is refused
// rather than followed, and ignored paths are missing.
func resolveSource(t *srcTree, rel string, ig *parser.Ignore) (*source, error) {
	resolved, fi, err := t.resolve(rel)
	if err != nil {
		return nil, err
	}
	if t.inContext && resolved != "." && excluded(ig, resolved) {
		return nil, &sourceError{rel, fmt.Sprintf("stat %s: no such file in build context (excluded by .dockerignore)", rel)}
	}
	return &source{tree: t, fi: fi, ctxRel: resolved}, nil
}

// resolve resolves the symlinks in rel within the tree and returns the
// resulting slash path relative to its root, which holds no symlink, and
// what is there. Each component is looked up beneath the root through the
// components resolved before it, none of which may have become a symlink
// since: a directory swapped for a link to a host directory as the build
// resolves is never entered.
func (t *srcTree) resolve(rel string) (string, os.FileInfo, error) {
	parts := strings.Split(rel, "/")
	var cur []string
	var fi os.FileInfo // of cur, when its last component was just looked up
	hops := 0
	for len(parts) > 0 {
		c := parts[0]
		parts = parts[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				if t.inContext {
					return "", nil, fmt.Errorf("forbidden path outside the build context: %s", rel)
				}
				continue
			}
			cur, fi = cur[:len(cur)-1], nil
			continue
		}
		next := append(slices.Clone(cur), c)
		p := strings.Join(next, "/")
		cfi, target, err := t.lookup(p)
		switch {
		case errors.Is(err, unix.ENOENT):
			return "", nil, &sourceError{rel, fmt.Sprintf("stat %s: no such file in %s", rel, t.where())}
		case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.EACCES):
			return "", nil, &os.PathError{Op: "lstat", Path: p, Err: err}
		case err != nil:
			return "", nil, openErr("lstat", rel, err)
		}
		if cfi.Mode()&fs.ModeSymlink == 0 {
			cur, fi = next, cfi
			continue
		}
		if hops++; hops > 40 {
			return "", nil, fmt.Errorf("%s: too many levels of symbolic links", rel)
		}
		if path.IsAbs(target) {
			if t.inContext {
				return "", nil, fmt.Errorf("%s: symlink %s points outside the build context (%s)", rel, p, target)
			}
			cur = nil
		} else if t.inContext && escapes(path.Join(strings.Join(cur, "/"), target)) {
			return "", nil, fmt.Errorf("%s: symlink %s points outside the build context (%s)", rel, p, target)
		}
		fi = nil
		parts = append(strings.Split(target, "/"), parts...)
	}
	resolved := "."
	if len(cur) > 0 {
		resolved = strings.Join(cur, "/")
	}
	if fi == nil {
		lfi, _, err := t.lookup(resolved)
		if err != nil {
			return "", nil, openErr("lstat", rel, err)
		}
		if lfi.Mode()&fs.ModeSymlink != 0 {
			return "", nil, &changedError{rel}
		}
		fi = lfi
	}
	return resolved, fi, nil
}

func excluded(ig *parser.Ignore, rel string) bool {
	if ig == nil {
		return false
	}
	// Match needs every parent's result; walk down from the top.
	var info parser.MatchInfo
	parts := strings.Split(rel, "/")
	for i := range parts {
		ex, next, err := ig.Match(strings.Join(parts[:i+1], "/"), info)
		if err != nil {
			return false
		}
		if i == len(parts)-1 {
			return ex
		}
		info = next
	}
	return false
}

// globIn returns the paths in the tree matching pattern (slash, relative),
// sorted, matched component by component like filepath.Glob. Each
// directory it reads is first resolved in the tree, as a source is
// resolved, and listed from a descriptor opened beneath the root without
// following a symlink: the listing never leads out of the tree.
func globIn(t *srcTree, pattern string, ig *parser.Ignore) ([]string, error) {
	matches := []string{"."}
	for _, comp := range strings.Split(pattern, "/") {
		var next []string
		for _, dir := range matches {
			resolved, _, err := t.resolve(dir)
			var missing *sourceError
			if errors.As(err, &missing) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if comp == "**" && t.doublestar {
				next = append(next, t.dirsBelow(dir, resolved)...)
				continue
			}
			if !hasGlob(comp) {
				if _, _, err := t.lookup(path.Join(resolved, comp)); err == nil {
					next = append(next, path.Join(dir, comp))
				}
				continue
			}
			names, err := t.list(resolved)
			if err != nil {
				continue
			}
			for _, name := range names {
				ok, err := path.Match(comp, name)
				if err != nil {
					return nil, fmt.Errorf("bad pattern %q: %w", pattern, err)
				}
				if ok {
					next = append(next, path.Join(dir, name))
				}
			}
		}
		matches = next
	}
	var out []string
	for _, m := range matches {
		if t.inContext && excluded(ig, m) {
			continue
		}
		out = append(out, m)
	}
	slices.Sort(out)
	return slices.Compact(out), nil // "**" may reach a path twice
}

// dirsBelow is dir and every directory below it, resolved being dir's
// path in the tree; symlinks are not followed, so no cycle is.
func (t *srcTree) dirsBelow(dir, resolved string) []string {
	out := []string{dir}
	names, err := t.list(resolved)
	if err != nil {
		return out
	}
	for _, name := range names {
		if fi, _, err := t.lookup(path.Join(resolved, name)); err == nil && fi.IsDir() {
			out = append(out, t.dirsBelow(path.Join(dir, name), path.Join(resolved, name))...)
		}
	}
	return out
}

// walk lists everything under a directory source, sorted, parents first.
// In the context, ignored paths are left out; an ignored directory is
// entered only when "!" rules may bring back something below it. Each
// directory is listed from a descriptor checked to be the directory the
// build resolved or listed, and its entries are looked up in it.
func (s *source) walk(ig *parser.Ignore) error {
	if !s.fi.IsDir() || s.entries != nil {
		return nil
	}
	s.entries = []entry{}
	var info parser.MatchInfo
	if s.tree.inContext && ig != nil && s.ctxRel != "." {
		// Ignore rules apply to where the files are, not to the name a
		// symlink gave them: a link must not smuggle ignored files in.
		info = parentInfo(ig, s.ctxRel)
	}
	fd, err := s.tree.open(s.ctxRel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return openErr("open", s.rel, err)
	}
	defer unix.Close(fd)
	if err := checkDir(fd, s.fi, s.rel); err != nil {
		return err
	}
	w := walker{s: s, ig: ig, buf: make([]byte, 32<<10)}
	return w.dir(fd, "", info)
}

// checkDir checks that the directory open as fd is the one fi describes.
func checkDir(fd int, fi os.FileInfo, name string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: name, Err: err}
	}
	if !sameFile(&st, fi) {
		return &changedError{name}
	}
	return nil
}

func parentInfo(ig *parser.Ignore, rel string) parser.MatchInfo {
	var info parser.MatchInfo
	parts := strings.Split(rel, "/")
	for i := range parts {
		_, next, err := ig.Match(strings.Join(parts[:i+1], "/"), info)
		if err != nil {
			return parser.MatchInfo{}
		}
		info = next
	}
	return info
}

// walker walks one directory source.
type walker struct {
	s   *source
	ig  *parser.Ignore
	buf []byte // for getdents
}

// dir lists the directory open as fd, rel below the source, into the
// source's entries, and walks its subdirectories.
func (w *walker) dir(fd int, rel string, info parser.MatchInfo) error {
	s := w.s
	names, err := readNames(fd, w.buf)
	if err != nil {
		return openErr("readdirent", path.Join(s.rel, rel), err)
	}
	for _, name := range names {
		erel := path.Join(rel, name)
		einfo := parser.MatchInfo{}
		if s.tree.inContext && w.ig != nil {
			ctxRel := path.Join(s.ctxRel, erel)
			ex, next, err := w.ig.Match(ctxRel, info)
			if err != nil {
				return err
			}
			einfo = next
			if ex {
				if err := w.ignored(fd, name, erel, ctxRel, einfo); err != nil {
					return err
				}
				continue
			}
		}
		fi, err := w.stat(fd, name, erel)
		if err != nil {
			return err
		}
		s.entries = append(s.entries, entry{rel: erel, fi: fi})
		if fi.IsDir() {
			if err := w.sub(fd, name, erel, fi, einfo); err != nil {
				return err
			}
		}
	}
	return nil
}

// ignored walks an ignored entry, a directory when "!" rules may bring
// back something below it; it stays listed only if something did.
func (w *walker) ignored(fd int, name, erel, ctxRel string, info parser.MatchInfo) error {
	if !w.ig.MayIncludeBelow(ctxRel) {
		return nil
	}
	fi, err := w.stat(fd, name, erel)
	if err != nil || !fi.IsDir() {
		return err
	}
	n := len(w.s.entries)
	w.s.entries = append(w.s.entries, entry{rel: erel, fi: fi})
	if err := w.sub(fd, name, erel, fi, info); err != nil {
		return err
	}
	if len(w.s.entries) == n+1 { // nothing came back below it
		w.s.entries = w.s.entries[:n]
	}
	return nil
}

// stat is lstat of the entry name of the directory open as fd.
func (w *walker) stat(fd int, name, erel string) (*statInfo, error) {
	fi := &statInfo{name: name}
	if err := unix.Fstatat(fd, name, &fi.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, openErr("lstat", path.Join(w.s.rel, erel), err)
	}
	return fi, nil
}

// sub walks the subdirectory name of the directory open as fd, which
// must still be the directory fi describes.
func (w *walker) sub(fd int, name, erel string, fi os.FileInfo, info parser.MatchInfo) error {
	msg := path.Join(w.s.rel, erel)
	sfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return openErr("open", msg, err)
	}
	defer unix.Close(sfd)
	if err := checkDir(sfd, fi, msg); err != nil {
		return err
	}
	return w.dir(sfd, erel, info)
}

// contextHashes returns the remembered hashes of a context directory,
// loading them once a build.
func (b *build) contextHashes(dir string) (*cache.ContextHashes, error) {
	b.ctxMu.Lock()
	defer b.ctxMu.Unlock()
	if ch, ok := b.ctxHashes[dir]; ok {
		return ch, nil
	}
	ch, err := b.cache.ContextHashes(dir)
	if err != nil {
		return nil, err
	}
	if b.ctxHashes == nil {
		b.ctxHashes = map[string]*cache.ContextHashes{}
	}
	b.ctxHashes[dir] = ch
	return ch, nil
}

// hashSources writes into h a digest of everything the sources select:
// path, type, mode, link target and content of each file, and which
// files are hardlinks of an earlier one. Not its times, and not its
// owner: a context file is copied as root's (or --chown's) whoever owns
// it, and a key that held either would differ between two checkouts of
// the same commit, so a cache shared between CI machines would never hit. File contents are hashed in parallel and remembered between
// builds, so an unchanged context costs one lstat per file. The end of
// ctx stops the hashing.
func (b *build) hashSources(ctx context.Context, h hash.Hash, srcs []*source) error {
	return b.hashSourcesIn(ctx, h, srcs, b.opts.ContextDir)
}

// hashSourcesIn is hashSources for sources of the context directory dir.
func (b *build) hashSourcesIn(ctx context.Context, h hash.Hash, srcs []*source, dir string) error {
	ch, err := b.contextHashes(dir)
	if err != nil {
		return fmt.Errorf("loading context hashes: %w", err)
	}
	type file struct {
		rel string // what the key and the remembered hashes name it
		src srcFile
		fi  os.FileInfo
		sum *v1.Hash
	}
	var files []file
	for _, s := range srcs {
		files = append(files, file{s.rel, s.file(), s.fi, &s.sum})
		for i := range s.entries {
			e := &s.entries[i]
			files = append(files, file{path.Join(s.ctxRel, e.rel), s.entryFile(e), e.fi, &e.sum})
		}
	}
	var todo []file
	for _, f := range files {
		if !f.fi.Mode().IsRegular() {
			continue
		}
		if sum, ok := ch.Get(f.rel, fileStat(f.fi)); ok {
			*f.sum = sum
		} else {
			todo = append(todo, f)
		}
	}
	if err := forEach(ctx, len(todo), 0, func(ctx context.Context, i int) error {
		f := todo[i]
		sum, err := hashFile(ctx, f.src)
		if err != nil {
			return err
		}
		*f.sum = sum
		ch.Put(f.rel, fileStat(f.fi), sum)
		return nil
	}); err != nil {
		return err
	}
	var buf [8]byte
	firstLink := map[fileID]string{} // a hardlinked inode → its first path
	for _, f := range files {
		if id, ok := linkedID(f.fi); ok && f.fi.Mode().IsRegular() {
			// The copy keeps hardlinks among the sources, so the key says
			// which files are links of an earlier one.
			if first, seen := firstLink[id]; seen {
				io.WriteString(h, "link\x00"+first+"\x00")
			} else {
				firstLink[id] = f.rel
			}
		}
		io.WriteString(h, f.rel)
		h.Write([]byte{0})
		binary.LittleEndian.PutUint32(buf[:4], uint32(f.fi.Mode()))
		h.Write(buf[:4])
		if f.fi.Mode()&fs.ModeSymlink != 0 {
			target, err := f.src.readlink()
			if err != nil {
				return err
			}
			io.WriteString(h, target)
		}
		io.WriteString(h, f.sum.Hex)
		h.Write([]byte{0})
	}
	return nil
}

func fileStat(fi os.FileInfo) cache.FileStat {
	st := cache.FileStat{Size: fi.Size(), Mtime: fi.ModTime().UnixNano(), Mode: uint32(fi.Mode())}
	if s, ok := fi.Sys().(*unix.Stat_t); ok {
		st.Ctime = s.Ctim.Nano()
		st.Ino = s.Ino
	}
	return st
}

// hashFile hashes the regular file f, read from the file the build
// resolved, as far as the size it had then.
func hashFile(ctx context.Context, f srcFile) (v1.Hash, error) {
	fd, err := f.open()
	if err != nil {
		return v1.Hash{}, err
	}
	defer unix.Close(fd)
	sum, _, err := fsutil.HashReader(ctx, &fileReader{fd: fd, left: f.fi.Size(), name: f.name})
	if err != nil {
		return v1.Hash{}, err
	}
	return v1.Hash{Algorithm: "sha256", Hex: sum}, nil
}

// forEach calls fn for 0 to n-1 in an errgroup under ctx, on up to limit
// goroutines (0: one per CPU): the first error, or the end of ctx, stops
// what has not started, and fn gets the group's context to stop what it
// is doing. With a limit of 1, fn runs in order on the calling goroutine,
// and so on its OS thread (COPY --from's mounts exist only there).
func forEach(ctx context.Context, n, limit int, fn func(ctx context.Context, i int) error) error {
	if limit <= 0 {
		limit = runtime.NumCPU()
	}
	if limit == 1 || n <= 1 {
		for i := range n {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(ctx, i); err != nil {
				return err
			}
		}
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	stopped := false
	for i := range n {
		if gctx.Err() != nil {
			stopped = true
			break
		}
		g.Go(func() error { return fn(gctx, i) })
	}
	err := g.Wait()
	if err == nil && stopped {
		err = ctx.Err()
	}
	return err
}
