package webhook

import (
	"context"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
)

// claim is what keeps a retry from going out early: a message is taken at
// its due time and not a nanosecond before, oldest due first, skipping the
// ones in flight, never more than the free slots.
func TestClaimTakesDueMessagesOnly(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	db := boltdb.OpenTemp(t, boltdb.Options{Schema: 1, Buckets: Buckets})
	o := New(db, Options{Clock: clock.NewFake(t0), MaxInFlight: 2})
	due := map[string]time.Time{"late": t0.Add(2 * time.Second), "a": t0.Add(time.Second), "b": t0.Add(time.Second), "c": t0.Add(time.Second)}
	err := db.Update(context.Background(), func(tx *bolt.Tx) error {
		for _, id := range []string{"late", "a", "b", "c"} { // scheduled in this order
			m := Message{ID: id, Tenant: "t1", URL: "https://example.com/", Secret: []byte("k"), EventType: "e", Body: []byte("{}")}
			if err := o.schedule(tx, messageKey("t1", id), &record{Message: m}, due[id]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := func(cs []claim) (out []string) {
		for _, c := range cs {
			out = append(out, c.rec.Message.ID)
		}
		return out
	}

	got, next, err := o.claim(t0.Add(time.Second - time.Nanosecond))
	if err != nil || len(got) != 0 || !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("just before due: %v, next %v, %v", ids(got), next, err)
	}
	got, next, _ = o.claim(t0.Add(time.Second))
	if g := ids(got); len(g) != 2 || g[0] != "a" || g[1] != "b" || !next.IsZero() {
		t.Fatalf("at due with 2 slots: %v, next %v; want a, b and no time (slots are the limit)", g, next)
	}
	got, next, _ = o.claim(t0.Add(time.Second))
	if len(got) != 0 || !next.IsZero() {
		t.Fatalf("with every slot busy: %v, next %v", ids(got), next)
	}
	// a's outcome is recorded (its due entry goes) and its slot freed; b is
	// still in flight.
	done := func(id string, seq uint64) {
		t.Helper()
		k := dueKey(due[id], seq)
		if err := db.Update(context.Background(), func(tx *bolt.Tx) error { return tx.Bucket(DueBucket).Delete(k) }); err != nil {
			t.Fatal(err)
		}
		delete(o.inflight, string(k))
	}
	done("a", 2)
	got, next, _ = o.claim(t0.Add(time.Second))
	if g := ids(got); len(g) != 1 || g[0] != "c" || !next.IsZero() {
		t.Fatalf("one slot free: %v, next %v; want c", g, next)
	}
	done("c", 4)
	got, next, _ = o.claim(t0.Add(time.Second))
	if len(got) != 0 || !next.Equal(due["late"]) {
		t.Fatalf("only b in flight: %v, next %v; want nothing until late's time", ids(got), next)
	}
}
