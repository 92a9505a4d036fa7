package executor

import (
	"archive/tar"
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/internal/testutil"
	"github.com/builderdev/builder/store"
)

// TestMergeDeterministic merges the same layers in two stores, with the
// merge cache off: the merged layers must have the same digests, so that
// a rebuild or another machine pushes nothing new.
func TestMergeDeterministic(t *testing.T) {
	testutil.RequireRoot(t)
	tars := [][]string{
		{"a=1", "d/=", "d/x=x", "gone=g"},
		{".wh.gone=", "d/y=y"},
		{"d/.wh.x=", "b=2"},
		{"c=3"},
	}
	var got [][]cache.Layer
	for range 2 {
		st, err := store.Open(t.TempDir(), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		var layers []cache.Layer
		var hist []v1.History
		for _, files := range tars {
			l, err := st.Cache().PutLayer(context.Background(), bytes.NewReader(tarOfFiles(t, files)), cache.Compression{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			layers = append(layers, l)
			hist = append(hist, v1.History{CreatedBy: "layer"})
		}
		m := &layerMerger{cache: st.Cache(), snaps: st.Snapshots(), noCache: true}
		for range 2 {
			out, _, _, err := m.mergeImage(context.Background(), layers, hist, []mergeGroup{{1, 3}})
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != 3 || out[0].DiffID != layers[0].DiffID || out[2].DiffID != layers[3].DiffID {
				t.Fatalf("merged layers %v from %v", out, layers)
			}
			got = append(got, out)
		}
	}
	for i := 1; i < len(got); i++ {
		a, b := got[i][1], got[0][1]
		if a.DiffID != b.DiffID || a.Descriptor.Digest != b.Descriptor.Digest || a.Descriptor.Size != b.Descriptor.Size {
			t.Errorf("merge %d gave %v, merge 1 %v", i+1, a, b)
		}
	}
}

// tarOfFiles makes a layer of "name=content" entries; a name ending in
// / is a directory.
func tarOfFiles(t *testing.T, files []string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		name, body, _ := strings.Cut(f, "=")
		h := &tar.Header{Name: name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(body)), ModTime: time.Unix(1, 0)}
		if strings.HasSuffix(name, "/") {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
