package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/etag"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/ident"
	"rapport.dev/services/care/domain"
)

// etagOf is a plan's etag: the hash of its content and update time.
func etagOf(p *domain.Plan) string {
	c := *p
	c.Etag = ""
	return etag.Of(&c)
}

// samePlan reports whether two plans have the same client-set fields.
func samePlan(a, b *domain.Plan) bool {
	x, y := *a, *b
	x.Etag, y.Etag, x.Created, y.Created, x.Updated, y.Updated = "", "", time.Time{}, time.Time{}, time.Time{}, time.Time{}
	// Compare as stored, so nil and empty lists are the same.
	rx, _ := json.Marshal(&x)
	ry, _ := json.Marshal(&y)
	return bytes.Equal(rx, ry)
}

// CreatePlan stores a plan under its id and schedules its customers; the
// same plan again returns the stored one (created false), another plan
// under the same id fails with fault.ErrAlreadyExists. An invalid plan
// fails with *fault.Invalid naming the request fields.
func (s *Store) CreatePlan(ctx context.Context, tenant string, p *domain.Plan) (*domain.Plan, bool, error) {
	if err := p.Validate(); err != nil {
		return nil, false, err
	}
	now := s.clock.Now().UTC()
	var out *domain.Plan
	created := false
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		old, err := t.plan(p.ID)
		switch {
		case err == nil:
			if !samePlan(old, p) {
				return fmt.Errorf("plan %q exists with other content: %w", p.ID, fault.ErrAlreadyExists)
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
		if err := boltdb.PutJSON(t.b(bucketPlans), boltdb.Key(tenant, p.ID), &c); err != nil {
			return err
		}
		return s.reconcilePlan(t, &c, now)
	})
	return out, created, err
}

// GetPlan reads a plan.
func (s *Store) GetPlan(ctx context.Context, tenant, id string) (*domain.Plan, error) {
	var out *domain.Plan
	err := s.db.View(func(btx *bolt.Tx) error {
		var err error
		out, err = tx{Tx: btx, tenant: tenant}.plan(id)
		return err
	})
	return out, err
}

// UpdatePlan replaces a plan when p.Etag matches the stored one
// (fault.ErrConflict otherwise) and moves its customers' scheduled work to
// the new rules; work already due is kept.
func (s *Store) UpdatePlan(ctx context.Context, tenant string, p *domain.Plan) (*domain.Plan, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	now := s.clock.Now().UTC()
	var out *domain.Plan
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		old, err := t.plan(p.ID)
		if err != nil {
			return err
		}
		if p.Etag != old.Etag {
			return fmt.Errorf("plan %q changed since it was read (etag %q, now %q): %w", p.ID, p.Etag, old.Etag, fault.ErrConflict)
		}
		c := *p
		c.Created, c.Updated = old.Created, now
		c.Etag = etagOf(&c)
		out = &c
		if err := boltdb.PutJSON(t.b(bucketPlans), boltdb.Key(tenant, p.ID), &c); err != nil {
			return err
		}
		if old.Trigger() != c.Trigger() || !reflect.DeepEqual(old.Revisit, c.Revisit) {
			// Another rhythm is another series: drop the pending recurring
			// occurrence not yet due, so reconcile plans the new one.
			if err := s.dropFutureRecurring(t, c.ID, now); err != nil {
				return err
			}
		}
		return s.reconcilePlan(t, &c, now)
	})
	return out, err
}

func (s *Store) dropFutureRecurring(t tx, plan string, now time.Time) error {
	prefix := boltdb.Prefix(t.tenant, plan)
	c := t.b(bucketSchedules).Cursor()
	type upd struct {
		cust string
		sc   *schedule
	}
	var updates []upd
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		sc, err := boltdb.GetJSON[schedule](v)
		if err != nil {
			return err
		}
		sc.Pending = slices.DeleteFunc(sc.Pending, func(o occurrence) bool { return o.recurring() && o.At.After(now) })
		updates = append(updates, upd{string(k[len(prefix):]), sc})
	}
	for _, u := range updates {
		if err := s.putSchedule(t, plan, u.cust, u.sc); err != nil {
			return err
		}
	}
	return nil
}

// ListPlans lists a tenant's plans in id order.
func (s *Store) ListPlans(ctx context.Context, tenant string) ([]*domain.Plan, error) {
	var out []*domain.Plan
	err := s.db.View(func(btx *bolt.Tx) error {
		var err error
		out, err = tx{Tx: btx, tenant: tenant}.plans()
		return err
	})
	return out, err
}

// MaxPreview is the most fire times Preview returns.
const MaxPreview = 50

// Preview returns the next n instants (0 means 5, at most MaxPreview) at
// which plan fires for customer — its pending occurrences and, for a
// recurring plan, the series after them — and the customer's time zone.
// A customer the plan does not target has none.
func (s *Store) Preview(ctx context.Context, tenant, planID, customerID string, n int) ([]time.Time, string, error) {
	switch {
	case n < 0:
		return nil, "", fault.InvalidField("count", "must not be negative, got %d", n)
	case n == 0:
		n = 5
	case n > MaxPreview:
		n = MaxPreview
	}
	now := s.clock.Now().UTC()
	var out []time.Time
	var zone string
	err := s.db.View(func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		p, err := t.plan(planID)
		if err != nil {
			return err
		}
		c, found, err := t.customer(customerID)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("customer %q: %w", customerID, fault.ErrNotFound)
		}
		zone = s.zoneFor(p, c).String()
		if !targets(p, c) {
			return nil
		}
		sc, err := t.schedule(p.ID, c.ID)
		if err != nil {
			return err
		}
		if sc == nil {
			sc = &schedule{Anchor: now}
		}
		last := sc.Last
		after := latest(now, sc.Last)
		for _, o := range sc.Pending {
			out = append(out, o.At)
			if o.recurring() {
				last, after = o.Planned, latest(o.Planned, now)
			}
		}
		if p.Recurring() {
			for len(out) < n {
				next := s.nextRecurring(p, c, sc.Anchor, last, after)
				if next.IsZero() {
					break
				}
				out = append(out, next.UTC())
				last, after = next, next
			}
		}
		slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
		if len(out) > n {
			out = out[:n]
		}
		return nil
	})
	return out, zone, err
}

// SetManager records who an owner's overdue tasks escalate to; an empty
// manager removes the mapping. (Profile knows owners but not their
// managers; until an org chart exists, they are set here.)
func (s *Store) SetManager(ctx context.Context, tenant, owner, manager string) error {
	var v fault.Violations
	ident.Check(&v, "owner", owner, true)
	ident.Check(&v, "manager", manager, false)
	if err := v.Err(); err != nil {
		return err
	}
	return s.db.Update(ctx, func(btx *bolt.Tx) error {
		k := boltdb.Key(tenant, owner)
		if manager == "" {
			return btx.Bucket(bucketManagers).Delete(k)
		}
		return btx.Bucket(bucketManagers).Put(k, []byte(manager))
	})
}

// Consent is a customer's contact preferences as care stores them
// (rapport.care.v1.Consent). The profile's do-not-contact and channel
// opt-outs apply as well.
type Consent struct {
	CustomerID       string      `json:"customer_id,omitempty"`
	DoNotContact     bool        `json:"do_not_contact,omitempty"`
	OptedOutChannels []string    `json:"opted_out_channels,omitempty"`
	QuietHours       *QuietHours `json:"quiet_hours,omitempty"`
	// MaxTouchesPerWeek caps contacts; 0 means DefaultMaxTouchesPerWeek.
	MaxTouchesPerWeek int       `json:"max_touches_per_week,omitempty"`
	Updated           time.Time `json:"updated,omitzero"`
}

// QuietHours are when messages wait, on the customer's clock; they may
// wrap midnight.
type QuietHours struct {
	Start domain.Clock `json:"start"`
	End   domain.Clock `json:"end"`
}

// Validate names bad fields as in a SetConsentRequest.
func (c *Consent) Validate() error {
	var v fault.Violations
	ident.Check(&v, "consent.customer_id", c.CustomerID, true)
	for i, ch := range c.OptedOutChannels {
		ident.Check(&v, fmt.Sprintf("consent.opted_out_channels[%d]", i), ch, true)
	}
	if q := c.QuietHours; q != nil {
		checkClock(&v, "consent.quiet_hours.start", q.Start)
		checkClock(&v, "consent.quiet_hours.end", q.End)
	}
	if c.MaxTouchesPerWeek < 0 {
		v.Add("consent.max_touches_per_week", "must not be negative, got %d", c.MaxTouchesPerWeek)
	}
	return v.Err()
}

func checkClock(v *fault.Violations, field string, c domain.Clock) {
	if err := domain.ValidateClock(c.Hour, c.Minute); err != nil {
		v.Merge(field, err)
	}
}

// SetConsent stores a customer's contact preferences; they apply from the
// next occurrence that fires.
func (s *Store) SetConsent(ctx context.Context, tenant string, c Consent) (*Consent, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c.Updated = s.clock.Now().UTC()
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		cust, _, err := t.customer(c.CustomerID)
		if err != nil {
			return err
		}
		cust.Consent = c
		return t.putCustomer(cust)
	})
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// GetConsent returns a customer's contact preferences, the defaults when
// never set.
func (s *Store) GetConsent(ctx context.Context, tenant, customerID string) (*Consent, error) {
	var out Consent
	err := s.db.View(func(btx *bolt.Tx) error {
		c, _, err := tx{Tx: btx, tenant: tenant}.customer(customerID)
		if err != nil {
			return err
		}
		out = c.Consent
		out.CustomerID = customerID
		return nil
	})
	return &out, err
}
