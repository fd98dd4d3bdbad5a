package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/feed"
	"rapport.dev/services/profile/convert"
	"rapport.dev/services/profile/domain"
)

// Feed event types of the profile service.
const (
	TypeCustomerCreated = "customer.created"
	TypeCustomerUpdated = "customer.updated"
	TypeCustomerErased  = "customer.erased"
	TypeCustomerMerged  = "customer.merged"
	TypeEventRecorded   = "event.recorded"
)

// Store implements domain.Repository on bbolt.
type Store struct {
	db   *boltdb.DB
	feed *feed.Log
	// scrubs is signalled after an erase commits; see ScrubFeed.
	scrubs chan struct{}
}

var _ domain.Repository = (*Store)(nil)

// New returns a store over an open profile.db and its feed.
func New(db *boltdb.DB, log *feed.Log) *Store {
	return &Store{db: db, feed: log, scrubs: make(chan struct{}, 1)}
}

// decode and put are boltdb's JSON encoding: of tenant_stats, of the
// records of older files that the migrations read, and of retryOf's deep
// copy of an event.
func decode[T any](raw []byte) (*T, error) { return boltdb.GetJSON[T](raw) }

func put(b *bolt.Bucket, key []byte, v any) error { return boltdb.PutJSON(b, key, v) }

// tx bundles one transaction's buckets for one tenant. In a write
// transaction it keeps the customer counters and the tenant counters in the
// group commit's scratch: every write of the group updates the same decoded
// copy, written back once before the commit.
type tx struct {
	tx      *bolt.Tx
	tenant  string
	scratch *boltdb.Scratch
}

// newTx is for read transactions.
func newTx(t *bolt.Tx, tenant string) *tx { return &tx{tx: t, tenant: tenant} }

// writeTx is for the functions passed to db.Update. It also sets the feed's
// fill percent, which bbolt reads from the transaction's bucket handle when
// it splits pages at commit.
func (s *Store) writeTx(t *bolt.Tx, tenant string) *tx {
	t.Bucket(feed.LogBucket).FillPercent = feedFillPercent
	return &tx{tx: t, tenant: tenant, scratch: s.db.Scratch(t)}
}

func (t *tx) b(name []byte) *bolt.Bucket { return t.tx.Bucket(name) }

func (t *tx) customer(id string) (*domain.Customer, error) {
	// The key is built in a buffer on the stack: bbolt's Get does not keep
	// it, and boltdb.Key would allocate it.
	var buf [64]byte
	raw := t.b(bucketCustomers).Get(appendKey(buf[:0], t.tenant, id))
	if raw == nil {
		return nil, fmt.Errorf("customer %q: %w", id, fault.ErrNotFound)
	}
	return decodeCustomer(raw)
}

// appendKey appends boltdb.Key(tenant, id) to b.
func appendKey(b []byte, tenant, id string) []byte {
	return append(append(append(b, tenant...), boltdb.Sep), id...)
}

func (t *tx) putCustomer(c *domain.Customer) error {
	key := boltdb.Key(t.tenant, c.ID)
	if err := t.b(bucketMeta).Put(key, encodeMeta(c)); err != nil {
		return err
	}
	raw, err := c.MarshalBinary()
	if err != nil {
		return fmt.Errorf("store: encode customer: %w", err)
	}
	return t.b(bucketCustomers).Put(key, raw)
}

// decodeCustomer decodes a record of the customers bucket (binary since
// schema 6, domain/customer_codec.go).
func decodeCustomer(raw []byte) (*domain.Customer, error) {
	c := new(domain.Customer)
	if err := c.UnmarshalBinary(raw); err != nil {
		return nil, fmt.Errorf("store: decode customer: %w", err)
	}
	return c, nil
}

// Scratch keys of the cached counters.
type (
	customerStatsSlot string
	tenantStatsSlot   string
)

func decodeStats(raw []byte) (*domain.Stats, error) {
	s := new(domain.Stats)
	if err := s.UnmarshalBinary(raw); err != nil {
		return nil, fmt.Errorf("store: decode stats: %w", err)
	}
	return s, nil
}

func decodeOrder(raw []byte) (*domain.Order, error) {
	o := new(domain.Order)
	if err := o.UnmarshalBinary(raw); err != nil {
		return nil, fmt.Errorf("store: decode order: %w", err)
	}
	return o, nil
}

// cached returns the scratch copy of a JSON record, loading it from bucket
// on first use in the transaction and arranging to write it back (or delete
// it, when set to nil) before the commit.
func cached[T any](t *tx, key any, bucket, dbKey []byte) (*T, error) {
	if t.scratch != nil {
		if v, ok := t.scratch.Get(key); ok {
			if v.(*T) != nil {
				return v.(*T), nil
			}
			fresh := new(T) // deleted earlier in this transaction: starts empty
			t.scratch.Set(key, fresh)
			return fresh, nil
		}
	}
	v := new(T)
	if raw := t.b(bucket).Get(dbKey); raw != nil {
		var err error
		if v, err = decode[T](raw); err != nil {
			return nil, err
		}
	}
	if t.scratch != nil {
		t.scratch.Set(key, v)
		sc := t.scratch
		t.scratch.BeforeCommit(key, func(btx *bolt.Tx) error {
			cur, _ := sc.Get(key)
			if cur.(*T) == nil {
				return btx.Bucket(bucket).Delete(dbKey)
			}
			return put(btx.Bucket(bucket), dbKey, cur)
		})
	}
	return v, nil
}

// customerStats is a write transaction's decoded customer counters of one
// tenant, in the group commit's scratch. They are written back once, in key
// order, before the commit; a nil entry is deleted.
type customerStats map[string]*domain.Stats

// customerStats returns the tenant's cache, registering its write-back on
// first use in the transaction.
func (t *tx) customerStats() customerStats {
	slot := customerStatsSlot(t.tenant)
	if v, ok := t.scratch.Get(slot); ok {
		return v.(customerStats)
	}
	cache := customerStats{}
	t.scratch.Set(slot, cache)
	tenant := t.tenant
	t.scratch.BeforeCommit(slot, func(btx *bolt.Tx) error {
		b := btx.Bucket(bucketCustomerData)
		for _, id := range slices.Sorted(maps.Keys(cache)) {
			key := statsKey(tenant, id)
			var err error
			if st := cache[id]; st == nil {
				err = b.Delete(key)
			} else {
				err = b.Put(key, st.AppendBinary(nil))
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	return cache
}

// stats returns a customer's counters; in a write transaction, changes to
// the returned value are stored at commit.
func (t *tx) stats(id string) (*domain.Stats, error) {
	var cache customerStats
	if t.scratch != nil {
		cache = t.customerStats()
		if st, ok := cache[id]; ok {
			if st == nil { // deleted earlier in this transaction: starts empty
				st = &domain.Stats{}
				cache[id] = st
			}
			return st, nil
		}
	}
	st := &domain.Stats{}
	if raw := t.b(bucketCustomerData).Get(statsKey(t.tenant, id)); raw != nil {
		var err error
		if st, err = decodeStats(raw); err != nil {
			return nil, err
		}
	}
	if cache != nil {
		cache[id] = st
	}
	return st, nil
}

// deleteStats removes a customer's counters at commit.
func (t *tx) deleteStats(id string) error {
	t.customerStats()[id] = nil
	return nil
}

// tenantStats returns the tenant's counters; in a write transaction, changes
// to the returned value are stored at commit.
func (t *tx) tenantStats() (*domain.TenantStats, error) {
	return cached[domain.TenantStats](t, tenantStatsSlot(t.tenant), bucketTenantStats, []byte(t.tenant))
}

func (t *tx) indexDuplicates(c *domain.Customer, add bool) error {
	b := t.b(bucketDupIndex)
	for _, k := range c.DuplicateKeys() {
		key := boltdb.Key(t.tenant, k, c.ID)
		var err error
		if add {
			err = b.Put(key, nil)
		} else {
			err = b.Delete(key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) publishCustomer(ctx context.Context, t *tx, typ string, c *domain.Customer) error {
	_, err := s.feed.Append(ctx, t.tx, t.tenant, typ, c.ID, convert.CustomerToProto(c))
	return err
}

// CreateCustomers implements domain.Repository.
func (s *Store) CreateCustomers(ctx context.Context, tenant string, cs []*domain.Customer) ([]domain.CreateResult, error) {
	var results []domain.CreateResult
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		results = make([]domain.CreateResult, len(cs))
		t := s.writeTx(btx, tenant)
		ts, err := t.tenantStats()
		if err != nil {
			return err
		}
		for i, c := range cs {
			if raw := t.b(bucketCustomers).Get(boltdb.Key(tenant, c.ID)); raw != nil {
				stored, err := decodeCustomer(raw)
				if err != nil {
					return err
				}
				if domain.SameCustomer(stored, c) {
					results[i] = domain.CreateResult{Customer: stored}
				} else {
					results[i].Err = fmt.Errorf("customer_id %q exists with different content: %w", c.ID, fault.ErrAlreadyExists)
				}
				continue
			}
			if err := t.putCustomer(c); err != nil {
				return err
			}
			if err := t.indexDuplicates(c, true); err != nil {
				return err
			}
			ts.Add(c, nil, 1)
			if err := s.publishCustomer(ctx, t, TypeCustomerCreated, c); err != nil {
				return err
			}
			results[i] = domain.CreateResult{Customer: c, Created: true}
		}
		return nil
	})
	return results, err
}

// GetCustomer implements domain.Repository.
func (s *Store) GetCustomer(ctx context.Context, tenant, id string) (*domain.Customer, error) {
	var c *domain.Customer
	err := s.db.View(func(btx *bolt.Tx) error {
		var err error
		c, err = newTx(btx, tenant).customer(id)
		return err
	})
	return c, err
}

// UpdateCustomer implements domain.Repository.
func (s *Store) UpdateCustomer(ctx context.Context, tenant, id string, mutate func(*domain.Customer) error) (*domain.Customer, error) {
	var out *domain.Customer
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		t := s.writeTx(btx, tenant)
		old, err := t.customer(id)
		if err != nil {
			return err
		}
		c, err := t.customer(id) // a second copy for mutate to change
		if err != nil {
			return err
		}
		if err := mutate(c); err != nil {
			return err
		}
		c.Revision = old.Revision + 1
		st, err := t.stats(id)
		if err != nil {
			return err
		}
		ts, err := t.tenantStats()
		if err != nil {
			return err
		}
		ts.Add(old, st, -1)
		ts.Add(c, st, 1)
		if err := t.indexDuplicates(old, false); err != nil {
			return err
		}
		if err := t.indexDuplicates(c, true); err != nil {
			return err
		}
		if err := t.putCustomer(c); err != nil {
			return err
		}
		if err := s.publishCustomer(ctx, t, TypeCustomerUpdated, c); err != nil {
			return err
		}
		out = c
		return nil
	})
	return out, err
}

// pageToken encodes the last key of a page. Tokens are tied to the tenant:
// a token from another tenant's listing is rejected.
func pageToken(key []byte) string { return base64.RawURLEncoding.EncodeToString(key) }

// startAfter decodes a page token into the key to resume after, checking it
// lies under prefix.
func startAfter(token string, prefix []byte) ([]byte, error) {
	if token == "" {
		return nil, nil
	}
	key, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || !bytes.HasPrefix(key, prefix) {
		return nil, fault.InvalidField("page_token", "is not a token returned by this listing")
	}
	return key, nil
}

// scan walks the keys under prefix after the token's key, calling visit
// until it returns false; it returns the token of the last visited key when
// the walk stopped early.
func scan(c *bolt.Cursor, prefix []byte, token string, visit func(k, v []byte) (more bool, err error)) (string, error) {
	after, err := startAfter(token, prefix)
	if err != nil {
		return "", err
	}
	k, v := c.Seek(prefix)
	if after != nil {
		k, v = c.Seek(after)
		if k != nil && bytes.Equal(k, after) {
			k, v = c.Next()
		}
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		more, err := visit(k, v)
		if err != nil {
			return "", err
		}
		if !more {
			// Stop only if something follows under the prefix.
			if nk, _ := c.Next(); nk != nil && bytes.HasPrefix(nk, prefix) {
				return pageToken(k), nil
			}
			return "", nil
		}
	}
	return "", nil
}

// ListCustomers implements domain.Repository.
func (s *Store) ListCustomers(ctx context.Context, tenant string, f domain.Filter, p domain.Page) ([]*domain.Customer, string, error) {
	var out []*domain.Customer
	var next string
	err := s.db.View(func(btx *bolt.Tx) error {
		var err error
		next, err = scan(btx.Bucket(bucketCustomers).Cursor(), boltdb.Prefix(tenant), p.Token, func(k, v []byte) (bool, error) {
			c, err := decodeCustomer(v)
			if err != nil {
				return false, err
			}
			if f.Match(c) && c.Active() {
				out = append(out, c)
			}
			return len(out) < p.Size, nil
		})
		return err
	})
	return out, next, err
}

// Erase implements domain.Repository.
func (s *Store) Erase(ctx context.Context, tenant, id string, now time.Time) (*domain.Customer, error) {
	var out *domain.Customer
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		t := s.writeTx(btx, tenant)
		c, err := t.customer(id)
		if err != nil {
			return err
		}
		if err := t.indexDuplicates(c, false); err != nil {
			return err
		}
		c.Erase(now)
		c.Revision++
		if err := t.putCustomer(c); err != nil {
			return err
		}
		// Scrub the free text of the timeline; amounts and ids stay.
		// Collected first: bbolt cursors must not walk a bucket being written.
		data := t.b(bucketCustomerData)
		keys, evs, err := t.timeline(id)
		if err != nil {
			return err
		}
		for i, e := range evs {
			e.ScrubText()
			if err := putEvent(data, keys[i], e); err != nil {
				return err
			}
		}
		// The feed's earlier entries are scrubbed later, by ScrubFeed: up to
		// the entry before this erase's own.
		if err := t.addFeedScrub(id); err != nil {
			return err
		}
		if err := s.publishCustomer(ctx, t, TypeCustomerErased, c); err != nil {
			return err
		}
		out = c
		return nil
	})
	if err == nil {
		s.signalScrub()
	}
	return out, err
}
