package domain

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"rapport.dev/platform/fault"
	"rapport.dev/platform/ident"
	"rapport.dev/platform/money"
)

// Enrollment, ExpiryPolicy and TierBasis mirror the rapport.loyalty.v1 enums.
type (
	Enrollment   int32
	ExpiryPolicy int32
	TierBasis    int32
)

// Enrollments.
const (
	EnrollOnFirstPurchase Enrollment = 2
	EnrollExplicit        Enrollment = 1
)

// Expiry policies.
const (
	ExpireNever       ExpiryPolicy = 1
	ExpireAfter       ExpiryPolicy = 2
	ExpireEndOfYear   ExpiryPolicy = 3
	maxExpiryPolicy                = ExpireEndOfYear
	maxEnrollment                  = EnrollOnFirstPurchase
	maxTierBasis                   = TierOnSpend
	defaultTierWindow              = 365
)

// Tier bases.
const (
	TierOnPoints TierBasis = 1
	TierOnSpend  TierBasis = 2
)

// Tier is a level of a programme.
type Tier struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Threshold    int64    `json:"threshold"`
	Multiplier   float64  `json:"multiplier,omitempty"`
	Benefits     []string `json:"benefits,omitempty"`
	BenefitValue int64    `json:"benefit_value,omitempty"` // minor units of Program.Currency
}

// Program is a membership programme's rules. Zero values mean the
// defaults documented in rapport.loyalty.v1.Program.
type Program struct {
	ID                 string             `json:"id"`
	Name               string             `json:"name"`
	PointsName         string             `json:"points_name,omitempty"`
	Currency           string             `json:"currency"`
	PointsPerUnit      float64            `json:"per_unit"`
	Enrollment         Enrollment         `json:"enrollment,omitempty"`
	CategoryBonuses    map[string]float64 `json:"category_bonuses,omitempty"`
	FirstPurchaseBonus int64              `json:"first_bonus,omitempty"`
	BirthdayMultiplier float64            `json:"birthday_multiplier,omitempty"`
	ReferralBonus      int64              `json:"referral_bonus,omitempty"`
	SegmentBonuses     map[string]int64   `json:"segment_bonuses,omitempty"`
	MaxPointsPerOrder  int64              `json:"max_per_order,omitempty"`
	Expiry             ExpiryPolicy       `json:"expiry,omitempty"`
	ExpiryMonths       int32              `json:"expiry_months,omitempty"`
	ReturnWindowDays   int32              `json:"return_days,omitempty"`
	AllowNegative      bool               `json:"allow_negative,omitempty"`
	TierBasis          TierBasis          `json:"tier_basis,omitempty"`
	TierWindowDays     int32              `json:"tier_window_days,omitempty"`
	TierGraceDays      int32              `json:"tier_grace_days,omitempty"`
	Tiers              []Tier             `json:"tiers,omitempty"`
	PointValue         int64              `json:"point_value,omitempty"` // minor units per point
	Etag               string             `json:"etag,omitempty"`
	Created            time.Time          `json:"created"`
	Updated            time.Time          `json:"updated"`
}

var currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)

// Validate checks a programme as a client sent it; violations name the
// API fields.
func (p *Program) Validate() error {
	var v fault.Violations
	ident.Check(&v, "program_id", p.ID, true)
	if strings.TrimSpace(p.Name) == "" {
		v.Add("display_name", "is required")
	}
	if !currencyRE.MatchString(p.Currency) {
		v.Add("currency", "must be an ISO 4217 code of three capital letters, got %q", p.Currency)
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	if !finite(p.PointsPerUnit) || p.PointsPerUnit < 0 || p.PointsPerUnit > 1e6 {
		v.Add("points_per_unit", "must be between 0 and 1,000,000, got %v", p.PointsPerUnit)
	}
	if p.Enrollment < 0 || p.Enrollment > maxEnrollment {
		v.Add("enrollment", "unknown enrollment %d", p.Enrollment)
	}
	for c, m := range p.CategoryBonuses {
		if c == "" || !finite(m) || m < 0 || m > 100 {
			v.Add("category_bonuses", "category %q: multiplier must be between 0 and 100, got %v", c, m)
		}
	}
	for s, pts := range p.SegmentBonuses {
		if !ident.Valid(s) || pts <= 0 {
			v.Add("segment_bonuses", "segment %q: the id %s and the points positive, got %d", s, ident.Rule, pts)
		}
	}
	nonNegative := func(field string, x int64) {
		if x < 0 {
			v.Add(field, "must not be negative, got %d", x)
		}
	}
	nonNegative("first_purchase_bonus", p.FirstPurchaseBonus)
	nonNegative("referral_bonus", p.ReferralBonus)
	nonNegative("max_points_per_order", p.MaxPointsPerOrder)
	nonNegative("point_value.amount_minor", p.PointValue)
	if !finite(p.BirthdayMultiplier) || p.BirthdayMultiplier < 0 || p.BirthdayMultiplier > 100 {
		v.Add("birthday_multiplier", "must be between 0 and 100, got %v", p.BirthdayMultiplier)
	}
	if p.Expiry < 0 || p.Expiry > maxExpiryPolicy {
		v.Add("expiry", "unknown expiry policy %d", p.Expiry)
	}
	switch {
	case p.Expiry == ExpireAfter && (p.ExpiryMonths < 1 || p.ExpiryMonths > 120):
		v.Add("expiry_months", "must be 1 to 120 for EXPIRY_POLICY_AFTER_MONTHS, got %d", p.ExpiryMonths)
	case p.Expiry == ExpireEndOfYear && (p.ExpiryMonths < 0 || p.ExpiryMonths > 120 || p.ExpiryMonths%12 != 0):
		v.Add("expiry_months", "must be a multiple of 12 up to 120 for EXPIRY_POLICY_END_OF_YEAR, got %d", p.ExpiryMonths)
	case (p.Expiry == 0 || p.Expiry == ExpireNever) && p.ExpiryMonths != 0:
		v.Add("expiry_months", "must be 0 when points never expire, got %d", p.ExpiryMonths)
	}
	if p.ReturnWindowDays < 0 || p.ReturnWindowDays > 365 {
		v.Add("return_window_days", "must be 0 to 365, got %d", p.ReturnWindowDays)
	}
	if p.TierBasis < 0 || p.TierBasis > maxTierBasis {
		v.Add("tier_basis", "unknown tier basis %d", p.TierBasis)
	}
	if p.TierWindowDays < 0 || p.TierWindowDays > 3660 {
		v.Add("tier_window_days", "must be 0 to 3660, got %d", p.TierWindowDays)
	}
	if p.TierGraceDays < 0 || p.TierGraceDays > 3660 {
		v.Add("tier_grace_days", "must be 0 to 3660, got %d", p.TierGraceDays)
	}
	seen := map[string]bool{}
	for i, t := range p.Tiers {
		f := fmt.Sprintf("tiers[%d]", i)
		ident.Check(&v, f+".tier_id", t.ID, true)
		if seen[t.ID] {
			v.Add(f+".tier_id", "tier %q appears twice", t.ID)
		}
		seen[t.ID] = true
		switch {
		case i == 0 && t.Threshold != 0:
			v.Add(f+".threshold", "the first tier is the entry tier: its threshold must be 0, got %d", t.Threshold)
		case i > 0 && t.Threshold <= p.Tiers[i-1].Threshold:
			v.Add(f+".threshold", "must be above the previous tier's %d, got %d", p.Tiers[i-1].Threshold, t.Threshold)
		}
		if !finite(t.Multiplier) || t.Multiplier < 0 || t.Multiplier > 100 {
			v.Add(f+".multiplier", "must be between 0 and 100, got %v", t.Multiplier)
		}
		if t.BenefitValue < 0 {
			v.Add(f+".benefit_value.amount_minor", "must not be negative, got %d", t.BenefitValue)
		}
	}
	return v.Err()
}

// WindowDays is the tier window, defaults filled in.
func (p *Program) WindowDays() int32 {
	if p.TierWindowDays == 0 {
		return defaultTierWindow
	}
	return p.TierWindowDays
}

// Line is an order line for category bonuses, in minor units.
type Line struct {
	Category string
	Amount   int64
}

// PurchasePoints computes what a purchase earns under the programme: the
// amount (minor units of the programme's currency) times points_per_unit
// per major unit, with lines of bonus categories multiplied by their bonus
// instead of 1; times the tier multiplier and, in the member's birthday
// month, the birthday multiplier; plus the first-purchase bonus; capped at
// max_points_per_order. Fractions of a point are dropped at the end.
func (p *Program) PurchasePoints(amount int64, lines []Line, tier *Tier, firstPurchase, birthdayMonth bool) int64 {
	per := money.MinorPerMajor(p.Currency)
	base := float64(amount)
	for _, l := range lines {
		if m, ok := p.CategoryBonuses[l.Category]; ok && l.Amount > 0 {
			base += float64(l.Amount) * (m - 1)
		}
	}
	pts := math.Max(0, base) / per * p.PointsPerUnit
	if tier != nil && tier.Multiplier > 0 {
		pts *= tier.Multiplier
	}
	if birthdayMonth && p.BirthdayMultiplier > 0 {
		pts *= p.BirthdayMultiplier
	}
	n := int64(math.Floor(pts + 1e-9))
	if firstPurchase {
		n += p.FirstPurchaseBonus
	}
	if p.MaxPointsPerOrder > 0 {
		n = min(n, p.MaxPointsPerOrder)
	}
	return n
}

// LotTerms returns when points earned at t (in the member's zone loc) leave
// the return window (for purchase points) and when they expire (zero:
// never). AFTER_MONTHS expires at the same local time N months later, on
// the month's last day when that day does not exist there (points earned on
// 31 January with 1 month expire on 28 or 29 February; on 29 February with
// 12 months, on 28 February). END_OF_YEAR expires at the local midnight that
// ends the year N/12 years after the year of t.
func (p *Program) LotTerms(t time.Time, loc *time.Location, purchase bool) (availableAt, expires time.Time) {
	local := t.In(loc)
	if purchase && p.ReturnWindowDays > 0 {
		availableAt = local.AddDate(0, 0, int(p.ReturnWindowDays)) // whole local days, across a DST change too
	}
	switch p.Expiry {
	case ExpireAfter:
		expires = addMonthsClamped(local, int(p.ExpiryMonths))
	case ExpireEndOfYear:
		expires = time.Date(local.Year()+int(p.ExpiryMonths)/12+1, 1, 1, 0, 0, 0, 0, loc)
	}
	if !expires.IsZero() {
		expires = expires.UTC()
	}
	if !availableAt.IsZero() {
		availableAt = availableAt.UTC()
	}
	return availableAt, expires
}

// addMonthsClamped adds n months to t in its location, clamping the day to
// the target month's length.
func addMonthsClamped(t time.Time, n int) time.Time {
	y, m, d := t.Date()
	first := time.Date(y, m+time.Month(n), 1, 0, 0, 0, 0, time.UTC)
	last := first.AddDate(0, 1, -1).Day()
	h, mi, s := t.Clock()
	return time.Date(first.Year(), first.Month(), min(d, last), h, mi, s, t.Nanosecond(), t.Location())
}

// TierFor returns the index of the highest tier whose threshold the
// qualifying value reaches, -1 without tiers. The first tier is the entry
// tier: a member is in it even when refunds of purchases that have left
// the window make the qualifying value negative.
func (p *Program) TierFor(qualifying int64) int {
	if len(p.Tiers) == 0 {
		return -1
	}
	i := 0
	for j, t := range p.Tiers[1:] {
		if qualifying >= t.Threshold {
			i = j + 1
		}
	}
	return i
}

// TierIndex returns the index of the tier with id, -1 if none.
func (p *Program) TierIndex(id string) int {
	for i, t := range p.Tiers {
		if t.ID == id {
			return i
		}
	}
	return -1
}

// TierState is a member's tier and a pending downgrade.
type TierState struct {
	Tier       string    `json:"tier,omitempty"`
	GraceUntil time.Time `json:"grace,omitzero"`
}

// EvaluateTier applies the programme's tier policy at now to a member whose
// qualifying points or spend over the window is q: an upgrade is immediate;
// a member below their tier's threshold keeps it for tier_grace_days, and
// is then moved to the tier they qualify for (a grace period already
// running is kept, and cancelled when they qualify again). now should be in
// the member's zone: the grace period is counted in their local days. It
// returns the new state and, when the tier changed, why.
func (p *Program) EvaluateTier(st TierState, q int64, now time.Time) (TierState, string) {
	want := p.TierFor(q)
	if want < 0 {
		return TierState{}, ""
	}
	cur := p.TierIndex(st.Tier)
	switch {
	case cur < 0:
		return TierState{Tier: p.Tiers[want].ID}, "qualified"
	case want > cur:
		return TierState{Tier: p.Tiers[want].ID}, "qualified"
	case want == cur:
		return TierState{Tier: st.Tier}, ""
	}
	// Below the current tier.
	if p.TierGraceDays == 0 {
		return TierState{Tier: p.Tiers[want].ID}, "downgraded"
	}
	if st.GraceUntil.IsZero() {
		return TierState{Tier: st.Tier, GraceUntil: now.AddDate(0, 0, int(p.TierGraceDays))}, ""
	}
	if now.Before(st.GraceUntil) {
		return st, ""
	}
	return TierState{Tier: p.Tiers[want].ID}, "grace ended"
}
