package boltdb

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// Sep separates the parts of a composite key. Ids never contain a NUL byte
// (every id is validated), so prefix scans on "tenant\x00" are exact.
const Sep = 0x00

// U64 encodes v big-endian, so keys sort numerically.
func U64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// ReadU64 decodes a big-endian uint64.
func ReadU64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, errors.New("boltdb: uint64 value is not 8 bytes")
	}
	return binary.BigEndian.Uint64(b), nil
}

// Key joins parts with Sep: Key("t1", "c42") = "t1\x00c42". Parts may be
// strings or []byte (for big-endian numbers, which go last).
func Key(parts ...any) []byte {
	var buf bytes.Buffer
	for i, p := range parts {
		if i > 0 {
			buf.WriteByte(Sep)
		}
		switch v := p.(type) {
		case string:
			buf.WriteString(v)
		case []byte:
			buf.Write(v)
		default:
			panic("boltdb.Key: part must be string or []byte")
		}
	}
	return buf.Bytes()
}

// Prefix is Key(parts...) followed by Sep: the prefix of every key below them.
func Prefix(parts ...any) []byte {
	return append(Key(parts...), Sep)
}

// Copy returns a copy of b, for values that must outlive their transaction.
func Copy(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
