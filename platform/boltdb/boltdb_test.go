package boltdb_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"rapport.dev/platform/boltdb"
)

var (
	customers = []byte("customers")
	byName    = []byte("customers_by_name")
	history   = []byte("migration_history")
)

func mustOpen(t *testing.T, path string, opts boltdb.Options) *boltdb.DB {
	t.Helper()
	db, err := boltdb.Open(path, opts)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return db
}

func mustClose(t *testing.T, db *boltdb.DB) {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func schemaOf(t *testing.T, db *boltdb.DB) uint64 {
	t.Helper()
	v, err := db.SchemaVersion()
	if err != nil {
		t.Fatalf("schema version: %v", err)
	}
	return v
}

func TestOpenStampsNewFileAndCreatesBuckets(t *testing.T) {
	db := boltdb.OpenTemp(t, boltdb.Options{Schema: 3, Buckets: [][]byte{customers, byName}})

	if got := schemaOf(t, db); got != 3 {
		t.Errorf("schema version of a new file = %d, want 3", got)
	}
	err := db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{boltdb.MetaBucket, customers, byName} {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("bucket %q missing", name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A new file takes Options.PageSize; a file opened again keeps the size it
// was created with, whatever the options say.
func TestOpenPageSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pages.db")
	db := mustOpen(t, path, boltdb.Options{Schema: 1, Buckets: [][]byte{customers}, PageSize: 16 << 10})
	if got := db.Bolt().Info().PageSize; got != 16<<10 {
		t.Errorf("page size of a new file = %d, want %d", got, 16<<10)
	}
	mustClose(t, db)
	db = mustOpen(t, path, boltdb.Options{Schema: 1, Buckets: [][]byte{customers}})
	defer mustClose(t, db)
	if got := db.Bolt().Info().PageSize; got != 16<<10 {
		t.Errorf("page size of the file opened without one = %d, want the %d it was created with", got, 16<<10)
	}
}

// writeV1 creates a schema-1 file, the fixture the migration tests upgrade.
func writeV1(t *testing.T, path string) {
	t.Helper()
	db := mustOpen(t, path, boltdb.Options{Schema: 1, Buckets: [][]byte{customers}})
	err := db.Update(context.Background(), func(tx *bolt.Tx) error {
		b := tx.Bucket(customers)
		if err := b.Put([]byte("c1"), []byte("ada")); err != nil {
			return err
		}
		return b.Put([]byte("c2"), []byte("grace"))
	})
	if err != nil {
		t.Fatalf("write v1 data: %v", err)
	}
	mustClose(t, db)
}

// appendHistory records that a migration ran, so the test can check the order.
func appendHistory(tx *bolt.Tx, step string) error {
	b, err := tx.CreateBucketIfNotExists(history)
	if err != nil {
		return err
	}
	old := b.Get([]byte("steps"))
	return b.Put([]byte("steps"), append(boltdb.Copy(old), step...))
}

func TestOpenMigratesOldFileInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "svc.db")
	writeV1(t, path)

	// Listed out of order on purpose: Open must follow From, not the slice.
	migrations := []boltdb.Migration{
		{From: 2, Up: func(tx *bolt.Tx) error {
			// Needs the index bucket the 1→2 migration creates.
			if tx.Bucket(byName) == nil {
				return errors.New("2→3 ran before 1→2")
			}
			return appendHistory(tx, "2")
		}},
		{From: 1, Up: func(tx *bolt.Tx) error {
			idx, err := tx.CreateBucket(byName)
			if err != nil {
				return err
			}
			if err := tx.Bucket(customers).ForEach(func(k, v []byte) error {
				return idx.Put(v, k)
			}); err != nil {
				return err
			}
			return appendHistory(tx, "1")
		}},
	}
	db := mustOpen(t, path, boltdb.Options{Schema: 3, Buckets: [][]byte{customers, byName}, Migrations: migrations})

	if got := schemaOf(t, db); got != 3 {
		t.Errorf("schema version after migration = %d, want 3", got)
	}
	err := db.View(func(tx *bolt.Tx) error {
		if got := string(tx.Bucket(history).Get([]byte("steps"))); got != "12" {
			return fmt.Errorf("migrations ran as %q, want %q", got, "12")
		}
		for name, id := range map[string]string{"ada": "c1", "grace": "c2"} {
			if got := string(tx.Bucket(byName).Get([]byte(name))); got != id {
				return fmt.Errorf("index %s = %q, want %q", name, got, id)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustClose(t, db)

	// A file already at the current version is not migrated again.
	again := []boltdb.Migration{
		{From: 1, Up: func(*bolt.Tx) error { return errors.New("1→2 ran twice") }},
		{From: 2, Up: func(*bolt.Tx) error { return errors.New("2→3 ran twice") }},
	}
	db = mustOpen(t, path, boltdb.Options{Schema: 3, Migrations: again})
	if got := schemaOf(t, db); got != 3 {
		t.Errorf("schema version on reopen = %d, want 3", got)
	}
	mustClose(t, db)
}

func TestOpenFailedMigrationLeavesFileUntouched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "svc.db")
	writeV1(t, path)

	_, err := boltdb.Open(path, boltdb.Options{Schema: 2, Migrations: []boltdb.Migration{{From: 1, Up: func(tx *bolt.Tx) error {
		if err := tx.Bucket(customers).Delete([]byte("c1")); err != nil {
			return err
		}
		return errors.New("disk says no")
	}}}})
	if err == nil || !strings.Contains(err.Error(), "migration from 1") || !strings.Contains(err.Error(), "disk says no") {
		t.Fatalf("Open with a failing migration: err = %v, want it to name the migration and its cause", err)
	}

	_, err = boltdb.Open(path, boltdb.Options{Schema: 2})
	if err == nil || !strings.Contains(err.Error(), "no migration from schema version 1") {
		t.Fatalf("Open without the needed migration: err = %v", err)
	}

	db := mustOpen(t, path, boltdb.Options{Schema: 1})
	defer mustClose(t, db)
	if got := schemaOf(t, db); got != 1 {
		t.Errorf("schema version after failed migrations = %d, want 1", got)
	}
	err = db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(customers).Get([]byte("c1")) == nil {
			return errors.New("the failed migration's delete was committed")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesNewerFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "svc.db")
	mustClose(t, mustOpen(t, path, boltdb.Options{Schema: 5}))

	_, err := boltdb.Open(path, boltdb.Options{Schema: 4})
	if err == nil {
		t.Fatal("Open of a newer file succeeded")
	}
	for _, want := range []string{path, "schema version 5 is newer than this build's 4", "refusing"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}

	// Refusing must not rewrite the version, and must release the lock.
	db := mustOpen(t, path, boltdb.Options{Schema: 5, LockTimeout: 100 * time.Millisecond})
	defer mustClose(t, db)
	if got := schemaOf(t, db); got != 5 {
		t.Errorf("schema version after refused open = %d, want 5", got)
	}
}

func TestOpenLockTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "svc.db")
	first := mustOpen(t, path, boltdb.Options{})

	res := make(chan error, 1)
	go func() {
		db, err := boltdb.Open(path, boltdb.Options{LockTimeout: 100 * time.Millisecond})
		if err == nil {
			db.Close()
		}
		res <- err
	}()
	select {
	case err := <-res:
		if !errors.Is(err, bolterrors.ErrTimeout) {
			t.Fatalf("second Open: err = %v, want the lock timeout", err)
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("error %q does not name the file", err)
		}
	case <-time.After(4 * time.Second): // the default lock timeout is 5 s
		t.Fatal("second Open of a locked file did not give up after its 100ms lock timeout")
	}

	mustClose(t, first)
	mustClose(t, mustOpen(t, path, boltdb.Options{LockTimeout: 100 * time.Millisecond}))
}

func TestUpdateErrorCommitsNothing(t *testing.T) {
	db := boltdb.OpenTemp(t, boltdb.Options{Buckets: [][]byte{customers}})
	var commits atomic.Int64
	db.OnCommit(func() { commits.Add(1) })

	errBoom := errors.New("boom")
	err := db.Update(context.Background(), func(tx *bolt.Tx) error {
		if err := tx.Bucket(customers).Put([]byte("c1"), []byte("partial")); err != nil {
			return err
		}
		return fmt.Errorf("validate: %w", errBoom)
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update err = %v, want the write's own error", err)
	}
	if n := commits.Load(); n != 0 {
		t.Errorf("OnCommit ran %d times for a failed write", n)
	}
	if n := countKeys(t, db, customers); n != 0 {
		t.Errorf("failed write left %d keys", n)
	}
}

func TestUpdatePanicIsAnError(t *testing.T) {
	db := boltdb.OpenTemp(t, boltdb.Options{Buckets: [][]byte{customers}})

	err := db.Update(context.Background(), func(tx *bolt.Tx) error {
		if err := tx.Bucket(customers).Put([]byte("c1"), []byte("partial")); err != nil {
			return err
		}
		panic("bug in write")
	})
	if err == nil || !strings.Contains(err.Error(), "panicked") || !strings.Contains(err.Error(), "bug in write") {
		t.Fatalf("Update err = %v, want the panic as an error", err)
	}
	// The committer survived.
	if err := put(db, customers, "c2"); err != nil {
		t.Fatalf("Update after a panic: %v", err)
	}
	if n := countKeys(t, db, customers); n != 1 {
		t.Errorf("keys = %d, want only the write after the panic", n)
	}
}

func TestUpdateAfterClose(t *testing.T) {
	db := mustOpen(t, filepath.Join(t.TempDir(), "svc.db"), boltdb.Options{Buckets: [][]byte{customers}})
	mustClose(t, db)
	if err := put(db, customers, "c1"); !errors.Is(err, boltdb.ErrClosed) {
		t.Fatalf("Update after Close: err = %v, want ErrClosed", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestConcurrentUpdates runs writers the way a busy service does: whatever
// the scheduling, every good write is committed, and a failing or panicking
// write leaves nothing of its own while the others in flight commit.
func TestConcurrentUpdates(t *testing.T) {
	const n = 200
	path := filepath.Join(t.TempDir(), "svc.db")
	db := mustOpen(t, path, boltdb.Options{Buckets: [][]byte{customers}})
	var commits atomic.Int64
	db.OnCommit(func() { commits.Add(1) })

	errBoom := errors.New("boom")
	fails := func(i int) bool { return i%50 == 7 }  // 4 writes return an error
	panics := func(i int) bool { return i%50 == 9 } // 4 writes panic
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = db.Update(context.Background(), func(tx *bolt.Tx) error {
				b := tx.Bucket(customers)
				if err := b.Put(fmt.Appendf(nil, "k%03d", i), []byte("v")); err != nil {
					return err
				}
				switch {
				case fails(i):
					return errBoom
				case panics(i):
					panic("bug")
				}
				return nil
			})
		})
	}
	wg.Wait()

	good := 0
	for i, err := range errs {
		switch {
		case fails(i):
			if !errors.Is(err, errBoom) {
				t.Errorf("write %d: err = %v, want its own error", i, err)
			}
		case panics(i):
			if err == nil || !strings.Contains(err.Error(), "panicked") {
				t.Errorf("write %d: err = %v, want the panic", i, err)
			}
		default:
			good++
			if err != nil {
				t.Errorf("write %d: %v", i, err)
			}
		}
	}
	// Each caller returned only after its transaction committed, and no
	// transaction commits without a good write in it.
	if c := commits.Load(); c < 1 || c > int64(good) {
		t.Errorf("commits = %d, want between 1 and %d", c, good)
	}
	t.Logf("%d writes in %d transactions", good, commits.Load())
	mustClose(t, db)

	// Durable: reopen and count.
	db = mustOpen(t, path, boltdb.Options{})
	defer mustClose(t, db)
	err := db.View(func(tx *bolt.Tx) error {
		for i := range n {
			v := tx.Bucket(customers).Get(fmt.Appendf(nil, "k%03d", i))
			if bad := fails(i) || panics(i); bad != (v == nil) {
				return fmt.Errorf("key k%03d present=%v after reopen, want %v", i, v != nil, !bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := countKeys(t, db, customers); got != good {
		t.Errorf("keys after reopen = %d, want %d", got, good)
	}
}

func TestKeys(t *testing.T) {
	if got, want := boltdb.Key("t1", "c42"), []byte("t1\x00c42"); !bytes.Equal(got, want) {
		t.Errorf("Key = %q, want %q", got, want)
	}
	if got, want := boltdb.Key("t1", boltdb.U64(2)), []byte("t1\x00\x00\x00\x00\x00\x00\x00\x00\x02"); !bytes.Equal(got, want) {
		t.Errorf("Key with number = %q, want %q", got, want)
	}
	if got, want := boltdb.Prefix("t1"), []byte("t1\x00"); !bytes.Equal(got, want) {
		t.Errorf("Prefix = %q, want %q", got, want)
	}
	// The prefix of tenant "t1" does not match tenant "t10".
	if bytes.HasPrefix(boltdb.Key("t10", "c1"), boltdb.Prefix("t1")) {
		t.Error(`Prefix("t1") matches a key of tenant "t10"`)
	}

	// Big-endian keys sort numerically.
	for _, pair := range [][2]uint64{{1, 2}, {255, 256}, {1 << 32, 1<<32 + 1}, {0, 1 << 63}} {
		if bytes.Compare(boltdb.U64(pair[0]), boltdb.U64(pair[1])) >= 0 {
			t.Errorf("U64(%d) does not sort before U64(%d)", pair[0], pair[1])
		}
	}
	for _, v := range []uint64{0, 1, 1 << 40, ^uint64(0)} {
		got, err := boltdb.ReadU64(boltdb.U64(v))
		if err != nil || got != v {
			t.Errorf("ReadU64(U64(%d)) = %d, %v", v, got, err)
		}
	}
	if _, err := boltdb.ReadU64([]byte{1, 2, 3}); err == nil {
		t.Error("ReadU64 of 3 bytes succeeded")
	}

	orig := []byte("abc")
	cp := boltdb.Copy(orig)
	orig[0] = 'x'
	if string(cp) != "abc" {
		t.Errorf("Copy shares memory: %q", cp)
	}
	if boltdb.Copy(nil) != nil {
		t.Error("Copy(nil) != nil")
	}

	defer func() {
		if recover() == nil {
			t.Error("Key with an int part did not panic")
		}
	}()
	boltdb.Key("t1", 42)
}

func put(db *boltdb.DB, bucket []byte, key string) error {
	return db.Update(context.Background(), func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Put([]byte(key), []byte("v"))
	})
}

func countKeys(t testing.TB, db *boltdb.DB, bucket []byte) int {
	t.Helper()
	var n int
	if err := db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucket).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestGrowingWriteDoesNotWaitForReaders: the file is mapped with room to grow,
// so a write that grows it past its current size is not held up by a read
// transaction that stays open (a full re-evaluation's snapshot, a follower's
// scan). bbolt remaps a file that outgrows its mapping only once every reader
// has finished.
func TestGrowingWriteDoesNotWaitForReaders(t *testing.T) {
	db := boltdb.OpenTemp(t, boltdb.Options{Buckets: [][]byte{customers}})
	rtx, err := db.Bolt().Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer rtx.Rollback()

	value := bytes.Repeat([]byte{'x'}, 1<<20)
	done := make(chan error, 1)
	go func() {
		done <- db.Update(context.Background(), func(tx *bolt.Tx) error {
			for i := range 64 {
				if err := tx.Bucket(customers).Put(fmt.Appendf(nil, "c%02d", i), value); err != nil {
					return err
				}
			}
			return nil
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a write growing the file by 64 MiB waited for an open read transaction")
	}
	if n := countKeys(t, db, customers); n != 64 {
		t.Fatalf("%d keys after the write, want 64", n)
	}
}
