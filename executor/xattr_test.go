package executor_test

import (
	"archive/tar"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/internal/testutil"
)

// capNetRaw is a security.capability value (VFS_CAP_REVISION_2) granting
// cap_net_raw+ep, as setcap writes it.
var capNetRaw = string([]byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

// TestCapabilityXattrSurvives: a file capability that arrives in a layer
// (ADD of an archive) survives a later RUN that only chmods the file (an
// overlay copy-up keeps it, as on Docker) and the final image, unpacked by
// umoci, still has it; a RUN that writes the file drops it, as the kernel
// does.
func TestCapabilityXattrSurvives(t *testing.T) {
	umoci := testutil.RequireTool(t, "umoci")
	e := newEnv(t)
	ctxDir := t.TempDir()
	f, err := os.Create(filepath.Join(ctxDir, "caps.tar"))
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, name := range []string{"opt/ping", "opt/written"} {
		body := []byte("#!/bin/sh\n")
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg,
			Format: tar.FormatPAX, PAXRecords: map[string]string{"SCHILY.xattr.security.capability": capNetRaw}})
		tw.Write(body)
	}
	tw.Close()
	f.Close()
	df := "FROM busybox:test\nADD caps.tar /\nRUN chmod 4750 /opt/ping && echo more >> /opt/written\n"
	res, err := e.build(t, ctxDir, df, nil)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := unpack(t, e, umoci, res)
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(filepath.Join(rootfs, "opt/ping"), "security.capability", buf)
	if err != nil || string(buf[:n]) != capNetRaw {
		t.Errorf("opt/ping capability after chmod: %q, %v; want cap_net_raw+ep", buf[:n], err)
	}
	if fi, err := os.Stat(filepath.Join(rootfs, "opt/ping")); err != nil || fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o750 {
		t.Errorf("opt/ping mode %v, %v; want setuid 0750", fi.Mode(), err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(rootfs, "opt/written"), "security.capability", buf); err != unix.ENODATA {
		t.Errorf("opt/written kept its capability after a write: %v", err)
	}
}
