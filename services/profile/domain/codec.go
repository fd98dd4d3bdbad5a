package domain

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"rapport.dev/platform/binrec"
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
// nanoseconds (< 1e9), decoded in UTC: the encodings of platform/binrec,
// which reads and writes them. Empty maps decode as nil, as with the JSON
// encoding before. The input must be consumed exactly; malformed input is
// an error wrapping binrec.ErrMalformed, never a panic.

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
			b = binrec.AppendTime(b, x.t)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(s.Complaints)))
	for _, id := range sortedKeys(s.Complaints) {
		b = binrec.AppendString(b, id)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Totals)))
	for _, cur := range sortedKeys(s.Totals) {
		t := s.Totals[cur]
		if t == nil {
			t = &Totals{}
		}
		b = binrec.AppendString(b, cur)
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
		return fmt.Errorf("domain: decode stats: %w", binrec.ErrMalformed)
	}
	if data[0] != codecVersion {
		return fmt.Errorf("domain: decode stats: unknown format version %d", data[0])
	}
	flags := data[1]
	if flags&^statsKnownFlags != 0 {
		return fmt.Errorf("domain: decode stats: unknown flags %#x", flags)
	}
	r := binrec.NewReader(data[2:])
	var out Stats
	out.Purchases = r.Varint()
	out.Refunds = r.Varint()
	out.DiscountedPurchases = r.Varint()
	out.CSATSum = r.Varint()
	out.CSATCount = r.Varint()
	out.NPSCount = r.Varint()
	out.Promoters = r.Varint()
	out.Passives = r.Varint()
	out.Detractors = r.Varint()
	nps := r.Varint()
	if nps < math.MinInt32 || nps > math.MaxInt32 {
		r.Fail(fmt.Errorf("%w: last NPS %d out of range", binrec.ErrMalformed, nps))
	}
	out.LastNPS = int32(nps)
	out.Referrals = r.Varint()
	for _, x := range [...]struct {
		t    *time.Time
		flag byte
	}{{&out.LastNPSTime, statsLastNPSTime}, {&out.FirstPurchase, statsFirstPurchase},
		{&out.LastPurchase, statsLastPurchase}, {&out.LastContact, statsLastContact}} {
		if flags&x.flag != 0 {
			*x.t = r.Time()
		}
	}
	if n := r.Count(); n > 0 {
		out.Complaints = make(map[string]bool, n)
		for range n {
			out.Complaints[r.String()] = true
		}
	}
	if m := r.Count(); m > 0 {
		out.Totals = make(map[string]*Totals, m)
		for range m {
			cur := r.String()
			out.Totals[cur] = &Totals{Purchased: r.Varint(), Refunded: r.Varint(), Discount: r.Varint()}
		}
	}
	if err := r.Done(); err != nil {
		return fmt.Errorf("domain: decode stats: %w", err)
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
	b = binrec.AppendString(b, o.OrderID)
	b = binrec.AppendString(b, o.EventID)
	b = binary.AppendVarint(b, o.Amount.Minor)
	b = binrec.AppendString(b, o.Amount.Currency)
	return binary.AppendVarint(b, o.Refunded)
}

// UnmarshalBinary decodes what MarshalBinary encoded into o, replacing its
// contents.
func (o *Order) UnmarshalBinary(data []byte) error {
	if len(data) < 1 {
		return fmt.Errorf("domain: decode order: %w", binrec.ErrMalformed)
	}
	if data[0] != codecVersion {
		return fmt.Errorf("domain: decode order: unknown format version %d", data[0])
	}
	r := binrec.NewReader(data[1:])
	var out Order
	out.OrderID = r.String()
	out.EventID = r.String()
	out.Amount.Minor = r.Varint()
	out.Amount.Currency = r.String()
	out.Refunded = r.Varint()
	if err := r.Done(); err != nil {
		return fmt.Errorf("domain: decode order: %w", err)
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
