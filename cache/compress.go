package cache

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Codecs is a set of compressed formats for [Decompress] to recognise.
type Codecs uint8

const (
	CodecGzip Codecs = 1 << iota
	CodecZstd
	CodecBzip2
	CodecXz
)

// LayerCodecs are the compressions an OCI or Docker layer may have. An xz
// or bzip2 stream is no layer: it is read as it is, and fails as a tar
// or against its diff ID.
const LayerCodecs = CodecGzip | CodecZstd

// ArchiveCodecs are the compressions of the local archives ADD unpacks,
// as docker and BuildKit recognise them.
const ArchiveCodecs = LayerCodecs | CodecBzip2 | CodecXz

// Decompress returns the uncompressed stream of r: its compression, one
// of allow, is told by its first bytes (magic numbers), as docker and
// BuildKit tell it, never by a name or a media type; a stream in none of
// them is read as it is. Closing it does not close r. Layers (pulls,
// unpacks) and ADD's archives both read through it.
func Decompress(r io.Reader, allow Codecs) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic, _ := br.Peek(6)
	switch {
	case allow&CodecGzip != 0 && bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return gzip.NewReader(br)
	case allow&CodecZstd != 0 && bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		// Two goroutines, not the default of one per core kept until
		// Close. The window cap is the one docker's decompressor has (the
		// library default, written out), so archives made with
		// `zstd --long=29` unpack, and a hostile frame cannot ask for more.
		d, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxWindow(512<<20))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case allow&CodecBzip2 != 0 && bytes.HasPrefix(magic, []byte("BZh")):
		return io.NopCloser(bzip2.NewReader(br)), nil
	case allow&CodecXz != 0 && bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		r, err := xz.NewReader(br)
		return io.NopCloser(r), err
	}
	return io.NopCloser(br), nil
}
