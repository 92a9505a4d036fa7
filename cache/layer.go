package cache

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Compression chooses how layers are compressed.
type Compression struct {
	Format string // "gzip" (default), "zstd", "none"
	Level  int    // 0: the format's fast default
}

// DefaultGzipLevel is the gzip level used when Compression.Level is 0.
// Measured with BenchmarkPutLayer512MiB and BenchmarkPutLayerGoroot on 2
// cores (see layer_test.go): levels 1 and 2 both store the fat workload at
// 500-850 MiB/s; on real files (the Go tree) level 1 needs 20% less CPU
// than level 2 for output 3% larger, level 6 three times the CPU for 12%
// smaller. Huffman-only (-2) is slower here than level 1 and larger.
const DefaultGzipLevel = 1

// gzipBlockSize is pgzip's unit of parallel work. It is fixed, not
// derived from the CPU count, so that a layer compresses to the same bytes
// on every machine: SOURCE_DATE_EPOCH builds must reproduce digests.
const gzipBlockSize = 1 << 20

// Layer is a layer blob in the store with its uncompressed digest.
type Layer struct {
	Descriptor v1.Descriptor // media type, compressed digest, size
	DiffID     v1.Hash       // digest of the uncompressed tar
}

// PutLayer compresses and stores an uncompressed layer tar read from r,
// computing its digest and diff ID in the same pass. progress, if not
// nil, is called with the number of uncompressed bytes read so far.
//
// The tar is read once: this goroutine hashes the input (the diff ID) and
// hands it to the compressor, whose own goroutines compress blocks in
// parallel and write the output through a second hash (the digest) into a
// session file. Nothing is held in memory beyond a few blocks.
func (s *Store) PutLayer(ctx context.Context, r io.Reader, c Compression, progress func(n int64)) (Layer, error) {
	return s.putLayer(ctx, r, c, progress, nil)
}

// putLayer is PutLayer that, when check is set, has it judge the diff ID
// (and size) of the stream before the blob is committed.
func (s *Store) putLayer(ctx context.Context, r io.Reader, c Compression, progress func(n int64), check func(diffID v1.Hash, n int64) error) (Layer, error) {
	f, err := s.tempFile("layer-*")
	if err != nil {
		return Layer{}, err
	}
	defer f.Cleanup()
	out := newHashWriter(&writebackFile{f: f.File})
	comp, mt, err := newCompressor(out, c)
	if err != nil {
		return Layer{}, err
	}
	diffID, n, err := copyLayer(ctx, comp, r, progress)
	if cerr := comp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("compressing layer: %w", cerr)
	}
	if err == nil && check != nil {
		err = check(diffID, n)
	}
	if err != nil {
		return Layer{}, err
	}
	digest := out.digest()
	if err := commitBlob(f, s.path(blobsDir), digest, v1.Hash{}); err != nil {
		return Layer{}, err
	}
	return Layer{
		Descriptor: v1.Descriptor{MediaType: mt, Digest: digest, Size: out.n},
		DiffID:     diffID,
	}, nil
}

func copyLayer(ctx context.Context, w io.Writer, r io.Reader, progress func(int64)) (v1.Hash, int64, error) {
	diff := sha256.New()
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return v1.Hash{}, 0, fmt.Errorf("writing layer: %w", context.Cause(ctx))
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			diff.Write(buf[:n])
			if _, err := w.Write(buf[:n]); err != nil {
				return v1.Hash{}, 0, fmt.Errorf("compressing layer: %w", err)
			}
			total += int64(n)
			if progress != nil {
				progress(total)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return sha256Hash(diff), total, nil
		}
		if rerr != nil {
			return v1.Hash{}, 0, fmt.Errorf("reading layer: %w", rerr)
		}
	}
}

// newCompressor returns the writer for c and the OCI media type of what
// it writes.
func newCompressor(w io.Writer, c Compression) (io.WriteCloser, types.MediaType, error) {
	switch c.Format {
	case "", "gzip":
		level := c.Level
		if level == 0 {
			level = DefaultGzipLevel
		}
		zw, err := getGzipWriter(w, level)
		if err != nil {
			return nil, "", fmt.Errorf("gzip level %d: %w", c.Level, err)
		}
		return zw, types.OCILayer, nil
	case "zstd":
		level := zstd.SpeedFastest
		if c.Level != 0 {
			level = zstd.EncoderLevelFromZstd(c.Level)
		}
		// Concurrent blocks split the stream into fixed jobs whatever the
		// concurrency, but with a concurrency of 1 the encoder falls back
		// to plain streaming, which cuts blocks differently: keep ≥ 2 so
		// that the bytes do not depend on the CPU count.
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(level),
			zstd.WithEncoderConcurrency(max(2, runtime.GOMAXPROCS(0))), zstd.WithConcurrentBlocks(true))
		if err != nil {
			return nil, "", fmt.Errorf("zstd level %d: %w", c.Level, err)
		}
		return zw, types.OCILayerZStd, nil
	case "none":
		return nopWriteCloser{w}, types.OCIUncompressedLayer, nil
	}
	return nil, "", fmt.Errorf("unknown layer compression %q (want gzip, zstd or none)", c.Format)
}

// gzipWriters keeps pgzip writers between layers, by level: a new one
// allocates and zeroes a 1 MiB buffer per block in flight, which was most
// of the CPU a small layer's commit cost (BenchmarkRunSteps30's profile).
// Reset keeps the level, and the block size is set again, so a reused
// writer writes the same bytes as a new one.
var gzipWriters sync.Map // level → *sync.Pool of *pgzip.Writer

type pooledGzip struct {
	*pgzip.Writer
	pool *sync.Pool
}

func (p *pooledGzip) Close() error {
	err := p.Writer.Close()
	if err == nil {
		p.pool.Put(p.Writer)
	}
	return err
}

func getGzipWriter(w io.Writer, level int) (io.WriteCloser, error) {
	v, _ := gzipWriters.LoadOrStore(level, &sync.Pool{})
	pool := v.(*sync.Pool)
	zw, _ := pool.Get().(*pgzip.Writer)
	if zw != nil {
		zw.Reset(w)
	} else {
		var err error
		if zw, err = pgzip.NewWriterLevel(w, level); err != nil {
			return nil, err
		}
	}
	if err := zw.SetConcurrency(gzipBlockSize, 2*runtime.GOMAXPROCS(0)+2); err != nil {
		return nil, err
	}
	return &pooledGzip{Writer: zw, pool: pool}, nil
}

// copyBuffers are copyLayer's read buffers, one block each.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, gzipBlockSize); return &b }}

// writebackFile starts the disk write of every few MiB written to f, so
// that writing to disk overlaps compressing.
type writebackFile struct {
	f       *os.File
	off     int64 // bytes written
	flushed int64 // bytes handed to startWriteback
}

const writebackChunk = 8 << 20

func (w *writebackFile) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.flushed >= writebackChunk {
		startWriteback(w.f, w.flushed, w.off-w.flushed)
		w.flushed = w.off
	}
	return n, err
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// OpenLayer opens a stored layer blob as an uncompressed tar stream.
//
// The media type decides the decompressor (a missing one means gzip), but
// the blob's first bytes overrule it: images in the wild label plain tars
// as gzip, and Docker itself only sniffs.
//
// A held layer (see held.go) is regenerated from its snapshot and checked.
func (s *Store) OpenLayer(desc v1.Descriptor) (io.ReadCloser, error) {
	if _, err := layerCompression(desc.MediaType); err != nil {
		return nil, err
	}
	if !s.HasBlob(desc.Digest) && s.isHeld(desc) {
		return s.openHeld(context.Background(), desc)
	}
	f, err := s.OpenBlob(desc.Digest)
	if err != nil {
		return nil, err
	}
	zr, err := DecompressLayer(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening layer %s: %w", desc.Digest, err)
	}
	return &layerReader{Reader: zr, close: func() { zr.Close(); f.Close() }}, nil
}

// DecompressLayer returns the uncompressed stream of the layer blob r:
// gzip, zstd or a plain tar, told apart by the first bytes as docker
// tells them apart (see OpenLayer and [Decompress]). Closing it does not
// close r. Pulls and unpacks both read layers through it, so that the
// stream a pull hashes against the diff ID is the one an unpack writes.
func DecompressLayer(r io.Reader) (io.ReadCloser, error) {
	return Decompress(r, LayerCodecs)
}

// layerCompression maps the OCI and Docker layer media types to a format.
func layerCompression(mt types.MediaType) (string, error) {
	switch mt {
	case "", types.OCILayer, types.DockerLayer, types.OCIRestrictedLayer, types.DockerForeignLayer:
		return "gzip", nil
	case types.OCILayerZStd, "application/vnd.docker.image.rootfs.diff.tar.zstd":
		return "zstd", nil
	case types.OCIUncompressedLayer, types.DockerUncompressedLayer, types.OCIUncompressedRestrictedLayer:
		return "none", nil
	}
	return "", fmt.Errorf("unsupported layer media type %q", mt)
}

type layerReader struct {
	io.Reader
	close func()
	done  bool
}

func (l *layerReader) Close() error {
	if !l.done {
		l.done = true
		l.close()
	}
	return nil
}
