package valuemodel

import (
	"fmt"
	"sort"
	"time"
)

// Unit is the time unit in which recency, age and forecast horizons are
// expressed. The fitted α of the BG/NBD model is in this unit, so a fit and
// the forecasts made from it must use the same unit.
type Unit int

// The supported units.
const (
	Days Unit = iota
	Weeks
)

// days returns the length of the unit in days.
func (u Unit) days() float64 {
	switch u {
	case Days:
		return 1
	case Weeks:
		return 7
	}
	panic(fmt.Sprintf("valuemodel: unknown unit %d", int(u)))
}

// String returns "days" or "weeks".
func (u Unit) String() string {
	switch u {
	case Days:
		return "days"
	case Weeks:
		return "weeks"
	}
	return fmt.Sprintf("Unit(%d)", int(u))
}

// Purchase is one purchase of a customer. Amount is in minor units of the
// tenant's currency (cents).
type Purchase struct {
	Customer string
	At       time.Time
	Amount   int64
}

// Summary is a customer's history as the models see it, at an instant asOf:
//
//   - X: repeat transactions (distinct purchase days − 1),
//   - TX: recency t_x, the time from the first to the last purchase day,
//   - T: age, the time from the first purchase day to the day of asOf,
//   - MeanSpend: the mean amount of the X repeat transactions, in the minor
//     units of Purchase.Amount (0 when X = 0).
//
// TX and T are in the Unit passed to Summarize.
type Summary struct {
	Customer  string
	X         int
	TX, T     float64
	MeanSpend float64
}

// Summarize turns purchases into one Summary per customer, sorted by
// customer id. Only purchases at or before asOf count. Purchases on the same
// UTC calendar day are one transaction whose amount is their sum, as in the
// literature; the first day's transaction is the "birth" of the customer and
// is not a repeat transaction, so it is excluded from MeanSpend. Customers
// with no purchase at or before asOf are left out. Summarize panics on an
// unknown unit.
func Summarize(purchases []Purchase, asOf time.Time, unit Unit) []Summary {
	per := unit.days()
	byCustomer := make(map[string]map[int64]int64) // customer -> day number -> amount
	for _, p := range purchases {
		if p.At.After(asOf) {
			continue
		}
		days := byCustomer[p.Customer]
		if days == nil {
			days = make(map[int64]int64)
			byCustomer[p.Customer] = days
		}
		days[dayNumber(p.At)] += p.Amount
	}
	end := dayNumber(asOf)
	out := make([]Summary, 0, len(byCustomer))
	for id, days := range byCustomer {
		first, last := int64(0), int64(0)
		n := 0
		var total int64
		for d, amount := range days {
			if n == 0 || d < first {
				first = d
			}
			if n == 0 || d > last {
				last = d
			}
			total += amount
			n++
		}
		s := Summary{
			Customer: id,
			X:        n - 1,
			TX:       float64(last-first) / per,
			T:        float64(end-first) / per,
		}
		if s.X > 0 {
			s.MeanSpend = float64(total-days[first]) / float64(s.X)
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Customer < out[j].Customer })
	return out
}

// dayNumber is the number of the UTC calendar day of t since 1970-01-01.
func dayNumber(t time.Time) int64 {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
}
