package executor

import (
	"crypto/sha256"
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
	"sync"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/parser"
)

// source is one top-level match of a COPY/ADD source: a file or a
// directory, and (once walked) everything under it.
type source struct {
	rel     string      // slash path relative to the source root, as matched (names the copy)
	ctxRel  string      // the same path with symlinks resolved (what ignore rules see)
	abs     string      // host path
	sum     v1.Hash     // content hash of a regular file, once hashed
	fi      os.FileInfo // of the resolved path
	entries []entry     // for a directory: its contents, parents first, sorted
}

// entry is a file under a directory source.
type entry struct {
	rel string // slash path relative to the directory source
	abs string
	fi  os.FileInfo
	sum v1.Hash // content hash of a regular file, once hashed
}

// errNotInContext marks a source that does not exist in the context, so
// the message can say so the way docker does.
type sourceError struct {
	path string
	msg  string
}

func (e *sourceError) Error() string { return e.msg }

// selectSources resolves COPY/ADD source patterns against root. With
// inContext set, root is the build context: ignored paths do not exist
// and a symlink leading outside root is an error. Otherwise root is a
// mounted image, where symlinks resolve inside it.
func selectSources(root string, patterns []string, ig *parser.Ignore, inContext bool) ([]*source, error) {
	var out []*source
	for _, pat := range patterns {
		rel := strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(pat)), "/")
		if inContext && escapes(pat) {
			return nil, fmt.Errorf("forbidden path outside the build context: %s", pat)
		}
		if rel == "" {
			rel = "."
		}
		var matches []string
		if hasGlob(rel) {
			m, err := globIn(root, rel, ig, inContext)
			if err != nil {
				return nil, err
			}
			if len(m) == 0 {
				return nil, &sourceError{pat, fmt.Sprintf("no source files were specified: %s matches nothing", pat)}
			}
			matches = m
		} else {
			matches = []string{rel}
		}
		for _, m := range matches {
			s, err := resolveSource(root, m, ig, inContext)
			if err != nil {
				return nil, err
			}
			s.rel = m
			out = append(out, s)
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

// resolveSource looks up rel in root, following symlinks component by
// component; in the context, a link that leads outside root is refused
// rather than followed, and ignored paths are missing.
func resolveSource(root, rel string, ig *parser.Ignore, inContext bool) (*source, error) {
	resolved, err := resolveIn(root, rel, inContext)
	if err != nil {
		return nil, err
	}
	if inContext && resolved != "." && excluded(ig, resolved) {
		return nil, &sourceError{rel, fmt.Sprintf("stat %s: no such file in build context (excluded by .dockerignore)", rel)}
	}
	abs := filepath.Join(root, filepath.FromSlash(resolved))
	fi, err := os.Lstat(abs)
	if err != nil {
		return nil, err
	}
	return &source{abs: abs, fi: fi, ctxRel: resolved}, nil
}

// resolveIn resolves the symlinks in rel within root and returns the
// resulting slash path relative to root.
func resolveIn(root, rel string, inContext bool) (string, error) {
	parts := strings.Split(rel, "/")
	var cur []string
	hops := 0
	for len(parts) > 0 {
		c := parts[0]
		parts = parts[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				if inContext {
					return "", fmt.Errorf("forbidden path outside the build context: %s", rel)
				}
				continue
			}
			cur = cur[:len(cur)-1]
			continue
		}
		next := append(slices.Clone(cur), c)
		p := filepath.Join(root, filepath.FromSlash(strings.Join(next, "/")))
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			where := "build context"
			if !inContext {
				where = "source image"
			}
			return "", &sourceError{rel, fmt.Sprintf("stat %s: no such file in %s", rel, where)}
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("%s: too many levels of symbolic links", rel)
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			if inContext {
				return "", fmt.Errorf("%s: symlink %s points outside the build context (%s)", rel, strings.Join(next, "/"), target)
			}
			cur = nil
		} else if inContext && escapes(path.Join(strings.Join(cur, "/"), target)) {
			return "", fmt.Errorf("%s: symlink %s points outside the build context (%s)", rel, strings.Join(next, "/"), target)
		}
		parts = append(strings.Split(target, "/"), parts...)
	}
	if len(cur) == 0 {
		return ".", nil
	}
	return strings.Join(cur, "/"), nil
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

// globIn returns the paths under root matching pattern (slash, relative),
// sorted, matched component by component like filepath.Glob. Each
// directory it reads is first resolved inside root, as resolveIn resolves
// a source: a symlink on the way never leads the listing out of root.
func globIn(root, pattern string, ig *parser.Ignore, inContext bool) ([]string, error) {
	matches := []string{"."}
	for _, comp := range strings.Split(pattern, "/") {
		var next []string
		for _, dir := range matches {
			resolved, err := resolveIn(root, dir, inContext)
			var missing *sourceError
			if errors.As(err, &missing) {
				continue
			}
			if err != nil {
				return nil, err
			}
			base := filepath.Join(root, filepath.FromSlash(resolved))
			if !hasGlob(comp) {
				if _, err := os.Lstat(filepath.Join(base, comp)); err == nil {
					next = append(next, path.Join(dir, comp))
				}
				continue
			}
			ents, err := os.ReadDir(base)
			if err != nil {
				continue
			}
			for _, e := range ents {
				ok, err := path.Match(comp, e.Name())
				if err != nil {
					return nil, fmt.Errorf("bad pattern %q: %w", pattern, err)
				}
				if ok {
					next = append(next, path.Join(dir, e.Name()))
				}
			}
		}
		matches = next
	}
	var out []string
	for _, m := range matches {
		if inContext && excluded(ig, m) {
			continue
		}
		out = append(out, m)
	}
	slices.Sort(out)
	return out, nil
}

// walk lists everything under a directory source, sorted, parents first.
// In the context, ignored paths are left out; an ignored directory is
// entered only when "!" rules may bring back something below it.
func (s *source) walk(ig *parser.Ignore, inContext bool) error {
	if !s.fi.IsDir() || s.entries != nil {
		return nil
	}
	s.entries = []entry{}
	var info parser.MatchInfo
	if inContext && ig != nil && s.ctxRel != "." {
		// Ignore rules apply to where the files are, not to the name a
		// symlink gave them: a link must not smuggle ignored files in.
		info = parentInfo(ig, s.ctxRel)
	}
	return s.walkDir(s.abs, "", ig, inContext, info)
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

func (s *source) walkDir(abs, rel string, ig *parser.Ignore, inContext bool, info parser.MatchInfo) error {
	ents, err := os.ReadDir(abs)
	if err != nil {
		return err
	}
	for _, e := range ents { // os.ReadDir sorts by name
		erel := path.Join(rel, e.Name())
		eabs := filepath.Join(abs, e.Name())
		einfo := parser.MatchInfo{}
		if inContext && ig != nil {
			ctxRel := path.Join(s.ctxRel, erel)
			if s.ctxRel == "." {
				ctxRel = erel
			}
			ex, next, err := ig.Match(ctxRel, info)
			if err != nil {
				return err
			}
			einfo = next
			if ex {
				if e.IsDir() && ig.MayIncludeBelow(ctxRel) {
					n := len(s.entries)
					fi, err := os.Lstat(eabs)
					if err != nil {
						return err
					}
					s.entries = append(s.entries, entry{rel: erel, abs: eabs, fi: fi})
					if err := s.walkDir(eabs, erel, ig, inContext, einfo); err != nil {
						return err
					}
					if len(s.entries) == n+1 { // nothing came back below it
						s.entries = s.entries[:n]
					}
				}
				continue
			}
		}
		fi, err := os.Lstat(eabs)
		if err != nil {
			return err
		}
		s.entries = append(s.entries, entry{rel: erel, abs: eabs, fi: fi})
		if fi.IsDir() {
			if err := s.walkDir(eabs, erel, ig, inContext, einfo); err != nil {
				return err
			}
		}
	}
	return nil
}

// contextHashes returns the build's remembered context hashes, loading
// them once.
func (b *build) contextHashes() (*cache.ContextHashes, error) {
	b.ctxOnce.Do(func() {
		b.ctxHashes, b.ctxErr = b.opts.Store.ContextHashes(b.opts.ContextDir)
	})
	return b.ctxHashes, b.ctxErr
}

// hashSources writes into h a digest of everything the sources select:
// path, type, mode, owner, link target and content of each file, and which
// files are hardlinks of an earlier one; not its times. File contents are hashed in parallel and remembered between
// builds, so an unchanged context costs one lstat per file.
func (b *build) hashSources(h hash.Hash, srcs []*source) error {
	ch, err := b.contextHashes()
	if err != nil {
		return fmt.Errorf("loading context hashes: %w", err)
	}
	type file struct {
		rel, abs string
		fi       os.FileInfo
		sum      *v1.Hash
	}
	var files []file
	for _, s := range srcs {
		files = append(files, file{s.rel, s.abs, s.fi, &s.sum})
		for i := range s.entries {
			e := &s.entries[i]
			files = append(files, file{path.Join(s.ctxRel, e.rel), e.abs, e.fi, &e.sum})
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
	if err := parallel(len(todo), func(i int) error {
		f := todo[i]
		sum, err := hashFile(f.abs)
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
		if st, ok := f.fi.Sys().(*syscall.Stat_t); ok {
			binary.LittleEndian.PutUint32(buf[:4], st.Uid)
			binary.LittleEndian.PutUint32(buf[4:], st.Gid)
			h.Write(buf[:])
		}
		if f.fi.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(f.abs)
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
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.Ctime = s.Ctim.Nano()
		st.Ino = s.Ino
	}
	return st
}

func hashFile(p string) (v1.Hash, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return v1.Hash{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return v1.Hash{}, fmt.Errorf("reading %s: %w", p, err)
	}
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}, nil
}

// parallel calls fn(0..n-1) on up to one worker per CPU and returns the
// first error.
func parallel(n int, fn func(i int) error) error {
	workers := min(runtime.NumCPU(), n)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			if err := fn(i); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  int
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return first
}
