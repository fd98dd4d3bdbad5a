package store_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/feed"
	"rapport.dev/services/profile/domain"
	"rapport.dev/services/profile/store"
)

// TestMigrationFromSchema1 opens a file laid out as schema 1 (no
// customer_meta) with the current code and records an event for a customer
// written before the upgrade: the migration must have built its meta record.
func TestMigrationFromSchema1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "profile.db")
	v1 := [][]byte{[]byte("customers"), []byte("stats"), []byte("tenant_stats"), []byte("events"),
		[]byte("event_ids"), []byte("orders"), []byte("dup_index")}
	old, err := boltdb.Open(path, boltdb.Options{Schema: 1, Buckets: append(v1, feed.Buckets...)})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	merged := &domain.Customer{ID: "gone", Kind: domain.KindPerson, DisplayName: "x", MergedInto: "kept", CreateTime: t0, UpdateTime: t0, Revision: 2}
	kept := &domain.Customer{ID: "kept", Kind: domain.KindPerson, DisplayName: "y", CreateTime: t0, UpdateTime: t0, Revision: 1,
		Acquisition: domain.Acquisition{Channel: domain.ChannelReferral}}
	if err := old.Update(context.Background(), func(tx *bolt.Tx) error {
		for _, c := range []*domain.Customer{merged, kept} {
			raw, _ := json.Marshal(c)
			if err := tx.Bucket([]byte("customers")).Put(boltdb.Key("acme", c.ID), raw); err != nil {
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
	if v, _ := db.SchemaVersion(); v != store.SchemaVersion {
		t.Fatalf("schema %d after open, want %d", v, store.SchemaVersion)
	}
	clk := clock.NewFake(t0)
	svc := domain.NewService(store.New(db, feed.NewLog(db, clk)), clk)
	ev := &domain.Event{ID: "e1", CustomerID: "kept", OccurTime: t0,
		Purchase: &domain.Purchase{OrderID: "o1", Amount: domain.Money{Minor: 100, Currency: "CNY"}}}
	if _, created, err := svc.RecordEvent(context.Background(), "acme", ev); err != nil || !created {
		t.Fatalf("record on a customer written before the upgrade: created=%v err=%v", created, err)
	}
	onMerged := &domain.Event{ID: "e2", CustomerID: "gone", OccurTime: t0,
		Purchase: &domain.Purchase{OrderID: "o2", Amount: domain.Money{Minor: 100, Currency: "CNY"}}}
	if _, _, err := svc.RecordEvent(context.Background(), "acme", onMerged); err == nil {
		t.Fatal("recording on a customer merged before the upgrade succeeded; the migrated meta lost merged_into")
	}
}
