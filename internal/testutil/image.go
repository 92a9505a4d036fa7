package testutil

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BusyboxPath is the PATH of the image BusyboxImage returns, Docker's
// default for Linux containers.
const BusyboxPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

var (
	busyboxTarOnce sync.Once
	busyboxTarPath string
	busyboxTarErr  error
)

// BusyboxTar returns the path of an uncompressed tar of [BusyboxRootfs]:
// entries in lexical order, owners 0:0 with no user or group names, and
// every time set to the Unix epoch, so the same busybox gives the same
// bytes. The file is named by its content hash and shared by every test
// binary, and must be treated as read-only.
func BusyboxTar(t testing.TB) string {
	t.Helper()
	dir := BusyboxRootfs(t)
	busyboxTarOnce.Do(func() {
		busyboxTarPath, busyboxTarErr = writeBusyboxTar(dir)
	})
	if busyboxTarErr != nil {
		t.Fatalf("making busybox tar: %v", busyboxTarErr)
	}
	return busyboxTarPath
}

// writeBusyboxTar writes the tar under the temp dir, named by its digest:
// one file per busybox version rather than one per test run, written by
// rename so that test binaries running in parallel never see half of it.
func writeBusyboxTar(root string) (string, error) {
	var buf bytes.Buffer
	if err := tarDir(&buf, root); err != nil {
		return "", err
	}
	sum := sha256.Sum256(buf.Bytes())
	path := filepath.Join(os.TempDir(), "builder-busybox-"+hex.EncodeToString(sum[:8])+".tar")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".builder-busybox-*.tar")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Chmod(0o444); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(f.Name(), path)
}

// tarDir writes dir as a tar with stable headers. WalkDir visits entries
// in lexical order, which is the order wanted.
func tarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var link string
		if d.Type()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = time.Unix(0, 0), time.Time{}, time.Time{}
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

var (
	busyboxImageOnce sync.Once
	busyboxImage     v1.Image
	busyboxImageErr  error
)

// BusyboxImage returns a single-layer OCI image of [BusyboxTar] (gzip
// layer) with Env PATH=[BusyboxPath], Cmd ["sh"], OS linux and the host's
// architecture, as a base image for tests. It is made once per test binary.
func BusyboxImage(t testing.TB) v1.Image {
	t.Helper()
	path := BusyboxTar(t)
	busyboxImageOnce.Do(func() {
		busyboxImage, busyboxImageErr = makeBusyboxImage(path)
	})
	if busyboxImageErr != nil {
		t.Fatalf("making busybox image: %v", busyboxImageErr)
	}
	return busyboxImage
}

func makeBusyboxImage(tarPath string) (v1.Image, error) {
	raw, err := os.ReadFile(tarPath)
	if err != nil {
		return nil, err
	}
	// Compressing once here keeps the layer's bytes, and so its digest,
	// the same however often a test reads them.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gz.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	// The wrapper hides the tarball layer's Descriptor method, whose empty
	// (not nil) annotations map would make Manifest() differ from the
	// parsed RawManifest(), which ggcr's validate.Image rejects.
	layer = struct{ v1.Layer }{layer}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:   layer,
		History: v1.History{CreatedBy: "ADD busybox-rootfs.tar / # testutil", Created: v1.Time{Time: time.Unix(0, 0).UTC()}},
	})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cfg.Config.Env = []string{"PATH=" + BusyboxPath}
	cfg.Config.Cmd = []string{"sh"}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("setting config: %w", err)
	}
	return img, nil
}
