package executor_test

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/builderdev/builder/internal/testutil"
)

// TestCopyOwners: COPY --from keeps the owners files have in their stage
// unless --chown says otherwise, and --chown=user without a group takes
// the user's primary group from the image's /etc/passwd, as BuildKit
// does (a uid given by number gets the group of the same number).
func TestCopyOwners(t *testing.T) {
	umoci := testutil.RequireTool(t, "umoci")
	e := newEnv(t)
	df := `FROM busybox:test AS src
RUN echo 'app:x:1000:2000::/home/app:/bin/sh' >> /etc/passwd && echo 'staff2:x:2000:' >> /etc/group && \
	mkdir -p /data/sub && echo x > /data/f && echo y > /data/sub/g && ln -s f /data/link && \
	chown -R 1000:2000 /data && chown -h 7:8 /data/link && chown 33:44 /data/sub/g && \
	echo z > /one && chown 5:6 /one

FROM src
COPY --from=src /data /copied
COPY --from=src /one /one-copied
COPY --from=src --chown=0:0 /data /chowned
COPY --from=src --chown=app /one /one-app
COPY --chown=app <<EOF /primary
x
EOF
COPY --chown=1000 <<EOF /numeric
x
EOF
COPY --chown=app:0 <<EOF /explicit
x
EOF
`
	res, err := e.build(t, t.TempDir(), df, nil)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := unpack(t, e, umoci, res)
	for _, tc := range []struct {
		path, want string
	}{
		{"copied/f", "1000:2000"},
		{"copied/sub", "1000:2000"},
		{"copied/sub/g", "33:44"},
		{"copied/link", "7:8"},
		{"one-copied", "5:6"},
		{"chowned/f", "0:0"},
		{"chowned/sub/g", "0:0"},
		{"one-app", "1000:2000"},
		{"primary", "1000:2000"},
		{"numeric", "1000:1000"},
		{"explicit", "1000:0"},
	} {
		fi, err := os.Lstat(filepath.Join(rootfs, tc.path))
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got := fmt.Sprintf("%d:%d", st.Uid, st.Gid); got != tc.want {
			t.Errorf("/%s owned by %s, want %s", tc.path, got, tc.want)
		}
	}
}
