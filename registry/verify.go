package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
	"github.com/builderdev/builder/internal/units"
)

// DefaultMaxLayerSize caps the uncompressed size of one pulled layer when
// Options.MaxLayerSize is 0; it is snapshot.DefaultMaxLayerSize, the
// limit the layer meets again when it is unpacked.
const DefaultMaxLayerSize int64 = 64 << 30

// MaxManifestSize is the largest manifest or index a pull accepts, the
// limit containerd and docker apply. go-containerregistry's own is
// 100 MiB, read into memory.
const MaxManifestSize = 4 << 20

// LayerSizeError means a pulled layer is larger than the limit once
// decompressed.
type LayerSizeError struct {
	Digest v1.Hash
	Limit  int64
}

func (e *LayerSizeError) Error() string {
	return fmt.Sprintf("layer %s is larger than the limit of %s uncompressed (raise it with BUILDER_MAX_LAYER_SIZE if the layer is genuine)", e.Digest, units.Limit(e.Limit))
}

// diffIDCheck hashes the uncompressed stream of a layer blob while the
// blob downloads: the bytes written to it (the compressed blob, as the
// store receives them) are decompressed in a goroutine and their sha256
// compared with the diff ID the image's config gives. Decompressing
// beside the download costs no extra pass over the blob.
type diffIDCheck struct {
	pw   *io.PipeWriter
	done chan error
	n    int64 // bytes written
	size int64 // the uncompressed layer's, once the check passed
}

// errCheckStopped is what a write gets once the check has stopped reading
// early (a corrupt or oversized stream): its own error is the one to
// report.
var errCheckStopped = errors.New("layer check stopped")

func startDiffIDCheck(digest, diffID v1.Hash, limit int64) *diffIDCheck {
	pr, pw := io.Pipe()
	d := &diffIDCheck{pw: pw, done: make(chan error, 1)}
	go func() {
		var err error
		d.size, err = checkDiffID(pr, digest, diffID, limit)
		pr.CloseWithError(errCheckStopped) // unblocks the download if we stopped early
		d.done <- err
	}()
	return d
}

func (d *diffIDCheck) Write(p []byte) (int, error) {
	n, err := d.pw.Write(p)
	d.n += int64(n)
	return n, err
}

// finish ends the stream (cut short if the download failed) and returns
// the check's verdict.
func (d *diffIDCheck) finish(download error) error {
	if download != nil {
		d.pw.CloseWithError(download)
	} else {
		d.pw.Close()
	}
	return <-d.done
}

// checkDiffID reads a compressed layer blob to its end. The compression
// is sniffed from the first bytes, as cache.Store.OpenLayer does when the
// layer is unpacked, so both read the same uncompressed stream.
func checkDiffID(r io.Reader, digest, diffID v1.Hash, limit int64) (int64, error) {
	zr, err := cache.DecompressLayer(r)
	if err != nil {
		return 0, fmt.Errorf("layer %s: decompressing: %w", digest, err)
	}
	defer zr.Close()
	h := sha256.New()
	lr := io.Reader(zr)
	if limit >= 0 {
		lr = io.LimitReader(zr, limit+1)
	}
	n, err := io.Copy(h, lr)
	if err != nil {
		return 0, fmt.Errorf("layer %s: decompressing: %w", digest, err)
	}
	if limit >= 0 && n > limit {
		return 0, &LayerSizeError{Digest: digest, Limit: limit}
	}
	// Anything the decompressor left (it stops at the end of its stream)
	// must still be read, or the download would block on the pipe.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return 0, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); diffID.Algorithm != "sha256" || got != diffID.Hex {
		return 0, fmt.Errorf("layer %s: layer content does not match its diff ID %s: got sha256:%s", digest, diffID, got)
	}
	return n, nil
}

// manifestLimit refuses manifests over MaxManifestSize before they are
// read into memory: by their Content-Length, or while their body is read.
type manifestLimit struct{ next http.RoundTripper }

func (m manifestLimit) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := m.next.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || !strings.Contains(req.URL.Path, "/manifests/") {
		return resp, err
	}
	if resp.ContentLength > MaxManifestSize {
		resp.Body.Close()
		return nil, manifestTooLarge(resp.ContentLength)
	}
	resp.Body = &limitedBody{ReadCloser: resp.Body, left: MaxManifestSize}
	return resp, nil
}

// manifestTooLarge is the error for a manifest of size bytes (0: not
// known, the body went on past the limit).
func manifestTooLarge(size int64) error {
	if size > 0 {
		return fmt.Errorf("manifest of %d bytes is larger than the limit of %s", size, units.Limit(MaxManifestSize))
	}
	return fmt.Errorf("manifest is larger than the limit of %s", units.Limit(MaxManifestSize))
}

type limitedBody struct {
	io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	if b.left -= int64(n); b.left < 0 {
		return 0, manifestTooLarge(0)
	}
	return n, err
}
