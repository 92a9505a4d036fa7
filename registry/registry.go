package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/errgroup"

	"github.com/builderdev/builder/cache"
)

// Progress reports the download of one blob.
type Progress struct {
	Ref      string  // the image being pulled
	Digest   v1.Hash // the blob
	Complete int64   // bytes so far
	Total    int64   // blob size
	Done     bool
	Cached   bool // already in the store; nothing downloaded
}

// Options configure a Client.
type Options struct {
	// Platform picks the manifest of a multi-arch index; default
	// linux/<host arch>.
	Platform *v1.Platform
	// Insecure lists registries (host[:port]) reached over plain HTTP.
	// Loopback registries (localhost, 127.0.0.1, [::1]) always are.
	Insecure []string
	// Keychain supplies credentials; default authn.DefaultKeychain
	// (~/.docker/config.json, DOCKER_CONFIG, credential helpers).
	Keychain authn.Keychain
	// Transport is the HTTP transport; default http.DefaultTransport
	// with ResponseTimeout.
	Transport http.RoundTripper
	// ResponseTimeout bounds the wait for response headers when
	// Transport is nil; 0 means DefaultResponseTimeout.
	ResponseTimeout time.Duration
	// IdleTimeout bounds how long a layer fetched on demand (FetchLayer)
	// may send nothing before the fetch moves to the next source; 0 means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Progress, if set, receives download progress. It must not block.
	Progress func(Progress)
	// MaxLayerSize caps the uncompressed size of one layer: 0 means
	// DefaultMaxLayerSize, a negative value no limit.
	MaxLayerSize int64
	// LazyLayers makes a pull store the manifest and config only, and
	// record that the repository holds the layers: a build fetches a
	// layer (FetchLayer) when a step has to run on it, and a push to the
	// same registry mounts it. So a build whose steps all come from a
	// cache downloads no base layer, as with BuildKit.
	LazyLayers bool
}

// Client talks to registries on behalf of one store.
type Client struct {
	store *cache.Store
	opts  Options
}

// New returns a client that pulls into store.
func New(store *cache.Store, opts Options) *Client {
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	if opts.Transport == nil {
		if opts.ResponseTimeout == 0 {
			opts.ResponseTimeout = DefaultResponseTimeout
		}
		opts.Transport = newTransport(opts.ResponseTimeout)
	}
	if opts.Platform == nil {
		opts.Platform = &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	if opts.MaxLayerSize == 0 {
		opts.MaxLayerSize = DefaultMaxLayerSize
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	return &Client{store: store, opts: opts}
}

// maxConfigSize bounds an image config a pull reads (the store reads
// configs up to 64 MiB).
const maxConfigSize = 64 << 20

// pullLayers bounds parallel blob downloads, as docker's default of 3
// concurrent downloads does.
const pullLayers = 4

// ParseReference parses an image reference with Docker Hub defaults and
// plain HTTP for loopback and the given insecure registries.
func ParseReference(ref string, insecure []string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	if PlainHTTP(r.Context().RegistryStr(), insecure) {
		return name.ParseReference(ref, name.Insecure)
	}
	return r, nil
}

// PlainHTTP reports whether the registry at host (host[:port]) may be
// reached over plain HTTP: loopback hosts and the ones listed insecure,
// and no other. go-containerregistry would also use plain HTTP for RFC
// 1918 addresses and any name starting "localhost:", which would send
// credentials in the clear across a private network; docker does not,
// and neither do we (see httpsOnly).
func PlainHTTP(host string, insecure []string) bool {
	return isLoopback(host) || contains(insecure, host)
}

// transport is what every request goes through: HTTPS unless plain
// HTTP is allowed, and Retry-After honoured.
func (c *Client) transport() http.RoundTripper {
	return httpsOnly{retryAfter{next: c.opts.Transport, sleep: sleepCtx}, c.opts.Insecure}
}

// httpsOnly upgrades every plain-HTTP request to a host that PlainHTTP
// does not allow to HTTPS, whatever go-containerregistry chose for it.
type httpsOnly struct {
	next     http.RoundTripper
	insecure []string
}

func (h httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" || PlainHTTP(req.URL.Host, h.insecure) {
		return h.next.RoundTrip(req)
	}
	up := req.Clone(req.Context())
	up.URL.Scheme = "https"
	return h.next.RoundTrip(up)
}

func isLoopback(host string) bool {
	h := host
	if sh, _, err := net.SplitHostPort(host); err == nil {
		h = sh
	}
	// One bracket each side at most: Trim would turn "]::1" into a
	// loopback address (found by FuzzParseReference).
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") { // host names ignore case
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Pull fetches ref into the store: the manifest for the chosen platform,
// its config, and the layers the store lacks, in parallel, each verified
// by digest and, decompressed as it downloads, against the diff ID the
// config gives it (and the size limit). Only then is the image tagged
// under ref's familiar name. It returns the stored image. Manifests over
// MaxManifestSize are refused.
//
// A layer blob the store already holds is not read again: its digest was
// checked when it was stored, and snapshot.Store.Unpack checks every
// layer against its diff ID before anything uses it.
func (c *Client) Pull(ctx context.Context, ref string) (cache.ImageRecord, error) {
	return c.PullWithProgress(ctx, ref, c.opts.Progress)
}

// PullWithProgress is Pull reporting to progress instead of
// Options.Progress.
func (c *Client) PullWithProgress(ctx context.Context, ref string, progress func(Progress)) (cache.ImageRecord, error) {
	return c.PullPlatform(ctx, ref, *c.opts.Platform, progress)
}

// PullPlatform is PullWithProgress for a given platform (FROM --platform).
//
// The pull holds the store's build lock (shared), so a prune cannot
// remove the blobs it has written before the tag names them; a build
// that pulls holds it already, which is no obstacle.
func (c *Client) PullPlatform(ctx context.Context, ref string, platform v1.Platform, progress func(Progress)) (cache.ImageRecord, error) {
	release, err := c.store.BuildLock(ctx)
	if err != nil {
		return cache.ImageRecord{}, fmt.Errorf("waiting for the store: %w", err)
	}
	defer release()
	rec, err := c.pull(ctx, ref, platform, progress)
	if err != nil {
		if nf := noSuchImage(ref, err); nf != nil {
			return cache.ImageRecord{}, nf
		}
		return cache.ImageRecord{}, fmt.Errorf("pulling %s: %w", ref, explain(err))
	}
	return rec, nil
}

// NotFoundError is a pull of a tag, digest or repository the registry
// does not have. It says so in a few words; Err keeps the registry's.
type NotFoundError struct {
	Ref  string
	What string // "tag", "manifest" or "repository"
	Err  error
}

func (e *NotFoundError) Error() string { return e.Ref + ": no such " + e.What }
func (e *NotFoundError) Unwrap() error { return e.Err }

// noSuchImage returns a NotFoundError when the registry answered that
// ref does not exist, nil otherwise.
func noSuchImage(ref string, err error) error {
	var te *transport.Error
	if !errors.As(err, &te) {
		return nil
	}
	what := "tag"
	if strings.Contains(ref, "@") {
		what = "manifest"
	}
	for _, d := range te.Errors {
		if d.Code == transport.NameUnknownErrorCode {
			return &NotFoundError{Ref: ref, What: "repository", Err: err}
		}
	}
	for _, d := range te.Errors {
		if d.Code == transport.ManifestUnknownErrorCode {
			return &NotFoundError{Ref: ref, What: what, Err: err}
		}
	}
	if te.StatusCode == http.StatusNotFound && te.Request != nil && strings.Contains(te.Request.URL.Path, "/manifests/") {
		return &NotFoundError{Ref: ref, What: what, Err: err}
	}
	return nil
}

// UnreachableError is a registry that could not be reached at all: no
// connection, or its name does not resolve. One line, the address once,
// where the transport tried https and http and reported both.
type UnreachableError struct {
	Host string
	Err  error // the connection's error: "connect: connection refused"
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("the registry %s could not be reached (%v)", e.Host, e.Err)
}
func (e *UnreachableError) Unwrap() error { return e.Err }

// unreachable returns an UnreachableError when err is a failed dial or
// name lookup, nil otherwise.
func unreachable(err error) error {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return &UnreachableError{Host: dns.Name, Err: errors.New("no such host")}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		host := ""
		if op.Addr != nil {
			host = op.Addr.String()
		}
		return &UnreachableError{Host: host, Err: op.Err}
	}
	return nil
}

func (c *Client) pull(ctx context.Context, ref string, platform v1.Platform, progress func(Progress)) (cache.ImageRecord, error) {
	r, err := ParseReference(ref, c.opts.Insecure)
	if err != nil {
		return cache.ImageRecord{}, err
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(c.opts.Keychain),
		remote.WithTransport(manifestLimit{c.transport()}),
		remote.WithPlatform(platform),
	}
	desc, err := remote.Get(r, opts...)
	if err != nil {
		return cache.ImageRecord{}, err
	}
	if desc.MediaType.IsIndex() {
		if err := checkPlatform(desc, platform); err != nil {
			return cache.ImageRecord{}, err
		}
	}
	img, err := desc.Image() // picks the platform's manifest in an index
	if err != nil {
		return cache.ImageRecord{}, err
	}
	if err := c.fetchBlobs(ctx, ref, img, progress); err != nil {
		return cache.ImageRecord{}, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return cache.ImageRecord{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return cache.ImageRecord{}, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return cache.ImageRecord{}, err
	}
	if _, _, err := c.store.PutBlob(bytes.NewReader(raw), digest); err != nil {
		return cache.ImageRecord{}, fmt.Errorf("storing manifest: %w", err)
	}
	md := v1.Descriptor{MediaType: mt, Digest: digest, Size: int64(len(raw))}
	m, err := img.Manifest()
	if err != nil {
		return cache.ImageRecord{}, err
	}
	blobs := []v1.Hash{m.Config.Digest}
	for _, l := range m.Layers {
		blobs = append(blobs, l.Digest)
	}
	// Where pushes mount from, and where a lazy pull's layers are fetched
	// from: before the tag, which names an image that needs them.
	if err := c.store.AddBlobSource(r.Context().Name(), blobs...); err != nil && c.opts.LazyLayers {
		return cache.ImageRecord{}, fmt.Errorf("recording where the layers are: %w", err)
	}
	if _, isDigest := r.(name.Digest); !isDigest {
		if err := c.store.Tag(ref, md); err != nil {
			return cache.ImageRecord{}, fmt.Errorf("tagging: %w", err)
		}
	}
	return c.store.Lookup(digest.String())
}

// checkPlatform gives a clear error when an index has no manifest for the
// wanted platform, listing what it has.
func checkPlatform(desc *remote.Descriptor, platform v1.Platform) error {
	idx, err := desc.ImageIndex()
	if err != nil {
		return err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	var have []string
	for _, d := range m.Manifests {
		if d.Platform == nil {
			continue
		}
		if d.Platform.Satisfies(platform) {
			return nil
		}
		have = append(have, d.Platform.String())
	}
	return fmt.Errorf("no image for platform %s in the index (it has: %s)", platform.String(), strings.Join(have, ", "))
}

// fetchBlobs stores the config and every layer the store lacks, verified
// against its digest and its diff ID, several at a time.
func (c *Client) fetchBlobs(ctx context.Context, ref string, img v1.Image, progress func(Progress)) error {
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	if len(raw) > MaxManifestSize {
		return manifestTooLarge(int64(len(raw)))
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	if !c.store.HasBlob(cfgName) {
		m, err := img.Manifest()
		if err != nil {
			return err
		}
		// ggcr reads a config of unknown size (-1) without a bound.
		if m.Config.Size < 0 || m.Config.Size > maxConfigSize {
			return fmt.Errorf("image config of %d bytes is outside 0 to %d", m.Config.Size, maxConfigSize)
		}
		raw, err := img.RawConfigFile()
		if err != nil {
			return err
		}
		if _, _, err := c.store.PutBlob(bytes.NewReader(raw), cfgName); err != nil {
			return fmt.Errorf("storing config: %w", err)
		}
	}
	diffIDs, err := checkedDiffIDs(img)
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	if c.opts.LazyLayers {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pullLayers)
	for i, l := range layers {
		g.Go(func() error { return c.fetchLayer(gctx, ref, l, diffIDs[i], progress) })
	}
	return g.Wait()
}

// checkedDiffIDs returns the config's diff IDs, one per layer of the
// manifest: layer i must decompress to diff ID i.
func checkedDiffIDs(img v1.Image) ([]v1.Hash, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if n, want := len(cfg.RootFS.DiffIDs), len(m.Layers); n != want {
		return nil, fmt.Errorf("the config lists %d diff IDs for the manifest's %d layers", n, want)
	}
	return cfg.RootFS.DiffIDs, nil
}

func (c *Client) fetchLayer(ctx context.Context, ref string, l v1.Layer, diffID v1.Hash, progress func(Progress)) error {
	digest, err := l.Digest()
	if err != nil {
		return err
	}
	size, _ := l.Size()
	report := func(p Progress) {
		if progress != nil {
			p.Ref, p.Digest, p.Total = ref, digest, size
			progress(p)
		}
	}
	if c.store.HasBlob(digest) {
		report(Progress{Complete: size, Done: true, Cached: true})
		return nil
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("layer %s: %w", digest, err)
	}
	defer rc.Close()
	cr := &countingReader{r: rc, ctx: ctx, report: func(n int64) { report(Progress{Complete: n}) }}
	check := startDiffIDCheck(digest, diffID, c.opts.MaxLayerSize)
	_, _, err = c.store.PutBlob(io.TeeReader(cr, check), digest)
	cerr := check.finish(err)
	if err == nil && check.n == 0 {
		// Another process stored the blob first and PutBlob read nothing:
		// check the stored copy instead.
		cerr = c.checkStored(digest, diffID)
	}
	if cerr != nil && (err == nil || errors.Is(err, errCheckStopped)) {
		return cerr // why the check stopped the download, not that it did
	}
	if err != nil {
		return fmt.Errorf("layer %s: %w", digest, err)
	}
	if check.size > 0 {
		c.store.RecordLayerSize(diffID, check.size)
	}
	report(Progress{Complete: size, Done: true})
	return nil
}

func (c *Client) checkStored(digest, diffID v1.Hash) error {
	rc, err := c.store.OpenBlob(digest)
	if err != nil {
		return fmt.Errorf("layer %s: %w", digest, err)
	}
	defer rc.Close()
	n, err := checkDiffID(rc, digest, diffID, c.opts.MaxLayerSize)
	if err == nil {
		c.store.RecordLayerSize(diffID, n)
	}
	return err
}

// countingReader reports bytes read and stops when ctx is cancelled.
type countingReader struct {
	r      io.Reader
	ctx    context.Context
	n      atomic.Int64
	report func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.report(c.n.Add(int64(n)))
	return n, err
}

// explain rewrites registry errors users meet often into what to do.
func explain(err error) error {
	if u := unreachable(err); u != nil {
		return u
	}
	var te *transport.Error
	if !errors.As(err, &te) {
		return err
	}
	host := ""
	if te.Request != nil && te.Request.URL != nil {
		host = te.Request.URL.Host
	}
	for _, d := range te.Errors {
		switch d.Code {
		case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode:
			return fmt.Errorf("image not found in the registry: %w", err)
		case transport.BlobUnknownErrorCode:
			return fmt.Errorf("the registry is missing a blob of the image: %w", err)
		}
	}
	switch te.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%s refused access (HTTP %d): log in with `builder login %s`, or give credentials in DOCKER_CONFIG or REGISTRY_AUTH_FILE", host, te.StatusCode, host)
	case http.StatusNotFound:
		if te.Request != nil && strings.Contains(te.Request.URL.Path, "/manifests/") {
			return fmt.Errorf("image not found in the registry: %w", err)
		}
	}
	return err
}
