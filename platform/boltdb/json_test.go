package boltdb_test

import (
	"context"
	"testing"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
)

func TestJSONRoundTrip(t *testing.T) {
	type rec struct {
		Name string
		N    int
	}
	db := boltdb.OpenTemp(t, boltdb.Options{Schema: 1, Buckets: [][]byte{[]byte("b")}})
	if err := db.Update(context.Background(), func(tx *bolt.Tx) error {
		return boltdb.PutJSON(tx.Bucket([]byte("b")), []byte("k"), rec{"a", 7})
	}); err != nil {
		t.Fatal(err)
	}
	var got *rec
	if err := db.View(func(tx *bolt.Tx) error {
		var err error
		got, err = boltdb.GetJSON[rec](tx.Bucket([]byte("b")).Get([]byte("k")))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if *got != (rec{"a", 7}) {
		t.Fatalf("got %+v", got)
	}
	if _, err := boltdb.GetJSON[rec]([]byte("{")); err == nil {
		t.Fatal("malformed JSON decoded without error")
	}
}
