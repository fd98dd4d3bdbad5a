package store

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/services/segmentation/convert"
	"rapport.dev/services/segmentation/domain"
)

// Profile feed event types segmentation reacts to.
const (
	profileCustomerCreated = "customer.created"
	profileCustomerUpdated = "customer.updated"
	profileCustomerErased  = "customer.erased"
	profileCustomerMerged  = "customer.merged"
	profileEventRecorded   = "event.recorded"
)

// ApplyProfileEvent is the profile feed follower's handler: it updates the
// customer's state and, in the same transaction, the customer's dynamic
// memberships and timer. The follower stores its cursor in this transaction
// too, so each event takes effect exactly once.
func (s *Store) ApplyProfileEvent(ctx context.Context, btx *bolt.Tx, ev *feedv1.Event) error {
	t := tx{Tx: btx, tenant: ev.Tenant}
	now := s.clock.Now().UTC()
	var customer string
	reason := ev.Type
	switch ev.Type {
	case profileCustomerCreated, profileCustomerUpdated, profileCustomerErased:
		c := &profilev1.Customer{}
		if err := ev.Payload.UnmarshalTo(c); err != nil {
			return fmt.Errorf("store: %s payload: %w", ev.Type, err)
		}
		if c.MergedInto != "" {
			// A merged-away record (erased after the merge, say) is no
			// longer a customer: customer.merged folded it into its target.
			return nil
		}
		customer = c.CustomerId
		raw, err := proto.Marshal(c)
		if err != nil {
			return err
		}
		if err := t.b(bucketProfiles).Put(boltdb.Key(t.tenant, customer), raw); err != nil {
			return err
		}
		st, err := t.state(customer)
		if err != nil {
			return err
		}
		st.Seen(c.GetCreateTime().AsTime())
		if err := putState(t.b(bucketStates), boltdb.Key(t.tenant, customer), st); err != nil {
			return err
		}
	case profileCustomerMerged:
		c := &profilev1.Customer{}
		if err := ev.Payload.UnmarshalTo(c); err != nil {
			return fmt.Errorf("store: %s payload: %w", ev.Type, err)
		}
		return s.applyMerge(ctx, t, c.CustomerId, c.MergedInto, now)
	case profileEventRecorded:
		e := &profilev1.Event{}
		if err := ev.Payload.UnmarshalTo(e); err != nil {
			return fmt.Errorf("store: %s payload: %w", ev.Type, err)
		}
		customer = e.CustomerId
		pe := convert.ProfileEventFromProto(e)
		reason = "event." + kindName(pe.Kind)
		st, err := t.state(customer)
		if err != nil {
			return err
		}
		st.Apply(pe)
		if err := putState(t.b(bucketStates), boltdb.Key(t.tenant, customer), st); err != nil {
			return err
		}
		if pe.Kind == domain.EventPurchase {
			if err := s.adoptCurrency(t, pe.Currency); err != nil {
				return err
			}
		}
	default:
		return nil // a type from a newer profile service: not ours to act on
	}
	s.markDirty(t.tenant)
	s.touch(t, customer)
	segs, err := t.segments()
	if err != nil {
		return err
	}
	before := sizes(segs)
	if err := s.reevaluate(ctx, t, segs, customer, now, reason); err != nil {
		return err
	}
	return t.putSegments(segs, before)
}

// adoptCurrency makes the tenant's first purchase currency its reporting
// currency, unless one was set.
func (s *Store) adoptCurrency(t tx, currency string) error {
	if t.b(bucketSettings).Get([]byte(t.tenant)) != nil || currency == "" {
		return nil
	}
	st := domain.Settings{Currency: currency}
	return put(t.b(bucketSettings), []byte(t.tenant), st)
}

// applyMerge folds the merged-away customer's state into the target. The
// source leaves every segment; static lists it was on keep the person by
// listing the target instead.
func (s *Store) applyMerge(ctx context.Context, t tx, src, target string, now time.Time) error {
	from, err := t.state(src)
	if err != nil {
		return err
	}
	into, err := t.state(target)
	if err != nil {
		return err
	}
	into.MergeFrom(from)
	s.touch(t, src)
	s.touch(t, target)
	if err := putState(t.b(bucketStates), boltdb.Key(t.tenant, target), into); err != nil {
		return err
	}
	for _, b := range [][]byte{bucketStates, bucketProfiles, bucketScores} {
		if err := t.b(b).Delete(boltdb.Key(t.tenant, src)); err != nil {
			return err
		}
	}
	segs, err := t.segments()
	if err != nil {
		return err
	}
	before := sizes(segs)
	for i := range segs {
		seg := &segs[i]
		if !t.member(seg.ID, src) {
			continue
		}
		if err := s.setMembership(ctx, t, seg, src, false, now, profileCustomerMerged); err != nil {
			return err
		}
		if seg.Kind == kindStatic && !t.member(seg.ID, target) {
			if err := s.setMembership(ctx, t, seg, target, true, now, profileCustomerMerged); err != nil {
				return err
			}
		}
	}
	if err := s.schedule(t, src, time.Time{}); err != nil {
		return err
	}
	s.markDirty(t.tenant)
	if err := s.reevaluate(ctx, t, segs, target, now, profileCustomerMerged); err != nil {
		return err
	}
	return t.putSegments(segs, before)
}

// kindName names a profile record kind in membership reasons.
func kindName(k domain.EventKind) string {
	switch k {
	case domain.EventPurchase:
		return "purchase"
	case domain.EventRefund:
		return "refund"
	case domain.EventComplaint:
		return "complaint"
	case domain.EventSurvey:
		return "survey"
	case domain.EventContactLog:
		return "contact_log"
	case domain.EventReferral:
		return "referral"
	}
	return "other"
}
