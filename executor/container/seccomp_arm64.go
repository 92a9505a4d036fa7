package container

import "golang.org/x/sys/unix"

// knownArchs on arm64: the native ABI only; 32-bit arm programs are
// refused everything by the filter's default.
func knownArchs() []archRules {
	return []archRules{{audit: unix.AUDIT_ARCH_AARCH64, denied: deniedSyscalls,
		unshare: unix.SYS_UNSHARE, clone: unix.SYS_CLONE, clone3: unix.SYS_CLONE3}}
}
