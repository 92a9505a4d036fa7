package executor_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/snapshot"
)

// TestSnapshotCheckAfterBuilds: every snapshot builds make (RUN, COPY, ADD
// and WORKDIR uppers, with and without SOURCE_DATE_EPOCH, and layers
// unpacked again from their blobs) passes snapshot.Store.Check: the
// markers the executor's commits and unpacks leave agree with the
// content.
func TestSnapshotCheckAfterBuilds(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	archive := filepath.Join(t.TempDir(), "a")
	writeFiles(t, archive, map[string]string{"x/y": "from the archive"})
	ctxDir := writeContext(t, "FROM busybox:test\n"+
		"RUN mkdir -p /data && echo run > /data/run && rm -rf /etc/profile\n"+
		"COPY files/ /data/files/\n"+
		"ADD a.tar /data/added/\n"+
		"WORKDIR /w/d\n"+
		"RUN ln /data/run /data/run2 && touch -d @1 /data/old\n",
		map[string]string{"files/one": "1", "files/sub/two": "2"})
	writeTar(t, filepath.Join(ctxDir, "a.tar"), archive)
	epoch := time.Unix(1700000000, 0)
	base, err := e.store.Lookup("busybox:test")
	if err != nil {
		t.Fatal(err)
	}
	images := []cache.ImageRecord{base}
	for _, o := range []*buildOpts{{noCache: true}, {noCache: true, epoch: &epoch}} {
		res, err := e.build(t, ctxDir, readDockerfile(t, ctxDir), o)
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, res.Image)
	}
	check := func(when string) {
		t.Helper()
		findings, err := e.snaps.Check(ctx, false)
		if err != nil || len(findings) != 0 {
			t.Fatalf("Check %s = %+v, %v; want no findings", when, findings, err)
		}
	}
	check("after the builds")

	// Built layers are held by their snapshots (cache/held.go) until they
	// leave the machine; compress them as a push would, then drop every
	// snapshot: the next build unpacks the cached layers from the
	// compressed blobs.
	for _, rec := range images {
		if _, err := e.store.Outgoing(ctx, rec.Manifest.Digest); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := e.snaps.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := e.snaps.Remove(id); err != nil {
			t.Fatal(err)
		}
	}
	df := readDockerfile(t, ctxDir) + "RUN test -s /data/files/sub/two\n"
	if _, err := e.build(t, ctxDir, df, &buildOpts{epoch: &epoch}); err != nil {
		t.Fatal(err)
	}
	if ids, _ := e.snaps.List(); len(ids) < 6 {
		t.Errorf("after a rebuild from blobs, %d snapshots: %v; want the chain unpacked", len(ids), ids)
	}
	check("after unpacking from blobs")
}

func readDockerfile(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestCommitOverUnpackedSnapshot: a step whose layer is already in the
// store as an unpacked snapshot (the same bytes came from a pulled tar)
// cannot be held by that snapshot, which cannot make the tar again; the
// commit stores the layer as a blob, and the image still leaves whole.
func TestCommitOverUnpackedSnapshot(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ctxDir := writeContext(t, "FROM busybox:test\nRUN echo same > /same\n", nil)
	first, err := e.build(t, ctxDir, readDockerfile(t, ctxDir), &buildOpts{epoch: &time.Time{}})
	if err != nil {
		t.Fatal(err)
	}
	diffIDs := mustDiffIDs(t, e, first.Image)
	top := diffIDs[len(diffIDs)-1]
	id := snapshot.ID(top.Hex)
	rc, err := e.snaps.OpenLayer(id)
	if err != nil {
		t.Fatal(err)
	}
	tarball, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.snaps.Remove(id); err != nil {
		t.Fatal(err)
	}
	if err := e.snaps.Unpack(ctx, id, bytes.NewReader(tarball)); err != nil {
		t.Fatal(err)
	}
	if e.snaps.GivesLayer(id) {
		t.Fatal("an unpacked snapshot says it can give its layer tar")
	}
	second, err := e.build(t, ctxDir, readDockerfile(t, ctxDir), &buildOpts{epoch: &time.Time{}, noCache: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustDiffIDs(t, e, second.Image); got[len(got)-1] != top {
		t.Fatalf("the rebuild made layer %s, want %s (the test needs the same bytes)", got[len(got)-1], top)
	}
	img, err := e.store.Outgoing(ctx, second.Image.Manifest.Digest)
	if err != nil {
		t.Fatalf("the rebuilt image cannot leave: %v", err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err = layers[len(layers)-1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Errorf("reading the rebuilt top layer: %v", err)
	}
}
