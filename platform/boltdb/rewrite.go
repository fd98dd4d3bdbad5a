package boltdb

import (
	"bytes"

	bolt "go.etcd.io/bbolt"
)

// RewriteValues replaces every value of bucket in tx by what rewrite
// returns for it (a migration re-encoding records), chunk keys at a time:
// bbolt does not allow writes while a cursor walks the bucket it writes, so
// each chunk is read, then written, then the walk resumes after its last
// key. A missing bucket has nothing to rewrite. The first error stops the
// rewrite and is returned; the caller's transaction then rolls it all back.
func RewriteValues(tx *bolt.Tx, bucket []byte, chunk int, rewrite func(k, v []byte) ([]byte, error)) error {
	b := tx.Bucket(bucket)
	if b == nil {
		return nil
	}
	type rec struct{ k, v []byte }
	batch := make([]rec, 0, chunk)
	var from []byte
	for {
		batch = batch[:0]
		c := b.Cursor()
		k, v := c.First()
		if from != nil {
			if k, v = c.Seek(from); k != nil && bytes.Equal(k, from) {
				k, v = c.Next()
			}
		}
		for ; k != nil && len(batch) < chunk; k, v = c.Next() {
			nv, err := rewrite(k, v)
			if err != nil {
				return err
			}
			batch = append(batch, rec{bytes.Clone(k), nv})
		}
		if len(batch) == 0 {
			return nil
		}
		for _, r := range batch {
			if err := b.Put(r.k, r.v); err != nil {
				return err
			}
		}
		from = batch[len(batch)-1].k
	}
}
