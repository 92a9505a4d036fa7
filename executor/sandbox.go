package executor

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/builderdev/builder/executor/container"
)

// Sandbox is what a RUN container gets besides its network, from
// docker's --add-host, --shm-size and --ulimit.
type Sandbox struct {
	// ExtraHosts are "NAME IP" pairs added to /etc/hosts, in order.
	ExtraHosts [][2]string
	// ShmSize is /dev/shm's size in bytes; 0 is docker's 64 MiB.
	ShmSize int64
	// Ulimits are the resource limits of the command's process.
	Ulimits []Rlimit
}

// Rlimit is one resource limit (a unix.RLIMIT_* number, soft and hard).
type Rlimit = container.Rlimit

// hosts is the /etc/hosts of RUN steps: localhost, then the extra hosts,
// in docker's "IP<TAB>NAME" form.
func (s Sandbox) hosts() []byte {
	var b strings.Builder
	b.WriteString(hostsFile)
	for _, h := range s.ExtraHosts {
		fmt.Fprintf(&b, "%s\t%s\n", h[1], h[0])
	}
	return []byte(b.String())
}

// key is the sandbox as a RUN key field: a command may read its hosts
// and limits, so they take part in the key, as in BuildKit. The default
// sandbox is "", which keyRun leaves out.
func (s Sandbox) key() string {
	var parts []string
	for _, h := range s.ExtraHosts {
		parts = append(parts, "host="+h[0]+"="+h[1])
	}
	if s.ShmSize != 0 {
		parts = append(parts, fmt.Sprintf("shm=%d", s.ShmSize))
	}
	for _, l := range s.Ulimits {
		parts = append(parts, fmt.Sprintf("ulimit=%d=%d:%d", l.Resource, l.Soft, l.Hard))
	}
	return strings.Join(parts, ",")
}

// ulimitNames are the names docker's --ulimit takes.
var ulimitNames = map[string]int{
	"as": unix.RLIMIT_AS, "core": unix.RLIMIT_CORE, "cpu": unix.RLIMIT_CPU, "data": unix.RLIMIT_DATA,
	"fsize": unix.RLIMIT_FSIZE, "locks": unix.RLIMIT_LOCKS, "memlock": unix.RLIMIT_MEMLOCK,
	"msgqueue": unix.RLIMIT_MSGQUEUE, "nice": unix.RLIMIT_NICE, "nofile": unix.RLIMIT_NOFILE,
	"nproc": unix.RLIMIT_NPROC, "rss": unix.RLIMIT_RSS, "rtprio": unix.RLIMIT_RTPRIO,
	"rttime": unix.RLIMIT_RTTIME, "sigpending": unix.RLIMIT_SIGPENDING, "stack": unix.RLIMIT_STACK,
}

// UlimitResource returns the resource a --ulimit name means.
func UlimitResource(name string) (int, bool) {
	r, ok := ulimitNames[name]
	return r, ok
}
