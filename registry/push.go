package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/builderdev/builder/cache"
)

// pushJobs bounds parallel blob uploads, as docker's default of 5
// concurrent uploads does.
const pushJobs = 5

// pushBackoff is how go-containerregistry retries a blob or a manifest
// after a transient failure (5xx, reset, timeout): 1, 2, 4, 8 s. Each
// attempt asks the registry first whether it holds the blob, so a commit
// that failed after the registry stored the blob is not sent again.
var pushBackoff = remote.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 5}

// pushRetryable is go-containerregistry's own predicate (temporary
// errors, resets, EOFs) plus BLOB_UPLOAD_UNKNOWN: GHCR commits a large
// blob slowly and answers a repeated commit with it, and the retry asks
// first whether the blob arrived.
func pushRetryable(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		for _, d := range te.Errors {
			if d.Code == transport.BlobUploadUnknownErrorCode {
				return true
			}
		}
	}
	var tmp interface{ Temporary() bool }
	if errors.As(err, &tmp) && tmp.Temporary() {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// PushProgress reports the upload of one layer.
type PushProgress struct {
	Ref      string  // where the image goes
	Digest   v1.Hash // the layer blob
	Complete int64   // bytes sent so far in this attempt
	Total    int64   // blob size
}

// PushReport says what a push moved.
type PushReport struct {
	Ref      string        // the destination, fully qualified
	Manifest v1.Descriptor // what the tag now points to
	Layers   int
	Uploaded int   // layers whose bytes were sent
	Present  int   // layers the repository held already
	Mounted  int   // layers mounted from another repository of the registry
	Bytes    int64 // layer bytes sent, retries included
}

// Push uploads img to ref (a tag): every blob the repository lacks, in
// parallel, mounted from another repository of the same registry when a
// pull or a push saw it there, and the manifest last. progress, if not
// nil, receives upload progress and must not block.
func (c *Client) Push(ctx context.Context, img v1.Image, ref string, progress func(PushProgress)) (PushReport, error) {
	rep, err := c.push(ctx, img, ref, progress)
	if err != nil {
		return rep, fmt.Errorf("pushing %s: %w", ref, explain(err))
	}
	return rep, nil
}

func (c *Client) push(ctx context.Context, img v1.Image, ref string, progress func(PushProgress)) (PushReport, error) {
	r, err := ParseReference(ref, c.opts.Insecure)
	if err != nil {
		return PushReport{}, err
	}
	if _, ok := r.(name.Tag); !ok {
		return PushReport{}, errors.New("a push needs a tag, not a digest, to name the image")
	}
	rep := PushReport{Ref: r.Name()}
	layers, err := img.Layers()
	if err != nil {
		return rep, err
	}
	obs := &pushObserver{next: c.transport(), mounted: map[string]bool{}}
	wrapped := make([]v1.Layer, len(layers))
	counted := make([]*countedLayer, len(layers))
	for i, l := range layers {
		digest, err := l.Digest()
		if err != nil {
			return rep, err
		}
		size, err := l.Size()
		if err != nil {
			return rep, err
		}
		cl := &countedLayer{Layer: l, c: c, ctx: ctx, digest: digest, report: func(n int64) {
			if progress != nil {
				progress(PushProgress{Ref: rep.Ref, Digest: digest, Complete: n, Total: size})
			}
		}}
		counted[i], wrapped[i] = cl, cl
		if src := c.mountSource(r.Context(), digest); src != nil {
			wrapped[i] = &remote.MountableLayer{Layer: cl, Reference: src}
		}
	}
	err = remote.Write(r, &pushImage{Image: img, layers: wrapped},
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(c.opts.Keychain),
		remote.WithTransport(obs),
		remote.WithJobs(pushJobs),
		remote.WithRetryBackoff(pushBackoff),
		remote.WithRetryPredicate(pushRetryable),
	)
	if err != nil {
		return rep, err
	}
	digest, err := img.Digest()
	if err != nil {
		return rep, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return rep, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return rep, err
	}
	rep.Manifest = v1.Descriptor{MediaType: mt, Digest: digest, Size: int64(len(raw))}
	rep.Layers = len(layers)
	blobs := []v1.Hash{}
	for _, cl := range counted {
		blobs = append(blobs, cl.digest)
		switch {
		case obs.wasMounted(cl.digest):
			rep.Mounted++
		case cl.opens.Load() > 0:
			rep.Uploaded++
		default:
			rep.Present++
		}
		rep.Bytes += cl.sent.Load()
	}
	if cfg, err := img.ConfigName(); err == nil {
		blobs = append(blobs, cfg)
	}
	// A hint for later mounts; failing to write it loses nothing.
	_ = c.store.AddBlobSource(r.Context().Name(), blobs...)
	return rep, nil
}

// mountSource returns a repository of dst's registry, other than dst,
// that a pull or a push saw holding blob h.
func (c *Client) mountSource(dst name.Repository, h v1.Hash) name.Reference {
	for _, src := range c.store.BlobSources(h) {
		repo, err := name.NewRepository(src)
		if err != nil || repo.RegistryStr() != dst.RegistryStr() || repo.RepositoryStr() == dst.RepositoryStr() {
			continue
		}
		if PlainHTTP(repo.RegistryStr(), c.opts.Insecure) {
			repo, err = name.NewRepository(src, name.Insecure)
			if err != nil {
				continue
			}
		}
		return repo.Tag("latest") // only its repository is used
	}
	return nil
}

// pushImage is img with its layers replaced by the wrapped ones.
type pushImage struct {
	v1.Image
	layers []v1.Layer
}

func (p *pushImage) Layers() ([]v1.Layer, error) { return p.layers, nil }

// countedLayer counts the bytes read from a layer for upload; every
// open (a retry opens again) starts the progress over.
type countedLayer struct {
	v1.Layer
	c      *Client
	ctx    context.Context // the push's
	digest v1.Hash
	report func(int64)
	opens  atomic.Int32
	sent   atomic.Int64
}

func (l *countedLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if errors.Is(err, cache.ErrNotFound) {
		// A --cache-from layer the store lists but never needed, pushed
		// where it cannot be mounted from: its bytes are fetched now.
		err = l.fetch()
		if err == nil {
			rc, err = l.Layer.Compressed()
		}
	}
	if err != nil {
		return nil, err
	}
	l.opens.Add(1)
	return &countingReadCloser{rc: rc, layer: l}, nil
}

type countingReadCloser struct {
	rc    io.ReadCloser
	layer *countedLayer
	n     int64
}

func (c *countingReadCloser) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.n += int64(n)
	c.layer.sent.Add(int64(n))
	c.layer.report(c.n)
	return n, err
}

func (c *countingReadCloser) Close() error { return c.rc.Close() }

// pushObserver notes which blobs the registry mounted: a POST to
// blobs/uploads/ with mount=DIGEST that is answered 201.
type pushObserver struct {
	next    http.RoundTripper
	mu      sync.Mutex
	mounted map[string]bool
}

func (o *pushObserver) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := o.next.RoundTrip(req)
	if err == nil && req.Method == http.MethodPost && resp.StatusCode == http.StatusCreated &&
		strings.HasSuffix(req.URL.Path, "/blobs/uploads/") {
		if d := req.URL.Query().Get("mount"); d != "" {
			o.mu.Lock()
			o.mounted[d] = true
			o.mu.Unlock()
		}
	}
	return resp, err
}

func (o *pushObserver) wasMounted(h v1.Hash) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.mounted[h.String()]
}

func (l *countedLayer) fetch() error {
	diffID, err := l.Layer.DiffID()
	if err != nil {
		return err
	}
	size, err := l.Layer.Size()
	if err != nil {
		return err
	}
	mt, err := l.Layer.MediaType()
	if err != nil {
		return err
	}
	return l.c.FetchLayer(l.ctx, cache.Layer{Descriptor: v1.Descriptor{MediaType: mt, Digest: l.digest, Size: size}, DiffID: diffID})
}
