package domain

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
)

// The binary encodings of Stats and Order (format version 1), as the store
// keeps them: every recorded event reads and rewrites its customer's Stats
// and writes or updates an Order, inside the serialized write transaction,
// where JSON cost more than the B+tree work.
//
// Stats:
//
//	version   byte = 1
//	flags     byte: statsLastNPSTime, statsFirstPurchase, statsLastPurchase,
//	          statsLastContact (which times follow); other bits are refused
//	Purchases, Refunds, DiscountedPurchases, CSATSum, CSATCount, NPSCount,
//	Promoters, Passives, Detractors, LastNPS (int32 range), Referrals   varint
//	LastNPSTime, FirstPurchase, LastPurchase, LastContact              time, each only when its flag is set
//	Complaints   uvarint n, n strings (the ids, sorted)
//	Totals       uvarint m, m × (currency string, Purchased, Refunded, Discount varints), sorted by currency
//
// Order:
//
//	version   byte = 1
//	OrderID, EventID   string
//	Amount.Minor       varint
//	Amount.Currency    string
//	Refunded           varint
//
// A string is a uvarint length and its bytes; a varint is zigzag
// (encoding/binary); a time is a varint of Unix seconds and a uvarint of
// nanoseconds (< 1e9), decoded in UTC. Empty maps decode as nil, as with the
// JSON encoding before. The input must be consumed exactly; malformed input
// is an error, never a panic.

// codecVersion is the first byte of an encoded Stats or Order.
const codecVersion = 1

const (
	statsLastNPSTime = 1 << iota
	statsFirstPurchase
	statsLastPurchase
	statsLastContact
	statsKnownFlags = statsLastNPSTime | statsFirstPurchase | statsLastPurchase | statsLastContact
)

// MarshalBinary encodes the counters in the binary format above.
func (s *Stats) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(make([]byte, 0, 64+16*len(s.Complaints)+40*len(s.Totals))), nil
}

// AppendBinary appends the binary encoding of s to b.
func (s *Stats) AppendBinary(b []byte) []byte {
	times := [...]struct {
		t    time.Time
		flag byte
	}{{s.LastNPSTime, statsLastNPSTime}, {s.FirstPurchase, statsFirstPurchase},
		{s.LastPurchase, statsLastPurchase}, {s.LastContact, statsLastContact}}
	var flags byte
	for _, x := range times {
		if !x.t.IsZero() {
			flags |= x.flag
		}
	}
	b = append(b, codecVersion, flags)
	for _, v := range [...]int64{s.Purchases, s.Refunds, s.DiscountedPurchases, s.CSATSum, s.CSATCount,
		s.NPSCount, s.Promoters, s.Passives, s.Detractors, int64(s.LastNPS), s.Referrals} {
		b = binary.AppendVarint(b, v)
	}
	for _, x := range times {
		if flags&x.flag != 0 {
			b = appendTime(b, x.t)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(s.Complaints)))
	for _, id := range sortedKeys(s.Complaints) {
		b = appendString(b, id)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Totals)))
	for _, cur := range sortedKeys(s.Totals) {
		t := s.Totals[cur]
		if t == nil {
			t = &Totals{}
		}
		b = appendString(b, cur)
		b = binary.AppendVarint(b, t.Purchased)
		b = binary.AppendVarint(b, t.Refunded)
		b = binary.AppendVarint(b, t.Discount)
	}
	return b
}

// UnmarshalBinary decodes what MarshalBinary encoded into s, replacing its
// contents.
func (s *Stats) UnmarshalBinary(data []byte) error {
	if len(data) < 2 {
		return errCodecTruncated
	}
	if data[0] != codecVersion {
		return fmt.Errorf("domain: decode stats: unknown format version %d", data[0])
	}
	flags := data[1]
	if flags&^statsKnownFlags != 0 {
		return fmt.Errorf("domain: decode stats: unknown flags %#x", flags)
	}
	r := &codecReader{b: data[2:]}
	var out Stats
	out.Purchases = r.varint()
	out.Refunds = r.varint()
	out.DiscountedPurchases = r.varint()
	out.CSATSum = r.varint()
	out.CSATCount = r.varint()
	out.NPSCount = r.varint()
	out.Promoters = r.varint()
	out.Passives = r.varint()
	out.Detractors = r.varint()
	nps := r.varint()
	if nps < math.MinInt32 || nps > math.MaxInt32 {
		r.fail(fmt.Errorf("domain: decode stats: last NPS %d out of range", nps))
	}
	out.LastNPS = int32(nps)
	out.Referrals = r.varint()
	for _, x := range [...]struct {
		t    *time.Time
		flag byte
	}{{&out.LastNPSTime, statsLastNPSTime}, {&out.FirstPurchase, statsFirstPurchase},
		{&out.LastPurchase, statsLastPurchase}, {&out.LastContact, statsLastContact}} {
		if flags&x.flag != 0 {
			*x.t = r.time()
		}
	}
	if n := r.count(); n > 0 {
		out.Complaints = make(map[string]bool, n)
		for range n {
			out.Complaints[r.string()] = true
		}
	}
	if m := r.count(); m > 0 {
		out.Totals = make(map[string]*Totals, m)
		for range m {
			cur := r.string()
			out.Totals[cur] = &Totals{Purchased: r.varint(), Refunded: r.varint(), Discount: r.varint()}
		}
	}
	if err := r.done(); err != nil {
		return err
	}
	*s = out
	return nil
}

// MarshalBinary encodes the order in the binary format above.
func (o *Order) MarshalBinary() ([]byte, error) {
	return o.AppendBinary(make([]byte, 0, 8+len(o.OrderID)+len(o.EventID)+len(o.Amount.Currency)+3*binary.MaxVarintLen64)), nil
}

// AppendBinary appends the binary encoding of o to b.
func (o *Order) AppendBinary(b []byte) []byte {
	b = append(b, codecVersion)
	b = appendString(b, o.OrderID)
	b = appendString(b, o.EventID)
	b = binary.AppendVarint(b, o.Amount.Minor)
	b = appendString(b, o.Amount.Currency)
	return binary.AppendVarint(b, o.Refunded)
}

// UnmarshalBinary decodes what MarshalBinary encoded into o, replacing its
// contents.
func (o *Order) UnmarshalBinary(data []byte) error {
	if len(data) < 1 {
		return errCodecTruncated
	}
	if data[0] != codecVersion {
		return fmt.Errorf("domain: decode order: unknown format version %d", data[0])
	}
	r := &codecReader{b: data[1:]}
	var out Order
	out.OrderID = r.string()
	out.EventID = r.string()
	out.Amount.Minor = r.varint()
	out.Amount.Currency = r.string()
	out.Refunded = r.varint()
	if err := r.done(); err != nil {
		return err
	}
	*o = out
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	switch len(m) {
	case 0:
		return nil
	case 1:
		for k := range m {
			return []string{k}
		}
	}
	return slices.Sorted(maps.Keys(m))
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendTime(b []byte, t time.Time) []byte {
	return binary.AppendUvarint(binary.AppendVarint(b, t.Unix()), uint64(t.Nanosecond()))
}

var errCodecTruncated = errors.New("domain: decode: truncated or malformed")

// codecReader reads the encodings; the first error sticks.
type codecReader struct {
	b   []byte
	err error
}

func (r *codecReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *codecReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(errCodecTruncated)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *codecReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(errCodecTruncated)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a count of items each taking at least one more byte.
func (r *codecReader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail(errCodecTruncated)
		return 0
	}
	return int(n)
}

func (r *codecReader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail(errCodecTruncated)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *codecReader) time() time.Time {
	sec := r.varint()
	nsec := r.uvarint()
	if r.err != nil {
		return time.Time{}
	}
	if nsec >= 1e9 {
		r.fail(fmt.Errorf("domain: decode: nanoseconds %d out of range", nsec))
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// done reports the first error, or trailing bytes.
func (r *codecReader) done() error {
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("domain: decode: %d trailing bytes", len(r.b))
	}
	return nil
}
