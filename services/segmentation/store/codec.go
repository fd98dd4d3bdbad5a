package store

import (
	"encoding/binary"
	"fmt"
	"time"

	"rapport.dev/platform/binrec"
	"rapport.dev/services/segmentation/domain"
)

// The records a full re-evaluation writes by the million (a membership, its
// history entry, a customer's scores) are kept in platform/binrec's
// encoding: encoding/json was a third of the time of writing memberships,
// and twice their size. Each is a version byte (recVersion), then:
//
//	membership    since time, reason string
//	historyEntry  entered byte (0 or 1), time, reason string
//	domain.Score  R, F, M, Group, Tier, Quadrant, Contribution, Activity: varints
//
// Files written before keep these records as JSON objects, which start
// with '{'; the decoders read both, so no migration rewrites them.
const recVersion = 1

// isJSON tells a record written as JSON from a binary one.
func isJSON(raw []byte) bool { return len(raw) > 0 && raw[0] == '{' }

func (m membership) appendTo(b []byte) []byte {
	b = append(b, recVersion)
	b = binrec.AppendTime(b, m.Since)
	return binrec.AppendString(b, m.Reason)
}

func decodeMembership(raw []byte) (membership, error) {
	return decodeRecord(raw, "membership", func(r *binrec.Reader) membership {
		return membership{Since: r.Time(), Reason: r.String()}
	})
}

func (h historyEntry) appendTo(b []byte) []byte {
	b = append(b, recVersion)
	if h.Entered {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binrec.AppendTime(b, h.Time)
	return binrec.AppendString(b, h.Reason)
}

func decodeHistory(raw []byte) (historyEntry, error) {
	return decodeRecord(raw, "history entry", func(r *binrec.Reader) historyEntry {
		var h historyEntry
		switch in := r.Byte(); in {
		case 0, 1:
			h.Entered = in == 1
		default:
			r.Fail(fmt.Errorf("%w: entered byte %d", binrec.ErrMalformed, in))
		}
		h.Time, h.Reason = r.Time(), r.String()
		return h
	})
}

func appendScore(b []byte, sc domain.Score) []byte {
	b = append(b, recVersion)
	for _, v := range [...]int64{int64(sc.R), int64(sc.F), int64(sc.M), int64(sc.Group), int64(sc.Tier),
		int64(sc.Quadrant), sc.Contribution, int64(sc.Activity)} {
		b = binary.AppendVarint(b, v)
	}
	return b
}

// decodeScore reads a scores record; nil is the zero Score (not scored yet).
func decodeScore(raw []byte) (domain.Score, error) {
	if raw == nil {
		return domain.Score{}, nil
	}
	return decodeRecord(raw, "scores", func(r *binrec.Reader) domain.Score {
		i32 := func() int32 {
			v := r.Varint()
			if v != int64(int32(v)) {
				r.Fail(fmt.Errorf("%w: %d out of int32 range", binrec.ErrMalformed, v))
			}
			return int32(v)
		}
		sc := domain.Score{R: i32(), F: i32(), M: i32(), Group: domain.RfmGroup(i32()), Tier: domain.Tier(i32()),
			Quadrant: domain.Quadrant(i32())}
		sc.Contribution = r.Varint()
		sc.Activity = domain.Activity(i32())
		return sc
	})
}

// decodeRecord decodes a record of one of the kinds above: JSON as older
// files keep it, or the version byte and what read reads, every byte of it.
func decodeRecord[T any](raw []byte, what string, read func(r *binrec.Reader) T) (T, error) {
	if isJSON(raw) {
		v, err := decode[T](raw)
		if err != nil {
			var zero T
			return zero, err
		}
		return *v, nil
	}
	r := binrec.NewReader(raw)
	version(r)
	v := read(r)
	return v, recErr(what, r)
}

func version(r *binrec.Reader) {
	if v := r.Byte(); v != recVersion && r.Err() == nil {
		r.Fail(fmt.Errorf("%w: version %d", binrec.ErrMalformed, v))
	}
}

func recErr(what string, r *binrec.Reader) error {
	if err := r.Done(); err != nil {
		return fmt.Errorf("store: decode %s: %w", what, err)
	}
	return nil
}

// encodedMembership is what a pass writes for every customer it moves, one
// encoding per pass rather than one per member.
type encodedMembership struct {
	since                 time.Time
	member, entered, left []byte
}

func encodeMembership(now time.Time, reason string) encodedMembership {
	return encodedMembership{
		since:   now,
		member:  membership{Since: now, Reason: reason}.appendTo(nil),
		entered: historyEntry{Entered: true, Time: now, Reason: reason}.appendTo(nil),
		left:    historyEntry{Entered: false, Time: now, Reason: reason}.appendTo(nil),
	}
}
