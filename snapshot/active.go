package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/builderdev/builder/internal/fsutil"
)

// fields of Active; the type itself is declared in api.go.
type activeState struct {
	store *Store
	dir   string // session dir holding upper/, work/ and stub/
	done  bool   // committed or closed: the upper is gone
}

func (s *Store) checkChain(chain []ID) error {
	for _, id := range chain {
		if err := validID(id); err != nil {
			return err
		}
		if !s.exists(id) {
			return fmt.Errorf("snapshot %s is not in the store (unpack it first)", id)
		}
	}
	return nil
}

func (s *Store) prepare(ctx context.Context, parents []ID) (*Active, error) {
	if err := s.checkChain(parents); err != nil {
		return nil, err
	}
	lowers, err := s.lowers(ctx, parents, MaxLowers-1)
	if err != nil {
		return nil, err
	}
	dir, err := s.sessionDir("active-")
	if err != nil {
		return nil, err
	}
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			fsutil.RemoveAll(dir)
			return nil, err
		}
	}
	// The upper's root becomes the merged root: it must look like the
	// chain's, or every step would reset / to 0755 root.
	if err := copyRootAttrs(lowers[0], upper); err != nil {
		fsutil.RemoveAll(dir)
		return nil, fmt.Errorf("copying root attributes: %w", err)
	}
	return &Active{
		Mount:       Mount{Lowers: lowers, Upper: upper, Work: work, Stub: filepath.Join(dir, "stub")},
		activeState: activeState{store: s, dir: dir},
	}, nil
}

func (s *Store) view(ctx context.Context, chain []ID) (Mount, func() error, error) {
	if err := s.checkChain(chain); err != nil {
		return Mount{}, nil, err
	}
	lowers, err := s.lowers(ctx, chain, MaxLowers)
	if err != nil {
		return Mount{}, nil, err
	}
	if len(lowers) == 1 && len(chain) > 0 {
		// A single lower would be bind-mounted, which shows whiteouts as
		// device nodes; with the empty dir below, overlay hides them.
		lowers = append(lowers, s.emptyPath())
	}
	return Mount{Lowers: lowers}, func() error { return nil }, nil
}

func (s *Store) emptyPath() string { return filepath.Join(s.snaps, emptyDir) }

// lowers returns the layer directories of chain, topmost first, at most
// max of them: a deeper chain has its bottom replaced by a merged
// snapshot (see flatten).
func (s *Store) lowers(ctx context.Context, chain []ID, max int) ([]string, error) {
	if len(chain) == 0 {
		return []string{s.emptyPath()}, nil
	}
	ids, bottom := chain, ""
	if len(chain) > max {
		// Merge a multiple of flatChunk layers, the fewest that make the
		// rest fit: the chain grows by one layer per step, and the merged
		// bottom stays the same (and cached) for flatChunk steps.
		n := len(chain) - max + 1
		n = (n + flatChunk - 1) / flatChunk * flatChunk
		flat, err := s.flatten(ctx, chain[:n])
		if err != nil {
			return nil, fmt.Errorf("merging the bottom %d of %d layers: %w", n, len(chain), err)
		}
		ids, bottom = chain[n:], s.dir(flat)
	}
	lowers := make([]string, 0, len(ids)+1)
	for i := len(ids) - 1; i >= 0; i-- {
		lowers = append(lowers, s.dir(ids[i]))
	}
	if bottom != "" {
		lowers = append(lowers, bottom)
	}
	return lowers, nil
}

func (s *Store) dir(id ID) string { return filepath.Join(s.idDir(id), "fs") }

func (a *Active) commit(id ID, opts *WriteOptions) error {
	if err := validID(id); err != nil {
		return err
	}
	m := marker{Origin: originCommit}
	if opts != nil {
		if err := layerID(id); err != nil {
			return err
		}
		m.DiffID, m.Tree = "sha256:"+string(id), newTreeDigest(string(id), *opts)
	}
	if a.done {
		return errors.New("active snapshot already committed or closed")
	}
	if a.store.exists(id) {
		a.done = true // same content already there; Close discards ours
		return nil
	}
	tmp := filepath.Join(a.dir, "commit")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return err
	}
	if err := os.Rename(a.Mount.Upper, filepath.Join(tmp, "fs")); err != nil {
		return fmt.Errorf("moving upper directory: %w", err)
	}
	a.done = true
	return a.store.publish(tmp, id, m)
}

func (a *Active) close() error {
	if a == nil || a.dir == "" {
		return nil
	}
	a.done = true
	a.store.removeLater(a.dir)
	return nil
}
