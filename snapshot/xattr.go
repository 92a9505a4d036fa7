package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"golang.org/x/sys/unix"
)

type xattr struct {
	name  string
	value []byte
}

// xattrReader lists and reads extended attributes by path without
// following a final symlink. It keeps its buffers between calls: a layer
// walk asks every file, and almost all have none.
type xattrReader struct {
	names []byte
	value []byte
}

// read returns the xattrs of path sorted by name, or nil when there are
// none or the filesystem has no xattrs.
func (r *xattrReader) read(path string) ([]xattr, error) {
	if r.names == nil {
		r.names = make([]byte, 4096)
		r.value = make([]byte, 4096)
	}
	var n int
	for {
		var err error
		n, err = unix.Llistxattr(path, r.names)
		if errors.Is(err, unix.ERANGE) {
			size, err := unix.Llistxattr(path, nil)
			if err != nil {
				return nil, fmt.Errorf("listing xattrs of %s: %w", path, err)
			}
			r.names = make([]byte, size+1024)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing xattrs of %s: %w", path, err)
		}
		break
	}
	if n == 0 {
		return nil, nil
	}
	var out []xattr
	for _, name := range bytes.Split(r.names[:n], []byte{0}) {
		if len(name) == 0 {
			continue
		}
		v, err := r.get(path, string(name))
		if errors.Is(err, unix.ENODATA) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("reading xattr %s of %s: %w", name, path, err)
		}
		out = append(out, xattr{name: string(name), value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

func (r *xattrReader) get(path, name string) ([]byte, error) {
	for {
		n, err := unix.Lgetxattr(path, name, r.value)
		if errors.Is(err, unix.ERANGE) {
			size, err := unix.Lgetxattr(path, name, nil)
			if err != nil {
				return nil, err
			}
			r.value = make([]byte, size+1024)
			continue
		}
		if err != nil {
			return nil, err
		}
		return bytes.Clone(r.value[:n]), nil
	}
}

// layerXattr reports whether an xattr belongs in a layer. Overlay's own
// bookkeeping never does (whiteout.go), nor an SELinux label: it is the
// host's policy, not the file's content, and differs between machines
// (containers/storage drops it for the same reason).
func layerXattr(name string) bool {
	return !isOverlayXattr(name) && name != "security.selinux"
}
