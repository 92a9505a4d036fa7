package cache

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestLayoutDirHostile: a layout directory from outside cannot make an
// import read a device or a FIFO for ever, nor more than a blob's size.
func TestLayoutDirHostile(t *testing.T) {
	s := openTest(t)
	dir := t.TempDir()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"schemaVersion":2,"manifests":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := OpenLayoutDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := func(c string) v1.Hash { return v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(c, 64)} }
	os.Symlink("/dev/zero", filepath.Join(blobs, h("a").Hex))
	if err := unixMkfifo(filepath.Join(blobs, h("b").Hex)); err != nil {
		t.Fatal(err)
	}
	data := []byte("twelve bytes")
	big := sha256Of(data)
	os.WriteFile(filepath.Join(blobs, big.Hex), data, 0o644)
	for name, d := range map[string]v1.Descriptor{
		"symlink to /dev/zero": {Digest: h("a"), Size: 10},
		"fifo":                 {Digest: h("b"), Size: 10},
		"longer than stated":   {Digest: big, Size: 5},
	} {
		if err := l.CopyBlob(s, d); err == nil {
			t.Errorf("%s: copied", name)
		}
		if s.HasBlob(d.Digest) {
			t.Errorf("%s: the store holds it", name)
		}
	}
	if _, err := l.ReadBlob(h("a"), 100); err == nil {
		t.Error("ReadBlob followed a symlink")
	}
}

func unixMkfifo(p string) error { return syscall.Mkfifo(p, 0o644) }
