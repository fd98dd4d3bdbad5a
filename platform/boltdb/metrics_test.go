package boltdb_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/telemetry"
	"rapport.dev/platform/telemetry/metricstest"
)

// TestMetrics: every committed transaction is timed once and counts the
// writes it carried (a failed write is in none), and the file's size is
// observed until the file is closed.
func TestMetrics(t *testing.T) {
	m := metricstest.New(t)
	path := filepath.Join(t.TempDir(), "profile.db")
	db := mustOpen(t, path, boltdb.Options{Schema: 1, Buckets: [][]byte{customers},
		MeterProvider: m.Provider, Component: "profile"})
	profile := telemetry.ComponentKey.String("profile")

	const writers = 40
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			err := db.Update(context.Background(), func(tx *bolt.Tx) error {
				if i%10 == 9 {
					return errors.New("refused")
				}
				return tx.Bucket(customers).Put(fmt.Appendf(nil, "c-%02d", i), make([]byte, 4096))
			})
			if (err != nil) != (i%10 == 9) {
				t.Errorf("write %d: %v", i, err)
			}
		})
	}
	wg.Wait()

	commits, writes := m.Histogram(t, "rapport.bbolt.commit.batch_size", profile)
	if writes != writers-writers/10 {
		t.Errorf("committed transactions carried %v writes, want the %d that succeeded", writes, writers-writers/10)
	}
	timed, seconds := m.Histogram(t, "rapport.bbolt.commit.duration", profile)
	if commits == 0 || timed != commits || seconds <= 0 {
		t.Errorf("%d commits timed (%v s) for %d batches", timed, seconds, commits)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if size, ok := m.Value(t, "rapport.bbolt.file.size", profile); !ok || size != float64(fi.Size()) || size < writers*4096*9/10 {
		t.Errorf("file size %v (observed %v), want %d", size, ok, fi.Size())
	}

	mustClose(t, db)
	if _, ok := m.Value(t, "rapport.bbolt.file.size", profile); ok {
		t.Error("the size of a closed file is still observed")
	}
}
