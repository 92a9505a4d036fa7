package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/internal/fsutil"
)

// Finding is one problem Check found.
type Finding struct {
	// Subject is what is wrong: a path relative to the store root
	// ("snapshots/<id>", "tmp"), or the absolute path of a mount point.
	Subject  string
	Problem  string
	Repaired bool
}

// Check verifies the snapshot store: every committed snapshot against
// its marker (which must exist, be readable and name the snapshot; where
// it records a tree digest, the snapshot's content must still give it),
// no stray entries in ROOT/snapshots, the empty lower still empty, and no
// stale mounts or dead sessions. With repair it removes what is wrong,
// and marks those findings Repaired: a snapshot can always be made again
// from its layer blob. The stale mounts and dead sessions that Open
// already removed are reported as Repaired.
//
// Check reads every snapshot in full. It must not run beside a build
// when repair is set (the caller holds the store's build lock
// exclusively, as prune does).
//
// NOTE: without repair, a session whose process died after Open is not
// reported: telling a dead session from a live one takes its lock, which
// only fsutil.SweepSessions does, and it removes the session too.
func (s *Store) Check(ctx context.Context, repair bool) ([]Finding, error) {
	findings := s.sweptAtOpen()
	more, err := s.checkMounts(repair)
	findings = append(findings, more...)
	if err != nil {
		return findings, err
	}
	if repair {
		n, err := fsutil.SweepSessions(s.tmp)
		if n > 0 {
			findings = append(findings, Finding{Subject: "tmp", Repaired: true,
				Problem: fmt.Sprintf("%d temporary directories of dead processes", n)})
		}
		if err != nil {
			return findings, fmt.Errorf("removing dead sessions: %w", err)
		}
	}
	more, err = s.checkSnapshots(ctx, repair)
	return append(findings, more...), err
}

// sweptAtOpen reports, once, what Open cleaned up.
func (s *Store) sweptAtOpen() []Finding {
	s.mu.Lock()
	defer s.mu.Unlock()
	var findings []Finding
	for _, mp := range s.sweptMounts {
		findings = append(findings, Finding{Subject: mp, Problem: "stale mount, found when the store was opened", Repaired: true})
	}
	if s.sweptSessions > 0 {
		findings = append(findings, Finding{Subject: "tmp", Repaired: true,
			Problem: fmt.Sprintf("%d temporary directories of dead processes, found when the store was opened", s.sweptSessions)})
	}
	s.sweptMounts, s.sweptSessions = nil, 0
	return findings
}

func (s *Store) checkMounts(repair bool) ([]Finding, error) {
	var findings []Finding
	if repair {
		done, err := unmountUnder(s.root)
		for _, mp := range done {
			findings = append(findings, Finding{Subject: mp, Problem: "stale mount", Repaired: true})
		}
		return findings, err
	}
	runtime.LockOSThread() // mountinfo of this thread's namespace, the host's
	defer runtime.UnlockOSThread()
	mounts, err := staleMounts(s.root)
	for _, m := range mounts {
		findings = append(findings, Finding{Subject: m.Mountpoint, Problem: "stale mount"})
	}
	return findings, err
}

func (s *Store) checkSnapshots(ctx context.Context, repair bool) ([]Finding, error) {
	ents, err := os.ReadDir(s.snaps)
	if err != nil {
		return nil, err
	}
	var findings []Finding
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return findings, err
		}
		name := e.Name()
		var problem string
		var fix func() error
		switch {
		case name == emptyDir:
			problem, fix = s.checkEmpty()
		case !e.IsDir() || strings.HasPrefix(name, "."):
			problem = "not a snapshot"
			fix = func() error { return fsutil.RemoveAll(filepath.Join(s.snaps, name)) }
		default:
			id := ID(name)
			problem = s.checkSnapshot(id)
			fix = func() error { return s.remove(id) }
		}
		if problem == "" {
			continue
		}
		f := Finding{Subject: "snapshots/" + name, Problem: problem}
		if repair {
			if err := fix(); err != nil {
				return findings, fmt.Errorf("repairing %s: %w", f.Subject, err)
			}
			f.Repaired = true
		}
		findings = append(findings, f)
	}
	return findings, nil
}

// checkEmpty checks the empty lower of scratch chains: anything in it
// would appear in every image built FROM scratch.
func (s *Store) checkEmpty() (string, func() error) {
	dir := s.emptyPath()
	fix := func() error {
		if err := fsutil.RemoveAll(dir); err != nil {
			return err
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		return os.Chmod(dir, 0o755)
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Sprintf("unreadable: %v", err), fix
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Mode&0o7777 != 0o755 || st.Uid != 0 || st.Gid != 0 {
		return fmt.Sprintf("the empty lower is not a 0755 root directory (mode %o, owner %d:%d)", st.Mode, st.Uid, st.Gid), fix
	}
	names, err := readNames(dir)
	if err != nil {
		return fmt.Sprintf("unreadable: %v", err), fix
	}
	if len(names) > 0 {
		return fmt.Sprintf("the empty lower holds %d entries", len(names)), fix
	}
	return "", nil
}

// checkSnapshot returns what is wrong with committed snapshot id, or "".
func (s *Store) checkSnapshot(id ID) string {
	dir := s.idDir(id)
	names, err := readNames(dir)
	if err != nil {
		return fmt.Sprintf("unreadable: %v", err)
	}
	for _, n := range names {
		if n != "fs" && n != markerName {
			return fmt.Sprintf("stray entry %q in the snapshot directory", n)
		}
	}
	if fi, err := os.Lstat(filepath.Join(dir, "fs")); err != nil || !fi.IsDir() {
		return "incomplete: no fs directory"
	}
	m, err := readMarker(dir)
	if errors.Is(err, errNoMarker) {
		return "no marker (made by an older version, or not by builder)"
	}
	if err != nil {
		return err.Error()
	}
	if problem := checkMarker(id, m); problem != "" {
		return problem
	}
	if m.Tree == nil {
		return ""
	}
	got, err := hashTree(filepath.Join(dir, "fs"), m.Tree.options())
	if err != nil {
		return fmt.Sprintf("content unreadable: %v", err)
	}
	if "sha256:"+got != m.Tree.Digest {
		return fmt.Sprintf("content changed: it gives layer sha256:%s, the marker records %s", got, m.Tree.Digest)
	}
	return ""
}

// checkMarker checks that marker m describes snapshot id.
func checkMarker(id ID, m marker) string {
	if m.ID != id {
		return fmt.Sprintf("the marker names snapshot %q", m.ID)
	}
	layer := "sha256:" + string(id)
	switch m.Origin {
	case originUnpack:
		if m.DiffID != layer {
			return fmt.Sprintf("the marker's diff ID %s is not the snapshot's name", m.DiffID)
		}
	case originCommit:
		if m.DiffID != "" && m.DiffID != layer {
			return fmt.Sprintf("the marker's diff ID %s is not the snapshot's name", m.DiffID)
		}
		if m.Tree != nil && m.Tree.Digest != layer {
			return fmt.Sprintf("the marker's layer digest %s is not the snapshot's name", m.Tree.Digest)
		}
	case originMerge:
		if len(m.Chain) == 0 || flatID(m.Chain) != id {
			return "the marker's chain of layers does not give the snapshot's name"
		}
	default:
		return fmt.Sprintf("the marker has an unknown origin %q", m.Origin)
	}
	return ""
}
