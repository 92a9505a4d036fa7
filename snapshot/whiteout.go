package snapshot

import (
	"strings"

	"golang.org/x/sys/unix"
)

// The two encodings of a deletion. An OCI layer says "NAME is gone" with
// an empty file .wh.NAME beside it and "nothing below DIR shows through"
// with DIR/.wh..wh..opq. Overlay says the same with a 0/0 character device
// NAME and the xattr trusted.overlay.opaque="y" on DIR. This file holds
// both sets of names and the tests that tell them apart; tar.go turns the
// overlay form into the OCI one and apply.go goes the other way.
const (
	whiteoutPrefix = ".wh."
	// whiteoutMeta prefixes names that aufs kept for itself (.wh..wh.plnk,
	// .wh..wh.aufs); apart from the opaque marker they mean nothing here.
	whiteoutMeta = ".wh..wh."
	opaqueMarker = ".wh..wh..opq"
)

const (
	xattrOpaque       = "trusted.overlay.opaque"
	xattrUserOpaque   = "user.overlay.opaque"
	xattrRedirect     = "trusted.overlay.redirect"
	xattrMetacopy     = "trusted.overlay.metacopy"
	xattrWhiteout     = "trusted.overlay.whiteout"
	xattrUserWhiteout = "user.overlay.whiteout"
)

// isOverlayXattr reports whether an xattr is overlay's own bookkeeping
// (origin, impure, opaque, redirect, ...). Such xattrs describe one
// particular mount and never belong in a layer; taken from a tar they
// could also make overlay misread a snapshot.
func isOverlayXattr(name string) bool {
	return strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.")
}

// isWhiteoutNode reports whether an inode is an overlay whiteout: a
// character device with device number 0/0.
func isWhiteoutNode(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// isXWhiteout reports whether a regular file is a rootless-style
// whiteout (an empty file carrying the whiteout xattr).
func isXWhiteout(st *unix.Stat_t, xattrs []xattr) bool {
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != 0 {
		return false
	}
	for _, x := range xattrs {
		if x.name == xattrWhiteout || x.name == xattrUserWhiteout {
			return true
		}
	}
	return false
}

// isOpaqueDir reports whether a directory's xattrs mark it opaque. The
// value "x" of the user xattr means "holds xwhiteouts", not opaque.
func isOpaqueDir(xattrs []xattr) bool {
	for _, x := range xattrs {
		if (x.name == xattrOpaque || x.name == xattrUserOpaque) && string(x.value) == "y" {
			return true
		}
	}
	return false
}

// checkFaithful refuses the xattrs an upper written with redirect_dir or
// metacopy on would carry: a redirected directory or a metadata-only
// copy-up would turn into a layer that lacks data.
func checkFaithful(xattrs []xattr) error {
	for _, x := range xattrs {
		if x.name == xattrRedirect || x.name == xattrMetacopy || x.name == "user.overlay.redirect" || x.name == "user.overlay.metacopy" {
			return errUnfaithful{x.name}
		}
	}
	return nil
}

type errUnfaithful struct{ xattr string }

func (e errUnfaithful) Error() string {
	return "upper entry carries " + e.xattr + " (the overlay was mounted with redirect_dir or metacopy on)"
}

// whiteoutName is the OCI name that deletes base.
func whiteoutName(base string) string { return whiteoutPrefix + base }

// layerName classifies the base name of a tar entry of an OCI layer: an
// opaque marker, a whiteout of target, aufs metadata to skip, or a plain
// name.
type layerNameKind int

const (
	plainName layerNameKind = iota
	opaqueName
	whiteoutOf
	metaName
)

func classifyLayerName(base string) (kind layerNameKind, target string) {
	switch {
	case base == opaqueMarker:
		return opaqueName, ""
	case strings.HasPrefix(base, whiteoutMeta):
		return metaName, ""
	case strings.HasPrefix(base, whiteoutPrefix):
		return whiteoutOf, base[len(whiteoutPrefix):]
	}
	return plainName, ""
}

// makeWhiteout creates the overlay whiteout for name in the directory
// parent: a 0/0 character device owned by root, as overlay makes them.
func makeWhiteout(parent int, name string) error {
	return unix.Mknodat(parent, name, unix.S_IFCHR, 0)
}

// markOpaque sets the opaque xattr on the directory open as fd.
func markOpaque(fd int) error {
	return unix.Fsetxattr(fd, xattrOpaque, []byte("y"), 0)
}
