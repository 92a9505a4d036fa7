package executor

import (
	"os"
	"testing"

	"github.com/builderdev/builder/executor/container"
)

// TestMain hands a re-executed RUN child to the container code before the
// testing package parses flags: /proc/self/exe is this test binary.
func TestMain(m *testing.M) {
	if container.ReexecMain() {
		return
	}
	os.Exit(m.Run())
}
