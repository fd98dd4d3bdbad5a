package timers

import (
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
)

func TestScheduleAndDue(t *testing.T) {
	set := Set{ByDue: []byte("due"), ByOwner: []byte("of")}
	db := boltdb.OpenTemp(t, boltdb.Options{Schema: 1, Buckets: set.Buckets()})
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	update := func(f func(tx *bolt.Tx) error) {
		t.Helper()
		if err := db.Bolt().Update(f); err != nil {
			t.Fatal(err)
		}
	}
	update(func(tx *bolt.Tx) error {
		for i, o := range []string{"a", "b", "c"} {
			if _, err := set.Schedule(tx, []byte(o), t0.Add(time.Duration(3-i)*time.Hour)); err != nil {
				return err
			}
		}
		// Rescheduling moves the timer; the old one is gone.
		if changed, err := set.Schedule(tx, []byte("a"), t0.Add(30*time.Minute)); err != nil || !changed {
			t.Errorf("reschedule: %v, %v", changed, err)
		}
		if changed, _ := set.Schedule(tx, []byte("a"), t0.Add(30*time.Minute)); changed {
			t.Error("scheduling the same time again reported a change")
		}
		_, err := set.Schedule(tx, []byte("b"), time.Time{}) // cancel
		return err
	})
	update(func(tx *bolt.Tx) error {
		owners, next, err := set.Due(tx, t0.Add(time.Hour), 10)
		if err != nil {
			return err
		}
		if len(owners) != 2 || string(owners[0]) != "a" || string(owners[1]) != "c" || !next.IsZero() {
			t.Errorf("due at +1h: %q, next %v; want a then c", owners, next)
		}
		owners, next, _ = set.Due(tx, t0.Add(45*time.Minute), 10)
		if len(owners) != 1 || !next.Equal(t0.Add(time.Hour)) {
			t.Errorf("due at +45m: %q, next %v", owners, next)
		}
		owners, next, _ = set.Due(tx, t0.Add(time.Hour), 1)
		if len(owners) != 1 || !next.Equal(t0.Add(time.Hour)) {
			t.Errorf("limit 1: %q, next %v", owners, next)
		}
		if w := set.When(tx, []byte("b")); !w.IsZero() {
			t.Errorf("cancelled timer still at %v", w)
		}
		return nil
	})
}
