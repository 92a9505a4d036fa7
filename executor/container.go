package executor

import (
	"context"
	"errors"

	"github.com/builderdev/builder/snapshot"
)

// containerSpec is everything the RUN child needs to set up the container
// and start the command. It crosses the re-exec as JSON.
type containerSpec struct {
	// Root is the rootfs overlay. runContainer sets its MountPoints; its
	// Stub must be set.
	Root snapshot.Mount
	// Args is the argv to execute (SHELL already prepended for the shell
	// form); Args[0] is looked up in the container's PATH from Env.
	Args []string
	// Env is the process environment, "KEY=VALUE".
	Env []string
	// Dir is the working directory inside the rootfs; created if missing.
	Dir string
	// User is the USER value: "name", "uid", "name:group", "uid:gid";
	// "" is root. Names resolve in the rootfs's /etc/passwd and /etc/group;
	// supplementary groups are set from /etc/group.
	User string
	// Hostname for the UTS namespace.
	Hostname string
	// Network is "host" (default, shares the builder's network) or "none"
	// (a new network namespace with only lo, up).
	Network string
	// ResolvConf and Hosts are the contents bind-mounted (from per-step
	// copies) on /etc/resolv.conf and /etc/hosts.
	ResolvConf []byte
	Hosts      []byte
}

// runContainer runs spec and returns the command's exit code (128+N when
// killed by signal N). output receives each line the command prints on
// stdout (stream 1) or stderr (stream 2), without the newline. An error
// means the container could not be set up or was cancelled through ctx;
// cancelling kills every process of the container.
func runContainer(ctx context.Context, spec containerSpec, output func(stream int, line string)) (int, error) {
	return -1, errors.New("executor: RUN not implemented")
}

// ReexecMain runs the container side of a RUN step when this process was
// started as one, and then exits; otherwise it returns false at once.
// Call it first thing in main and in TestMain.
func ReexecMain() bool { return false }
