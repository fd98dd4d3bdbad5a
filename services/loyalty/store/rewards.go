package store

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/ident"
	"rapport.dev/services/loyalty/domain"
)

// Rewards and coupons.
//
// A reward redemption is one transaction: the redeem entry (RecordTx, under
// the caller's idempotency key), one unit of the reward's stock and the
// coupon it issues. The coupon's code derives from the key, so a retry
// finds the first call's coupon instead of issuing a second one.
//
// A campaign issues at most one coupon per member (the coupon_of bucket),
// so a retried issue adds nothing.
//
// Codes are an HMAC of what identifies the coupon under a random secret
// kept in the meta bucket ("coupon_secret", created with the first
// coupon): deterministic for retries, not computable from the ids alone.

// Bounds of a reward.
const (
	// DefaultCouponValidDays is how long a reward's coupon stays valid when
	// the reward says 0.
	DefaultCouponValidDays = 30
	// MaxCouponValidDays bounds a reward's coupon validity.
	MaxCouponValidDays = 3650
	maxRewardPoints    = 1_000_000_000_000
	maxRewardStock     = 1_000_000_000_000
	maxRewardName      = 200
	// issueBatch bounds the members one IssueCoupons transaction handles, so
	// a large segment does not hold the group commit for long.
	issueBatch = 500
)

// Reward is an item of a programme's catalogue.
type Reward struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Points int64  `json:"points"`
	// Stock is the units left; Initial is the stock the reward was created
	// with, what a retried create is compared against.
	Stock           int64 `json:"stock"`
	Initial         int64 `json:"initial"`
	CouponValidDays int32 `json:"coupon_valid_days,omitempty"`
}

// Validate checks a reward to create; the fields are named as in the API's Reward.
func (r *Reward) Validate() error {
	var v fault.Violations
	ident.Check(&v, "reward_id", r.ID, true)
	switch {
	case strings.TrimSpace(r.Name) == "":
		v.Add("display_name", "is required")
	case utf8.RuneCountInString(r.Name) > maxRewardName:
		v.Add("display_name", "must be at most %d characters", maxRewardName)
	}
	if r.Points < 1 || r.Points > maxRewardPoints {
		v.Add("points", "must be between 1 and %d, got %d", int64(maxRewardPoints), r.Points)
	}
	if r.Stock < 0 || r.Stock > maxRewardStock {
		v.Add("stock", "must be between 0 and %d, got %d", int64(maxRewardStock), r.Stock)
	}
	if r.CouponValidDays < 0 || r.CouponValidDays > MaxCouponValidDays {
		v.Add("coupon_valid_days", "must be between 0 (meaning %d) and %d, got %d", DefaultCouponValidDays, MaxCouponValidDays, r.CouponValidDays)
	}
	return v.Err()
}

// validDays is how long the reward's coupons stay valid.
func (r *Reward) validDays() int {
	if r.CouponValidDays == 0 {
		return DefaultCouponValidDays
	}
	return int(r.CouponValidDays)
}

// CouponState is a coupon's state; the numbers are those of
// rapport.loyalty.v1.CouponState.
type CouponState int32

// Coupon states.
const (
	CouponIssued  CouponState = 1
	CouponUsed    CouponState = 2
	CouponExpired CouponState = 3
)

// Coupon is a single-use coupon issued to a member.
type Coupon struct {
	Code     string `json:"code"`
	Customer string `json:"customer"`
	// Campaign is the campaign, or the reward when Reward is set.
	Campaign    string    `json:"campaign"`
	Reward      bool      `json:"reward,omitempty"`
	Description string    `json:"desc,omitempty"`
	Issued      time.Time `json:"issued"`
	Expires     time.Time `json:"expires"`
	// Used is when it was used, zero until then; Order what it was used on.
	Used  time.Time `json:"used,omitzero"`
	Order string    `json:"order,omitempty"`
	// State is not stored: it is computed when the coupon is read.
	State CouponState `json:"-"`
}

// at sets the coupon's state at now and returns it.
func (c *Coupon) at(now time.Time) *Coupon {
	switch {
	case !c.Used.IsZero():
		c.State = CouponUsed
	case !now.Before(c.Expires):
		c.State = CouponExpired
	default:
		c.State = CouponIssued
	}
	return c
}

var couponSecretKey = []byte("coupon_secret")

// couponSecret returns the database's coupon secret, creating it on first use.
func couponSecret(btx *bolt.Tx) ([]byte, error) {
	meta := btx.Bucket(boltdb.MetaBucket)
	if s := meta.Get(couponSecretKey); s != nil {
		return boltdb.Copy(s), nil
	}
	s := make([]byte, 32)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("store: coupon secret: %w", err)
	}
	return s, meta.Put(couponSecretKey, s)
}

var codeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// couponCode is the code of the coupon the parts identify: 16 characters
// of A-Z and 2-7 (80 bits of an HMAC-SHA256).
func couponCode(secret []byte, parts ...any) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(boltdb.Key(parts...))
	return codeEncoding.EncodeToString(mac.Sum(nil)[:10])
}

func (t tx) rewardKey(id string) []byte { return boltdb.Key(t.tenant, t.program, id) }

func (t tx) loadReward(id string) (*Reward, error) {
	raw := t.b(bucketRewards).Get(t.rewardKey(id))
	if raw == nil {
		return nil, fmt.Errorf("reward %q of program %q: %w", id, t.program, fault.ErrNotFound)
	}
	return boltdb.GetJSON[Reward](raw)
}

func (t tx) putReward(r *Reward) error {
	return boltdb.PutJSON(t.b(bucketRewards), t.rewardKey(r.ID), r)
}

func (t tx) couponKey(code string) []byte { return boltdb.Key(t.tenant, t.program, code) }

func (t tx) loadCoupon(code string) (*Coupon, error) {
	raw := t.b(bucketCoupons).Get(t.couponKey(code))
	if raw == nil {
		return nil, fmt.Errorf("coupon %q of program %q: %w", code, t.program, fault.ErrNotFound)
	}
	return boltdb.GetJSON[Coupon](raw)
}

// issueCoupon stores a new coupon; a code already taken (a 2^-80 chance)
// fails rather than overwrite another member's coupon.
func (t tx) issueCoupon(c *Coupon) error {
	if t.b(bucketCoupons).Get(t.couponKey(c.Code)) != nil {
		return fmt.Errorf("store: coupon code %q is taken", c.Code)
	}
	return boltdb.PutJSON(t.b(bucketCoupons), t.couponKey(c.Code), c)
}

// CreateReward adds a reward to a programme's catalogue under its id. The
// same reward again returns the stored one (with its current stock) and
// false; another under the same id fails with fault.ErrAlreadyExists.
func (s *Store) CreateReward(ctx context.Context, tenant, program string, r Reward) (*Reward, bool, error) {
	if err := r.Validate(); err != nil {
		return nil, false, err
	}
	r.Initial = r.Stock
	var out *Reward
	created := false
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant, program: program}
		if _, err := t.loadProgram(); err != nil {
			return err
		}
		old, err := t.loadReward(r.ID)
		switch {
		case err == nil:
			if old.Name != r.Name || old.Points != r.Points || old.Initial != r.Initial || old.CouponValidDays != r.CouponValidDays {
				return fmt.Errorf("reward %q exists with other content: %w", r.ID, fault.ErrAlreadyExists)
			}
			out, created = old, false
			return nil
		case !errors.Is(err, fault.ErrNotFound):
			return err
		}
		c := r
		out, created = &c, true
		return t.putReward(&c)
	})
	return out, created, err
}

// ListRewards lists a programme's catalogue in id order.
func (s *Store) ListRewards(ctx context.Context, tenant, program string) ([]*Reward, error) {
	var out []*Reward
	err := s.db.View(func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant, program: program}
		if _, err := t.loadProgram(); err != nil {
			return err
		}
		prefix := boltdb.Prefix(tenant, program)
		c := btx.Bucket(bucketRewards).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			r, err := boltdb.GetJSON[Reward](v)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// Redemption is the outcome of RedeemReward.
type Redemption struct {
	// Entry is the redeem entry; View the member after it.
	Entry *domain.Entry
	View  *View
	// Coupon is the coupon issued for the reward.
	Coupon *Coupon
	// Reward is the reward with its stock after the redemption.
	Reward *Reward
	// Replayed is true when the key had been used for this redemption
	// before: everything is the first call's, and nothing changed.
	Replayed bool
}

// RedeemReward takes a reward's points from a member, one unit of its
// stock, and issues the member a coupon valid for the reward's days (counted
// in the member's zone), all in one transaction. The key makes a retry
// return the first redemption's entry and coupon without taking stock
// again; a key used for another request fails with fault.ErrAlreadyExists.
// An unknown reward or member is fault.ErrNotFound; no stock left or too few
// points is fault.ErrFailedPrecondition; nothing changes on any error.
func (s *Store) RedeemReward(ctx context.Context, tenant, program, rewardID, customer, key string) (*Redemption, error) {
	var out *Redemption
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		out = nil
		now := s.clock.Now().UTC()
		t := tx{Tx: btx, tenant: tenant, program: program}
		if _, err := t.loadProgram(); err != nil {
			return err
		}
		r, err := t.loadReward(rewardID)
		if err != nil {
			return err
		}
		// A retry is answered even when the stock has run out since.
		retry := t.b(bucketKeys).Get(boltdb.Key(tenant, program, customer, key)) != nil
		if !retry && r.Stock <= 0 {
			return fmt.Errorf("reward %q is out of stock: %w", r.ID, fault.ErrFailedPrecondition)
		}
		// RecordTx writes nothing unless the entry applies, and everything
		// below comes after it: a refusal leaves the stock and coupons as they were.
		res, err := s.RecordTx(ctx, btx, tenant, program, customer,
			Op{Kind: domain.KindRedeem, Key: key, Points: r.Points, Reason: "reward " + r.ID})
		if err != nil {
			return err
		}
		secret, err := couponSecret(btx)
		if err != nil {
			return err
		}
		code := couponCode(secret, "reward", tenant, program, customer, key)
		if res.Replayed {
			c, err := t.loadCoupon(code)
			if errors.Is(err, fault.ErrNotFound) {
				// The key was spent by a plain Redeem with the same points and reason.
				return fmt.Errorf("idempotency key %q was used for another request: %w", key, fault.ErrAlreadyExists)
			}
			if err != nil {
				return err
			}
			out = &Redemption{Entry: res.Entry, View: res.View, Coupon: c.at(now), Reward: r, Replayed: true}
			return nil
		}
		m, err := t.loadMember(customer)
		if err != nil {
			return err
		}
		r.Stock--
		if err := t.putReward(r); err != nil {
			return err
		}
		c := &Coupon{Code: code, Customer: customer, Campaign: r.ID, Reward: true, Description: r.Name, Issued: now,
			Expires: now.In(m.location()).AddDate(0, 0, r.validDays()).UTC()}
		if err := t.issueCoupon(c); err != nil {
			return err
		}
		out = &Redemption{Entry: res.Entry, View: res.View, Coupon: c.at(now), Reward: r}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Issue is a campaign's issue of coupons.
type Issue struct {
	Campaign    string
	Customers   []string
	Description string
	Expires     time.Time
}

// Issued is the outcome of IssueCoupons.
type Issued struct {
	// Issued is the number of coupons newly issued.
	Issued int64
	// Coupons are the campaign's coupons of the customers named that are
	// members, new or issued before, in the order they were named.
	Coupons []*Coupon
	// NotMembers are the customers named that are not members of the
	// programme: they get no coupon.
	NotMembers []string
}

// IssueCoupons issues a campaign's coupons to members, one per member: a
// member who has the campaign's coupon keeps it, so a retry issues nothing
// new. Customers who are not members are skipped and listed. The same
// campaign with another description or expiry fails with
// fault.ErrAlreadyExists; an expiry not after now is invalid. Members are
// issued in transactions of up to issueBatch; an error in a later one
// leaves the earlier ones issued, which a retry completes.
func (s *Store) IssueCoupons(ctx context.Context, tenant, program string, in Issue) (*Issued, error) {
	now := s.clock.Now().UTC()
	in.Expires = in.Expires.UTC()
	if !in.Expires.After(now) {
		return nil, fault.InvalidField("expire_time", "must be in the future, got %s", in.Expires.Format(time.RFC3339))
	}
	seen := make(map[string]bool, len(in.Customers))
	var customers []string
	for _, c := range in.Customers {
		if !seen[c] {
			seen[c] = true
			customers = append(customers, c)
		}
	}
	// Refuse a conflicting campaign before anything is written.
	err := s.db.View(func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant, program: program}
		if _, err := t.loadProgram(); err != nil {
			return err
		}
		for _, c := range customers {
			if _, err := t.campaignCoupon(in, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := &Issued{}
	for chunk := range slices.Chunk(customers, issueBatch) {
		var part Issued
		err := s.db.Update(ctx, func(btx *bolt.Tx) error {
			part = Issued{}
			t := tx{Tx: btx, tenant: tenant, program: program}
			if _, err := t.loadProgram(); err != nil {
				return err
			}
			secret, err := couponSecret(btx)
			if err != nil {
				return err
			}
			for _, cust := range chunk {
				c, err := t.campaignCoupon(in, cust)
				if err != nil {
					return err
				}
				if c != nil {
					part.Coupons = append(part.Coupons, c.at(now))
					continue
				}
				if t.b(bucketMembers).Get(t.memberKey(cust)) == nil {
					part.NotMembers = append(part.NotMembers, cust)
					continue
				}
				c = &Coupon{Code: couponCode(secret, "campaign", tenant, program, in.Campaign, cust), Customer: cust,
					Campaign: in.Campaign, Description: in.Description, Issued: now, Expires: in.Expires}
				if err := t.issueCoupon(c); err != nil {
					return err
				}
				if err := t.b(bucketCouponOf).Put(boltdb.Key(tenant, program, in.Campaign, cust), []byte(c.Code)); err != nil {
					return err
				}
				part.Issued++
				part.Coupons = append(part.Coupons, c.at(now))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		out.Issued += part.Issued
		out.Coupons = append(out.Coupons, part.Coupons...)
		out.NotMembers = append(out.NotMembers, part.NotMembers...)
	}
	return out, nil
}

// campaignCoupon returns the coupon the campaign issued to a customer, nil
// when none; one issued with another description or expiry is a conflict.
func (t tx) campaignCoupon(in Issue, customer string) (*Coupon, error) {
	code := t.b(bucketCouponOf).Get(boltdb.Key(t.tenant, t.program, in.Campaign, customer))
	if code == nil {
		return nil, nil
	}
	c, err := t.loadCoupon(string(code))
	if err != nil {
		return nil, fmt.Errorf("store: coupon of campaign %q for %q: %w", in.Campaign, customer, err)
	}
	if c.Description != in.Description || !c.Expires.Equal(in.Expires) {
		return nil, fmt.Errorf("campaign %q issued its coupons with another description or expiry: %w", in.Campaign, fault.ErrAlreadyExists)
	}
	return c, nil
}

// GetCoupon returns a coupon with its state now.
func (s *Store) GetCoupon(ctx context.Context, tenant, program, code string) (*Coupon, error) {
	now := s.clock.Now().UTC()
	var out *Coupon
	err := s.db.View(func(btx *bolt.Tx) error {
		c, err := tx{Tx: btx, tenant: tenant, program: program}.loadCoupon(code)
		if err != nil {
			return err
		}
		out = c.at(now)
		return nil
	})
	return out, err
}

// UseCoupon uses a coupon once, for the member it was issued to, before it
// expires; otherwise it fails with fault.ErrFailedPrecondition and changes
// nothing. Using it again with the same non-empty order (a retry) returns
// the used coupon. An unknown code is fault.ErrNotFound.
func (s *Store) UseCoupon(ctx context.Context, tenant, program, code, customer, order string) (*Coupon, error) {
	var out *Coupon
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		out = nil
		now := s.clock.Now().UTC()
		t := tx{Tx: btx, tenant: tenant, program: program}
		c, err := t.loadCoupon(code)
		if err != nil {
			return err
		}
		if c.at(now).State == CouponUsed && c.Customer == customer && order != "" && c.Order == order {
			out = c // a retry of this use
			return nil
		}
		switch {
		case c.Customer != customer:
			return fmt.Errorf("coupon %q was issued to another member: %w", code, fault.ErrFailedPrecondition)
		case c.State == CouponUsed:
			return fmt.Errorf("coupon %q was already used at %s: %w", code, c.Used.Format(time.RFC3339), fault.ErrFailedPrecondition)
		case c.State == CouponExpired:
			return fmt.Errorf("coupon %q expired at %s: %w", code, c.Expires.Format(time.RFC3339), fault.ErrFailedPrecondition)
		}
		c.Used, c.Order = now, order
		if err := boltdb.PutJSON(t.b(bucketCoupons), t.couponKey(code), c); err != nil {
			return err
		}
		out = c.at(now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
