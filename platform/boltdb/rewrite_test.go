package boltdb_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
)

// TestRewriteValues: every value is rewritten exactly once, across chunk
// boundaries, with keys and order unchanged; an error rolls back the lot.
func TestRewriteValues(t *testing.T) {
	db := boltdb.OpenTemp(t, boltdb.Options{Schema: 1, Buckets: [][]byte{[]byte("b")}})
	ctx := context.Background()
	const n = 10
	if err := db.Update(ctx, func(tx *bolt.Tx) error {
		for i := range n {
			if err := tx.Bucket([]byte("b")).Put(fmt.Appendf(nil, "k%02d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []int{1, 3, n, 100} {
		calls := 0
		err := db.Update(ctx, func(tx *bolt.Tx) error {
			if err := boltdb.RewriteValues(tx, []byte("missing"), chunk, nil); err != nil {
				return err
			}
			return boltdb.RewriteValues(tx, []byte("b"), chunk, func(k, v []byte) ([]byte, error) {
				calls++
				return append([]byte("x"), v...), nil
			})
		})
		if err != nil || calls != n {
			t.Fatalf("chunk %d: %d calls, %v", chunk, calls, err)
		}
	}
	_ = db.View(func(tx *bolt.Tx) error {
		i := 0
		return tx.Bucket([]byte("b")).ForEach(func(k, v []byte) error {
			if want := fmt.Appendf(nil, "xxxxv%d", i); !bytes.Equal(k, fmt.Appendf(nil, "k%02d", i)) || !bytes.Equal(v, want) {
				t.Errorf("%s = %s, want k%02d = %s", k, v, i, want)
			}
			i++
			return nil
		})
	})

	boom := errors.New("boom")
	err := db.Update(ctx, func(tx *bolt.Tx) error {
		return boltdb.RewriteValues(tx, []byte("b"), 3, func(k, v []byte) ([]byte, error) {
			if bytes.Equal(k, []byte("k05")) {
				return nil, boom
			}
			return []byte("changed"), nil
		})
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error: %v", err)
	}
	_ = db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte("b")).Get([]byte("k00")); !bytes.Equal(v, []byte("xxxxv0")) {
			t.Errorf("after a failed rewrite k00 = %s", v)
		}
		return nil
	})
}
