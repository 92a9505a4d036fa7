package store

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/internal/testutil"
	"github.com/builderdev/builder/snapshot"
)

func openTest(t *testing.T) *Store {
	t.Helper()
	testutil.RequireRoot(t) // snapshots hold whiteouts and owners only root can make
	s, err := Open(filepath.Join(t.TempDir(), "store"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// unpackLayer makes a snapshot of a one-file layer and returns its id.
func unpackLayer(t *testing.T, s *Store, name string) snapshot.ID {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	tw.Write([]byte("hi"))
	tw.Close()
	sum := sha256.Sum256(buf.Bytes())
	id := snapshot.ID(hex.EncodeToString(sum[:]))
	if err := s.Snapshots().Unpack(context.Background(), id, bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestOpenIsPrivate(t *testing.T) {
	s := openTest(t)
	fi, err := os.Stat(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("store root mode %v, want 0700", fi.Mode().Perm())
	}
}

// TestPruneAndUsage: a snapshot nothing needs is counted by Usage and
// removed by Prune, with the cache's own pruning.
func TestPruneAndUsage(t *testing.T) {
	s := openTest(t)
	id := unpackLayer(t, s, "a")
	u, err := s.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if u.Snapshots != 1 || u.SnapshotsSize <= 0 {
		t.Errorf("usage: %d snapshots of %d bytes, want 1 of some", u.Snapshots, u.SnapshotsSize)
	}
	rep, err := s.Prune(context.Background(), cache.PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Snapshots != 1 || s.Snapshots().Exists(id) {
		t.Errorf("prune removed %d snapshots (exists after: %v), want the unneeded one", rep.Snapshots, s.Snapshots().Exists(id))
	}
}

// TestCheckLocks: a check shares the build lock and a repair needs it
// alone: beside a running build the check runs, and the repair cannot
// get the lock (its context gives up; it could never succeed there).
func TestCheckLocks(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	err := s.Build(ctx, func() error {
		if _, err := s.Check(ctx, false); err != nil {
			t.Errorf("check beside a build: %v", err)
		}
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if _, err := s.Check(short, true); err == nil || !strings.Contains(err.Error(), "waiting for build lock") {
			t.Errorf("repair beside a build: %v, want it to wait for the build", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Check(ctx, true); err != nil {
		t.Errorf("repair with no build running: %v", err)
	}
}

// TestCheckBothHalves: check reports a damaged snapshot and a damaged
// blob, snapshots first, and a repair leaves the store clean.
func TestCheckBothHalves(t *testing.T) {
	s := openTest(t)
	id := unpackLayer(t, s, "a")
	if err := os.WriteFile(filepath.Join(s.Snapshots().Dir(id), "a"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, _, err := s.Cache().PutBlob(strings.NewReader("blob"), v1.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Root(), "blobs", "sha256", h.Hex), []byte("bent"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	found, err := s.Check(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || !strings.Contains(found[0].Subject, string(id)) || !strings.Contains(found[1].Subject, h.Hex) {
		t.Fatalf("check found %+v, want the snapshot %s then the blob %s", found, id, h)
	}
	if found, err = s.Check(ctx, true); err != nil || len(found) != 2 || !found[0].Repaired || !found[1].Repaired {
		t.Fatalf("repair: %+v, %v", found, err)
	}
	if found, err = s.Check(ctx, false); err != nil || len(found) != 0 {
		t.Errorf("check after repair: %+v, %v", found, err)
	}
}
