// Package snapshot owns the file-system side of a build: layers unpacked
// into directories in overlay format, overlay mounts of a chain of them,
// and the conversion between an overlay upper directory and an OCI layer
// tar. It does not own blobs, digests or compression (package cache does),
// nor running anything in a mount (package executor does).
//
// Words used here:
//
//   - A committed snapshot is an unpacked layer: ROOT/snapshots/<id>/fs,
//     with whiteouts as 0/0 character devices and opaque directories
//     marked with the trusted.overlay.opaque xattr. It never changes.
//   - A chain is a list of committed snapshots, bottom first: the
//     filesystem of an image up to some step. Its root directory is the
//     root of its top layer (ROOT/snapshots/.empty, 0755 root, for the
//     empty chain of a scratch image).
//   - An active snapshot ([Active]) is a fresh upper directory (and
//     overlay work directory) on top of a chain, in this process's
//     session directory under ROOT/tmp. Its upper root starts with the
//     chain root's mode and owner, since overlay shows it as "/".
//   - [Mount] describes the overlay of a chain plus an upper; it is data
//     until [Mount.MountAt] runs inside a private mount namespace.
//
// One RUN step, seen from here:
//
//	a, _ := store.Prepare(ctx, chain)     // empty upper, Mount for the chain
//	defer a.Close()                       // removes whatever is left
//	... the RUN child mounts a.Mount and runs the command ...
//	WriteLayer(w, a.Upper(), opts)        // upper → OCI tar, whiteouts converted
//	a.Commit(ID(diffID.Hex))              // the upper becomes the next snapshot
//
// A layer that arrives as a tar (a pulled base, a cache hit from another
// machine) is unpacked once with [Store.Unpack], which publishes it only
// if the stream, read to its end, hashes to the diff ID the snapshot is
// named by: an image that claims another layer's diff ID cannot take that
// layer's place. [Apply] does the work and
// never writes outside the target directory, whatever the tar holds: each
// path is resolved by the kernel inside the target (openat2 with
// RESOLVE_IN_ROOT) and each change is an *at call on the parent directory
// that does not follow the last name. As the OCI image spec says, a
// whiteout hides only what lower layers hold: an entry of the same layer
// at that name stays, and a directory there becomes opaque. [Extract]
// does the same for ADD of a local archive, inside the image's root,
// without whiteout meaning.
//
// Extended attributes travel in layers as PAX SCHILY.xattr records, both
// ways, except overlay's own (trusted.overlay.*, user.overlay.*: they
// describe one mount, and from a tar they would be forged) and
// security.selinux (the host's label, not the file's content).
//
// Every layer and ADD archive is held to a size limit (the store's
// [Options.MaxLayerSize], [DefaultMaxLayerSize] unless set): on its
// uncompressed stream and on the file data it makes, since a sparse entry
// can claim terabytes in a few bytes. Exceeding it is a [SizeLimitError].
//
// Each snapshot directory holds, beside fs/, a marker (snapshot.json)
// written before the directory is renamed into place: where the snapshot
// came from (unpack, commit, merge), its diff ID or merged chain, and the
// digest WriteLayer gives for fs/ (for a layer committed with
// [Active.CommitLayer] that is the diff ID itself). [Store.Check]
// verifies every snapshot against it and reports, or with repair
// removes, what does not match, along with strays, stale mounts and dead
// sessions.
//
// Several processes may share one store. Everything is made in a
// process's own session directory and renamed into ROOT/snapshots, so a
// snapshot appears complete or not at all; when two processes make the
// same id, the second rename loses and its copy is dropped. [Open] first
// detaches mounts a killed process left under the root ([CleanupMounts])
// and then removes the session directories of dead processes.
//
// Merging layers: [Store.WriteMerged] writes one layer tar holding what
// a run of committed snapshots changed over the chain below it, read from
// an overlay of the whole chain, with whiteouts for what the run deleted
// from the chain below (docs/layers.md); [Store.Import] makes such a tar
// a snapshot named by the diff ID it computes.
//
// Depth: overlay stacks at most [MaxLowers] directories, one of which a
// RUN mount needs for its stub. [Store.Prepare] and [Store.View] replace
// the bottom of a deeper chain with an internal snapshot named
// flat-<sha256 of the ids> holding the merged tree (whiteouts applied,
// overlay's xattrs gone, everything else kept). Bottoms are merged in
// whole chunks of 250 layers, each chunk on top of the previous merge, so
// a chain that grows by one layer per step reuses the same merged bottom
// for 250 steps.
//
// NOTE: file data of snapshots is not fsynced: they are a cache that can
// be rebuilt from the layer blobs. A power loss just after Unpack or
// Commit can leave a snapshot with empty files; remove ROOT/snapshots to
// recover.
//
// NOTE: rootless operation is not supported yet: Apply makes 0/0 device
// whiteouts and trusted.overlay.opaque, which need root. WriteLayer already
// reads the rootless forms (user.overlay.opaque, xwhiteouts).
//
// NOTE: sparse files in a layer are unpacked with their holes filled.
package snapshot
