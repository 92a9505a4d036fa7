// Package testutil holds what tests across the module share: prerequisite
// checks that skip locally but fail under CI=true, a busybox root
// filesystem made from Debian's busybox-static, and a real distribution
// registry on loopback. Only _test.go files import it.
package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// InCI reports whether tests run under CI (CI=true), where a missing
// prerequisite is a failure, never a skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing stops the test for a missing prerequisite: it fails under CI and
// skips, saying why, elsewhere.
func Missing(t testing.TB, why string) {
	t.Helper()
	if InCI() {
		t.Fatalf("prerequisite missing under CI=true: %s", why)
	}
	t.Skipf("skipping: %s (run as root with `make test` to include it)", why)
}

// RequireRoot stops the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "test needs root (namespaces, overlay mounts)")
	}
}

// RequireTool stops the test unless the named program is on PATH (or at
// the given absolute path), and returns its path.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	if filepath.IsAbs(name) {
		if _, err := os.Stat(name); err != nil {
			Missing(t, name+" is not installed (make test installs it)")
		}
		return name
	}
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name+" is not on PATH (make test installs it)")
	}
	return p
}

var (
	busyboxOnce sync.Once
	busyboxDir  string
	busyboxErr  string
)

// BusyboxRootfs returns a directory holding a minimal busybox root
// filesystem: /bin/busybox from Debian's busybox-static, a symlink per
// applet, /etc/passwd and /etc/group with root and nobody, and empty /tmp
// (1777), /root, /proc, /sys, /dev. It must be treated as read-only: it is
// shared by every test binary that runs with the same busybox.
func BusyboxRootfs(t testing.TB) string {
	t.Helper()
	bin := RequireTool(t, "/bin/busybox")
	busyboxOnce.Do(func() {
		busyboxDir, busyboxErr = sharedBusybox(bin)
	})
	if busyboxErr != "" {
		t.Fatalf("making busybox rootfs: %s", busyboxErr)
	}
	return busyboxDir
}

// busyboxLayout names what makeBusybox writes; change it whenever
// makeBusybox changes, so no test reuses a rootfs of the old layout.
const busyboxLayout = "rootfs-v2"

// sharedBusybox returns the rootfs for this busybox, made once per busybox
// binary and layout rather than once per test binary: a test binary has no
// hook at exit to remove its own copy, and one copy per run piled up in
// the temp dir. It is made under a temporary name and renamed, so test
// binaries running in parallel never see half of it.
func sharedBusybox(bin string) (string, string) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", err.Error()
	}
	sum := sha256.Sum256(append([]byte(busyboxLayout+"\x00"), data...))
	dir := filepath.Join(os.TempDir(), "builder-busybox-"+hex.EncodeToString(sum[:8]))
	if fi, err := os.Stat(filepath.Join(dir, "bin/busybox")); err == nil && fi.Size() == int64(len(data)) {
		return dir, ""
	}
	tmp, err := os.MkdirTemp("", ".builder-busybox-")
	if err != nil {
		return "", err.Error()
	}
	os.Chmod(tmp, 0o755)
	if msg := makeBusybox(bin, tmp); msg != "" {
		os.RemoveAll(tmp)
		return "", msg
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another test binary won the race, or a damaged copy is in the
		// way: use the one that exists if it is whole, else our own.
		if fi, err := os.Stat(filepath.Join(dir, "bin/busybox")); err == nil && fi.Size() == int64(len(data)) {
			os.RemoveAll(tmp)
			return dir, ""
		}
		return tmp, ""
	}
	return dir, ""
}

func makeBusybox(bin, dir string) string {
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "proc", "sys", "dev", "tmp", "var/tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err.Error()
		}
	}
	// The sticky bit must be os.ModeSticky: os.Chmod drops a plain 0o1000.
	os.Chmod(filepath.Join(dir, "tmp"), 0o777|os.ModeSticky)
	os.Chmod(filepath.Join(dir, "var/tmp"), 0o777|os.ModeSticky)
	os.Chmod(filepath.Join(dir, "root"), 0o700)
	data, err := os.ReadFile(bin)
	if err != nil {
		return err.Error()
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), data, 0o755); err != nil {
		return err.Error()
	}
	out, err := exec.Command(bin, "--list-full").Output()
	if err != nil {
		return "busybox --list-full: " + err.Error()
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "bin/busybox" {
			continue
		}
		link := filepath.Join(dir, applet)
		os.MkdirAll(filepath.Dir(link), 0o755)
		rel, _ := filepath.Rel(filepath.Dir(link), filepath.Join(dir, "bin/busybox"))
		if err := os.Symlink(rel, link); err != nil && !os.IsExist(err) {
			return err.Error()
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err.Error()
		}
	}
	return ""
}
