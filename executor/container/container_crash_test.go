package container

import (
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestContainerBuilderKilled SIGKILLs a builder in the middle of a RUN:
// the parent-death signal must take the container down with it, also
// after the switch to another user, which clears that signal.
func TestContainerBuilderKilled(t *testing.T) {
	for _, user := range []string{"", "app"} {
		t.Run("user="+user, func(t *testing.T) {
			f := newFixture(t, "", appLayer(t))
			marker := sleepMarker(t)
			spec := f.spec(sh("sleep " + marker)...)
			spec.User = user
			data, err := json.Marshal(spec)
			if err != nil {
				t.Fatal(err)
			}
			builder := exec.Command("/proc/self/exe", "-test.run=^$")
			builder.Env = append(os.Environ(), runHelperEnv+"="+string(data))
			if err := builder.Start(); err != nil {
				t.Fatal(err)
			}
			waitForProcess(t, marker, nil)
			builder.Process.Kill()
			builder.Wait()
			// The signal is delivered asynchronously; poll, with a guard
			// against a hang rather than a timing assertion.
			for i := 0; len(processesWith(t, marker)) > 0; i++ {
				if i == 6000 {
					t.Fatalf("container processes outlived the builder: %v", processesWith(t, marker))
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
