package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestKeyBuilder(t *testing.T) {
	type field struct{ name, value string }
	key := func(fs ...field) Key {
		b := NewKeyBuilder()
		for _, f := range fs {
			b.AddString(f.name, f.value)
		}
		return b.Sum()
	}
	tests := []struct {
		name string
		a, b []field
		same bool
	}{
		{"same fields", []field{{"cmd", "echo"}}, []field{{"cmd", "echo"}}, true},
		{"value framing", []field{{"ab", "c"}}, []field{{"a", "bc"}}, false},
		{"field framing", []field{{"a", "b"}, {"c", ""}}, []field{{"a", "bc"}}, false},
		{"name matters", []field{{"env", "x"}}, []field{{"cmd", "x"}}, false},
		{"order matters", []field{{"a", "1"}, {"b", "2"}}, []field{{"b", "2"}, {"a", "1"}}, false},
		{"empty value counts", []field{{"a", ""}}, nil, false},
		{"long values", []field{{"f", strings.Repeat("x", 300)}}, []field{{"f", strings.Repeat("x", 301)}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if same := key(tc.a...) == key(tc.b...); same != tc.same {
				t.Errorf("key(%v) == key(%v) is %v, want %v", tc.a, tc.b, same, tc.same)
			}
		})
	}
	if key() == (Key{}) {
		t.Error("the empty key is all zeros: the recipe is not hashed")
	}
}

func TestKeyBuilderFields(t *testing.T) {
	b := NewKeyBuilder()
	b.AddString("parent", "abc")
	b.Add("bin", []byte{0, 1, '\n'})
	b.AddString("long", strings.Repeat("y", 100))
	k1 := b.Sum()
	got := b.Fields()
	want := []string{"parent=abc", `bin="\x00\x01\n"`}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] ||
		!strings.HasPrefix(got[2], "long=sha256:") || !strings.HasSuffix(got[2], "(100 bytes)") {
		t.Errorf("Fields() = %q", got)
	}
	if k1 != b.Sum() {
		t.Error("Sum is not repeatable")
	}
	if len(k1.String()) != 64 {
		t.Errorf("Key.String() = %q", k1.String())
	}
}

func testEntry(t testing.TB, s *Store) Entry {
	t.Helper()
	l, err := s.PutLayer(context.Background(), bytes.NewReader(testTar(t, map[string][]byte{"f": []byte("step")})), Compression{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return Entry{
		Layer:   &l,
		Config:  v1.Config{Env: []string{"A=1"}, WorkingDir: "/app", Cmd: []string{"sh"}, Labels: map[string]string{"x": "y"}},
		History: v1.History{CreatedBy: "RUN make", Created: v1.Time{Time: time.Unix(1700000000, 0).UTC()}},
	}
}

func TestStepRoundTrip(t *testing.T) {
	s := openTest(t)
	k := NewKeyBuilder().Sum()
	if _, err := s.LookupStep(k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LookupStep of an empty store: %v, want ErrNotFound", err)
	}
	e := testEntry(t, s)
	if err := s.RecordStep(k, e); err != nil {
		t.Fatal(err)
	}
	// Another Store on the same root sees it at once.
	s2 := openTest(t)
	s2.root = s.root
	got, err := s2.LookupStep(k)
	if err != nil {
		t.Fatalf("LookupStep: %v", err)
	}
	if got.Layer == nil || got.Layer.DiffID != e.Layer.DiffID || got.Layer.Descriptor.Digest != e.Layer.Descriptor.Digest || got.Config.WorkingDir != "/app" || got.Config.Labels["x"] != "y" ||
		got.History.CreatedBy != "RUN make" || !got.History.Created.Equal(e.History.Created.Time) {
		t.Errorf("LookupStep = %+v, want %+v", got, e)
	}
	noLayer := NewKeyBuilder()
	noLayer.AddString("step", "ENV")
	if err := s.RecordStep(noLayer.Sum(), Entry{Config: v1.Config{Env: []string{"B=2"}}}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LookupStep(noLayer.Sum()); err != nil || got.Layer != nil || got.Config.Env[0] != "B=2" {
		t.Errorf("LookupStep of a layerless entry = %+v, %v", got, err)
	}
}

func TestLookupStepTouches(t *testing.T) {
	s := openTest(t)
	k := NewKeyBuilder().Sum()
	if err := s.RecordStep(k, testEntry(t, s)); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	os.Chtimes(s.stepPath(k), old, old)
	if _, err := s.LookupStep(k); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.stepPath(k))
	if err != nil {
		t.Fatal(err)
	}
	if fi.ModTime().Before(time.Now().Add(-time.Hour)) {
		t.Errorf("entry mtime %v after a hit, want now", fi.ModTime())
	}
}

func TestLookupStepMissingLayer(t *testing.T) {
	s := openTest(t)
	k := NewKeyBuilder().Sum()
	e := testEntry(t, s)
	if err := s.RecordStep(k, e); err != nil {
		t.Fatal(err)
	}
	p, _ := s.blobPath(e.Layer.Descriptor.Digest)
	os.Remove(p)
	if _, err := s.LookupStep(k); !errors.Is(err, ErrNotFound) {
		t.Errorf("LookupStep with its layer gone: %v, want ErrNotFound", err)
	}
	if err := s.RecordStep(k, e); !errors.Is(err, ErrNotFound) {
		t.Errorf("RecordStep of an entry whose layer is absent: %v, want ErrNotFound", err)
	}
}

func TestLookupStepDamaged(t *testing.T) {
	s := openTest(t)
	for _, content := range []string{"", "{", `{"v":99}`, "null"} {
		k := NewKeyBuilder()
		k.AddString("c", content)
		p := s.stepPath(k.Sum())
		os.MkdirAll(p[:strings.LastIndex(p, "/")], 0o755)
		os.WriteFile(p, []byte(content), 0o644)
		if _, err := s.LookupStep(k.Sum()); !errors.Is(err, ErrNotFound) {
			t.Errorf("LookupStep of entry %q: %v, want ErrNotFound", content, err)
		}
	}
}

// BenchmarkLookupStep is a cache hit: read, decode, check the layer
// blob, touch the mtime. The target is well under 100 µs.
//
//	go test ./cache -run '^$' -bench LookupStep
func BenchmarkLookupStep(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e := testEntry(b, s)
	e.Config.Env = append(e.Config.Env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root")
	kb := NewKeyBuilder()
	kb.AddString("step", "RUN something")
	k := kb.Sum()
	if err := s.RecordStep(k, e); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.LookupStep(k); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecordStep(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e := testEntry(b, s)
	i := 0
	for b.Loop() {
		kb := NewKeyBuilder()
		kb.Add("i", []byte{byte(i), byte(i >> 8), byte(i >> 16)})
		i++
		if err := s.RecordStep(kb.Sum(), e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNoopRebuild is the store's share of rebuilding an unchanged
// 20-step Dockerfile in a new process: open, resolve the base, 20 cache
// hits, write the (unchanged) image and tag it. The whole rebuild, process
// start included, must stay within 25 ms.
//
//	go test ./cache -run '^$' -bench NoopRebuild
func BenchmarkNoopRebuild(b *testing.B) {
	root := b.TempDir()
	s, err := Open(root)
	if err != nil {
		b.Fatal(err)
	}
	base := putTestImage(b, s, map[string][]byte{"bin/sh": []byte("sh")}, "sh")
	s.Tag("base", base.Manifest)
	e := testEntry(b, s)
	keys := make([]Key, 20)
	for i := range keys {
		kb := NewKeyBuilder()
		kb.AddString("step", fmt.Sprint(i))
		keys[i] = kb.Sum()
		if err := s.RecordStep(keys[i], e); err != nil {
			b.Fatal(err)
		}
	}
	img, _ := s.Image(base.Manifest.Digest)
	cfg, _ := img.ConfigFile()
	m, _ := img.Manifest()
	s.Close()
	for b.Loop() {
		s, err := Open(root)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Lookup("base"); err != nil {
			b.Fatal(err)
		}
		for _, k := range keys {
			if _, err := s.LookupStep(k); err != nil {
				b.Fatal(err)
			}
		}
		rec, err := s.PutImage(cfg, m.Layers, FormatOCI, Compression{})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Tag("app", rec.Manifest); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
