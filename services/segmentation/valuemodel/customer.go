package valuemodel

import (
	"math"
	"time"
)

// SummarizeCustomer is Summarize for one customer whose purchases are
// sorted by At (Customer is taken from the first). It reports false when
// the customer made no purchase at or before asOf. It panics on an unknown
// unit.
func SummarizeCustomer(ps []Purchase, asOf time.Time, unit Unit) (Summary, bool) {
	per := unit.days()
	var s Summary
	n := 0
	var first, last, day int64
	var total, firstAmount int64
	for i := range ps {
		p := &ps[i]
		if p.At.After(asOf) {
			break
		}
		d := dayNumber(p.At)
		switch {
		case n == 0:
			first, day, n = d, d, 1
			s.Customer = p.Customer
			firstAmount = p.Amount
		case d != day:
			day = d
			n++
		case n == 1:
			firstAmount += p.Amount
		}
		last = d
		total += p.Amount
	}
	if n == 0 {
		return s, false
	}
	s.X = n - 1
	s.TX = float64(last-first) / per
	s.T = float64(dayNumber(asOf)-first) / per
	if s.X > 0 {
		s.MeanSpend = float64(total-firstAmount) / float64(s.X)
	}
	return s, true
}

// HoldoutTransactions counts the transactions (distinct UTC purchase days)
// of purchases sorted by At in (asOf, end], leaving out a day that already
// has a purchase at or before asOf: that day's transaction belongs to the
// calibration period.
func HoldoutTransactions(ps []Purchase, asOf, end time.Time) int {
	n := 0
	last := int64(math.MinInt64)
	for i := range ps {
		p := &ps[i]
		if p.At.After(end) {
			break
		}
		d := dayNumber(p.At)
		if !p.At.After(asOf) {
			last = d
			continue
		}
		if d != last {
			n++
			last = d
		}
	}
	return n
}

// PeriodsBetween is the length of (from, to] in unit, counted in whole UTC
// days as the summaries are.
func PeriodsBetween(from, to time.Time, unit Unit) float64 {
	return float64(dayNumber(to)-dayNumber(from)) / unit.days()
}

// PActive returns the probability that the customer is still active: the
// BG/NBD P(alive) for a repeat buyer, and for a customer without repeat
// purchases (for whom the BG/NBD P(alive) is 1 by construction: drop-out
// happens only after a repeat purchase) the modified BG/NBD's
//
//	1 / (1 + a/b · ((α+T)/α)^r)
//
// (Batislam, Denizel & Filiztekin 2007, "Empirical validation and comparison
// of models for customer base analysis", IJRM 24(3)), in which a customer
// may also drop out right after the first purchase; it falls as the
// customer ages without buying again.
func (p BGNBDParams) PActive(s Summary) float64 {
	if s.X > 0 {
		return p.PAlive(s)
	}
	logOdds := math.Log(p.A) - math.Log(p.B) + p.R*(math.Log(p.Alpha+s.T)-math.Log(p.Alpha))
	return 1 / (1 + math.Exp(logOdds))
}
