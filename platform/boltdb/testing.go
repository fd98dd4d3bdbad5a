package boltdb

import (
	"path/filepath"
	"testing"
)

// OpenTemp opens a fresh database in t.TempDir() and closes it when the test
// ends. Tests use the real bbolt file, never a stand-in.
func OpenTemp(t testing.TB, opts Options) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "test.db"), opts)
	if err != nil {
		t.Fatalf("open temp db: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close temp db: %v", err)
		}
	})
	return db
}
