package cache

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/builderdev/builder/internal/testutil"
)

// testTar builds an uncompressed tar of the given files (name → content).
func testTar(t testing.TB, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		tw.Write(files[n])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPutLayerFormats(t *testing.T) {
	s := openTest(t)
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog\n"), 50000)
	random := make([]byte, 3<<20)
	rand.NewChaCha8([32]byte{1, 2}).Read(random)
	data := testTar(t, map[string][]byte{"text": text, "random": random, "empty": nil})
	wantDiff := sha256Of(data)
	tests := []struct {
		c  Compression
		mt types.MediaType
	}{
		{Compression{}, types.OCILayer},
		{Compression{Format: "gzip", Level: 9}, types.OCILayer},
		{Compression{Format: "gzip", Level: -2}, types.OCILayer},
		{Compression{Format: "zstd"}, types.OCILayerZStd},
		{Compression{Format: "zstd", Level: 9}, types.OCILayerZStd},
		{Compression{Format: "none"}, types.OCIUncompressedLayer},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s-%d", tc.c.Format, tc.c.Level), func(t *testing.T) {
			var last int64
			l, err := s.PutLayer(context.Background(), bytes.NewReader(data), tc.c, func(n int64) { last = n })
			if err != nil {
				t.Fatalf("PutLayer: %v", err)
			}
			if l.DiffID != wantDiff {
				t.Errorf("DiffID = %s, want %s", l.DiffID, wantDiff)
			}
			if l.Descriptor.MediaType != tc.mt {
				t.Errorf("MediaType = %s, want %s", l.Descriptor.MediaType, tc.mt)
			}
			if last != int64(len(data)) {
				t.Errorf("last progress = %d, want %d", last, len(data))
			}
			blob, err := os.ReadFile(filepath.Join(s.Root(), blobsDir, l.Descriptor.Digest.Hex))
			if err != nil {
				t.Fatal(err)
			}
			if got := sha256Of(blob); got != l.Descriptor.Digest || int64(len(blob)) != l.Descriptor.Size {
				t.Errorf("blob hashes to %s (%d bytes), descriptor says %s (%d)", got, len(blob), l.Descriptor.Digest, l.Descriptor.Size)
			}
			rc, err := s.OpenLayer(l.Descriptor)
			if err != nil {
				t.Fatalf("OpenLayer: %v", err)
			}
			back, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(back, data) {
				t.Errorf("OpenLayer read %d bytes (err %v), want the %d bytes written", len(back), err, len(data))
			}
		})
	}
}

// TestPutLayerGzipIsStandard checks that the parallel gzip output is one
// ordinary gzip stream, as docker, podman and skopeo expect: the system's
// gzip tool must accept it and give back the tar.
func TestPutLayerGzipIsStandard(t *testing.T) {
	gz := testutil.RequireTool(t, "gzip")
	s := openTest(t)
	data := testTar(t, map[string][]byte{"a": bytes.Repeat([]byte("abc\n"), 1<<20), "b": []byte("x")})
	l, err := s.PutLayer(context.Background(), bytes.NewReader(data), Compression{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gz, "-dc", filepath.Join(s.Root(), blobsDir, l.Descriptor.Digest.Hex))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gzip -dc: %v", err)
	}
	if !bytes.Equal(out, data) {
		t.Errorf("gzip -dc gave %d bytes, want %d", len(out), len(data))
	}
}

func TestPutLayerDeterministic(t *testing.T) {
	s := openTest(t)
	// Large enough for several parallel zstd jobs (16 MiB each).
	random := make([]byte, 20<<20)
	rand.NewChaCha8([32]byte{3, 4}).Read(random)
	data := testTar(t, map[string][]byte{"r": random, "t": bytes.Repeat([]byte("hello world "), 2<<20)})
	// The same tar must give the same blob however it is read and however
	// many CPUs compress it: SOURCE_DATE_EPOCH builds promise equal digests
	// across machines.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, c := range []Compression{{}, {Format: "zstd"}, {Format: "gzip", Level: 6}} {
		var digests []v1.Hash
		for _, procs := range []int{1, 2, 5} {
			runtime.GOMAXPROCS(procs)
			for _, r := range []io.Reader{bytes.NewReader(data), iotestHalfReader{bytes.NewReader(data)}} {
				l, err := s.PutLayer(context.Background(), r, c, nil)
				if err != nil {
					t.Fatal(err)
				}
				digests = append(digests, l.Descriptor.Digest)
			}
		}
		for _, d := range digests[1:] {
			if d != digests[0] {
				t.Errorf("%s-%d: the same tar gave digests %v", c.Format, c.Level, digests)
				break
			}
		}
	}
}

// iotestHalfReader returns short reads, so the compressor sees the input
// cut differently from a bytes.Reader.
type iotestHalfReader struct{ r io.Reader }

func (h iotestHalfReader) Read(p []byte) (int, error) {
	return h.r.Read(p[:(len(p)+1)/2])
}

func TestPutLayerCancelled(t *testing.T) {
	s := openTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.PutLayer(ctx, bytes.NewReader(make([]byte, 1<<20)), Compression{}, nil)
	if err == nil {
		t.Fatal("PutLayer with a cancelled context succeeded")
	}
	assertNoBlobs(t, s)
}

func TestPutLayerBadFormat(t *testing.T) {
	s := openTest(t)
	if _, err := s.PutLayer(context.Background(), strings.NewReader(""), Compression{Format: "lz4"}, nil); err == nil {
		t.Fatal("PutLayer with format lz4 succeeded")
	}
}

func TestOpenLayerMediaTypes(t *testing.T) {
	s := openTest(t)
	data := testTar(t, map[string][]byte{"f": []byte("content")})
	gz, err := s.PutLayer(context.Background(), bytes.NewReader(data), Compression{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := s.PutLayer(context.Background(), bytes.NewReader(data), Compression{Format: "none"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		desc    v1.Descriptor
		wantErr bool
	}{
		{"docker gzip", v1.Descriptor{MediaType: types.DockerLayer, Digest: gz.Descriptor.Digest}, false},
		{"no media type", v1.Descriptor{Digest: gz.Descriptor.Digest}, false},
		{"docker plain", v1.Descriptor{MediaType: types.DockerUncompressedLayer, Digest: plain.Descriptor.Digest}, false},
		{"plain labelled gzip", v1.Descriptor{MediaType: types.OCILayer, Digest: plain.Descriptor.Digest}, false},
		{"config is not a layer", v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: gz.Descriptor.Digest}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := s.OpenLayer(tc.desc)
			if tc.wantErr {
				if err == nil {
					rc.Close()
					t.Fatalf("OpenLayer(%s) succeeded, want an error", tc.desc.MediaType)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenLayer: %v", err)
			}
			defer rc.Close()
			back, err := io.ReadAll(rc)
			if err != nil || !bytes.Equal(back, data) {
				t.Errorf("OpenLayer(%s) read %d bytes (err %v), want %d", tc.desc.MediaType, len(back), err, len(data))
			}
		})
	}
}

var (
	fatOnce sync.Once
	fatTar  []byte
)

// fatLayer is the benchmark's `fat` workload as a layer tar: 256 MiB from
// /dev/urandom and 256 MiB of the letter a.
func fatLayer(b *testing.B) []byte {
	fatOnce.Do(func() {
		random := make([]byte, 256<<20)
		rand.NewChaCha8([32]byte{1}).Read(random)
		fatTar = testTar(b, map[string][]byte{"rand": random, "text": bytes.Repeat([]byte("a"), 256<<20)})
	})
	return fatTar
}

// BenchmarkPutLayer512MiB measures the hot path of a build: compressing
// and storing a 512 MiB layer, half incompressible. It reports MiB/s of
// uncompressed input and the compressed size for each level tried.
//
//	go test ./cache -run '^$' -bench PutLayer512MiB -benchtime 3x
func BenchmarkPutLayer512MiB(b *testing.B) {
	data := fatLayer(b)
	for _, c := range []Compression{
		{Format: "gzip"},
		{Format: "gzip", Level: -2}, // Huffman only
		{Format: "gzip", Level: 1},
		{Format: "gzip", Level: 2},
		{Format: "gzip", Level: 6},
		{Format: "zstd"},
		{Format: "zstd", Level: 3},
		{Format: "none"},
	} {
		b.Run(fmt.Sprintf("%s-%d", c.Format, c.Level), func(b *testing.B) {
			s, err := Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var size int64
			b.SetBytes(int64(len(data)))
			cpu0 := cpuTime()
			for b.Loop() {
				l, err := s.PutLayer(context.Background(), bytes.NewReader(data), c, nil)
				if err != nil {
					b.Fatal(err)
				}
				size = l.Descriptor.Size
				b.StopTimer()
				os.Remove(filepath.Join(s.Root(), blobsDir, l.Descriptor.Digest.Hex))
				b.StartTimer()
			}
			b.ReportMetric(float64(len(data))/(1<<20)/b.Elapsed().Seconds()*float64(b.N), "MiB/s")
			b.ReportMetric(float64(size)/(1<<20), "MiB-out")
			b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}

// BenchmarkSHA256 is the floor PutLayer cannot beat: it hashes the input
// and the output.
func BenchmarkSHA256(b *testing.B) {
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	h := sha256.New()
	for b.Loop() {
		h.Write(buf)
	}
}

// BenchmarkPutLayerGoroot compresses a layer of real files (the Go
// tree's sources and tool binaries, up to 192 MiB): the sizes show what
// each level costs on typical build output, unlike the fat workload whose
// text half is one repeated letter.
//
//	go test ./cache -run '^$' -bench PutLayerGoroot -benchtime 3x
func BenchmarkPutLayerGoroot(b *testing.B) {
	files := map[string][]byte{}
	var total int
	filepath.WalkDir(runtime.GOROOT(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || total > 192<<20 || !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err == nil {
			files[p] = data
			total += len(data)
		}
		return nil
	})
	data := testTar(b, files)
	for _, c := range []Compression{
		{Format: "gzip", Level: 1}, {Format: "gzip", Level: 2}, {Format: "gzip", Level: 3},
		{Format: "gzip", Level: 4}, {Format: "gzip", Level: 6}, {Format: "zstd"}, {Format: "zstd", Level: 3},
	} {
		b.Run(fmt.Sprintf("%s-%d", c.Format, c.Level), func(b *testing.B) {
			s, err := Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var size int64
			b.SetBytes(int64(len(data)))
			cpu0 := cpuTime()
			for b.Loop() {
				l, err := s.PutLayer(context.Background(), bytes.NewReader(data), c, nil)
				if err != nil {
					b.Fatal(err)
				}
				size = l.Descriptor.Size
			}
			b.ReportMetric(float64(size)/float64(len(data))*100, "%size")
			b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}

// cpuTime is the process's user and system time: less sensitive than wall
// time to other work on a shared machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
