package container

import "golang.org/x/sys/unix"

// knownArchs on x86-64: the native ABI (x32 refused), and the i386 ABI that
// 32-bit programs reach through int 0x80, with its own syscall numbers, so
// that it is no way around the native rules.
func knownArchs() []archRules {
	native := append(append([]uint32(nil), deniedSyscalls...),
		unix.SYS_IOPL, unix.SYS_IOPERM, unix.SYS_USELIB, unix.SYS_NFSSERVCTL, unix.SYS__SYSCTL)
	return []archRules{
		{audit: unix.AUDIT_ARCH_X86_64, denied: native, unshare: unix.SYS_UNSHARE,
			clone: unix.SYS_CLONE, clone3: unix.SYS_CLONE3, x32Barrier: true},
		{audit: unix.AUDIT_ARCH_I386, denied: i386Denied, unshare: 310, clone: 120, clone3: 435},
	}
}

// i386Denied are the i386 numbers of deniedSyscalls plus iopl, ioperm,
// vm86, vm86old and uselib (arch/x86/entry/syscalls/syscall_32.tbl).
var i386Denied = []uint32{
	21, 22, 52, 217, // mount, umount, umount2, pivot_root
	428, 429, 430, 431, 432, 433, 442, // open_tree, move_mount, fsopen, fsconfig, fsmount, fspick, mount_setattr
	346, 288, 286, 287, // setns, keyctl, add_key, request_key
	357, 336, 374, // bpf, perf_event_open, userfaultfd
	128, 350, 129, // init_module, finit_module, delete_module
	283, 88, // kexec_load, reboot (i386 has no kexec_file_load)
	87, 115, 51, 103, // swapon, swapoff, acct, syslog
	342, 79, 264, 343, 131, 111, // open_by_handle_at, settimeofday, clock_settime, clock_adjtime, quotactl, vhangup
	110, 101, 113, 166, 86, // iopl, ioperm, vm86, vm86old, uselib
}
