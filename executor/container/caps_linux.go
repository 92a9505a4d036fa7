package container

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// defaultCaps is Docker's default capability set (moby's
// caps.DefaultCapabilities), 0xa80425fb: what root in a RUN step may do.
// Anything else, mounting, loading modules, raw I/O, tracing, stays out of
// reach even of root in the container.
var defaultCaps = []int{
	unix.CAP_CHOWN,
	unix.CAP_DAC_OVERRIDE,
	unix.CAP_FSETID,
	unix.CAP_FOWNER,
	unix.CAP_MKNOD,
	unix.CAP_NET_RAW,
	unix.CAP_SETGID,
	unix.CAP_SETUID,
	unix.CAP_SETFCAP,
	unix.CAP_SETPCAP,
	unix.CAP_NET_BIND_SERVICE,
	unix.CAP_SYS_CHROOT,
	unix.CAP_KILL,
	unix.CAP_AUDIT_WRITE,
}

func capMask(caps []int) uint64 {
	var m uint64
	for _, c := range caps {
		m |= 1 << uint(c)
	}
	return m
}

// limitCapabilities drops every capability outside defaultCaps from the
// calling thread's bounding set, so no setuid or file-capability binary
// can get one back, and sets its effective and permitted sets to
// defaultCaps. The inheritable set is left empty, as Docker does since
// CVE-2022-24769. When the command runs as another user than root,
// setresuid then clears the effective and permitted sets entirely.
func limitCapabilities() error {
	keep := capMask(defaultCaps)
	for c := 0; c < 64; c++ {
		if keep&(1<<uint(c)) != 0 {
			continue
		}
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if err == unix.EINVAL {
			break // past the kernel's last capability
		}
		if err != nil {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(keep), Permitted: uint32(keep)},
		{Effective: uint32(keep >> 32), Permitted: uint32(keep >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("setting capabilities: %w", err)
	}
	return nil
}
