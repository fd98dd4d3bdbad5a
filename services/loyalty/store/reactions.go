package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/fault"
	"rapport.dev/services/loyalty/domain"
)

// Feed event types the loyalty service reacts to.
const (
	profileCustomerCreated = "customer.created"
	profileCustomerUpdated = "customer.updated"
	profileEventRecorded   = "event.recorded"
	segmentEntered         = "segment.entered"
)

// bucketCustomers keeps what the profile feed says of customers that
// loyalty needs: tenant 0 customer -> customerInfo (JSON).
var bucketCustomers = []byte("customers")

// customerInfo is a customer's time zone and birth month, from the profile.
type customerInfo struct {
	TimeZone   string `json:"tz,omitempty"`
	BirthMonth int32  `json:"birth_month,omitempty"`
}

// programsOf lists the tenant's programmes.
func programsOf(btx *bolt.Tx, tenant string) ([]*domain.Program, error) {
	var out []*domain.Program
	prefix := boltdb.Prefix(tenant)
	c := btx.Bucket(bucketPrograms).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		p, err := boltdb.GetJSON[domain.Program](v)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// refused reports whether err is a business refusal a feed reaction skips
// (not a member, nothing to reverse, not enough points), as opposed to a
// failure to retry.
func refused(err error) bool {
	return errors.Is(err, fault.ErrNotFound) || errors.Is(err, fault.ErrInvalid) ||
		errors.Is(err, fault.ErrFailedPrecondition) || errors.Is(err, fault.ErrAlreadyExists)
}

// react records op for customer in every programme accept picks,
// skipping refusals.
func (s *Store) react(ctx context.Context, btx *bolt.Tx, tenant, customer string, accept func(*domain.Program) (Op, bool)) error {
	programs, err := programsOf(btx, tenant)
	if err != nil {
		return err
	}
	for _, p := range programs {
		op, ok := accept(p)
		if !ok {
			continue
		}
		if _, err := s.RecordTx(ctx, btx, tenant, p.ID, customer, op); err != nil && !refused(err) {
			return err
		}
	}
	return nil
}

// ApplyProfileEvent is the profile feed follower's handler: a purchase earns
// points in every programme of its currency (enrolling the customer when
// the programme enrols on first purchase), a refund reverses what its
// purchase earned, a referral gives the referrer the referral bonus, and
// customer records keep the member's time zone and birth month. The keys
// derive from the profile event id, and the follower's cursor commits in
// this transaction: each event takes effect exactly once.
func (s *Store) ApplyProfileEvent(ctx context.Context, btx *bolt.Tx, ev *feedv1.Event) error {
	switch ev.Type {
	case profileCustomerCreated, profileCustomerUpdated:
		c := &profilev1.Customer{}
		if err := ev.Payload.UnmarshalTo(c); err != nil {
			return fmt.Errorf("store: %s payload: %w", ev.Type, err)
		}
		return s.noteCustomer(btx, ev.Tenant, c)
	case profileEventRecorded:
	default:
		return nil
	}
	e := &profilev1.Event{}
	if err := ev.Payload.UnmarshalTo(e); err != nil {
		return fmt.Errorf("store: %s payload: %w", ev.Type, err)
	}
	key := "profile:" + e.GetEventId()
	at := e.GetOccurTime().AsTime().UTC()
	switch k := e.GetKind().(type) {
	case *profilev1.Event_Purchase:
		pu := k.Purchase
		return s.react(ctx, btx, ev.Tenant, e.GetCustomerId(), func(p *domain.Program) (Op, bool) {
			if pu.GetAmount().GetCurrency() != p.Currency {
				return Op{}, false
			}
			in := &Purchase{Order: pu.GetOrderId(), Amount: pu.GetAmount().GetAmountMinor(), Currency: p.Currency}
			for _, it := range pu.GetItems() {
				if it.GetUnitPrice().GetCurrency() == p.Currency {
					in.Lines = append(in.Lines, domain.Line{Category: it.GetCategory(), Amount: it.GetUnitPrice().GetAmountMinor() * it.GetQuantity()})
				}
			}
			return Op{Kind: domain.KindEarn, Key: key, Time: at, Purchase: in, AutoEnroll: true}, true
		})
	case *profilev1.Event_Refund:
		r := k.Refund
		return s.react(ctx, btx, ev.Tenant, e.GetCustomerId(), func(p *domain.Program) (Op, bool) {
			return Op{Kind: domain.KindReverse, Key: key, Time: at, Order: r.GetOrderId(), RefundDelta: r.GetAmount().GetAmountMinor()},
				r.GetAmount().GetCurrency() == p.Currency && r.GetAmount().GetAmountMinor() > 0
		})
	case *profilev1.Event_Referral:
		return s.react(ctx, btx, ev.Tenant, e.GetCustomerId(), func(p *domain.Program) (Op, bool) {
			return Op{Kind: domain.KindEarn, Key: key, Time: at, Points: p.ReferralBonus, Bonus: true, Reason: "referral"},
				p.ReferralBonus > 0
		})
	}
	return nil
}

// noteCustomer keeps a customer's time zone and birth month, for members
// enrolled later and for those enrolled already.
func (s *Store) noteCustomer(btx *bolt.Tx, tenant string, c *profilev1.Customer) error {
	info := customerInfo{TimeZone: c.GetTimeZone(), BirthMonth: c.GetPerson().GetBirthday().GetMonth()}
	if err := boltdb.PutJSON(btx.Bucket(bucketCustomers), boltdb.Key(tenant, c.GetCustomerId()), &info); err != nil {
		return err
	}
	programs, err := programsOf(btx, tenant)
	if err != nil {
		return err
	}
	for _, p := range programs {
		t := tx{Tx: btx, tenant: tenant, program: p.ID}
		m, err := t.loadMember(c.GetCustomerId())
		if errors.Is(err, fault.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if m.TimeZone == info.TimeZone && m.BirthMonth == info.BirthMonth {
			continue
		}
		m.TimeZone, m.BirthMonth = info.TimeZone, info.BirthMonth
		if err := t.putMember(m); err != nil {
			return err
		}
	}
	return nil
}

// customer returns what the profile said of a customer (zero if nothing).
func (t tx) customer(id string) customerInfo {
	raw := t.b(bucketCustomers).Get(boltdb.Key(t.tenant, id))
	if raw == nil {
		return customerInfo{}
	}
	info, err := boltdb.GetJSON[customerInfo](raw)
	if err != nil {
		return customerInfo{}
	}
	return *info
}

// ApplySegmentationEvent is the segmentation feed follower's handler: a
// member entering a segment with a campaign bonus in a programme gets it,
// once per entering (the key is the segmentation event's sequence).
func (s *Store) ApplySegmentationEvent(ctx context.Context, btx *bolt.Tx, ev *feedv1.Event) error {
	if ev.Type != segmentEntered {
		return nil
	}
	mc := &segmentationv1.MembershipChange{}
	if err := ev.Payload.UnmarshalTo(mc); err != nil {
		return fmt.Errorf("store: %s payload: %w", ev.Type, err)
	}
	key := "segmentation:" + strconv.FormatUint(ev.Sequence, 10)
	return s.react(ctx, btx, ev.Tenant, mc.GetCustomerId(), func(p *domain.Program) (Op, bool) {
		pts := p.SegmentBonuses[mc.GetSegmentId()]
		return Op{Kind: domain.KindEarn, Key: key, Time: mc.GetTime().AsTime().UTC(), Points: pts, Bonus: true,
			Reason: "entered segment " + mc.GetSegmentId()}, pts > 0
	})
}
