// Package binrec is the small binary record format the services store
// their hot records in, where encoding/json's cost showed in profiles:
// varints, length-prefixed strings and times as Unix seconds and
// nanoseconds. A record's codec writes its fields in a fixed order behind
// a version byte of its own; Reader reads them back and keeps the first
// error, so a decoder reads every field and checks once at the end.
package binrec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("truncated or malformed record")

// AppendString appends s, length first.
func AppendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// AppendTime appends t's instant as varint Unix seconds and uvarint
// nanoseconds; the zone is not kept (Time reads UTC).
func AppendTime(b []byte, t time.Time) []byte {
	return binary.AppendUvarint(binary.AppendVarint(b, t.Unix()), uint64(t.Nanosecond()))
}

// Reader decodes a record; the first error sticks and later reads return
// zero values. A copy of a Reader reads on from where the original was,
// independently (a decoder that reads a list twice copies it).
type Reader struct {
	b   []byte
	err error
	// rec is the record as one string, when strings are cut from it
	// (NewSharedReader); b is its unread tail.
	rec string
}

// NewReader reads b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// NewSharedReader reads b like NewReader, but copies b once, into a
// string, and String returns slices of that copy instead of a copy each:
// one allocation for all of a record's strings. Any one of them keeps the
// whole record's copy alive, so it suits records decoded whole and kept no
// longer than their strings (a record mostly made of strings).
func NewSharedReader(b []byte) *Reader { return &Reader{b: b, rec: string(b)} }

// Fail records err (the first one sticks) and stops reading.
func (r *Reader) Fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

// Err is the first error.
func (r *Reader) Err() error { return r.err }

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if len(r.b) == 0 {
		r.Fail(ErrMalformed)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.Fail(ErrMalformed)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Varint reads a signed varint.
func (r *Reader) Varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.Fail(ErrMalformed)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Count reads the length of a list whose items take at least a byte each,
// so a corrupt count cannot make the decoder allocate more than the
// record's size.
func (r *Reader) Count() int {
	n := r.Uvarint()
	if n > uint64(len(r.b)) {
		r.Fail(ErrMalformed)
		return 0
	}
	return int(n)
}

// Bytes reads the next n bytes, aliasing the record.
func (r *Reader) Bytes(n uint64) []byte {
	if n > uint64(len(r.b)) {
		r.Fail(ErrMalformed)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// String reads what AppendString wrote.
func (r *Reader) String() string {
	n := r.Uvarint()
	if r.rec == "" {
		return string(r.Bytes(n))
	}
	at := len(r.rec) - len(r.b)
	if r.Bytes(n); r.err != nil {
		return ""
	}
	return r.rec[at : at+int(n)]
}

// Time reads what AppendTime wrote, in UTC.
func (r *Reader) Time() time.Time {
	sec := r.Varint()
	nsec := r.Uvarint()
	if r.err != nil {
		return time.Time{}
	}
	if nsec >= 1e9 {
		r.Fail(fmt.Errorf("%w: nanoseconds %d out of range", ErrMalformed, nsec))
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// Done returns the first error, or an error when bytes are left over.
func (r *Reader) Done() error {
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(r.b))
	}
	return nil
}
