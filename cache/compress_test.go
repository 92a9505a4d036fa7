package cache

import (
	"bytes"
	"io"
	"os/exec"
	"testing"

	"github.com/builderdev/builder/internal/testutil"
)

// TestDecompress feeds Decompress streams made by the real tools: each is
// decompressed when its codec is allowed, and read as it is otherwise, so
// an xz "layer" reaches the tar reader as xz bytes, never as a tar.
func TestDecompress(t *testing.T) {
	data := bytes.Repeat([]byte("builder decompress test\n"), 4096)
	compress := func(tool string, args ...string) []byte {
		cmd := exec.Command(testutil.RequireTool(t, tool), args...)
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		return out
	}
	streams := []struct {
		name  string
		codec Codecs // 0: plain
		raw   []byte
	}{
		{"plain", 0, data},
		{"gzip", CodecGzip, compress("gzip", "-c")},
		{"zstd", CodecZstd, compress("zstd", "-q", "-c")},
		{"bzip2", CodecBzip2, compress("bzip2", "-c")},
		{"xz", CodecXz, compress("xz", "-c")},
	}
	for _, allow := range []struct {
		name string
		set  Codecs
	}{{"layer", LayerCodecs}, {"archive", ArchiveCodecs}} {
		for _, s := range streams {
			t.Run(allow.name+"/"+s.name, func(t *testing.T) {
				rc, err := Decompress(bytes.NewReader(s.raw), allow.set)
				if err != nil {
					t.Fatalf("Decompress: %v", err)
				}
				defer rc.Close()
				got, err := io.ReadAll(rc)
				if err != nil {
					t.Fatalf("reading: %v", err)
				}
				want := s.raw // not allowed: read as it is
				if s.codec == 0 || allow.set&s.codec != 0 {
					want = data
				}
				if !bytes.Equal(got, want) {
					t.Errorf("Decompress(%s, %s) gave %d bytes, want %d", s.name, allow.name, len(got), len(want))
				}
			})
		}
	}
}
