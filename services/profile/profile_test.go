package profile

import (
	"bytes"
	"context"
	"net"
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

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// feedHolds reports whether any feed entry contains s.
func feedHolds(t *testing.T, db *boltdb.DB, s string) bool {
	t.Helper()
	found := false
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(feed.LogBucket).ForEach(func(_, v []byte) error {
			found = found || bytes.Contains(v, []byte(s))
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return found
}

func createAndErase(t *testing.T, st *store.Store, id, phone string) {
	t.Helper()
	ctx := context.Background()
	c := &domain.Customer{ID: id, Kind: domain.KindPerson, DisplayName: "n", Phone: phone, CreateTime: t0, UpdateTime: t0, Revision: 1}
	if rs, err := st.CreateCustomers(ctx, "acme", []*domain.Customer{c}); err != nil || rs[0].Err != nil {
		t.Fatalf("create %s: %v %+v", id, err, rs)
	}
	if _, err := st.Erase(ctx, "acme", id, t0); err != nil {
		t.Fatal(err)
	}
}

// TestServeScrubsFeed: a scrub left pending by an erase before the start is
// finished by the running service, and so is one after an erase while it
// runs; shutdown waits for the scrubber before closing the file.
func TestServeScrubsFeed(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(t0)
	db, err := boltdb.Open(filepath.Join(dir, Name+".db"), store.Options())
	if err != nil {
		t.Fatal(err)
	}
	createAndErase(t, store.New(db, feed.NewLog(db, clk)), "before", "13800000001")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	svc, err := New(Config{DataDir: dir, GRPCAddr: "127.0.0.1:0"}, Deps{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	commits := make(chan struct{}, 1)
	svc.db.OnCommit(func() {
		select {
		case commits <- struct{}{}:
		default:
		}
	})
	// waitScrubbed waits, commit by commit, until the feed no longer holds s.
	waitScrubbed := func(s string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for feedHolds(t, svc.db, s) {
			select {
			case <-commits:
			case <-deadline:
				t.Fatalf("the feed still holds %s", s)
			}
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- svc.Serve(ctx, lis) }()

	waitScrubbed("13800000001")
	createAndErase(t, svc.store, "during", "13800000002")
	waitScrubbed("13800000002")

	cancel()
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}
