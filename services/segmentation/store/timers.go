package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
)

// fireBatch bounds the timers fired in one transaction.
const fireBatch = 512

// FireDue re-evaluates every customer whose timer is due at now, removing
// each timer in the transaction that applies it, so a timer fires exactly
// once across restarts; after downtime the overdue ones fire in due order.
// It returns how many fired and when the next one is due (zero if none).
func (s *Store) FireDue(ctx context.Context, now time.Time) (int, time.Time, error) {
	total := 0
	for {
		fired := 0
		var next time.Time
		var dues []time.Time
		err := s.db.Update(ctx, func(btx *bolt.Tx) error {
			fired, next, dues = 0, time.Time{}, dues[:0]
			type due struct{ key []byte }
			var batch [][]byte
			c := btx.Bucket(bucketTimers).Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				at := time.Unix(0, int64(binary.BigEndian.Uint64(k[:8])))
				if at.After(now) || len(batch) == fireBatch {
					if at.After(now) {
						next = at
					}
					break
				}
				batch = append(batch, boltdb.Copy(k))
				dues = append(dues, at)
			}
			segsOf := map[string][]segmentRecord{}
			sizesOf := map[string][]int64{}
			for _, k := range batch {
				rest := k[9:] // due(8) + separator
				i := bytes.IndexByte(rest, boltdb.Sep)
				if i < 0 {
					return fmt.Errorf("store: malformed timer key %x", k)
				}
				tenant, customer := string(rest[:i]), string(rest[i+1:])
				t := tx{Tx: btx, tenant: tenant}
				if err := btx.Bucket(bucketTimers).Delete(k); err != nil {
					return err
				}
				if err := btx.Bucket(bucketTimerOf).Delete(boltdb.Key(tenant, customer)); err != nil {
					return err
				}
				s.touch(t, customer)
				segs, ok := segsOf[tenant]
				if !ok {
					var err error
					if segs, err = t.segments(); err != nil {
						return err
					}
					segsOf[tenant], sizesOf[tenant] = segs, sizes(segs)
				}
				if err := s.reevaluate(ctx, t, segs, customer, now, "time"); err != nil {
					return err
				}
				fired++
			}
			for tenant, segs := range segsOf {
				if err := (tx{Tx: btx, tenant: tenant}).putSegments(segs, sizesOf[tenant]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, time.Time{}, err
		}
		s.metrics.timersFired(ctx, dues, now)
		total += fired
		if fired < fireBatch {
			if next.IsZero() {
				next, err = s.NextTimer()
			}
			return total, next, err
		}
	}
}

// NextTimer returns when the earliest timer is due, zero if none.
func (s *Store) NextTimer() (time.Time, error) {
	var next time.Time
	err := s.db.View(func(btx *bolt.Tx) error {
		if k, _ := btx.Bucket(bucketTimers).Cursor().First(); k != nil {
			next = time.Unix(0, int64(binary.BigEndian.Uint64(k[:8])))
		}
		return nil
	})
	return next, err
}
