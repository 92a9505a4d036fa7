package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
	"unicode/utf8"
)

// KeyRecipe versions the cache-key recipe. Changing what goes into keys
// means changing this string, which invalidates every older entry.
const KeyRecipe = "builder-key-v5"

// Key is a step's cache key. It is not a content digest.
type Key [32]byte

func (k Key) String() string { return hex.EncodeToString(k[:]) }

// KeyBuilder builds a Key from named, length-prefixed fields. Fields
// records what went in, for BUILDER_DEBUG_KEYS.
//
// The hash input is the recipe, then for each field uvarint(len(name)),
// name, uvarint(len(value)), value: the framing makes ("ab", "c") and
// ("a", "bc") different keys.
type KeyBuilder struct {
	h      hash.Hash
	fields []string
}

// NewKeyBuilder starts a key under KeyRecipe.
func NewKeyBuilder() *KeyBuilder {
	b := &KeyBuilder{h: sha256.New()}
	b.frame([]byte(KeyRecipe))
	return b
}

func (b *KeyBuilder) frame(p []byte) {
	var n [binary.MaxVarintLen64]byte
	b.h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
	b.h.Write(p)
}

// Add adds a named field.
func (b *KeyBuilder) Add(name string, value []byte) {
	b.frame([]byte(name))
	b.frame(value)
	b.fields = append(b.fields, name+"="+showValue(value))
}

// AddString adds a named string field.
func (b *KeyBuilder) AddString(name, value string) { b.Add(name, []byte(value)) }

// Sum returns the key. Fields may still be added afterwards.
func (b *KeyBuilder) Sum() Key {
	var k Key
	b.h.Sum(k[:0])
	return k
}

// Fields returns "name=value" lines describing each field, values
// shortened, for debugging which field changed a key.
func (b *KeyBuilder) Fields() []string { return append([]string(nil), b.fields...) }

// showValue prints a field value for a human: short printable text as
// it is, other short values quoted, long ones as a hash prefix and length
// (enough to see that they changed).
func showValue(v []byte) string {
	if len(v) > 64 {
		sum := sha256.Sum256(v)
		return fmt.Sprintf("sha256:%x… (%d bytes)", sum[:6], len(v))
	}
	if utf8.Valid(v) && strconv.CanBackquote(string(v)) {
		return string(v)
	}
	return strconv.Quote(string(v))
}

// ParseKey reads a key as String writes it.
func ParseKey(s string) (Key, error) {
	var k Key
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(k) {
		return k, fmt.Errorf("malformed cache key %q", s)
	}
	copy(k[:], b)
	return k, nil
}
