package boltdb

// These tests look at the committer's queue, which only this package can
// see, to line writes up behind a held transaction: then which writes share a
// transaction is decided by the test, not by the scheduler.

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

var items = []byte("items")

// hold starts a write that blocks the committer inside its transaction until
// release is called; it returns once the committer is blocked. done receives
// the held write's result.
func hold(t *testing.T, db *DB) (release func(), done <-chan error) {
	t.Helper()
	started := make(chan struct{})
	unblock := make(chan struct{})
	res := make(chan error, 1)
	var once sync.Once
	go func() {
		res <- db.Update(context.Background(), func(*bolt.Tx) error {
			once.Do(func() { close(started) })
			<-unblock
			return nil
		})
	}()
	<-started
	return func() { close(unblock) }, res
}

// released lets the held write go and checks that it committed.
func released(t *testing.T, release func(), done <-chan error) {
	t.Helper()
	release()
	if err := <-done; err != nil {
		t.Errorf("held write: %v", err)
	}
}

// until spins until cond holds. The queue offers no signal to wait on, so
// this polls; it does not guess a duration.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		runtime.Gosched()
	}
}

func queued(db *DB) int { return len(db.reqs) }

func TestGroupCommitCoalescesQueuedWrites(t *testing.T) {
	const n = 200
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	db := OpenTemp(t, Options{Buckets: [][]byte{items}, TracerProvider: tp})
	var commits atomic.Int64
	db.OnCommit(func() { commits.Add(1) })

	release, held := hold(t, db)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- db.Update(context.Background(), func(tx *bolt.Tx) error {
				return tx.Bucket(items).Put(U64(uint64(i)), []byte("v"))
			})
		}()
	}
	until(t, fmt.Sprintf("%d writes are queued", n), func() bool { return queued(db) == n })
	released(t, release, held)
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("Update: %v", err)
		}
	}

	if got := commits.Load(); got != 2 {
		t.Errorf("commits = %d, want 2: the held write, then all %d queued writes in one transaction", got, n)
	}
	var sized int
	for _, s := range rec.Ended() {
		if s.Name() != "bbolt.commit" {
			continue
		}
		for _, a := range s.Attributes() {
			if a.Key == "bbolt.batch_size" && a.Value.AsInt64() == n {
				sized++
			}
		}
	}
	if sized != n {
		t.Errorf("%d spans carry bbolt.batch_size=%d, want %d", sized, n, n)
	}
	err := db.View(func(tx *bolt.Tx) error {
		if got := tx.Bucket(items).Stats().KeyN; got != n {
			return fmt.Errorf("keys = %d, want %d", got, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFailingWriteInBatch: the transaction is rolled back and run again
// without the failing write, which gets its error; the others commit
// together and nothing the failing write did survives.
func TestFailingWriteInBatch(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fail    func() error
		wantErr string
	}{
		{"error", func() error { return errors.New("boom") }, "boom"},
		{"panic", func() error { panic("bug") }, "boltdb: write panicked: bug"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n, bad = 10, 4
			db := OpenTemp(t, Options{Buckets: [][]byte{items}})
			var commits atomic.Int64
			db.OnCommit(func() { commits.Add(1) })

			release, held := hold(t, db)
			runs := make([]atomic.Int64, n)
			errs := make([]chan error, n)
			for i := range n {
				errs[i] = make(chan error, 1)
				// Queue one at a time so the batch is in index order.
				go func() {
					errs[i] <- db.Update(context.Background(), func(tx *bolt.Tx) error {
						runs[i].Add(1)
						if err := tx.Bucket(items).Put(U64(uint64(i)), []byte("v")); err != nil {
							return err
						}
						if i == bad {
							if err := tx.Bucket(items).Put([]byte("partial"), []byte("v")); err != nil {
								return err
							}
							return tc.fail()
						}
						return nil
					})
				}()
				until(t, fmt.Sprintf("write %d is queued", i), func() bool { return queued(db) == i+1 })
			}
			released(t, release, held)

			for i := range n {
				err := <-errs[i]
				if i == bad {
					if err == nil || err.Error() != tc.wantErr {
						t.Errorf("failing write: err = %v, want %q", err, tc.wantErr)
					}
					continue
				}
				if err != nil {
					t.Errorf("write %d: %v", i, err)
				}
			}
			if got := runs[bad].Load(); got != 1 {
				t.Errorf("failing write ran %d times, want once", got)
			}
			for i := range bad {
				if got := runs[i].Load(); got != 2 {
					t.Errorf("write %d before the failing one ran %d times, want 2 (rolled back, run again)", i, got)
				}
			}
			if got := commits.Load(); got != 2 {
				t.Errorf("commits = %d, want 2: the held write and the batch without the failing one", got)
			}
			err := db.View(func(tx *bolt.Tx) error {
				b := tx.Bucket(items)
				if b.Get([]byte("partial")) != nil || b.Get(U64(bad)) != nil {
					return errors.New("the failing write's puts were committed")
				}
				if got := b.Stats().KeyN; got != n-1 {
					return fmt.Errorf("keys = %d, want %d", got, n-1)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCloseFinishesQueuedWrites(t *testing.T) {
	const n = 5
	path := filepath.Join(t.TempDir(), "svc.db")
	db, err := Open(path, Options{Buckets: [][]byte{items}})
	if err != nil {
		t.Fatal(err)
	}
	release, held := hold(t, db)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- db.Update(context.Background(), func(tx *bolt.Tx) error {
				return tx.Bucket(items).Put(U64(uint64(i)), []byte("v"))
			})
		}()
	}
	until(t, "the writes are queued", func() bool { return queued(db) == n })

	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	until(t, "Close has begun", func() bool {
		db.mu.RLock()
		defer db.mu.RUnlock()
		return db.closed
	})
	if err := db.Update(context.Background(), func(*bolt.Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Update during Close: err = %v, want ErrClosed", err)
	}
	released(t, release, held)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("queued write: %v", err)
		}
	}

	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		if got := tx.Bucket(items).Stats().KeyN; got != n {
			return fmt.Errorf("keys after reopen = %d, want %d", got, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCloseWithFullQueue is the shutdown of a loaded service: a writer waits
// for room in a full queue while Close waits for that writer. The committer
// must still drain the queue (it once took the lock Close was waiting for to
// call the OnCommit listeners, and deadlocked).
func TestCloseWithFullQueue(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "svc.db"), Options{Buckets: [][]byte{items}, MaxBatch: 1})
	if err != nil {
		t.Fatal(err)
	}
	var commits atomic.Int64
	db.OnCommit(func() { commits.Add(1) })

	release, held := hold(t, db)
	write := func(i int, errs chan<- error) {
		errs <- db.Update(context.Background(), func(tx *bolt.Tx) error {
			return tx.Bucket(items).Put(U64(uint64(i)), []byte("v"))
		})
	}
	errs := make(chan error, 2)
	go write(1, errs)
	until(t, "the queue is full", func() bool { return queued(db) == cap(db.reqs) })
	until(t, "the first writer is done with mu", func() bool {
		if db.mu.TryLock() {
			db.mu.Unlock()
			return true
		}
		return false
	})
	go write(2, errs)
	// The second writer holds mu for reading while it waits for room.
	until(t, "a writer waits for room in the queue", func() bool {
		if db.mu.TryLock() {
			db.mu.Unlock()
			return false
		}
		return true
	})
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	// TryRLock fails once Close is waiting for the write lock.
	until(t, "Close waits for the writer", func() bool {
		if db.mu.TryRLock() {
			db.mu.RUnlock()
			return false
		}
		return true
	})
	release()

	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close deadlocked with a writer waiting for room in the queue")
	}
	if err := <-held; err != nil {
		t.Errorf("held write: %v", err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("write: %v", err)
		}
	}
	if got := commits.Load(); got != 3 {
		t.Errorf("commits = %d, want 3", got)
	}
}

func TestOnCommitRunsAfterCommit(t *testing.T) {
	db := OpenTemp(t, Options{Buckets: [][]byte{items}})
	seen := make(chan int, 1)
	db.OnCommit(func() {
		// The listener runs after the commit: a reader sees the write.
		var n int
		_ = db.View(func(tx *bolt.Tx) error { n = tx.Bucket(items).Stats().KeyN; return nil })
		seen <- n
	})
	err := db.Update(context.Background(), func(tx *bolt.Tx) error {
		return tx.Bucket(items).Put([]byte("k"), []byte("v"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := <-seen; n != 1 {
		t.Errorf("listener saw %d keys, want 1", n)
	}
	if !strings.HasSuffix(db.Path(), "test.db") {
		t.Errorf("Path = %q", db.Path())
	}
}

func TestScratchIsSharedWithinATransactionAndFlushedOnce(t *testing.T) {
	db := OpenTemp(t, Options{Buckets: [][]byte{items}})
	flushes := 0
	release, held := hold(t, db)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			errs <- db.Update(context.Background(), func(tx *bolt.Tx) error {
				sc := db.Scratch(tx)
				n, _ := sc.Get("n")
				count, _ := n.(int)
				sc.Set("n", count+1)
				sc.BeforeCommit("n", func(tx *bolt.Tx) error {
					flushes++
					v, _ := sc.Get("n")
					return tx.Bucket(items).Put([]byte("n"), []byte{byte(v.(int))})
				})
				return nil
			})
		}()
	}
	until(t, "both writes are queued", func() bool { return queued(db) == 2 })
	released(t, release, held)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var got byte
	db.View(func(tx *bolt.Tx) error { got = tx.Bucket(items).Get([]byte("n"))[0]; return nil })
	if got != 2 {
		t.Fatalf("counter %d, want 2: the second write must see the first's scratch value", got)
	}
	if flushes != 1 {
		t.Fatalf("flushed %d times, want once for the one transaction", flushes)
	}
}

func TestScratchOutsideUpdatePanics(t *testing.T) {
	db := OpenTemp(t, Options{})
	defer func() {
		if recover() == nil {
			t.Fatal("Scratch in a View did not panic")
		}
	}()
	db.View(func(tx *bolt.Tx) error { db.Scratch(tx); return nil })
}
