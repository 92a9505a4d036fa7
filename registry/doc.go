// Package registry moves images between registries and the local store
// with go-containerregistry: pulls that fetch only the blobs the store
// lacks, with Docker Hub defaults ("alpine" is docker.io/library/alpine),
// credentials from the Docker config keychain, plain HTTP for loopback
// registries, and platform selection in multi-arch indexes. Nothing a
// registry sends is trusted: blobs are checked against their digests,
// layers (decompressed while they download) against the config's diff IDs
// and a size limit, and manifests are refused over [MaxManifestSize].
//
// NOTE: push, cross-repository mounts and the registry-held build cache
// come with the registry issue; the package is shaped for them (Client
// holds the transport and keychain they will share).
package registry
