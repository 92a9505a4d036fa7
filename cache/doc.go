// Package cache is the local store: an OCI image layout at the store root
// (content-addressed blobs, index.json holding the tags), the step cache
// that maps a step's cache key to what the step produced, the remembered
// hashes of build-context files, and garbage collection.
//
// Layout of ROOT:
//
//	oci-layout, index.json    OCI image layout; skopeo inspect oci:ROOT:app:latest reads it
//	blobs/sha256/<hex>        layers, configs, manifests
//	steps/<xx>/<key hex>      step-cache entries (JSON), one file each, written by rename
//	contexts/<hash>           remembered file hashes of one build context
//	tmp/                      work in progress, one session dir per live process
//	locks                     flock files: index updates, build/prune exclusion
//
// Everything is written under tmp/ first, verified, fsynced and renamed
// into place: a crash leaves nothing half-written.
//
// Cache keys ([Key]) are built by [KeyBuilder] from named, length-prefixed
// fields under the recipe version [KeyRecipe]; changing the recipe changes
// every key, so old entries are never misread.
package cache
