package domain

import (
	"slices"
	"time"
)

// EventKind is the kind of a profile timeline record. The numbers are those
// of rapport.profile.v1.EventKind; kinds segmentation does not use
// (consultations, after-sales services, anything unknown) are EventOther.
type EventKind int32

// Profile event kinds segmentation distinguishes.
const (
	EventOther      EventKind = 0
	EventPurchase   EventKind = 1
	EventRefund     EventKind = 2
	EventComplaint  EventKind = 5
	EventSurvey     EventKind = 6
	EventContactLog EventKind = 7
	EventReferral   EventKind = 8
)

// ProfileEvent is the part of a profile timeline record segmentation needs.
type ProfileEvent struct {
	// ID is the timeline record's id.
	ID string
	// At is when it happened (the record's occur time).
	At   time.Time
	Kind EventKind
	// OrderID is the order of a purchase or a refund.
	OrderID string
	// Amount and Currency are the money of a purchase or a refund, in minor units.
	Amount   int64
	Currency string
	// ComplaintID is the complaint of a complaint record.
	ComplaintID string
	// CSAT and NPS are a survey's answers; nil when not asked.
	CSAT, NPS *int32
}

// Purchase is one purchase as segmentation keeps it.
type Purchase struct {
	OrderID  string    `json:"o"`
	At       time.Time `json:"t"`
	Amount   int64     `json:"a"`
	Currency string    `json:"c"`
	// Refunded is how much of Amount was refunded, 0 to Amount.
	Refunded int64 `json:"r,omitempty"`
}

// Net is the amount net of refunds.
func (p *Purchase) Net() int64 { return p.Amount - p.Refunded }

// State is what segmentation keeps per customer, fed by the profile change
// feed; Features are derived from it at any instant. The store keeps it in
// the binary encoding of state_codec.go; the short JSON names are those of
// schema version 1 files, which the store's migration still reads.
type State struct {
	CustomerID string `json:"id"`
	// FirstSeen is the earliest instant the customer is known to have
	// existed: the minimum of every Seen call and every applied event's time.
	FirstSeen time.Time `json:"seen,omitzero"`
	// Purchases are sorted by At; purchases with equal At stay in the order
	// they were applied.
	Purchases []Purchase `json:"p,omitempty"`
	// ComplaintIDs are the distinct complaints, sorted.
	ComplaintIDs []string `json:"cx,omitempty"`
	// LastContact is the latest contact log.
	LastContact time.Time `json:"lc,omitzero"`
	CSATSum     int64     `json:"cs,omitempty"`
	CSATCount   int64     `json:"cn,omitempty"`
	// NPS is the latest NPS answer (by NPSAt; on equal times the one applied
	// last), valid when HasNPS.
	NPS       int32     `json:"nps,omitempty"`
	NPSAt     time.Time `json:"npst,omitzero"`
	HasNPS    bool      `json:"hn,omitempty"`
	Referrals int64     `json:"ref,omitempty"`
	// Refunds is the number of refund records.
	Refunds int64 `json:"rf,omitempty"`
}

// Seen lowers FirstSeen to t. A zero t is ignored.
func (s *State) Seen(t time.Time) {
	if t.IsZero() {
		return
	}
	if s.FirstSeen.IsZero() || t.Before(s.FirstSeen) {
		s.FirstSeen = t
	}
}

// Apply folds one profile event into the state. It does not deduplicate:
// the feed follower applies each event once. Purchases may arrive in any
// order of At; each is inserted at its place.
//
// A refund counts in Refunds and raises Refunded of the first purchase with
// its OrderID that still has something left, capped at that purchase's
// Amount. A refund whose purchase is unknown only counts in Refunds (the
// profile service does not accept such refunds). Every event's time also
// counts as seen.
func (s *State) Apply(e ProfileEvent) {
	s.Seen(e.At)
	switch e.Kind {
	case EventPurchase:
		s.insertPurchase(Purchase{OrderID: e.OrderID, At: e.At, Amount: e.Amount, Currency: e.Currency})
	case EventRefund:
		s.Refunds++
		s.refund(e.OrderID, e.Amount)
	case EventComplaint:
		id := e.ComplaintID
		if id == "" {
			id = e.ID
		}
		if id == "" {
			return
		}
		if i, found := slices.BinarySearch(s.ComplaintIDs, id); !found {
			s.ComplaintIDs = slices.Insert(s.ComplaintIDs, i, id)
		}
	case EventSurvey:
		if e.CSAT != nil {
			s.CSATSum += int64(*e.CSAT)
			s.CSATCount++
		}
		if e.NPS != nil && (!s.HasNPS || !e.At.Before(s.NPSAt)) {
			s.NPS, s.NPSAt, s.HasNPS = *e.NPS, e.At, true
		}
	case EventContactLog:
		if e.At.After(s.LastContact) {
			s.LastContact = e.At
		}
	case EventReferral:
		s.Referrals++
	}
}

// insertPurchase inserts p after every purchase at or before p.At.
func (s *State) insertPurchase(p Purchase) {
	i, _ := slices.BinarySearchFunc(s.Purchases, p.At, func(q Purchase, t time.Time) int {
		if q.At.After(t) {
			return 1
		}
		return -1
	})
	s.Purchases = slices.Insert(s.Purchases, i, p)
}

func (s *State) refund(orderID string, amount int64) {
	if amount <= 0 || orderID == "" {
		return
	}
	var target *Purchase
	for i := range s.Purchases {
		p := &s.Purchases[i]
		if p.OrderID != orderID {
			continue
		}
		if target == nil {
			target = p
		}
		if p.Refunded < p.Amount {
			target = p
			break
		}
	}
	if target == nil {
		return
	}
	target.Refunded = min(target.Amount, target.Refunded+amount)
}

// MergeFrom folds o, a customer merged into this one, into s: purchases are
// the union re-sorted by At (s's before o's on equal At), complaints the
// union of ids, counters add up, FirstSeen is the earlier, LastContact the
// later, NPS the later answer (s's on equal times).
func (s *State) MergeFrom(o *State) {
	if o == nil {
		return
	}
	s.Seen(o.FirstSeen)
	if len(o.Purchases) > 0 {
		s.Purchases = append(s.Purchases, o.Purchases...)
		slices.SortStableFunc(s.Purchases, func(a, b Purchase) int { return a.At.Compare(b.At) })
	}
	for _, id := range o.ComplaintIDs {
		if i, found := slices.BinarySearch(s.ComplaintIDs, id); !found {
			s.ComplaintIDs = slices.Insert(s.ComplaintIDs, i, id)
		}
	}
	if o.LastContact.After(s.LastContact) {
		s.LastContact = o.LastContact
	}
	s.CSATSum += o.CSATSum
	s.CSATCount += o.CSATCount
	if o.HasNPS && (!s.HasNPS || o.NPSAt.After(s.NPSAt)) {
		s.NPS, s.NPSAt, s.HasNPS = o.NPS, o.NPSAt, true
	}
	s.Referrals += o.Referrals
	s.Refunds += o.Refunds
}
