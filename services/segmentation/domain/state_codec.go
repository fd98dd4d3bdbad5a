package domain

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"rapport.dev/platform/binrec"
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
// A string is a uvarint length and its bytes (platform/binrec's); a varint
// is zigzag (encoding/binary). A time is a varint of UnixNano; when some
// time of the state does not fit UnixNano (before 1678, after 2262, or a
// zero purchase time) the state sets stateWideTimes and every time is a
// varint of Unix seconds and a uvarint of nanoseconds (< 1e9), binrec's
// time, with purchase deltas on the seconds only. Times decode in UTC. As
// with the JSON encoding before it, only years 0 to 9999 are accepted, and
// empty slices decode as nil. The input must be consumed exactly; malformed
// input is an error wrapping binrec.ErrMalformed, never a panic.

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
	b = binrec.AppendString(b, s.CustomerID)
	appendTime := func(b []byte, t time.Time) []byte {
		if wide {
			return binrec.AppendTime(b, t)
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
		b = binrec.AppendString(b, id)
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
		b = binrec.AppendString(b, c)
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

// stateReader is a binrec.Reader with the state's times: UnixNano, or in
// the wide form Unix seconds and nanoseconds within the years 0 to 9999.
type stateReader struct{ *binrec.Reader }

// wideTime reads the nanoseconds of a wide time whose Unix seconds are sec.
func (r stateReader) wideTime(sec int64) time.Time {
	nsec := r.Uvarint()
	if nsec >= 1e9 {
		r.Fail(fmt.Errorf("%w: nanoseconds %d out of range", binrec.ErrMalformed, nsec))
		return time.Time{}
	}
	if sec < minStateUnix || sec > maxStateUnix {
		r.Fail(fmt.Errorf("%w: time out of the years 0-9999", binrec.ErrMalformed))
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func (r stateReader) time(wide bool) time.Time {
	if wide {
		return r.wideTime(r.Varint())
	}
	n := r.Varint()
	if r.Err() != nil {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// UnmarshalBinary decodes what MarshalBinary encoded into s, replacing its
// contents. Malformed input is an error.
func (s *State) UnmarshalBinary(data []byte) error {
	if len(data) < 2 {
		return fmt.Errorf("domain: decode state: %w", binrec.ErrMalformed)
	}
	if data[0] != stateCodecVersion {
		return fmt.Errorf("domain: decode state: unknown format version %d", data[0])
	}
	flags := data[1]
	if flags&^stateKnownFlags != 0 {
		return fmt.Errorf("domain: decode state: unknown flags %#x", flags)
	}
	wide := flags&stateWideTimes != 0
	r := stateReader{binrec.NewReader(data[2:])}
	var out State
	out.CustomerID = r.String()
	if flags&stateFirstSeen != 0 {
		out.FirstSeen = r.time(wide)
	}
	if flags&stateLastContact != 0 {
		out.LastContact = r.time(wide)
	}
	if flags&stateNPSAt != 0 {
		out.NPSAt = r.time(wide)
	}
	out.CSATSum = r.Varint()
	out.CSATCount = r.Varint()
	nps := r.Varint()
	if nps < math.MinInt32 || nps > math.MaxInt32 {
		r.Fail(fmt.Errorf("%w: NPS %d out of range", binrec.ErrMalformed, nps))
	}
	out.NPS = int32(nps)
	out.HasNPS = flags&stateHasNPS != 0
	out.Referrals = r.Varint()
	out.Refunds = r.Varint()
	if n := r.Count(); n > 0 {
		out.ComplaintIDs = make([]string, n)
		for i := range out.ComplaintIDs {
			out.ComplaintIDs[i] = r.String()
		}
	}
	var currencies []string
	if m := r.Count(); m > 0 {
		currencies = make([]string, m)
		for i := range currencies {
			currencies[i] = r.String()
		}
	}
	if n := r.Count(); n > 0 && r.Err() == nil {
		ps := make([]Purchase, n)
		total := uint64(0)
		// A copy of the reader, where the lengths start, reads them again
		// below.
		lengths := *r.Reader
		for range n {
			l := r.Uvarint()
			if l > uint64(len(data)) {
				r.Fail(binrec.ErrMalformed)
			}
			total += l
		}
		// One string holds every order id; each purchase's is a substring.
		ids := string(r.Bytes(total))
		off := uint64(0)
		var prevNano, prevSec int64
		for i := range ps {
			if r.Err() != nil {
				break
			}
			l := lengths.Uvarint()
			p := &ps[i]
			p.OrderID = ids[off : off+l]
			off += l
			if wide {
				prevSec += r.Varint()
				p.At = r.wideTime(prevSec)
			} else {
				prevNano += r.Varint()
				p.At = time.Unix(0, prevNano).UTC()
			}
			p.Amount = r.Varint()
			if c := r.Uvarint(); c < uint64(len(currencies)) {
				p.Currency = currencies[c]
			} else {
				r.Fail(fmt.Errorf("%w: currency index %d out of range", binrec.ErrMalformed, c))
			}
			p.Refunded = r.Varint()
		}
		out.Purchases = ps
	}
	if err := r.Done(); err != nil {
		return fmt.Errorf("domain: decode state: %w", err)
	}
	*s = out
	return nil
}
