package domain

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// The binary encoding of State (format version 1), as the store keeps it:
//
//	version   byte = 1
//	flags     byte: stateWideTimes, stateFirstSeen, stateLastContact,
//	          stateNPSAt, stateHasNPS; other bits are refused
//	CustomerID                string
//	FirstSeen, LastContact, NPSAt  time, each only when its flag is set
//	CSATSum, CSATCount        varint
//	NPS                       varint (int32 range)
//	Referrals, Refunds        varint
//	ComplaintIDs              uvarint n, n strings
//	currencies                uvarint m, m strings: the distinct purchase
//	                          currencies in order of first use
//	Purchases                 uvarint n, then
//	                          n uvarint OrderID lengths and their bytes back to back,
//	                          then per purchase: At as a time delta against the
//	                          previous purchase's At (the first against 0),
//	                          Amount varint, currency index uvarint (< m),
//	                          Refunded varint
//
// A string is a uvarint length and its bytes; a varint is zigzag
// (encoding/binary). A time is a varint of UnixNano; when some time of the
// state does not fit UnixNano (before 1678, after 2262, or a zero purchase
// time) the state sets stateWideTimes and every time is a varint of Unix
// seconds and a uvarint of nanoseconds (< 1e9), with purchase deltas on the
// seconds only. Times decode in UTC. As with the JSON encoding before it,
// only years 0 to 9999 are accepted, and empty slices decode as nil.
// The input must be consumed exactly.

// stateCodecVersion is the first byte of an encoded State.
const stateCodecVersion = 1

const (
	stateWideTimes = 1 << iota
	stateFirstSeen
	stateLastContact
	stateNPSAt
	stateHasNPS
	stateKnownFlags = stateWideTimes | stateFirstSeen | stateLastContact | stateNPSAt | stateHasNPS
)

// The Unix seconds of 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the
// range encoding/json accepts for a time.
const (
	minStateUnix = -62167219200
	maxStateUnix = 253402300799
)

// MarshalBinary encodes the state in the compact binary format above.
func (s *State) MarshalBinary() ([]byte, error) {
	wide := false
	check := func(t time.Time) error {
		if u := t.Unix(); u < minStateUnix || u > maxStateUnix {
			return fmt.Errorf("domain: state %q: time %v out of the years 0-9999", s.CustomerID, t)
		}
		if !fitsNano(t) {
			wide = true
		}
		return nil
	}
	var flags byte
	for _, f := range []struct {
		t    time.Time
		flag byte
	}{{s.FirstSeen, stateFirstSeen}, {s.LastContact, stateLastContact}, {s.NPSAt, stateNPSAt}} {
		if f.t.IsZero() {
			continue
		}
		flags |= f.flag
		if err := check(f.t); err != nil {
			return nil, err
		}
	}
	if s.HasNPS {
		flags |= stateHasNPS
	}
	size := 2 + 8*binary.MaxVarintLen64 + len(s.CustomerID)
	for i := range s.Purchases {
		p := &s.Purchases[i]
		if err := check(p.At); err != nil {
			return nil, err
		}
		size += 4*binary.MaxVarintLen64 + len(p.OrderID)
	}
	for _, id := range s.ComplaintIDs {
		size += binary.MaxVarintLen64 + len(id)
	}
	if wide {
		flags |= stateWideTimes
		size += 4 * binary.MaxVarintLen64 * (len(s.Purchases) + 3)
	}

	b := make([]byte, 0, size)
	b = append(b, stateCodecVersion, flags)
	b = appendString(b, s.CustomerID)
	appendTime := func(b []byte, t time.Time) []byte {
		if wide {
			return binary.AppendUvarint(binary.AppendVarint(b, t.Unix()), uint64(t.Nanosecond()))
		}
		return binary.AppendVarint(b, t.UnixNano())
	}
	if flags&stateFirstSeen != 0 {
		b = appendTime(b, s.FirstSeen)
	}
	if flags&stateLastContact != 0 {
		b = appendTime(b, s.LastContact)
	}
	if flags&stateNPSAt != 0 {
		b = appendTime(b, s.NPSAt)
	}
	b = binary.AppendVarint(b, s.CSATSum)
	b = binary.AppendVarint(b, s.CSATCount)
	b = binary.AppendVarint(b, int64(s.NPS))
	b = binary.AppendVarint(b, s.Referrals)
	b = binary.AppendVarint(b, s.Refunds)
	b = binary.AppendUvarint(b, uint64(len(s.ComplaintIDs)))
	for _, id := range s.ComplaintIDs {
		b = appendString(b, id)
	}

	// The currency table: purchases rarely use more than one or two.
	var currencies []string
	index := make([]uint64, len(s.Purchases))
	for i := range s.Purchases {
		c := s.Purchases[i].Currency
		j := 0
		for j < len(currencies) && currencies[j] != c {
			j++
		}
		if j == len(currencies) {
			currencies = append(currencies, c)
		}
		index[i] = uint64(j)
	}
	b = binary.AppendUvarint(b, uint64(len(currencies)))
	for _, c := range currencies {
		b = appendString(b, c)
	}

	b = binary.AppendUvarint(b, uint64(len(s.Purchases)))
	for i := range s.Purchases {
		b = binary.AppendUvarint(b, uint64(len(s.Purchases[i].OrderID)))
	}
	for i := range s.Purchases {
		b = append(b, s.Purchases[i].OrderID...)
	}
	var prevNano, prevSec int64
	for i := range s.Purchases {
		p := &s.Purchases[i]
		if wide {
			sec := p.At.Unix()
			b = binary.AppendVarint(b, sec-prevSec)
			b = binary.AppendUvarint(b, uint64(p.At.Nanosecond()))
			prevSec = sec
		} else {
			n := p.At.UnixNano()
			b = binary.AppendVarint(b, n-prevNano) // wraps, and unwraps on decode
			prevNano = n
		}
		b = binary.AppendVarint(b, p.Amount)
		b = binary.AppendUvarint(b, index[i])
		b = binary.AppendVarint(b, p.Refunded)
	}
	return b, nil
}

// fitsNano reports whether t is exactly representable as UnixNano (and is
// not the zero time, whose UnixNano is undefined).
func fitsNano(t time.Time) bool {
	if t.IsZero() {
		return false
	}
	n := t.UnixNano()
	return time.Unix(0, n).Equal(t)
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

var errStateTruncated = errors.New("domain: decode state: truncated or malformed")

// stateReader reads the encoding; the first error sticks.
type stateReader struct {
	b   []byte
	err error
}

func (r *stateReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *stateReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(errStateTruncated)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *stateReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(errStateTruncated)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a count of items each taking at least one more byte.
func (r *stateReader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail(errStateTruncated)
		return 0
	}
	return int(n)
}

func (r *stateReader) bytes(n uint64) []byte {
	if n > uint64(len(r.b)) {
		r.fail(errStateTruncated)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *stateReader) string() string { return string(r.bytes(r.uvarint())) }

// wideTime reads Unix seconds and nanoseconds.
func (r *stateReader) wideTime(sec int64) time.Time {
	nsec := r.uvarint()
	if nsec >= 1e9 {
		r.fail(fmt.Errorf("domain: decode state: nanoseconds %d out of range", nsec))
		return time.Time{}
	}
	if sec < minStateUnix || sec > maxStateUnix {
		r.fail(errors.New("domain: decode state: time out of the years 0-9999"))
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func (r *stateReader) time(wide bool) time.Time {
	if wide {
		return r.wideTime(r.varint())
	}
	n := r.varint()
	if r.err != nil {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// UnmarshalBinary decodes what MarshalBinary encoded into s, replacing its
// contents. Malformed input is an error.
func (s *State) UnmarshalBinary(data []byte) error {
	if len(data) < 2 {
		return errStateTruncated
	}
	if data[0] != stateCodecVersion {
		return fmt.Errorf("domain: decode state: unknown format version %d", data[0])
	}
	flags := data[1]
	if flags&^stateKnownFlags != 0 {
		return fmt.Errorf("domain: decode state: unknown flags %#x", flags)
	}
	wide := flags&stateWideTimes != 0
	r := &stateReader{b: data[2:]}
	var out State
	out.CustomerID = r.string()
	if flags&stateFirstSeen != 0 {
		out.FirstSeen = r.time(wide)
	}
	if flags&stateLastContact != 0 {
		out.LastContact = r.time(wide)
	}
	if flags&stateNPSAt != 0 {
		out.NPSAt = r.time(wide)
	}
	out.CSATSum = r.varint()
	out.CSATCount = r.varint()
	nps := r.varint()
	if nps < math.MinInt32 || nps > math.MaxInt32 {
		r.fail(fmt.Errorf("domain: decode state: NPS %d out of range", nps))
	}
	out.NPS = int32(nps)
	out.HasNPS = flags&stateHasNPS != 0
	out.Referrals = r.varint()
	out.Refunds = r.varint()
	if n := r.count(); n > 0 {
		out.ComplaintIDs = make([]string, n)
		for i := range out.ComplaintIDs {
			out.ComplaintIDs[i] = r.string()
		}
	}
	var currencies []string
	if m := r.count(); m > 0 {
		currencies = make([]string, m)
		for i := range currencies {
			currencies[i] = r.string()
		}
	}
	if n := r.count(); n > 0 && r.err == nil {
		ps := make([]Purchase, n)
		total := uint64(0)
		lengths := r.b
		for range n {
			l := r.uvarint()
			if l > uint64(len(data)) {
				r.fail(errStateTruncated)
			}
			total += l
		}
		// One string holds every order id; each purchase's is a substring.
		ids := string(r.bytes(total))
		lr := &stateReader{b: lengths}
		off := uint64(0)
		var prevNano, prevSec int64
		for i := range ps {
			if r.err != nil {
				break
			}
			l := lr.uvarint()
			p := &ps[i]
			p.OrderID = ids[off : off+l]
			off += l
			if wide {
				prevSec += r.varint()
				p.At = r.wideTime(prevSec)
			} else {
				prevNano += r.varint()
				p.At = time.Unix(0, prevNano).UTC()
			}
			p.Amount = r.varint()
			if c := r.uvarint(); c < uint64(len(currencies)) {
				p.Currency = currencies[c]
			} else {
				r.fail(fmt.Errorf("domain: decode state: currency index %d out of range", c))
			}
			p.Refunded = r.varint()
		}
		out.Purchases = ps
	}
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("domain: decode state: %d trailing bytes", len(r.b))
	}
	*s = out
	return nil
}
