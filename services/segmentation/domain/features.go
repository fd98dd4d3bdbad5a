package domain

import (
	"sort"
	"time"
)

// Day is the unit of the windows, the tenure and the inter-purchase mean.
const Day = 24 * time.Hour

// The feature windows: a purchase is in a window of length w at now when
// now-w < At ≤ now.
const (
	Window30d  = 30 * Day
	Window90d  = 90 * Day
	Window365d = 365 * Day
)

var windows = [...]time.Duration{Window30d, Window90d, Window365d}

// Features are what segment rules and scores see of a customer at an
// instant; they mirror rapport.segmentation.v1.Features. See the package
// documentation for the exact definitions.
type Features struct {
	FirstPurchase         time.Time `json:"fp,omitzero"`
	LastPurchase          time.Time `json:"lp,omitzero"`
	Purchases             int64     `json:"n,omitempty"`
	Purchases30d          int64     `json:"n30,omitempty"`
	Purchases90d          int64     `json:"n90,omitempty"`
	Purchases365d         int64     `json:"n365,omitempty"`
	Monetary              int64     `json:"m,omitempty"`
	Monetary30d           int64     `json:"m30,omitempty"`
	Monetary90d           int64     `json:"m90,omitempty"`
	Monetary365d          int64     `json:"m365,omitempty"`
	AverageOrder          int64     `json:"avg,omitempty"`
	MeanInterpurchaseDays float64   `json:"ipd,omitempty"`
	TenureDays            int64     `json:"tenure,omitempty"`
	Complaints            int64     `json:"cx,omitempty"`
	LastContact           time.Time `json:"lc,omitzero"`
	CSAT                  float64   `json:"csat,omitempty"`
	// NPS is the latest answer, -1 without answers.
	NPS       int32     `json:"nps"`
	Referrals int64     `json:"ref,omitempty"`
	Refunds   int64     `json:"rf,omitempty"`
	FirstSeen time.Time `json:"seen,omitzero"`
}

// Features derives the customer's features at now, counting money in
// currency (every currency when empty).
func (s *State) Features(now time.Time, currency string) Features {
	f := Features{
		Purchases:   int64(len(s.Purchases)),
		Complaints:  int64(len(s.ComplaintIDs)),
		LastContact: s.LastContact,
		NPS:         -1,
		Referrals:   s.Referrals,
		Refunds:     s.Refunds,
		FirstSeen:   s.FirstSeen,
	}
	if s.HasNPS {
		f.NPS = s.NPS
	}
	if s.CSATCount > 0 {
		f.CSAT = float64(s.CSATSum) / float64(s.CSATCount)
	}
	f.TenureDays, _ = Tenure(s.FirstSeen, now)
	n := len(s.Purchases)
	if n == 0 {
		return f
	}
	first, last := s.Purchases[0].At, s.Purchases[n-1].At
	f.FirstPurchase, f.LastPurchase = first, last
	if n >= 2 {
		f.MeanInterpurchaseDays = float64(last.Sub(first)) / float64(n-1) / float64(Day)
	}
	from30, from90, from365 := now.Add(-Window30d), now.Add(-Window90d), now.Add(-Window365d)
	var inCurrency int64
	for i := range s.Purchases {
		p := &s.Purchases[i]
		match := currency == "" || p.Currency == currency
		var net int64
		if match {
			net = p.Net()
			inCurrency++
			f.Monetary += net
		}
		if p.At.After(now) {
			continue
		}
		if p.At.After(from365) {
			f.Purchases365d++
			f.Monetary365d += net
			if p.At.After(from90) {
				f.Purchases90d++
				f.Monetary90d += net
				if p.At.After(from30) {
					f.Purchases30d++
					f.Monetary30d += net
				}
			}
		}
	}
	if inCurrency > 0 {
		f.AverageOrder = f.Monetary / inCurrency
	}
	return f
}

// NextWindowChange returns the earliest instant strictly after now at which
// a windowed feature (30, 90 or 365 days) changes by the passing of time
// alone: a purchase in a window leaves it at At+window, and a purchase
// after now (clock skew) enters the windows at At. It returns the zero time
// when no such instant exists.
func (s *State) NextWindowChange(now time.Time) time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	ps := s.Purchases
	// future is the first purchase after now.
	future := sort.Search(len(ps), func(i int) bool { return ps[i].At.After(now) })
	if future < len(ps) {
		consider(ps[future].At)
	}
	for _, w := range windows {
		from := now.Add(-w)
		// The oldest purchase still in the window leaves it first.
		i := sort.Search(future, func(i int) bool { return ps[i].At.After(from) })
		if i < future {
			consider(ps[i].At.Add(w))
		}
	}
	return next
}

// NextTenureChange returns the instant strictly after now at which
// TenureDays next grows by one, or the zero time when FirstSeen is zero.
func (s *State) NextTenureChange(now time.Time) time.Time {
	_, next := Tenure(s.FirstSeen, now)
	return next
}

// Tenure returns TenureDays at now for a customer first seen at firstSeen
// (0 before then or when firstSeen is zero), and the instant strictly
// after now at which it next grows by one (zero when firstSeen is zero).
// Only firstSeen and now enter: a cached Features stays right by
// recomputing its TenureDays with Tenure.
func Tenure(firstSeen, now time.Time) (days int64, next time.Time) {
	if firstSeen.IsZero() {
		return 0, time.Time{}
	}
	if firstSeen.After(now) {
		return 0, firstSeen.Add(Day)
	}
	d := now.Sub(firstSeen) / Day
	return int64(d), firstSeen.Add((d + 1) * Day)
}
