package registry

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
)

// PullPolicy says when FROM consults a registry.
type PullPolicy int

const (
	PullMissing PullPolicy = iota // use the local image if there is one (docker build's default)
	PullAlways                    // always check the registry (--pull)
	PullNever                     // never contact a registry
)

// NewResolver returns what FROM and COPY --from use to find an image:
// the local store first (unless policy is PullAlways), then a pull
// through client (nil: the local store only). It serves
// executor.Resolver and executor.ProgressResolver.
func NewResolver(store *cache.Store, client *Client, policy PullPolicy) *Resolver {
	return &Resolver{store: store, client: client, policy: policy}
}

// Resolver finds images for a build; see NewResolver.
type Resolver struct {
	store  *cache.Store
	client *Client
	policy PullPolicy
}

// Resolve finds ref for platform, pulling it when the policy says so.
func (r *Resolver) Resolve(ctx context.Context, ref string, platform v1.Platform) (cache.ImageRecord, error) {
	return r.ResolveWithProgress(ctx, ref, platform, nil)
}

// ResolveWithProgress is Resolve reporting the bytes a pull downloads,
// per layer (label is the layer's digest).
func (r *Resolver) ResolveWithProgress(ctx context.Context, ref string, platform v1.Platform, progress func(label string, current, total int64)) (cache.ImageRecord, error) {
	if r.policy != PullAlways {
		rec, err := r.store.Lookup(ref)
		switch {
		case err == nil:
			have, perr := r.platformOf(rec)
			if perr != nil {
				return cache.ImageRecord{}, perr
			}
			if platformMatches(have, platform) {
				return rec, nil
			}
			if r.policy == PullNever || r.client == nil {
				return cache.ImageRecord{}, fmt.Errorf("local image %s is for %s, not %s", ref, have, platform.String())
			}
		case !errors.Is(err, cache.ErrNotFound):
			return cache.ImageRecord{}, err
		case r.policy == PullNever || r.client == nil:
			return cache.ImageRecord{}, fmt.Errorf("image %s not found in the local store", ref)
		}
	}
	if r.client == nil {
		return cache.ImageRecord{}, fmt.Errorf("image %s: no registry client", ref)
	}
	var report func(Progress)
	if progress != nil {
		report = func(p Progress) {
			if !p.Cached {
				progress(p.Digest.String(), p.Complete, p.Total)
			}
		}
	}
	rec, err := r.client.PullPlatform(ctx, ref, platform, report)
	var ue *UnreachableError
	if err != nil && r.policy != PullAlways && errors.As(err, &ue) {
		return rec, fmt.Errorf("image %s is not in the local store, and %w", ref, ue)
	}
	return rec, err
}

// platformOf reads the platform a stored image is for.
func (r *Resolver) platformOf(rec cache.ImageRecord) (v1.Platform, error) {
	img, err := r.store.Image(rec.Manifest.Digest)
	if err != nil {
		return v1.Platform{}, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return v1.Platform{}, err
	}
	return v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}, nil
}

// platformMatches reports whether an image for have can serve want. An
// image that does not say its platform is taken as it is, as docker does.
func platformMatches(have, want v1.Platform) bool {
	if have.OS == "" && have.Architecture == "" {
		return true
	}
	if have.OS != want.OS || have.Architecture != want.Architecture {
		return false
	}
	return want.Variant == "" || have.Variant == "" || have.Variant == want.Variant
}
