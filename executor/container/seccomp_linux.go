//go:build amd64 || arm64

package container

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The RUN command runs with Docker's default capabilities, which already
// refuse mount, module loading and the like. What they do not refuse is an
// unprivileged user namespace, in which the command would hold every
// capability again and could mount. Docker's default seccomp profile closes
// that; this filter closes it the same way, and refuses outright the
// syscalls no build step needs (mount API, keyrings, bpf, kexec, modules,
// swap, clock setting). It returns EPERM, as Docker does, and ENOSYS for
// clone3 (whose flags a classic BPF filter cannot read) so that libcs fall
// back to clone, where the flags can be checked.

// deniedSyscalls are refused on the native architecture, besides the
// architecture's own list (archDenied).
var deniedSyscalls = []uint32{
	unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT,
	unix.SYS_OPEN_TREE, unix.SYS_MOVE_MOUNT, unix.SYS_FSOPEN, unix.SYS_FSCONFIG,
	unix.SYS_FSMOUNT, unix.SYS_FSPICK, unix.SYS_MOUNT_SETATTR,
	unix.SYS_SETNS, unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN, unix.SYS_USERFAULTFD,
	unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE,
	unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD, unix.SYS_REBOOT,
	unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_ACCT, unix.SYS_SYSLOG,
	unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_SETTIMEOFDAY, unix.SYS_CLOCK_SETTIME,
	unix.SYS_CLOCK_ADJTIME, unix.SYS_QUOTACTL, unix.SYS_VHANGUP,
}

// archRules describes one architecture the filter knows.
type archRules struct {
	audit      uint32
	denied     []uint32
	unshare    uint32
	clone      uint32
	clone3     uint32
	x32Barrier bool // refuse syscall numbers with the x32 bit set
}

const (
	bpfLoad = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfJeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfJge  = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	bpfJset = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	bpfRet  = unix.BPF_RET | unix.BPF_K

	// offsets in struct seccomp_data
	offNr   = 0
	offArch = 4
	offArg0 = 16 // low 32 bits on little-endian machines

	retAllow  = unix.SECCOMP_RET_ALLOW
	retEPERM  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	retENOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

func stmt(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }

func jump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}

// section is the filter for one architecture, ending in "allow".
func (a archRules) section() []unix.SockFilter {
	f := []unix.SockFilter{stmt(bpfLoad, offNr)}
	if a.x32Barrier {
		f = append(f, jump(bpfJge, 0x40000000, 0, 1), stmt(bpfRet, retENOSYS))
	}
	for _, nr := range a.denied {
		f = append(f, jump(bpfJeq, nr, 0, 1), stmt(bpfRet, retEPERM))
	}
	f = append(f, jump(bpfJeq, a.clone3, 0, 1), stmt(bpfRet, retENOSYS))
	for _, nr := range []uint32{a.unshare, a.clone} {
		// A new user namespace would give the command every
		// capability back; other namespace flags need CAP_SYS_ADMIN,
		// which it does not have.
		f = append(f,
			jump(bpfJeq, nr, 0, 4),
			stmt(bpfLoad, offArg0),
			jump(bpfJset, unix.CLONE_NEWUSER, 0, 1),
			stmt(bpfRet, retEPERM),
			stmt(bpfRet, retAllow))
	}
	return append(f, stmt(bpfRet, retAllow))
}

// seccompFilter assembles the filter: one section per known
// architecture, and ENOSYS for any other.
func seccompFilter() ([]unix.SockFilter, error) {
	f := []unix.SockFilter{stmt(bpfLoad, offArch)}
	for _, a := range knownArchs() {
		s := a.section()
		if len(s) > 255 {
			return nil, fmt.Errorf("seccomp section for arch %#x too long (%d)", a.audit, len(s))
		}
		f = append(f, jump(bpfJeq, a.audit, 0, uint8(len(s))))
		f = append(f, s...)
	}
	return append(f, stmt(bpfRet, retENOSYS)), nil
}

// installSeccomp loads the filter for every thread of the child. It must
// run while the child still has CAP_SYS_ADMIN: without it the kernel
// requires no_new_privs, which would break setuid programs in RUN steps.
func installSeccomp() error {
	f, err := seccompFilter()
	if err != nil {
		return err
	}
	prog := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	_, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	if e != 0 {
		return fmt.Errorf("installing the seccomp filter: %w", e)
	}
	return nil
}
