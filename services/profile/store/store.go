package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
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
}

var _ domain.Repository = (*Store)(nil)

// New returns a store over an open profile.db and its feed.
func New(db *boltdb.DB, log *feed.Log) *Store { return &Store{db: db, feed: log} }

// decode and put keep the store's call sites short; the encoding is boltdb's.
func decode[T any](raw []byte) (*T, error) { return boltdb.GetJSON[T](raw) }

func put(b *bolt.Bucket, key []byte, v any) error { return boltdb.PutJSON(b, key, v) }

// tx bundles the buckets of one transaction and caches the tenant counters,
// written back once at the end.
type tx struct {
	tx      *bolt.Tx
	tenant  string
	tstats  *domain.TenantStats
	changed bool
}

func newTx(t *bolt.Tx, tenant string) *tx { return &tx{tx: t, tenant: tenant} }

func (t *tx) b(name []byte) *bolt.Bucket { return t.tx.Bucket(name) }

func (t *tx) customer(id string) (*domain.Customer, error) {
	raw := t.b(bucketCustomers).Get(boltdb.Key(t.tenant, id))
	if raw == nil {
		return nil, fmt.Errorf("customer %q: %w", id, fault.ErrNotFound)
	}
	return decode[domain.Customer](raw)
}

func (t *tx) putCustomer(c *domain.Customer) error {
	return put(t.b(bucketCustomers), boltdb.Key(t.tenant, c.ID), c)
}

func (t *tx) stats(id string) (*domain.Stats, error) {
	raw := t.b(bucketStats).Get(boltdb.Key(t.tenant, id))
	if raw == nil {
		return &domain.Stats{}, nil
	}
	return decode[domain.Stats](raw)
}

func (t *tx) putStats(id string, s *domain.Stats) error {
	return put(t.b(bucketStats), boltdb.Key(t.tenant, id), s)
}

func (t *tx) tenantStats() (*domain.TenantStats, error) {
	if t.tstats != nil {
		return t.tstats, nil
	}
	raw := t.b(bucketTenantStats).Get([]byte(t.tenant))
	if raw == nil {
		t.tstats = &domain.TenantStats{}
		return t.tstats, nil
	}
	s, err := decode[domain.TenantStats](raw)
	t.tstats = s
	return s, err
}

// flush writes the tenant counters back if they changed.
func (t *tx) flush() error {
	if !t.changed {
		return nil
	}
	return put(t.b(bucketTenantStats), []byte(t.tenant), t.tstats)
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
		t := newTx(btx, tenant)
		ts, err := t.tenantStats()
		if err != nil {
			return err
		}
		for i, c := range cs {
			if raw := t.b(bucketCustomers).Get(boltdb.Key(tenant, c.ID)); raw != nil {
				stored, err := decode[domain.Customer](raw)
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
			t.changed = true
			if err := s.publishCustomer(ctx, t, TypeCustomerCreated, c); err != nil {
				return err
			}
			results[i] = domain.CreateResult{Customer: c, Created: true}
		}
		return t.flush()
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
		t := newTx(btx, tenant)
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
		t.changed = true
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
		return t.flush()
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
			c, err := decode[domain.Customer](v)
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
		t := newTx(btx, tenant)
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
		evb := t.b(bucketEvents)
		keys, evs, err := t.timeline(id)
		if err != nil {
			return err
		}
		for i, e := range evs {
			e.ScrubText()
			if err := put(evb, keys[i], e); err != nil {
				return err
			}
		}
		if err := s.publishCustomer(ctx, t, TypeCustomerErased, c); err != nil {
			return err
		}
		out = c
		return nil
	})
	return out, err
}
