package store_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/services/segmentation/domain"
	"rapport.dev/services/segmentation/store"
)

// TestMigrationFromSchema1 writes a schema 1 file (states as JSON) with
// boltdb directly, opens it with the current options and checks every state
// now decodes from the binary encoding to the same state and features.
func TestMigrationFromSchema1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "segmentation.db")
	v1 := store.Options()
	v1.Schema, v1.Migrations = 1, nil
	old, err := boltdb.Open(path, v1)
	if err != nil {
		t.Fatal(err)
	}
	// More states than one migration chunk, in two tenants.
	want := map[string]domain.State{}
	for i := range 25003 {
		tenant := []string{"acme", "globex"}[i%2]
		id := fmt.Sprintf("c%05d", i)
		var st domain.State
		st.CustomerID = id
		st.Seen(t0.Add(-time.Duration(i%900) * day))
		for j := range i % 7 {
			st.Apply(domain.ProfileEvent{ID: fmt.Sprint(j), At: t0.Add(-time.Duration(j*37+i%50) * day), Kind: domain.EventPurchase,
				OrderID: fmt.Sprintf("o%d-%d", i, j), Amount: int64(100 * (j + 1)), Currency: []string{"CNY", "USD"}[j%2]})
		}
		if i%5 == 0 {
			st.Apply(domain.ProfileEvent{At: t0.Add(-day), Kind: domain.EventRefund, OrderID: fmt.Sprintf("o%d-0", i), Amount: 30})
			st.Apply(domain.ProfileEvent{At: t0.Add(-2 * day), Kind: domain.EventComplaint, ComplaintID: "k" + id})
			nps := int32(i % 11)
			st.Apply(domain.ProfileEvent{At: t0.Add(-3 * day), Kind: domain.EventSurvey, NPS: &nps, CSAT: &nps})
			st.Apply(domain.ProfileEvent{At: t0.Add(-4 * day), Kind: domain.EventContactLog})
		}
		want[string(boltdb.Key(tenant, id))] = st
	}
	if err := old.Update(ctx, func(tx *bolt.Tx) error {
		for k, st := range want {
			raw, err := json.Marshal(&st)
			if err != nil {
				return err
			}
			if err := tx.Bucket([]byte("states")).Put([]byte(k), raw); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := boltdb.Open(path, store.Options())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, _ := db.SchemaVersion(); v != 2 {
		t.Fatalf("schema %d after open, want 2", v)
	}
	now := t0.Add(10 * day)
	n := 0
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("states")).ForEach(func(k, v []byte) error {
			n++
			w, ok := want[string(k)]
			if !ok {
				return fmt.Errorf("unexpected state %q", k)
			}
			var got domain.State
			if err := got.UnmarshalBinary(v); err != nil {
				return fmt.Errorf("state %q: %w", k, err)
			}
			if !reflect.DeepEqual(got, w) {
				return fmt.Errorf("state %q\n got %+v\nwant %+v", k, got, w)
			}
			for _, cur := range []string{"", "CNY"} {
				if g, w := got.Features(now, cur), w.Features(now, cur); !reflect.DeepEqual(g, w) {
					return fmt.Errorf("state %q features(%q)\n got %+v\nwant %+v", k, cur, g, w)
				}
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Fatalf("%d states after the migration, want %d", n, len(want))
	}
}
