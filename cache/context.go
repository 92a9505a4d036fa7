package cache

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// FileStat is what decides whether a remembered file hash is still valid.
type FileStat struct {
	Size  int64
	Mtime int64 // ns
	Ctime int64 // ns
	Ino   uint64
	Mode  uint32
}

// ContextHashes are the remembered content hashes of one build context's
// files. Get and Put may be called from many goroutines.
//
// They are hints: a file that cannot be read, or was written by another
// version, is ignored and the context is hashed afresh.
type ContextHashes struct {
	path string
	s    *Store

	mu      sync.Mutex
	m       map[string]ctxEntry
	loaded  int  // entries read from the file
	changed bool // a Put added or changed an entry
}

type ctxEntry struct {
	st   FileStat
	sum  [32]byte
	used bool // Get or Put during this build: kept by Save
	racy bool // changed too recently to trust its mtime: not saved
}

// racyWindow: a file whose mtime or ctime is this close to the moment it
// was hashed may be written again within the same timestamp tick, leaving
// its stat unchanged, so its hash is not remembered across builds.
const racyWindow = 2 * time.Second

// ctxMagic starts the file: format name and version.
const ctxMagic = "builder-ctx-v1\n"

// ContextHashes loads the remembered hashes for the context directory dir
// (an absolute path).
func (s *Store) ContextHashes(dir string) (*ContextHashes, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("context hashes: %q is not an absolute path", dir)
	}
	key := sha256Of([]byte(filepath.Clean(dir)))
	c := &ContextHashes{path: filepath.Join(s.root, contextsDir, key.Hex), s: s}
	data, err := os.ReadFile(c.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("loading context hashes: %w", err)
	}
	c.m, _ = decodeContext(data) // a damaged file is an empty one
	if c.m == nil {
		c.m = map[string]ctxEntry{}
	}
	c.loaded = len(c.m)
	return c, nil
}

// Get returns the remembered hash of rel if st still matches.
func (c *ContextHashes) Get(rel string, st FileStat) (v1.Hash, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[rel]
	if !ok || e.st != st {
		return v1.Hash{}, false
	}
	if !e.used {
		e.used = true
		c.m[rel] = e
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(e.sum[:])}, true
}

// Put remembers the hash of rel for st. Only sha256 hashes are kept.
func (c *ContextHashes) Put(rel string, st FileStat, h v1.Hash) {
	var sum [32]byte
	if h.Algorithm != "sha256" || hex.DecodedLen(len(h.Hex)) != len(sum) {
		return
	}
	if _, err := hex.Decode(sum[:], []byte(h.Hex)); err != nil {
		return
	}
	cut := time.Now().Add(-racyWindow).UnixNano()
	e := ctxEntry{st: st, sum: sum, used: true, racy: st.Mtime > cut || st.Ctime > cut}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[rel]; !ok || old.st != st || old.sum != sum || old.racy != e.racy {
		c.changed = true
	}
	c.m[rel] = e
}

// Save writes the hashes back if they changed, atomically. Entries that
// were neither read nor written during this build are dropped, so the
// file follows the context instead of growing forever.
func (c *ContextHashes) Save() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := 0
	for _, e := range c.m {
		if e.used && !e.racy {
			kept++
		}
	}
	if !c.changed && kept == c.loaded {
		return nil
	}
	if err := c.s.writeSmall(c.path, encodeContext(c.m, kept)); err != nil {
		return fmt.Errorf("saving context hashes: %w", err)
	}
	c.loaded, c.changed = kept, false
	return nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeContext writes the magic, the entry count, each entry as
// uvarint(len(rel)) rel varint(size) varint(mtime) varint(ctime)
// uvarint(ino) uvarint(mode) sum[32], and a CRC-32C of all that.
func encodeContext(m map[string]ctxEntry, n int) []byte {
	buf := make([]byte, 0, len(ctxMagic)+n*80+16)
	buf = append(buf, ctxMagic...)
	buf = binary.AppendUvarint(buf, uint64(n))
	for rel, e := range m {
		if !e.used || e.racy {
			continue
		}
		buf = binary.AppendUvarint(buf, uint64(len(rel)))
		buf = append(buf, rel...)
		buf = binary.AppendVarint(buf, e.st.Size)
		buf = binary.AppendVarint(buf, e.st.Mtime)
		buf = binary.AppendVarint(buf, e.st.Ctime)
		buf = binary.AppendUvarint(buf, e.st.Ino)
		buf = binary.AppendUvarint(buf, uint64(e.st.Mode))
		buf = append(buf, e.sum[:]...)
	}
	return binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
}

var errCorrupt = errors.New("corrupt context hashes")

// decodeContext reads what encodeContext wrote. The paths are slices of
// one string holding the whole file, so loading costs one allocation per
// map entry and none per path.
func decodeContext(data []byte) (map[string]ctxEntry, error) {
	if len(data) < len(ctxMagic)+4 || string(data[:len(ctxMagic)]) != ctxMagic {
		return nil, errCorrupt
	}
	body := data[:len(data)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(data[len(data)-4:]) {
		return nil, errCorrupt
	}
	str := string(body)
	d := decoder{b: body, pos: len(ctxMagic)}
	n := d.uvarint()
	if d.err != nil || n > uint64(len(body)) {
		return nil, errCorrupt
	}
	m := make(map[string]ctxEntry, n)
	for range n {
		l := int(d.uvarint())
		if d.err != nil || l < 0 || d.pos+l > len(body) {
			return nil, errCorrupt
		}
		rel := str[d.pos : d.pos+l]
		d.pos += l
		var e ctxEntry
		e.st.Size, e.st.Mtime, e.st.Ctime = d.varint(), d.varint(), d.varint()
		e.st.Ino, e.st.Mode = d.uvarint(), uint32(d.uvarint())
		if d.err != nil || d.pos+32 > len(body) {
			return nil, errCorrupt
		}
		copy(e.sum[:], body[d.pos:])
		d.pos += 32
		m[rel] = e
	}
	if d.pos != len(body) {
		return nil, errCorrupt
	}
	return m, nil
}

type decoder struct {
	b   []byte
	pos int
	err error
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b[d.pos:])
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.pos += n
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b[d.pos:])
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.pos += n
	return v
}
