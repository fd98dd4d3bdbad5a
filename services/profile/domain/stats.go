package domain

import (
	"maps"
	"slices"
	"time"
)

// Totals sums the money of one currency.
type Totals struct {
	Purchased int64 `json:"p"`
	Refunded  int64 `json:"r"`
	Discount  int64 `json:"d"`
}

// Stats are the counters behind one customer's satisfaction indicators
// (seed 000). They are updated in the transaction that records each event,
// and Apply is order-independent, so they never need a rebuild.
type Stats struct {
	Purchases           int64              `json:"purchases,omitempty"`
	Refunds             int64              `json:"refunds,omitempty"`
	DiscountedPurchases int64              `json:"discounted,omitempty"`
	Complaints          map[string]bool    `json:"complaints,omitempty"`
	CSATSum             int64              `json:"csat_sum,omitempty"`
	CSATCount           int64              `json:"csat_n,omitempty"`
	NPSCount            int64              `json:"nps_n,omitempty"`
	Promoters           int64              `json:"promoters,omitempty"`
	Passives            int64              `json:"passives,omitempty"`
	Detractors          int64              `json:"detractors,omitempty"`
	LastNPS             int32              `json:"last_nps,omitempty"`
	LastNPSTime         time.Time          `json:"last_nps_at,omitzero"`
	Totals              map[string]*Totals `json:"totals,omitempty"`
	FirstPurchase       time.Time          `json:"first,omitzero"`
	LastPurchase        time.Time          `json:"last,omitzero"`
	Referrals           int64              `json:"referrals,omitempty"`
	LastContact         time.Time          `json:"last_contact,omitzero"`
}

func (s *Stats) totals(currency string) *Totals {
	if s.Totals == nil {
		s.Totals = map[string]*Totals{}
	}
	t := s.Totals[currency]
	if t == nil {
		t = &Totals{}
		s.Totals[currency] = t
	}
	return t
}

// Apply counts one event.
func (s *Stats) Apply(e *Event) {
	switch {
	case e.Purchase != nil:
		p := e.Purchase
		s.Purchases++
		t := s.totals(p.Amount.Currency)
		t.Purchased += p.Amount.Minor
		if p.Discounted() {
			s.DiscountedPurchases++
			t.Discount += p.Discount.Minor
		}
		if s.FirstPurchase.IsZero() || e.OccurTime.Before(s.FirstPurchase) {
			s.FirstPurchase = e.OccurTime
		}
		if e.OccurTime.After(s.LastPurchase) {
			s.LastPurchase = e.OccurTime
		}
	case e.Refund != nil:
		s.Refunds++
		s.totals(e.Refund.Amount.Currency).Refunded += e.Refund.Amount.Minor
	case e.Complaint != nil:
		if s.Complaints == nil {
			s.Complaints = map[string]bool{}
		}
		s.Complaints[e.Complaint.ComplaintID] = true
	case e.Survey != nil:
		if c := e.Survey.CSAT; c != nil {
			s.CSATSum += int64(*c)
			s.CSATCount++
		}
		if n := e.Survey.NPS; n != nil {
			s.NPSCount++
			switch {
			case *n >= 9:
				s.Promoters++
			case *n >= 7:
				s.Passives++
			default:
				s.Detractors++
			}
			if !e.OccurTime.Before(s.LastNPSTime) {
				s.LastNPS, s.LastNPSTime = *n, e.OccurTime
			}
		}
	case e.ContactLog != nil:
		if e.OccurTime.After(s.LastContact) {
			s.LastContact = e.OccurTime
		}
	case e.Referral != nil:
		s.Referrals++
	}
}

// Merge adds the counters of o (a customer merged into this one).
func (s *Stats) Merge(o *Stats) {
	s.Purchases += o.Purchases
	s.Refunds += o.Refunds
	s.DiscountedPurchases += o.DiscountedPurchases
	for id := range o.Complaints {
		if s.Complaints == nil {
			s.Complaints = map[string]bool{}
		}
		s.Complaints[id] = true
	}
	s.CSATSum += o.CSATSum
	s.CSATCount += o.CSATCount
	s.NPSCount += o.NPSCount
	s.Promoters += o.Promoters
	s.Passives += o.Passives
	s.Detractors += o.Detractors
	if o.NPSCount > 0 && !o.LastNPSTime.Before(s.LastNPSTime) {
		s.LastNPS, s.LastNPSTime = o.LastNPS, o.LastNPSTime
	}
	for cur, t := range o.Totals {
		mine := s.totals(cur)
		mine.Purchased += t.Purchased
		mine.Refunded += t.Refunded
		mine.Discount += t.Discount
	}
	if !o.FirstPurchase.IsZero() && (s.FirstPurchase.IsZero() || o.FirstPurchase.Before(s.FirstPurchase)) {
		s.FirstPurchase = o.FirstPurchase
	}
	if o.LastPurchase.After(s.LastPurchase) {
		s.LastPurchase = o.LastPurchase
	}
	s.Referrals += o.Referrals
	if o.LastContact.After(s.LastContact) {
		s.LastContact = o.LastContact
	}
}

// CurrencyTotals is the money of one currency in an indicator report.
type CurrencyTotals struct {
	Currency  string
	Purchased int64
	Refunded  int64
	Net       int64
	Discount  int64
}

func currencyTotals(m map[string]*Totals) []CurrencyTotals {
	var out []CurrencyTotals
	for _, cur := range slices.Sorted(maps.Keys(m)) {
		t := m[cur]
		out = append(out, CurrencyTotals{Currency: cur, Purchased: t.Purchased, Refunded: t.Refunded, Net: t.Purchased - t.Refunded, Discount: t.Discount})
	}
	return out
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// CustomerIndicators are one customer's satisfaction indicators.
type CustomerIndicators struct {
	CustomerID              string
	Purchases               int64
	Refunds                 int64
	RepeatBuyer             bool
	Complaints              int64
	ComplaintRate           float64
	CSATCount               int64
	AverageCSAT             float64
	NPSCount                int64
	LastNPS                 int32 // -1 without answers
	Totals                  []CurrencyTotals
	DiscountedPurchaseShare float64
	FirstPurchase           time.Time
	LastPurchase            time.Time
	Referrals               int64
	LastContact             time.Time
}

// Indicators derives the report from the counters.
func (s *Stats) Indicators(customerID string) CustomerIndicators {
	last := int32(-1)
	if s.NPSCount > 0 {
		last = s.LastNPS
	}
	return CustomerIndicators{
		CustomerID:              customerID,
		Purchases:               s.Purchases,
		Refunds:                 s.Refunds,
		RepeatBuyer:             s.Purchases >= 2,
		Complaints:              int64(len(s.Complaints)),
		ComplaintRate:           ratio(int64(len(s.Complaints)), s.Purchases),
		CSATCount:               s.CSATCount,
		AverageCSAT:             ratio(s.CSATSum, s.CSATCount),
		NPSCount:                s.NPSCount,
		LastNPS:                 last,
		Totals:                  currencyTotals(s.Totals),
		DiscountedPurchaseShare: ratio(s.DiscountedPurchases, s.Purchases),
		FirstPurchase:           s.FirstPurchase,
		LastPurchase:            s.LastPurchase,
		Referrals:               s.Referrals,
		LastContact:             s.LastContact,
	}
}

// TenantStats sums every live customer's contribution. It is kept up to date
// by subtracting a customer's old contribution and adding the new one in the
// same transaction as each change, so merges and erasures stay exact.
type TenantStats struct {
	Customers           int64              `json:"customers,omitempty"`
	Referred            int64              `json:"referred,omitempty"`
	Buyers              int64              `json:"buyers,omitempty"`
	RepeatBuyers        int64              `json:"repeat,omitempty"`
	Purchases           int64              `json:"purchases,omitempty"`
	DiscountedPurchases int64              `json:"discounted,omitempty"`
	Complaints          int64              `json:"complaints,omitempty"`
	CSATSum             int64              `json:"csat_sum,omitempty"`
	CSATCount           int64              `json:"csat_n,omitempty"`
	Promoters           int64              `json:"promoters,omitempty"`
	Passives            int64              `json:"passives,omitempty"`
	Detractors          int64              `json:"detractors,omitempty"`
	Totals              map[string]*Totals `json:"totals,omitempty"`
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Add adds (sign 1) or removes (sign -1) a customer's contribution.
// A merged-away customer contributes nothing.
func (t *TenantStats) Add(c *Customer, s *Stats, sign int64) {
	if c == nil || !c.Active() {
		return
	}
	t.Customers += sign
	t.Referred += sign * b2i(c.Referred())
	if s == nil {
		return
	}
	t.Buyers += sign * b2i(s.Purchases > 0)
	t.RepeatBuyers += sign * b2i(s.Purchases >= 2)
	t.Purchases += sign * s.Purchases
	t.DiscountedPurchases += sign * s.DiscountedPurchases
	t.Complaints += sign * int64(len(s.Complaints))
	t.CSATSum += sign * s.CSATSum
	t.CSATCount += sign * s.CSATCount
	t.Promoters += sign * s.Promoters
	t.Passives += sign * s.Passives
	t.Detractors += sign * s.Detractors
	for cur, x := range s.Totals {
		if t.Totals == nil {
			t.Totals = map[string]*Totals{}
		}
		mine := t.Totals[cur]
		if mine == nil {
			mine = &Totals{}
			t.Totals[cur] = mine
		}
		mine.Purchased += sign * x.Purchased
		mine.Refunded += sign * x.Refunded
		mine.Discount += sign * x.Discount
		if *mine == (Totals{}) {
			delete(t.Totals, cur)
		}
	}
}

// TenantIndicators are the indicators over all customers.
type TenantIndicators struct {
	Customers               int64
	Buyers                  int64
	RepeatBuyers            int64
	RepurchaseRate          float64
	Purchases               int64
	Complaints              int64
	ComplaintRate           float64
	AverageCSAT             float64
	CSATCount               int64
	NPS                     float64
	Promoters               int64
	Passives                int64
	Detractors              int64
	Totals                  []CurrencyTotals
	DiscountedPurchaseShare float64
	ReferredCustomers       int64
}

// Indicators derives the tenant report.
func (t *TenantStats) Indicators() TenantIndicators {
	answers := t.Promoters + t.Passives + t.Detractors
	nps := 0.0
	if answers > 0 {
		nps = 100 * float64(t.Promoters-t.Detractors) / float64(answers)
	}
	return TenantIndicators{
		Customers:               t.Customers,
		Buyers:                  t.Buyers,
		RepeatBuyers:            t.RepeatBuyers,
		RepurchaseRate:          ratio(t.RepeatBuyers, t.Buyers),
		Purchases:               t.Purchases,
		Complaints:              t.Complaints,
		ComplaintRate:           ratio(t.Complaints, t.Purchases),
		AverageCSAT:             ratio(t.CSATSum, t.CSATCount),
		CSATCount:               t.CSATCount,
		NPS:                     nps,
		Promoters:               t.Promoters,
		Passives:                t.Passives,
		Detractors:              t.Detractors,
		Totals:                  currencyTotals(t.Totals),
		DiscountedPurchaseShare: ratio(t.DiscountedPurchases, t.Purchases),
		ReferredCustomers:       t.Referred,
	}
}
