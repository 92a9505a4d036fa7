package executor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseSecret reads --secret values as buildx does, the type picked
// from the keys given, else from whether a variable named like the id
// exists.
func TestParseSecret(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "file"), []byte("from-file"), 0o600)
	os.WriteFile(filepath.Join(dir, "big"), make([]byte, maxSecretSize+1), 0o600)
	t.Chdir(dir)
	env := map[string]string{"TOKEN": "from-env", "OTHER": "other-env"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct {
		spec, id, value, err string
	}{
		{spec: "id=x,src=file", id: "x", value: "from-file"},
		{spec: "id=x,source=file,type=file", id: "x", value: "from-file"},
		{spec: "id=TOKEN", id: "TOKEN", value: "from-env"},
		{spec: "id=file", id: "file", value: "from-file"},
		{spec: "id=x,env=OTHER", id: "x", value: "other-env"},
		{spec: "id=OTHER,type=env", id: "OTHER", value: "other-env"},
		{spec: "id=x,env=UNSET", err: "the variable UNSET is not set"},
		{spec: "id=x,src=missing", err: "missing"},
		{spec: "id=x,src=big", err: "larger than 500 KB"},
		{spec: "src=file", err: "no id"},
		{spec: "id=x,color=red", err: "unknown key color"},
		{spec: "id=x,type=ssh", err: "type ssh"},
		{spec: "x", err: "want id=ID"},
	} {
		id, value, err := ParseSecret(tc.spec, lookup)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseSecret(%q) = %v, want an error saying %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil || id != tc.id || string(value) != tc.value {
			t.Errorf("ParseSecret(%q) = %q, %q, %v; want %q, %q", tc.spec, id, value, err, tc.id, tc.value)
		}
	}
}
