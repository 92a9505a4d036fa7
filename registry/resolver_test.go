package registry_test

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/builderdev/builder/registry"
)

// TestResolverPolicies: the local store comes first unless the policy is
// PullAlways, PullNever never asks the registry, and a local image for
// another platform is pulled again for the one asked.
func TestResolverPolicies(t *testing.T) {
	var manifestGets atomic.Int32
	host := serve(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/") {
				manifestGets.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/app:1"
	push(t, ref, img)
	manifestGets.Store(0)
	store := openStore(t)
	client := registry.New(store, registry.Options{})
	here := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	ctx := context.Background()

	if _, err := registry.NewResolver(store, client, registry.PullNever).Resolve(ctx, ref, here); err == nil ||
		!strings.Contains(err.Error(), "not found in the local store") {
		t.Fatalf("PullNever on an empty store: %v", err)
	}
	if n := manifestGets.Load(); n != 0 {
		t.Fatalf("PullNever asked the registry %d times", n)
	}
	rec, err := registry.NewResolver(store, client, registry.PullMissing).Resolve(ctx, ref, here)
	if err != nil {
		t.Fatal(err)
	}
	pulled := manifestGets.Load()
	if pulled == 0 {
		t.Fatal("PullMissing on an empty store did not pull")
	}
	again, err := registry.NewResolver(store, client, registry.PullMissing).Resolve(ctx, ref, here)
	if err != nil || again.ID != rec.ID || manifestGets.Load() != pulled {
		t.Errorf("PullMissing with the image stored: %v, %d more manifest requests", err, manifestGets.Load()-pulled)
	}
	if _, err := registry.NewResolver(store, nil, registry.PullNever).Resolve(ctx, ref, here); err != nil {
		t.Errorf("PullNever with the image stored: %v", err)
	}
	if _, err := registry.NewResolver(store, client, registry.PullAlways).Resolve(ctx, ref, here); err != nil || manifestGets.Load() == pulled {
		t.Errorf("PullAlways: %v, pulled again: %v", err, manifestGets.Load() != pulled)
	}
	// random.Image says no platform: taken as it is, as docker does.
	other := v1.Platform{OS: "linux", Architecture: "s390x"}
	if _, err := registry.NewResolver(store, nil, registry.PullNever).Resolve(ctx, ref, other); err != nil {
		t.Errorf("an image with no platform for %s: %v", other.String(), err)
	}
}
