package registry

import (
	"context"
	"errors"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

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
	// Transport is the HTTP transport; default http.DefaultTransport.
	Transport http.RoundTripper
	// Progress, if set, receives download progress. It must not block.
	Progress func(Progress)
}

// Client talks to registries on behalf of one store.
type Client struct{}

// New returns a client that pulls into store.
func New(store *cache.Store, opts Options) *Client { return &Client{} }

// Pull fetches ref into the store: the manifest for the chosen platform,
// its config, and the layers the store lacks, in parallel, each verified
// by digest. Only then is the image tagged under ref's familiar name. It
// returns the stored image.
func (c *Client) Pull(ctx context.Context, ref string) (cache.ImageRecord, error) {
	return cache.ImageRecord{}, errors.New("registry: not implemented")
}
