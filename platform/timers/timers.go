// Package timers is a durable timer set in bbolt: each owner (a customer,
// a member, a plan item) has at most one timer, kept in two buckets — by
// due time, so the due ones are a prefix scan, and by owner, so that
// rescheduling finds the old timer. Timers change in the caller's
// transaction, with the state they are about, so a timer fires exactly once
// across restarts: the transaction that acts on it also removes it.
package timers

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Set names a timer set's two buckets.
type Set struct {
	// ByDue holds due(8, big-endian UnixNano) ‖ owner -> empty.
	ByDue []byte
	// ByOwner holds owner -> due(8).
	ByOwner []byte
}

// Buckets returns the set's buckets, for boltdb.Options.
func (s Set) Buckets() [][]byte { return [][]byte{s.ByDue, s.ByOwner} }

func dueKey(due []byte, owner []byte) []byte {
	k := make([]byte, 0, 8+len(owner))
	return append(append(k, due...), owner...)
}

func encode(t time.Time) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.UnixNano()))
	return b[:]
}

// Schedule replaces owner's timer by one at due; a zero due removes it. It
// reports whether the timer changed.
func (s Set) Schedule(tx *bolt.Tx, owner []byte, due time.Time) (bool, error) {
	byDue, byOwner := tx.Bucket(s.ByDue), tx.Bucket(s.ByOwner)
	var at []byte
	if !due.IsZero() {
		at = encode(due)
	}
	old := byOwner.Get(owner)
	if bytes.Equal(old, at) {
		return false, nil
	}
	if old != nil {
		if err := byDue.Delete(dueKey(old, owner)); err != nil {
			return false, err
		}
		if err := byOwner.Delete(owner); err != nil {
			return false, err
		}
	}
	if at == nil {
		return true, nil
	}
	if err := byDue.Put(dueKey(at, owner), nil); err != nil {
		return false, err
	}
	return true, byOwner.Put(owner, at)
}

// Due returns up to limit owners whose timers are due at or before now, in
// due order, and when the first timer not returned is due (zero if none).
// It does not remove them: the caller acts on each and reschedules it.
func (s Set) Due(tx *bolt.Tx, now time.Time, limit int) (owners [][]byte, next time.Time, err error) {
	c := tx.Bucket(s.ByDue).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) < 8 {
			return nil, time.Time{}, fmt.Errorf("timers: malformed key %x", k)
		}
		at := time.Unix(0, int64(binary.BigEndian.Uint64(k[:8])))
		if at.After(now) || len(owners) == limit {
			return owners, at, nil
		}
		owners = append(owners, bytes.Clone(k[8:]))
	}
	return owners, time.Time{}, nil
}

// When returns owner's timer, zero if none.
func (s Set) When(tx *bolt.Tx, owner []byte) time.Time {
	v := tx.Bucket(s.ByOwner).Get(owner)
	if len(v) != 8 {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v)))
}
