package domain

import "time"

// Qualifier is one entry's contribution to tier qualification: the points
// it earned (negative for a reversal) and the purchase money it counted
// (negative for a refund), at its time.
type Qualifier struct {
	At     time.Time `json:"t"`
	Points int64     `json:"p,omitempty"`
	Spend  int64     `json:"s,omitempty"`
}

// QualifierOf is what an applied entry counts toward tiers: earns and
// reverses of purchases, and positive adjustments (points only). Redeemed
// and expired points still count: qualification is about what was earned.
func QualifierOf(e *Entry) (Qualifier, bool) {
	switch {
	case e.Kind == KindEarn:
		return Qualifier{At: e.Time, Points: e.Requested, Spend: e.Amount}, true
	case e.Kind == KindReverse && (e.Reversed() != 0 || e.Refund != 0):
		return Qualifier{At: e.Time, Points: -e.Reversed(), Spend: -e.Refund}, true
	case e.Kind == KindAdjust && e.Requested > 0:
		return Qualifier{At: e.Time, Points: e.Requested}, true
	}
	return Qualifier{}, false
}

// WindowStart is the start of the tier window at now: local midnight in
// loc of the day window_days − 1 days before today, so that the window is
// window_days whole local days ending today.
func (p *Program) WindowStart(now time.Time, loc *time.Location) time.Time {
	y, m, d := now.In(loc).Date()
	return time.Date(y, m, d-int(p.WindowDays())+1, 0, 0, 0, 0, loc)
}

// Qualifying sums the qualifiers in the window at now on the programme's
// basis, and returns the next instant after now at which the sum changes
// by time alone — a qualifier leaving the window (local midnight
// window_days days after its day) or a future-dated one being reached;
// zero for none. Qualifiers older than the window are dropped from the
// returned slice, which shares qs's storage.
func (p *Program) Qualifying(qs []Qualifier, now time.Time, loc *time.Location) (int64, time.Time, []Qualifier) {
	start := p.WindowStart(now, loc)
	kept := qs[:0]
	var sum int64
	var next time.Time
	for _, q := range qs {
		if q.At.Before(start) {
			continue
		}
		kept = append(kept, q)
		if q.At.After(now) {
			// Recorded with a future time: counts once it is reached.
			if next.IsZero() || q.At.Before(next) {
				next = q.At
			}
			continue
		}
		if p.TierBasis == TierOnSpend {
			sum += q.Spend
		} else {
			sum += q.Points
		}
		y, m, d := q.At.In(loc).Date()
		leaves := time.Date(y, m, d+int(p.WindowDays()), 0, 0, 0, 0, loc)
		if next.IsZero() || leaves.Before(next) {
			next = leaves
		}
	}
	return sum, next, kept
}
