package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	loyaltyv1 "rapport.dev/gen/go/rapport/loyalty/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/services/care/domain"
)

// Feed event types care reacts to.
const (
	profileCustomerCreated = "customer.created"
	profileCustomerUpdated = "customer.updated"
	profileCustomerErased  = "customer.erased"
	profileCustomerMerged  = "customer.merged"
	profileEventRecorded   = "event.recorded"
	segmentEntered         = "segment.entered"
	segmentLeft            = "segment.left"
	segmentScoresChanged   = "scores.changed"
	segmentActivity        = "activity.changed"
	loyaltyTierChanged     = "tier.changed"
)

// once marks an upstream event applied in this transaction and reports
// whether it was applied before. The followers' cursors already make each
// event apply once; the mark also covers an event delivered again under
// another sequence (a feed replayed from zero) or applied by hand.
func once(t tx, key string) bool {
	if strings.HasSuffix(key, ":0") {
		return false // no sequence: an event not from a feed, applied as is
	}
	k := boltdb.Key(t.tenant, key)
	b := t.b(bucketApplied)
	if b.Get(k) != nil {
		return true
	}
	if err := b.Put(k, nil); err != nil {
		return true // unreachable in a writable transaction; never apply twice
	}
	return false
}

// ApplyProfileEvent is the profile feed follower's handler. Customer
// records keep the time zone, owner, name, birthdays and consent, and
// reschedule the customer's plans; a purchase plans surveys N days later
// and recommendations to buyers of related categories; a complaint plans
// its follow-up with an SLA; a contact log moves the silence counted by
// not-contacted plans. Each event takes effect once: the key derives from
// the profile event, and it and the follower's cursor commit in this
// transaction.
func (s *Store) ApplyProfileEvent(ctx context.Context, btx *bolt.Tx, ev *feedv1.Event) error {
	t := tx{Tx: btx, tenant: ev.GetTenant()}
	now := s.clock.Now().UTC()
	switch ev.GetType() {
	case profileCustomerCreated, profileCustomerUpdated, profileCustomerErased, profileCustomerMerged:
		pc := &profilev1.Customer{}
		if err := ev.GetPayload().UnmarshalTo(pc); err != nil {
			return fmt.Errorf("store: %s payload: %w", ev.GetType(), err)
		}
		if once(t, "profile:seq:"+strconv.FormatUint(ev.GetSequence(), 10)) {
			return nil
		}
		c, _, err := t.customer(pc.GetCustomerId())
		if err != nil {
			return err
		}
		noteCustomer(c, pc)
		if err := t.putCustomer(c); err != nil {
			return err
		}
		return s.reconcileCustomer(t, c, now)
	case profileEventRecorded:
	default:
		return nil
	}
	e := &profilev1.Event{}
	if err := ev.GetPayload().UnmarshalTo(e); err != nil {
		return fmt.Errorf("store: %s payload: %w", ev.GetType(), err)
	}
	key := "profile:event:" + e.GetEventId()
	at := e.GetOccurTime().AsTime().UTC()
	switch k := e.GetKind().(type) {
	case *profilev1.Event_Purchase:
		if once(t, key) {
			return nil
		}
		return s.onPurchase(t, e.GetCustomerId(), key, at, k.Purchase, now)
	case *profilev1.Event_Complaint:
		if once(t, key) {
			return nil
		}
		recorded := at
		if e.GetRecordTime() != nil {
			recorded = e.GetRecordTime().AsTime().UTC()
		}
		return s.onComplaint(t, e.GetCustomerId(), key, recorded, now)
	case *profilev1.Event_ContactLog:
		if once(t, key) {
			return nil
		}
		c, _, err := t.customer(e.GetCustomerId())
		if err != nil {
			return err
		}
		if !at.After(c.LastContact) {
			return nil
		}
		c.LastContact = at
		if err := t.putCustomer(c); err != nil {
			return err
		}
		return s.reconcileTrigger(t, c, now, domain.TriggerNotContacted)
	}
	return nil
}

// noteCustomer copies what care needs of a profile record.
func noteCustomer(c *customer, pc *profilev1.Customer) {
	c.TimeZone, c.Owner = pc.GetTimeZone(), pc.GetOwner()
	c.Name = pc.GetDisplayName()
	if c.Name == "" {
		c.Name = strings.TrimSpace(pc.GetPerson().GetGivenName() + " " + pc.GetPerson().GetFamilyName())
	}
	c.Birthday, c.Lunar = nil, nil
	if b := pc.GetPerson().GetBirthday(); b.GetMonth() != 0 {
		bd := domain.Birthday{Year: int(b.GetYear()), Month: time.Month(b.GetMonth()), Day: int(b.GetDay())}
		if bd.Validate() == nil {
			c.Birthday = &bd
		}
	}
	if lb := pc.GetPerson().GetLunarBirthday(); lb.GetMonth() != 0 && domain.ValidateLunarDate(int(lb.GetMonth()), int(lb.GetDay())) == nil {
		c.Lunar = &lunarBirthday{Month: int(lb.GetMonth()), Day: int(lb.GetDay()), Leap: lb.GetLeapMonth()}
	}
	c.ProfileDNC = pc.GetDoNotContact()
	c.ProfileOptOut = nil
	for _, cs := range pc.GetConsents() {
		if ch := channelOf(cs.GetChannel()); ch != "" && !cs.GetGranted() {
			c.ProfileOptOut = append(c.ProfileOptOut, ch)
		}
	}
	c.Gone = pc.GetErased() || pc.GetMergedInto() != ""
}

func channelOf(ch profilev1.ContactChannel) string {
	switch ch {
	case profilev1.ContactChannel_CONTACT_CHANNEL_PHONE:
		return domain.ChannelCall
	case profilev1.ContactChannel_CONTACT_CHANNEL_SMS:
		return domain.ChannelSMS
	case profilev1.ContactChannel_CONTACT_CHANNEL_EMAIL:
		return domain.ChannelEmail
	case profilev1.ContactChannel_CONTACT_CHANNEL_WECHAT:
		return domain.ChannelWeChat
	case profilev1.ContactChannel_CONTACT_CHANNEL_UNSPECIFIED:
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(ch.String(), "CONTACT_CHANNEL_"))
}

// reconcileTrigger reconciles c's plans of one trigger kind.
func (s *Store) reconcileTrigger(t tx, c *customer, now time.Time, trigger string) error {
	plans, err := t.plans()
	if err != nil {
		return err
	}
	for _, p := range plans {
		if p.Trigger() == trigger {
			if err := s.reconcile(t, p, c, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// planOccurrence adds an occurrence to a targeting plan's schedule for c.
func (s *Store) planOccurrence(t tx, p *domain.Plan, c *customer, o occurrence, now time.Time, mark func(*schedule) bool) error {
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
	if mark != nil && !mark(sc) {
		return nil
	}
	o.Planned, o.At, o.SLA = o.Planned.UTC(), o.At.UTC(), o.SLA.UTC()
	if !sc.add(o) {
		return nil
	}
	return s.putSchedule(t, p.ID, c.ID, sc)
}

// daysLater is hour:minute local time, days after at's local day.
func (s *Store) daysLater(p *domain.Plan, c *customer, at time.Time, days int, clock domain.Clock) time.Time {
	loc := s.zoneFor(p, c)
	l := at.In(loc)
	return domain.LocalAt(domain.CivilDate{Year: l.Year(), Month: l.Month(), Day: l.Day() + days}, clock.Hour, clock.Minute, loc)
}

func (s *Store) onPurchase(t tx, custID, key string, at time.Time, pu *profilev1.Purchase, now time.Time) error {
	c, _, err := t.customer(custID)
	if err != nil {
		return err
	}
	var cats []string
	for _, it := range pu.GetItems() {
		if cat := it.GetCategory(); cat != "" && !slices.Contains(cats, cat) {
			cats = append(cats, cat)
		}
	}
	for _, cat := range cats {
		if !slices.Contains(c.Categories, cat) {
			c.Categories = append(c.Categories, cat)
		}
	}
	if err := t.putCustomer(c); err != nil {
		return err
	}
	plans, err := t.plans()
	if err != nil {
		return err
	}
	for _, p := range plans {
		switch {
		case p.Survey != nil:
			when := s.daysLater(p, c, at, p.Survey.DaysAfterPurchase, p.At)
			if err := s.planOccurrence(t, p, c, occurrence{Key: key, Planned: when, At: when}, now, nil); err != nil {
				return err
			}
		case p.Recommendation != nil:
			if !slices.ContainsFunc(p.Recommendation.Categories, func(x string) bool { return slices.Contains(cats, x) }) {
				continue
			}
			when := latest(at, p.Recommendation.Start, now)
			mark := func(sc *schedule) bool {
				if sc.Recommended {
					return false // told once
				}
				sc.Recommended = true
				return true
			}
			if err := s.planOccurrence(t, p, c, occurrence{Key: "recommendation", Planned: when, At: when}, now, mark); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) onComplaint(t tx, custID, key string, recorded, now time.Time) error {
	c, _, err := t.customer(custID)
	if err != nil {
		return err
	}
	plans, err := t.plans()
	if err != nil {
		return err
	}
	for _, p := range plans {
		if p.Complaint == nil {
			continue
		}
		sla := recorded.Add(time.Duration(p.Complaint.SLAHours) * time.Hour)
		if err := s.planOccurrence(t, p, c, occurrence{Key: key, Planned: recorded, At: recorded, SLA: sla}, now, nil); err != nil {
			return err
		}
	}
	return nil
}

// ApplySegmentationEvent is the segmentation feed follower's handler: a
// new value tier, a segment entered or left, reschedule the customer's
// plans (a customer who becomes a target gets the next fire planned, one
// who leaves loses it); turning dormant plans win-backs. The key is the
// segmentation event's sequence.
func (s *Store) ApplySegmentationEvent(ctx context.Context, btx *bolt.Tx, ev *feedv1.Event) error {
	t := tx{Tx: btx, tenant: ev.GetTenant()}
	now := s.clock.Now().UTC()
	key := "segmentation:" + strconv.FormatUint(ev.GetSequence(), 10)
	switch ev.GetType() {
	case segmentScoresChanged:
		sc := &segmentationv1.ScoresChange{}
		if err := ev.GetPayload().UnmarshalTo(sc); err != nil {
			return fmt.Errorf("store: %s payload: %w", ev.GetType(), err)
		}
		if once(t, key) {
			return nil
		}
		return s.updateCustomer(t, sc.GetCustomerId(), now, func(c *customer) {
			c.Tier = tierName(sc.GetAfter().GetTier())
		})
	case segmentEntered, segmentLeft:
		mc := &segmentationv1.MembershipChange{}
		if err := ev.GetPayload().UnmarshalTo(mc); err != nil {
			return fmt.Errorf("store: %s payload: %w", ev.GetType(), err)
		}
		if once(t, key) {
			return nil
		}
		entered := ev.GetType() == segmentEntered
		return s.updateCustomer(t, mc.GetCustomerId(), now, func(c *customer) {
			c.Segments = slices.DeleteFunc(c.Segments, func(x string) bool { return x == mc.GetSegmentId() })
			if entered {
				c.Segments = append(c.Segments, mc.GetSegmentId())
				slices.Sort(c.Segments)
			}
		})
	case segmentActivity:
		ac := &segmentationv1.ActivityChange{}
		if err := ev.GetPayload().UnmarshalTo(ac); err != nil {
			return fmt.Errorf("store: %s payload: %w", ev.GetType(), err)
		}
		if once(t, key) {
			return nil
		}
		after := activityName(ac.GetAfter())
		c, _, err := t.customer(ac.GetCustomerId())
		if err != nil {
			return err
		}
		turnedDormant := after == "dormant" && c.Activity != "dormant"
		c.Activity = after
		if err := t.putCustomer(c); err != nil {
			return err
		}
		if after == "active" {
			// Back before the win-back fired: nothing to win back.
			return s.cancelWinBacks(t, c)
		}
		if !turnedDormant {
			return nil
		}
		at := ac.GetTime().AsTime().UTC()
		if ac.GetTime() == nil {
			at = now
		}
		plans, err := t.plans()
		if err != nil {
			return err
		}
		for _, p := range plans {
			if p.WinBack == nil {
				continue
			}
			when := at
			if d := p.WinBack.DaysAfterDormant; d > 0 {
				when = s.daysLater(p, c, at, d, p.At)
			}
			if err := s.planOccurrence(t, p, c, occurrence{Key: key, Planned: when, At: when}, now, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// cancelWinBacks drops the pending win-back occurrences of customer c.
func (s *Store) cancelWinBacks(t tx, c *customer) error {
	plans, err := t.plans()
	if err != nil {
		return err
	}
	for _, p := range plans {
		if p.WinBack == nil {
			continue
		}
		sc, err := t.schedule(p.ID, c.ID)
		if err != nil {
			return err
		}
		if sc == nil || len(sc.Pending) == 0 {
			continue
		}
		sc.Pending = nil
		if err := s.putSchedule(t, p.ID, c.ID, sc); err != nil {
			return err
		}
	}
	return nil
}

func tierName(t segmentationv1.Tier) string {
	if t == segmentationv1.Tier_TIER_UNSPECIFIED {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(t.String(), "TIER_"))
}

func activityName(a segmentationv1.Activity) string {
	if a == segmentationv1.Activity_ACTIVITY_UNSPECIFIED {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(a.String(), "ACTIVITY_"))
}

// updateCustomer changes a customer and reschedules their plans.
func (s *Store) updateCustomer(t tx, id string, now time.Time, change func(*customer)) error {
	c, _, err := t.customer(id)
	if err != nil {
		return err
	}
	change(c)
	if err := t.putCustomer(c); err != nil {
		return err
	}
	return s.reconcileCustomer(t, c, now)
}

// ApplyLoyaltyEvent is the loyalty feed follower's handler: a tier change
// keeps the customer's "program/tier" and reschedules their plans. The key
// is the loyalty event's sequence.
func (s *Store) ApplyLoyaltyEvent(ctx context.Context, btx *bolt.Tx, ev *feedv1.Event) error {
	if ev.GetType() != loyaltyTierChanged {
		return nil
	}
	t := tx{Tx: btx, tenant: ev.GetTenant()}
	tc := &loyaltyv1.TierChange{}
	if err := ev.GetPayload().UnmarshalTo(tc); err != nil {
		return fmt.Errorf("store: %s payload: %w", ev.GetType(), err)
	}
	if once(t, "loyalty:"+strconv.FormatUint(ev.GetSequence(), 10)) {
		return nil
	}
	prefix := tc.GetProgramId() + "/"
	return s.updateCustomer(t, tc.GetCustomerId(), s.clock.Now().UTC(), func(c *customer) {
		c.LoyaltyTiers = slices.DeleteFunc(c.LoyaltyTiers, func(x string) bool { return strings.HasPrefix(x, prefix) })
		if tc.GetAfter() != "" {
			c.LoyaltyTiers = append(c.LoyaltyTiers, prefix+tc.GetAfter())
			slices.Sort(c.LoyaltyTiers)
		}
	})
}
