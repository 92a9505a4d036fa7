package snapshot

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/internal/fsutil"
)

// writeMerged is WriteMerged (api.go).
//
// What to write is decided by the run's layer directories: a path that no
// layer of the run holds (as a file, a directory, a whiteout or an opaque
// directory) is whatever the lower chain has there, so it stays out of
// the tar. The content of every other path is read from an overlay of the
// whole chain, lower and run, mounted read-only: overlay applies the
// whiteouts and opaque directories exactly as a container would see them.
// A path the lower chain has (read from an overlay of it alone) and the
// result does not becomes a whiteout. No opaque markers are written: a
// directory the run replaced lists the lower's entries it lost as
// whiteouts, which is what applying it needs and no more.
func (s *Store) writeMerged(ctx context.Context, w io.Writer, lower, run []ID, opts WriteOptions) error {
	if len(run) == 0 {
		return errors.New("merging layers: no layers to merge")
	}
	for _, chain := range [][]ID{lower, run} {
		if err := s.checkChain(chain); err != nil {
			return err
		}
	}
	touched, err := s.touchedPaths(ctx, run)
	if err != nil {
		return err
	}
	result, _, err := s.view(ctx, append(slices.Clone(lower), run...))
	if err != nil {
		return err
	}
	below, _, err := s.view(ctx, lower)
	if err != nil {
		return err
	}
	tmp, err := s.sessionDir("squash-")
	if err != nil {
		return err
	}
	defer fsutil.RemoveAll(tmp)
	resDir, lowDir := filepath.Join(tmp, "result"), filepath.Join(tmp, "lower")
	for _, d := range []string{resDir, lowDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
	}
	return Private(func() error {
		if err := result.MountAt(resDir); err != nil {
			return err
		}
		defer unix.Unmount(resDir, unix.MNT_DETACH)
		if err := below.MountAt(lowDir); err != nil {
			return err
		}
		defer unix.Unmount(lowDir, unix.MNT_DETACH)
		low, err := os.Open(lowDir)
		if err != nil {
			return err
		}
		defer low.Close()
		return withLayerWriter(w, opts, func(lw *layerWriter) error {
			m := &mergeWalk{ctx: ctx, lw: lw, touched: touched, lowers: []*os.File{low}}
			lw.descend, lw.linkKey = m.descend, m.linkKey
			return m.dir(resDir, "", low)
		})
	})
}

// touchedPaths walks the run's layer directories and returns every path
// they hold (without a leading slash), each with the index in run of the
// topmost layer that holds it.
func (s *Store) touchedPaths(ctx context.Context, run []ID) (map[string]int, error) {
	touched := map[string]int{}
	for i, id := range run {
		var walk func(abs, rel string) error
		walk = func(abs, rel string) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			ents, err := os.ReadDir(abs)
			if err != nil {
				return fmt.Errorf("reading snapshot %s: %w", id, err)
			}
			for _, e := range ents {
				p := path.Join(rel, e.Name())
				touched[p] = i
				if e.IsDir() {
					if err := walk(filepath.Join(abs, e.Name()), p); err != nil {
						return err
					}
				}
			}
			return nil
		}
		if err := walk(s.dir(id), ""); err != nil {
			return nil, err
		}
	}
	return touched, nil
}

// mergeWalk writes the directories of a merged view: the entries the run
// touched, and whiteouts for what the lower chain had and the result
// lacks.
type mergeWalk struct {
	ctx     context.Context
	lw      *layerWriter
	touched map[string]int
	// lowers holds the lower chain's directory for each directory being
	// written, innermost last; nil where the lower has no directory there.
	lowers []*os.File
}

// linkKey pairs links by layer and inode: committed snapshots may share
// an inode (a COPY links unchanged files of its previous result), and
// two such files in different layers are separate files, as the layers
// alone would unpack them. A path touched by the run comes from the
// topmost layer that holds it.
func (m *mergeWalk) linkKey(name string, st *unix.Stat_t) fileKey {
	return fileKey{uint64(m.touched[name]), st.Ino}
}

// descend is called by the layer writer after a directory's entry.
func (m *mergeWalk) descend(abs, name string) error {
	parent := m.lowers[len(m.lowers)-1]
	low := openLowerDir(parent, path.Base(name))
	if low != nil {
		defer low.Close()
	}
	m.lowers = append(m.lowers, low)
	defer func() { m.lowers = m.lowers[:len(m.lowers)-1] }()
	return m.dir(abs, name, low)
}

// openLowerDir opens the directory name inside parent without following
// a symlink: the lower chain may hold a link (lib -> /usr/lib) where the
// result holds a directory, and its target is not part of the image.
func openLowerDir(parent *os.File, name string) *os.File {
	if parent == nil {
		return nil
	}
	fd, err := unix.Openat(int(parent.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil // not there, or not a directory: nothing below it to hide
	}
	return os.NewFile(uintptr(fd), name)
}

// dir writes the entries of the result directory abs, named rel in the
// layer, in byte order of their names; low is the lower chain's directory
// at rel, or nil.
func (m *mergeWalk) dir(abs, rel string, low *os.File) error {
	names, err := readNames(abs)
	if err != nil {
		return err
	}
	var lowNames []string
	if low != nil {
		if lowNames, err = low.Readdirnames(-1); err != nil {
			return fmt.Errorf("reading the lower chain's %s: %w", "/"+rel, err)
		}
		slices.Sort(lowNames)
	}
	var st unix.Stat_t
	if err := unix.Lstat(abs, &st); err != nil {
		return err
	}
	for i, j := 0, 0; i < len(names) || j < len(lowNames); {
		if err := m.ctx.Err(); err != nil {
			return err
		}
		var name string
		inResult := false
		switch {
		case j == len(lowNames) || (i < len(names) && names[i] <= lowNames[j]):
			name, inResult = names[i], true
			if j < len(lowNames) && lowNames[j] == name {
				j++
			}
			i++
		default:
			name = lowNames[j]
			j++
		}
		p := path.Join(rel, name)
		switch {
		case inResult:
			if _, ok := m.touched[p]; !ok {
				continue // the lower chain's, unchanged
			}
			if err := m.lw.entry(abs+"/"+name, p); err != nil {
				return err
			}
		default:
			// Deleted by the run: the whiteout gets the time of the
			// directory it was deleted from.
			wh := &tar.Header{Typeflag: tar.TypeReg, Name: path.Join(rel, whiteoutName(name)), ModTime: m.lw.time(st.Mtim)}
			if err := m.lw.write(wh); err != nil {
				return err
			}
		}
	}
	return nil
}
