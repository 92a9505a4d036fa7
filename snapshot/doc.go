// Package snapshot owns the file-system side of a build: layers unpacked
// into directories in overlay format, overlay mounts of a chain of them,
// and the conversion between an overlay upper directory and an OCI layer
// tar.
//
// Words used here:
//
//   - A committed snapshot is an unpacked layer: ROOT/snapshots/<id>/fs,
//     with whiteouts as 0/0 character devices and opaque directories
//     marked with the trusted.overlay.opaque xattr. It never changes.
//   - A chain is a list of committed snapshots, bottom first: the
//     filesystem of an image up to some step.
//   - An active snapshot ([Active]) is a fresh upper directory (and
//     overlay work directory) on top of a chain, under ROOT/tmp.
//   - [Mount] describes the overlay of a chain plus an upper; it is data
//     until [Mount.MountAt] runs inside a private mount namespace.
//
// One RUN step, seen from here:
//
//	a, _ := store.Prepare(ctx, chain)     // empty upper, Mount for the chain
//	... the RUN child mounts a.Mount and runs the command ...
//	WriteLayer(w, a.Upper(), opts)         // upper → OCI tar, whiteouts converted
//	a.Commit(ID(diffID.Hex))               // the upper becomes the next snapshot
//	a.Close()
//
// A layer that arrives as a tar (a pulled base, a cache hit from another
// machine) is unpacked once with [Store.Unpack]; [Apply] does the work and
// never writes outside the target directory, whatever the tar holds.
package snapshot
