package container

import (
	"context"
	"encoding/json"
	"os"
	"testing"
)

// runHelperEnv makes the test binary a stand-in builder that runs one
// container and waits for it, for tests that kill the builder mid-RUN.
const runHelperEnv = "BUILDER_TEST_RUN_HELPER_SPEC"

// TestMain hands a re-executed child to the container code before the
// testing package parses flags: /proc/self/exe is this test binary.
func TestMain(m *testing.M) {
	if ReexecMain() {
		return
	}
	if data := os.Getenv(runHelperEnv); data != "" {
		os.Exit(runHelper(data))
	}
	if mode := os.Getenv(seccompProbeEnv); mode != "" {
		os.Exit(seccompProbe(mode))
	}
	os.Exit(m.Run())
}

func runHelper(data string) int {
	var spec Spec
	if err := json.Unmarshal([]byte(data), &spec); err != nil {
		return 2
	}
	code, err := Run(context.Background(), spec, func(int, string) {})
	if err != nil {
		return 2
	}
	return code
}
