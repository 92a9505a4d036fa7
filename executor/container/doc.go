// Package container runs one command in a container: the runtime of a
// RUN step. It owns the namespaces, the mounts inside them, the masks,
// the capability set, the seccomp filter, the descriptors the command
// inherits, and the sandbox network that containers can share. It knows
// nothing of builds: the rootfs arrives as a [snapshot.Mount] (prepared,
// and later committed, by the caller), and which network a step gets, its
// cache key and its events are the executor's business.
//
// The API is small: a [Spec] says what to run and on which rootfs, [Run]
// runs it and returns the exit code ([Starter.Run] does the same on a
// child started ahead, while the caller committed the step before: the
// re-exec and the Go runtime's init are 3 ms of a 7 ms container; a
// waiting child has made its namespaces and reads nothing until it is
// given a spec), [ReexecMain] is the container side,
// [StartSandboxNet] starts a network that [SandboxNet.Join] points specs
// at, and [SetupError] says that nothing of the command ran.
//
// # Isolation
//
// Every container gets, as a docker build RUN step does:
//
//   - New mount, PID, UTS, IPC and cgroup namespaces. Its PID 1 is the
//     command, so when the command exits the kernel kills everything else
//     in the container.
//   - One of three networks ([Spec.Network]): [NetworkNone], a new network
//     namespace with only lo, up; [NetworkJoin], the namespace of a
//     [SandboxNet], where slirp4netns (a userspace TCP/IP stack) gives
//     outbound access and neither the host's loopback services nor its
//     abstract unix sockets are reachable; [NetworkHost], the builder's
//     own network, only when the caller asks for it.
//   - The rootfs overlay mounted nodev in the container's private mount
//     namespace, then pivot_root into it: no mount reaches the host, and
//     a crash leaves none behind.
//   - /etc/resolv.conf, /etc/hosts and /etc/hostname bind-mounted from
//     per-container copies (never the host's files, which a step could
//     write through), their paths resolved inside the rootfs before any
//     kernel filesystem covers a directory on the way.
//   - /proc (nosuid, nodev, noexec); a nodev tmpfs /dev holding null,
//     zero, full, random, urandom and tty bound from the host, devpts,
//     shm and mqueue; /sys read-only. /proc and /sys must be plain
//     directories: an image whose /proc or /sys is a symlink is refused,
//     as runc refuses it, and each mount's filesystem type is checked.
//   - Docker's masks, applied by path inside the proc and sysfs just
//     mounted: /proc/kcore, keys, latency_stats, timer_list, timer_stats,
//     sched_debug and sysrq-trigger, /proc/acpi, asound and scsi,
//     /sys/firmware and /sys/devices/virtual/powercap are hidden;
//     /proc/bus, fs, irq and sys are read-only.
//   - Docker's default capability set (0xa80425fb), the rest dropped from
//     the bounding set too; inheritable and ambient sets empty. A command
//     run as another user than root has no effective capability.
//   - A seccomp filter like Docker's profile (amd64 and arm64): user
//     namespaces (unshare and clone with CLONE_NEWUSER), the mount API,
//     setns, keyrings, bpf, perf_event_open, modules, kexec, swap, reboot,
//     acct, syslog, open_by_handle_at and clock setting are refused with
//     EPERM, clone3 with ENOSYS (libcs fall back to clone, whose flags the
//     filter reads); on x86-64 the i386 entry has its own rules and x32 is
//     refused. It is installed while the child still holds CAP_SYS_ADMIN,
//     without no_new_privs, so setuid programs keep working.
//   - No descriptor but stdin (/dev/null), stdout and stderr: every
//     inherited descriptor above 2 is closed, whoever leaked it.
//   - Devices refused by nodev: mknod works, as under Docker, but a
//     device node made on the rootfs or in /dev cannot be opened.
//   - Umask 022, default signal dispositions, and a parent-death signal
//     (SIGKILL) that survives the switch to the command's user.
//
// # One container's life
//
//  1. Parent: [Run] checks the spec, adds the mount points the child
//     needs to [Spec.Root] (the stub layer provides the missing ones, so
//     they never land in the upper dir), opens the stdout, stderr, spec and
//     setup-report pipes, and starts /proc/self/exe with argv[0]
//     "builder-run" in the new namespaces, from a thread it keeps locked
//     (the parent-death signal follows the forking thread). It writes the
//     spec as JSON to the child.
//  2. Re-exec: the program's main (and TestMain) calls [ReexecMain] first;
//     it recognises argv[0] and becomes the child, which never returns
//     into the program.
//  3. Child setup, on one locked thread: join the sandbox network if
//     asked, make / private, mount the rootfs, bind the /etc files, mount
//     /proc, /dev and /sys, mask, set the hostname, bring lo up, pivot;
//     then, inside the new root, resolve USER, enter the working
//     directory, install the filter, drop capabilities, set the ids,
//     re-arm the parent-death signal, close inherited descriptors, find
//     the command in PATH and reset signals.
//  4. execve: the command replaces the child as PID 1. The setup pipe is
//     close-on-exec, so the parent reads EOF there; a failure before this
//     point is reported on it instead, and Run returns a [SetupError].
//  5. Wait or kill: the parent hands each output line to its callback and
//     waits for PID 1. Cancelling the context SIGKILLs it, and the PID
//     namespace takes every other process with it; a builder that dies
//     takes the container down through the parent-death signal. The
//     mounts go with the mount namespace.
//
// NOTE: no cgroups: there are no memory, CPU or pids limits, and devices
// are refused by nodev rather than by a devices cgroup (the CI machines
// run hybrid v1/v2 cgroups, which crun refuses).
//
// NOTE: no user namespace: root in the container is root on the host,
// held in by the capability set, the filter and the masks. Rootless
// builds are not supported.
//
// NOTE: architectures other than amd64 and arm64 get no seccomp filter:
// there an unprivileged user namespace is not refused.
//
// NOTE: containers that join one [SandboxNet] see each other's listening
// sockets.
package container
