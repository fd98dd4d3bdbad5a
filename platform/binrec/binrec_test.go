package binrec_test

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"rapport.dev/platform/binrec"
)

// readers are the two ways of reading a record; they must agree.
var readers = map[string]func([]byte) *binrec.Reader{"copying": binrec.NewReader, "shared": binrec.NewSharedReader}

func TestRoundTrip(t *testing.T) {
	for name, newReader := range readers {
		t.Run(name, func(t *testing.T) { testRoundTrip(t, newReader) })
	}
}

func testRoundTrip(t *testing.T, newReader func([]byte) *binrec.Reader) {
	at := time.Date(2026, 2, 29, 23, 59, 59, 123456789, time.FixedZone("CST", 8*3600))
	var b []byte
	b = append(b, 7)
	b = binrec.AppendString(b, "héllo")
	b = binary.AppendVarint(b, -42)
	b = binary.AppendUvarint(b, 1<<40)
	b = binrec.AppendTime(b, at)
	b = binrec.AppendTime(b, time.Time{})
	b = binrec.AppendString(b, "")

	r := newReader(b)
	if v := r.Byte(); v != 7 {
		t.Errorf("byte %d", v)
	}
	if s := r.String(); s != "héllo" {
		t.Errorf("string %q", s)
	}
	if v := r.Varint(); v != -42 {
		t.Errorf("varint %d", v)
	}
	if v := r.Uvarint(); v != 1<<40 {
		t.Errorf("uvarint %d", v)
	}
	if v := r.Time(); !v.Equal(at) || v.Location() != time.UTC {
		t.Errorf("time %v, want %v in UTC", v, at)
	}
	if v := r.Time(); !v.IsZero() || v != (time.Time{}) {
		t.Errorf("zero time read as %v", v)
	}
	if s := r.String(); s != "" {
		t.Errorf("empty string read as %q", s)
	}
	if err := r.Done(); err != nil {
		t.Fatal(err)
	}
}

// TestMalformed: every truncation of a record, a count larger than the
// record and trailing bytes are errors, never a panic or a huge
// allocation.
func TestMalformed(t *testing.T) {
	for name, newReader := range readers {
		t.Run(name, func(t *testing.T) { testMalformed(t, newReader) })
	}
}

func testMalformed(t *testing.T, newReader func([]byte) *binrec.Reader) {
	var rec []byte
	rec = binrec.AppendString(rec, "customer")
	rec = binrec.AppendTime(rec, time.Unix(1700000000, 5))
	rec = binary.AppendUvarint(rec, 3)
	for range 3 {
		rec = binary.AppendVarint(rec, 1)
	}
	read := func(b []byte) error {
		r := newReader(b)
		_ = r.String()
		r.Time()
		for n := r.Count(); n > 0; n-- {
			r.Varint()
		}
		return r.Done()
	}
	if err := read(rec); err != nil {
		t.Fatal(err)
	}
	for i := range len(rec) {
		if err := read(rec[:i]); !errors.Is(err, binrec.ErrMalformed) {
			t.Errorf("truncated to %d bytes: %v", i, err)
		}
	}
	if err := read(append(rec, 0)); !errors.Is(err, binrec.ErrMalformed) {
		t.Errorf("trailing byte: %v", err)
	}
	huge := binary.AppendUvarint(nil, 1<<50)
	r := newReader(huge)
	if n := r.Count(); n != 0 || !errors.Is(r.Err(), binrec.ErrMalformed) {
		t.Errorf("count 2^50 in a %d-byte record: %d, %v", len(huge), n, r.Err())
	}
	bad := binary.AppendUvarint(binary.AppendVarint(nil, 0), 1e9)
	r = newReader(bad)
	if r.Time(); !errors.Is(r.Err(), binrec.ErrMalformed) {
		t.Errorf("nanoseconds 1e9: %v", r.Err())
	}
}

// TestSharedStrings: a shared reader's strings are cut from one copy of
// the record, made when the reader is; they do not change when the record's
// bytes do afterwards.
func TestSharedStrings(t *testing.T) {
	var rec []byte
	for _, s := range []string{"given", "family", "", "Europe/Paris"} {
		rec = binrec.AppendString(rec, s)
	}
	read := func() (string, string, string, string, error) {
		r := binrec.NewSharedReader(rec)
		a, b, c, d := r.String(), r.String(), r.String(), r.String()
		return a, b, c, d, r.Done()
	}
	if n := testing.AllocsPerRun(100, func() { _, _, _, _, _ = read() }); n != 1 {
		t.Errorf("%v allocations to read four strings, want 1", n)
	}
	a, b, c, d, err := read()
	if err != nil {
		t.Fatal(err)
	}
	for i := range rec {
		rec[i] = 'x'
	}
	if a != "given" || b != "family" || c != "" || d != "Europe/Paris" {
		t.Errorf("strings read %q %q %q %q", a, b, c, d)
	}
}
