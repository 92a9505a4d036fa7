// Package cache is the local store: an OCI image layout at the store root
// (content-addressed blobs, index.json holding the tags), the step cache
// that maps a step's cache key to what the step produced, the remembered
// hashes of build-context files, and garbage collection. It does not
// unpack layers (that is package snapshot) nor talk to registries.
//
// Layout of ROOT:
//
//	oci-layout, index.json    OCI image layout; skopeo inspect oci:ROOT:app:latest reads it
//	blobs/sha256/<hex>        layers, configs, manifests (not the layers a build holds in snapshots: held.go)
//	compressed/<hex>.<fmt>    a held layer's compressed blob, made when it first left the machine
//	images/<config hex>       manifest descriptor of each image ID, so untagged images are found by ID
//	steps/<xx>/<key hex>      step-cache entries (JSON), one file each, written by rename
//	contexts/<hash>           remembered file hashes of one build context (binary, CRC-checked)
//	tmp/s-<pid>-…/            work in progress, one session dir per live process
//	index.lock, build.lock    flock files: index updates; builds (shared) versus prune (exclusive)
//
// ROOT itself is mode 0700 (tightened on every Open if it is ours and more
// open): build-arg values reach history and cache entries, as in docker,
// and the root is the one gate that keeps other users out. The modes
// inside are those of any OCI layout.
//
// Everything is written under tmp/ first, verified, fsynced and renamed
// into place (one fsutil.PendingFile per file; blobs through one
// write-verify-rename, also used by [ExportLayout]): a crash leaves nothing
// half-written, only a session directory that the next [Open] recognises
// as dead (its flock is free) and removes.
//
// Tags are index.json descriptors annotated with
// org.opencontainers.image.ref.name = the familiar name ("app:latest",
// see [NormalizeName]) and io.containerd.image.name = the full one
// ("docker.io/library/app:latest"). index.json is rewritten whole under
// index.lock; readers take no lock.
//
// # Step cache
//
// Cache keys ([Key]) are built by [KeyBuilder] from named, length-prefixed
// fields under the recipe version [KeyRecipe]; changing the recipe changes
// every key, so old entries are never misread. An entry is one small file:
// a lookup is one read, needs no lock, and sees another process's entry as
// soon as its rename is done. A hit sets the file's mtime, which is the
// entry's last use for [Store.Prune].
//
// # Layers
//
// [Store.PutLayer] is the hot path of a build. It reads the tar once,
// hashing it (the diff ID) on the way into a parallel gzip (fixed 1 MiB
// blocks, so the output does not depend on the CPU count) or zstd encoder
// whose output is hashed (the digest) and written to the session while
// the kernel is asked to start writing it to disk, so that the final fsync
// is short.
//
// [Decompress] is the module's one reader of compressed streams: it tells
// the compression by the first bytes, from the set its caller allows.
// Layers, pulled or unpacked, allow gzip and zstd ([LayerCodecs]); the
// local archives ADD unpacks allow bzip2 and xz too ([ArchiveCodecs]).
//
// # Checking
//
// [Store.Check] verifies every blob against its digest and that every
// tag, image record and step entry refers to complete, sound blobs; with
// repair it removes what is broken, never a complete image.
//
// NOTE: there is no lock between Prune and writers that do not hold the
// build lock (a `builder pull` running during `builder prune` could lose
// blobs written before its Tag). Callers that write blobs outside a build
// should hold [Store.BuildLock] too.
package cache
