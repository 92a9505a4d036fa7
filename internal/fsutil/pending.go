package fsutil

import (
	"errors"
	"os"
	"path/filepath"
)

// PendingFile is a file that takes its final name only once it is
// complete and on disk (STYLE P7): it is written under a temporary name,
// fsynced and renamed into place, so the final name holds the old content,
// or nothing, until the new content is whole, whatever happens meanwhile.
// Every atomic write of the module goes through it: WriteFileAtomic,
// the store's blobs and small records, layout exports, saved archives.
//
// Defer Cleanup right after CreatePending: it removes the temporary file
// on every path that did not commit it.
type PendingFile struct {
	*os.File
	closed    bool  // synced and closed, or failed to be (err)
	err       error // the sync or close error: the data may not be on disk
	committed bool
}

// CreatePending creates a pending file in dir, named from pattern as
// os.CreateTemp names files, with mode perm. dir must be on the file
// system of the final name (the same directory, or a session directory of
// the same store), since Commit renames.
func CreatePending(dir, pattern string, perm os.FileMode) (*PendingFile, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	// CreateTemp makes 0600 files; the caller chooses.
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &PendingFile{File: f}, nil
}

// Commit fsyncs and closes the file, renames it to path and fsyncs path's
// directory, so that the new name survives a crash. After a failed rename
// (path's directory missing, say) it may be called again: the data is
// not written twice.
func (p *PendingFile) Commit(path string) error {
	if err := p.CommitNoDirSync(path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// CommitNoDirSync is Commit without the directory fsync: for files that
// a crash may lose but must never leave half written (cache entries,
// image records), and that are written too often for a second fsync.
func (p *PendingFile) CommitNoDirSync(path string) error {
	if p.committed {
		return errors.New("pending file committed twice")
	}
	if !p.closed {
		p.err = p.File.Sync()
		if err := p.File.Close(); p.err == nil {
			p.err = err
		}
		p.closed = true
	}
	if p.err != nil {
		return p.err
	}
	if err := os.Rename(p.Name(), path); err != nil {
		return err
	}
	p.committed = true
	return nil
}

// Cleanup closes and removes the temporary file unless it was committed.
func (p *PendingFile) Cleanup() {
	if p.committed {
		return
	}
	if !p.closed {
		p.File.Close()
		p.closed = true
	}
	os.Remove(p.Name())
}
