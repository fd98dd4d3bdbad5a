package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"time"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/etag"
	"rapport.dev/platform/fault"
	"rapport.dev/services/loyalty/domain"
)

// etagOf is a programme's etag: the hash of its content and update time.
func etagOf(p *domain.Program) string {
	c := *p
	c.Etag = ""
	return etag.Of(&c)
}

// sameRules reports whether two programmes have the same client-set fields.
func sameRules(a, b *domain.Program) bool {
	x, y := *a, *b
	x.Etag, y.Etag, x.Created, y.Created, x.Updated, y.Updated = "", "", time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return reflect.DeepEqual(x, y)
}

// CreateProgram stores a programme under its id; the same programme again
// returns the stored one, another under the same id fails with
// fault.ErrAlreadyExists.
func (s *Store) CreateProgram(ctx context.Context, tenant string, p *domain.Program) (*domain.Program, bool, error) {
	now := s.clock.Now().UTC()
	var out *domain.Program
	created := false
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant, program: p.ID}
		old, err := t.loadProgram()
		switch {
		case err == nil:
			if !sameRules(old, p) {
				return fmt.Errorf("program %q exists with other rules: %w", p.ID, fault.ErrAlreadyExists)
			}
			out, created = old, false
			return nil
		case !errors.Is(err, fault.ErrNotFound):
			return err
		}
		c := *p
		c.Created, c.Updated = now, now
		c.Etag = etagOf(&c)
		out, created = &c, true
		return boltdb.PutJSON(t.b(bucketPrograms), boltdb.Key(tenant, p.ID), &c)
	})
	return out, created, err
}

// GetProgram reads a programme.
func (s *Store) GetProgram(ctx context.Context, tenant, id string) (*domain.Program, error) {
	var out *domain.Program
	err := s.db.View(func(btx *bolt.Tx) error {
		var err error
		out, err = tx{Tx: btx, tenant: tenant, program: id}.loadProgram()
		return err
	})
	return out, err
}

// UpdateProgram replaces a programme's rules when p.Etag matches the stored
// one (fault.ErrConflict otherwise).
func (s *Store) UpdateProgram(ctx context.Context, tenant string, p *domain.Program) (*domain.Program, error) {
	now := s.clock.Now().UTC()
	var out *domain.Program
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant, program: p.ID}
		old, err := t.loadProgram()
		if err != nil {
			return err
		}
		if p.Etag != old.Etag {
			return fmt.Errorf("program %q changed since it was read (etag %q, now %q): %w", p.ID, p.Etag, old.Etag, fault.ErrConflict)
		}
		c := *p
		c.Created, c.Updated = old.Created, now
		c.Etag = etagOf(&c)
		out = &c
		return boltdb.PutJSON(t.b(bucketPrograms), boltdb.Key(tenant, p.ID), &c)
	})
	return out, err
}

// ListPrograms lists a tenant's programmes in id order.
func (s *Store) ListPrograms(ctx context.Context, tenant string) ([]*domain.Program, error) {
	var out []*domain.Program
	err := s.db.View(func(btx *bolt.Tx) error {
		prefix := boltdb.Prefix(tenant)
		c := btx.Bucket(bucketPrograms).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			p, err := boltdb.GetJSON[domain.Program](v)
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// Member returns the member view at now.
func (s *Store) Member(ctx context.Context, tenant, program, customer string) (*View, error) {
	now := s.clock.Now().UTC()
	var out *View
	err := s.db.View(func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant, program: program}
		p, err := t.loadProgram()
		if err != nil {
			return err
		}
		m, err := t.loadMember(customer)
		if err != nil {
			return err
		}
		out = view(p, m, now)
		return nil
	})
	return out, err
}

// Entries lists a member's ledger newest first; the token is the sequence
// to continue below.
func (s *Store) Entries(ctx context.Context, tenant, program, customer, token string, size int) ([]*domain.Entry, string, error) {
	var out []*domain.Entry
	var next string
	err := s.db.View(func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant, program: program}
		if _, err := t.loadMember(customer); err != nil {
			return err
		}
		from := uint64(1<<64 - 1)
		if token != "" {
			raw, err := base64.RawURLEncoding.DecodeString(token)
			if err != nil || len(raw) != 8 {
				return fault.InvalidField("page_token", "is not a token returned by this listing")
			}
			from = binary.BigEndian.Uint64(raw)
		}
		prefix := boltdb.Prefix(tenant, program, customer)
		c := btx.Bucket(bucketEntries).Cursor()
		k, v := c.Seek(entryKey(tenant, program, customer, from))
		if k == nil || !bytes.Equal(k, entryKey(tenant, program, customer, from)) {
			k, v = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
			e, err := boltdb.GetJSON[domain.Entry](v)
			if err != nil {
				return err
			}
			if len(out) == size {
				next = base64.RawURLEncoding.EncodeToString(boltdb.U64(e.Seq))
				break
			}
			out = append(out, e)
		}
		return nil
	})
	return out, next, err
}
