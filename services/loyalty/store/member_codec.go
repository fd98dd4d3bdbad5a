package store

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"rapport.dev/platform/binrec"
	"rapport.dev/services/loyalty/domain"
)

// The members bucket holds member records in this binary encoding (schema
// 2; schema 1 held JSON, which was the largest cost of an earn after the
// commit: every earn reads and writes its member). Fields in order:
//
//	version byte (1)
//	customer, time zone: strings; enrolled: time; birth month: varint
//	tier: string; grace until: time
//	qualifiers: count, then each: at (time), points, spend (varints)
//	account: seq (uvarint); debt, earned, redeemed, expired totals (varints)
//	lots: count, then each: id (uvarint), points, original (varints),
//	      earned, available at, expires (times), order (string)
//	earned: count, then by order id ascending: order (string), entry
//	      (uvarint), points, amount, reversed, refunded (varints)
//
// Times are binrec's (Unix seconds and nanoseconds, read back in UTC).
const memberCodecVersion = 1

func encodeMember(m *member) []byte {
	a := &m.Account
	b := make([]byte, 0, 64+len(m.Customer)+len(m.TimeZone)+24*len(m.Qualifiers)+48*len(a.Lots)+40*len(a.Earned))
	b = append(b, memberCodecVersion)
	b = binrec.AppendString(b, m.Customer)
	b = binrec.AppendString(b, m.TimeZone)
	b = binrec.AppendTime(b, m.Enrolled)
	b = binary.AppendVarint(b, int64(m.BirthMonth))
	b = binrec.AppendString(b, m.Tier.Tier)
	b = binrec.AppendTime(b, m.Tier.GraceUntil)
	b = binary.AppendUvarint(b, uint64(len(m.Qualifiers)))
	for _, q := range m.Qualifiers {
		b = binrec.AppendTime(b, q.At)
		b = binary.AppendVarint(b, q.Points)
		b = binary.AppendVarint(b, q.Spend)
	}
	b = binary.AppendUvarint(b, a.Seq)
	for _, v := range []int64{a.Debt, a.TotalEarned, a.TotalRedeemed, a.TotalExpired} {
		b = binary.AppendVarint(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(a.Lots)))
	for _, l := range a.Lots {
		b = binary.AppendUvarint(b, l.ID)
		b = binary.AppendVarint(b, l.Points)
		b = binary.AppendVarint(b, l.Original)
		b = binrec.AppendTime(b, l.Earned)
		b = binrec.AppendTime(b, l.AvailableAt)
		b = binrec.AppendTime(b, l.Expires)
		b = binrec.AppendString(b, l.Order)
	}
	b = binary.AppendUvarint(b, uint64(len(a.Earned)))
	for _, order := range slices.Sorted(maps.Keys(a.Earned)) {
		e := a.Earned[order]
		b = binrec.AppendString(b, order)
		b = binary.AppendUvarint(b, e.Entry)
		for _, v := range []int64{e.Points, e.Amount, e.Reversed, e.Refunded} {
			b = binary.AppendVarint(b, v)
		}
	}
	return b
}

func decodeMember(raw []byte) (*member, error) {
	r := binrec.NewReader(raw)
	if v := r.Byte(); r.Err() == nil && v != memberCodecVersion {
		return nil, fmt.Errorf("store: member record version %d, want %d", v, memberCodecVersion)
	}
	m := &member{}
	m.Customer = r.String()
	m.TimeZone = r.String()
	m.Enrolled = r.Time()
	m.BirthMonth = int32(r.Varint())
	m.Tier.Tier = r.String()
	m.Tier.GraceUntil = r.Time()
	if n := r.Count(); n > 0 {
		m.Qualifiers = make([]domain.Qualifier, n)
		for i := range m.Qualifiers {
			q := &m.Qualifiers[i]
			q.At = r.Time()
			q.Points = r.Varint()
			q.Spend = r.Varint()
		}
	}
	a := &m.Account
	a.Seq = r.Uvarint()
	a.Debt = r.Varint()
	a.TotalEarned = r.Varint()
	a.TotalRedeemed = r.Varint()
	a.TotalExpired = r.Varint()
	if n := r.Count(); n > 0 {
		a.Lots = make([]domain.Lot, n)
		for i := range a.Lots {
			l := &a.Lots[i]
			l.ID = r.Uvarint()
			l.Points = r.Varint()
			l.Original = r.Varint()
			l.Earned = r.Time()
			l.AvailableAt = r.Time()
			l.Expires = r.Time()
			l.Order = r.String()
		}
	}
	if n := r.Count(); n > 0 {
		a.Earned = make(map[string]*domain.Earned, n)
		for range n {
			order := r.String()
			e := &domain.Earned{Entry: r.Uvarint()}
			e.Points = r.Varint()
			e.Amount = r.Varint()
			e.Reversed = r.Varint()
			e.Refunded = r.Varint()
			a.Earned[order] = e
		}
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("store: decode member: %w", err)
	}
	return m, nil
}
