package domain

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"
	_ "time/tzdata" // the zones below must not depend on the host's zoneinfo

	"rapport.dev/platform/fault"
)

// zone loads an IANA zone or stops the test.
func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// fullProgram sets every field to a valid, non-default value, so that a
// test case breaking one field proves that field alone is checked.
func fullProgram() Program {
	return Program{
		ID:                 "vip-cn",
		Name:               "VIP Club",
		PointsName:         "积分",
		Currency:           "CNY",
		PointsPerUnit:      1,
		Enrollment:         EnrollExplicit,
		CategoryBonuses:    map[string]float64{"beauty": 2, "clearance": 0},
		FirstPurchaseBonus: 100,
		BirthdayMultiplier: 2,
		ReferralBonus:      50,
		SegmentBonuses:     map[string]int64{"lapsed-90d": 200},
		MaxPointsPerOrder:  10000,
		Expiry:             ExpireAfter,
		ExpiryMonths:       24,
		ReturnWindowDays:   14,
		AllowNegative:      true,
		TierBasis:          TierOnSpend,
		TierWindowDays:     365,
		TierGraceDays:      30,
		Tiers: []Tier{
			{ID: "member", Name: "Member"},
			{ID: "silver", Name: "Silver", Threshold: 100000, Multiplier: 1.25},
			{ID: "gold", Name: "Gold", Threshold: 500000, Multiplier: 1.5, BenefitValue: 20000},
		},
		PointValue: 1,
	}
}

func TestValidateAcceptsValidProgrammes(t *testing.T) {
	for name, p := range map[string]Program{
		"every field set": fullProgram(),
		// Zero values are the documented defaults (NEVER, POINTS, 365 days, no tiers).
		"defaults only": {ID: "p1", Name: "Points", Currency: "JPY"},
		"limits": func() Program {
			p := fullProgram()
			p.PointsPerUnit, p.ExpiryMonths, p.ReturnWindowDays = 1e6, 120, 365
			p.TierWindowDays, p.TierGraceDays = 3660, 3660
			p.CategoryBonuses = map[string]float64{"beauty": 100}
			p.BirthdayMultiplier, p.Tiers[2].Multiplier = 100, 100
			return p
		}(),
		"no points per unit": func() Program { p := fullProgram(); p.PointsPerUnit = 0; return p }(),
		"end of year, same year": func() Program {
			p := fullProgram()
			p.Expiry, p.ExpiryMonths = ExpireEndOfYear, 0
			return p
		}(),
		"end of year, two years on": func() Program {
			p := fullProgram()
			p.Expiry, p.ExpiryMonths = ExpireEndOfYear, 24
			return p
		}(),
		"never": func() Program { p := fullProgram(); p.Expiry, p.ExpiryMonths = ExpireNever, 0; return p }(),
	} {
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestValidateNamesTheAPIField(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	cases := []struct {
		name   string
		mutate func(p *Program)
		want   []string // every field reported, in order
	}{
		{"no id", func(p *Program) { p.ID = "" }, []string{"program_id"}},
		{"id with a space", func(p *Program) { p.ID = "vip cn" }, []string{"program_id"}},
		{"blank name", func(p *Program) { p.Name = "  \t" }, []string{"display_name"}},
		{"lower-case currency", func(p *Program) { p.Currency = "cny" }, []string{"currency"}},
		{"no currency", func(p *Program) { p.Currency = "" }, []string{"currency"}},
		{"four-letter currency", func(p *Program) { p.Currency = "CNYX" }, []string{"currency"}},
		{"NaN per unit", func(p *Program) { p.PointsPerUnit = nan }, []string{"points_per_unit"}},
		{"infinite per unit", func(p *Program) { p.PointsPerUnit = inf }, []string{"points_per_unit"}},
		{"negative per unit", func(p *Program) { p.PointsPerUnit = -0.5 }, []string{"points_per_unit"}},
		{"per unit above a million", func(p *Program) { p.PointsPerUnit = 1e6 + 1 }, []string{"points_per_unit"}},
		{"unknown enrollment", func(p *Program) { p.Enrollment = 3 }, []string{"enrollment"}},
		{"negative enrollment", func(p *Program) { p.Enrollment = -1 }, []string{"enrollment"}},
		{"bonus without category", func(p *Program) { p.CategoryBonuses[""] = 2 }, []string{"category_bonuses"}},
		{"negative category bonus", func(p *Program) { p.CategoryBonuses["toys"] = -1 }, []string{"category_bonuses"}},
		{"NaN category bonus", func(p *Program) { p.CategoryBonuses["toys"] = nan }, []string{"category_bonuses"}},
		{"category bonus above 100", func(p *Program) { p.CategoryBonuses["toys"] = 101 }, []string{"category_bonuses"}},
		{"bad segment id", func(p *Program) { p.SegmentBonuses["a/b"] = 10 }, []string{"segment_bonuses"}},
		{"zero segment bonus", func(p *Program) { p.SegmentBonuses["vip"] = 0 }, []string{"segment_bonuses"}},
		{"negative first purchase bonus", func(p *Program) { p.FirstPurchaseBonus = -1 }, []string{"first_purchase_bonus"}},
		{"negative referral bonus", func(p *Program) { p.ReferralBonus = -1 }, []string{"referral_bonus"}},
		{"negative cap", func(p *Program) { p.MaxPointsPerOrder = -1 }, []string{"max_points_per_order"}},
		{"negative point value", func(p *Program) { p.PointValue = -1 }, []string{"point_value.amount_minor"}},
		{"negative birthday multiplier", func(p *Program) { p.BirthdayMultiplier = -2 }, []string{"birthday_multiplier"}},
		{"NaN birthday multiplier", func(p *Program) { p.BirthdayMultiplier = nan }, []string{"birthday_multiplier"}},
		{"unknown expiry", func(p *Program) { p.Expiry = 4 }, []string{"expiry"}},
		{"after 0 months", func(p *Program) { p.ExpiryMonths = 0 }, []string{"expiry_months"}},
		{"after 121 months", func(p *Program) { p.ExpiryMonths = 121 }, []string{"expiry_months"}},
		{"end of year after 6 months", func(p *Program) { p.Expiry, p.ExpiryMonths = ExpireEndOfYear, 6 }, []string{"expiry_months"}},
		{"end of year after -12 months", func(p *Program) { p.Expiry, p.ExpiryMonths = ExpireEndOfYear, -12 }, []string{"expiry_months"}},
		{"end of year after 132 months", func(p *Program) { p.Expiry, p.ExpiryMonths = ExpireEndOfYear, 132 }, []string{"expiry_months"}},
		{"negative return window", func(p *Program) { p.ReturnWindowDays = -1 }, []string{"return_window_days"}},
		{"return window over a year", func(p *Program) { p.ReturnWindowDays = 366 }, []string{"return_window_days"}},
		{"unknown tier basis", func(p *Program) { p.TierBasis = 3 }, []string{"tier_basis"}},
		{"negative tier window", func(p *Program) { p.TierWindowDays = -1 }, []string{"tier_window_days"}},
		{"tier window too long", func(p *Program) { p.TierWindowDays = 3661 }, []string{"tier_window_days"}},
		{"negative grace", func(p *Program) { p.TierGraceDays = -1 }, []string{"tier_grace_days"}},
		{"entry tier above 0", func(p *Program) { p.Tiers[0].Threshold = 10 }, []string{"tiers[0].threshold"}},
		{"tier at the previous threshold", func(p *Program) { p.Tiers[2].Threshold = 100000 }, []string{"tiers[2].threshold"}},
		{"tier below the previous threshold", func(p *Program) { p.Tiers[2].Threshold = 99999 }, []string{"tiers[2].threshold"}},
		{"duplicate tier id", func(p *Program) { p.Tiers[2].ID = "silver" }, []string{"tiers[2].tier_id"}},
		{"no tier id", func(p *Program) { p.Tiers[1].ID = "" }, []string{"tiers[1].tier_id"}},
		{"tier id with a space", func(p *Program) { p.Tiers[1].ID = "silver star" }, []string{"tiers[1].tier_id"}},
		{"negative tier multiplier", func(p *Program) { p.Tiers[1].Multiplier = -1 }, []string{"tiers[1].multiplier"}},
		{"NaN tier multiplier", func(p *Program) { p.Tiers[1].Multiplier = nan }, []string{"tiers[1].multiplier"}},
		{"tier multiplier above 100", func(p *Program) { p.Tiers[1].Multiplier = 101 }, []string{"tiers[1].multiplier"}},
		{"negative benefit value", func(p *Program) { p.Tiers[2].BenefitValue = -1 }, []string{"tiers[2].benefit_value.amount_minor"}},
		{"several at once: all are reported", func(p *Program) {
			p.ID, p.Currency, p.ReturnWindowDays = "", "yen", 400
			p.Tiers[0].Threshold = 5
		}, []string{"currency", "program_id", "return_window_days", "tiers[0].threshold"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := fullProgram()
			c.mutate(&p)
			err := p.Validate()
			if !errors.Is(err, fault.ErrInvalid) {
				t.Fatalf("error %v, want one matching fault.ErrInvalid", err)
			}
			var inv *fault.Invalid
			if !errors.As(err, &inv) {
				t.Fatalf("error %T, want *fault.Invalid", err)
			}
			var got []string
			for _, v := range inv.Violations {
				got = append(got, v.Field)
				if v.Description == "" {
					t.Errorf("%s: no description", v.Field)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("fields %q, want %q (%v)", got, c.want, err)
			}
		})
	}
}

func TestPurchasePoints(t *testing.T) {
	cny := Program{Currency: "CNY", PointsPerUnit: 1}
	jpy := Program{Currency: "JPY", PointsPerUnit: 0.01} // 1 point per ¥100
	with := func(p Program, f func(*Program)) Program { f(&p); return p }
	silver := &Tier{ID: "silver", Threshold: 1000, Multiplier: 1.5}
	plain := &Tier{ID: "member"} // multiplier 0 means 1
	cases := []struct {
		name            string
		p               Program
		amount          int64
		lines           []Line
		tier            *Tier
		first, birthday bool
		want            int64
	}{
		// ¥123.45 (12345 fen) at 1 point per yuan.
		{name: "CNY per yuan", p: cny, amount: 12345, want: 123},
		{name: "CNY 2.5 per yuan", p: with(cny, func(p *Program) { p.PointsPerUnit = 2.5 }), amount: 12345, want: 308}, // 308.625
		// ¥12,345 has no minor unit: 123.45 hundreds of yen.
		{name: "JPY per ¥100", p: jpy, amount: 12345, want: 123},
		{name: "JPY per yen", p: with(jpy, func(p *Program) { p.PointsPerUnit = 1 }), amount: 12345, want: 12345},
		{name: "fractions dropped", p: cny, amount: 1999, want: 19},
		// 100 × 0.29 is 28.999999999999996 in floating point; it is 29 points.
		{name: "a whole result is not rounded down", p: with(cny, func(p *Program) { p.PointsPerUnit = 0.29 }), amount: 10000, want: 29},
		{name: "zero amount", p: cny, amount: 0, want: 0},
		{name: "zero amount, first purchase", p: with(cny, func(p *Program) { p.FirstPurchaseBonus = 500 }), amount: 0, first: true, want: 500},
		{name: "no points per unit", p: with(cny, func(p *Program) { p.PointsPerUnit = 0 }), amount: 50000, want: 0},
		// ¥200: ¥50 of beauty at ×3 (150) and ¥150 of food at ×1 (150).
		{name: "category bonus", p: with(cny, func(p *Program) { p.CategoryBonuses = map[string]float64{"beauty": 3} }),
			amount: 20000, lines: []Line{{"beauty", 5000}, {"food", 15000}}, want: 300},
		{name: "category bonus of 0 earns nothing on the line", p: with(cny, func(p *Program) { p.CategoryBonuses = map[string]float64{"gift-card": 0} }),
			amount: 20000, lines: []Line{{"gift-card", 5000}, {"food", 15000}}, want: 150},
		{name: "lines without a bonus change nothing", p: with(cny, func(p *Program) { p.CategoryBonuses = map[string]float64{"beauty": 3} }),
			amount: 20000, lines: []Line{{"food", 20000}}, want: 200},
		{name: "tier multiplier", p: cny, amount: 20000, tier: silver, want: 300},
		{name: "tier multiplier with a fraction", p: cny, amount: 1001, tier: silver, want: 15}, // 15.015
		{name: "tier multiplier 0 means 1", p: cny, amount: 20000, tier: plain, want: 200},
		{name: "birthday month", p: with(cny, func(p *Program) { p.BirthdayMultiplier = 2 }), amount: 20000, birthday: true, want: 400},
		{name: "outside the birthday month", p: with(cny, func(p *Program) { p.BirthdayMultiplier = 2 }), amount: 20000, want: 200},
		{name: "birthday multiplier 0 means 1", p: cny, amount: 20000, birthday: true, want: 200},
		{name: "tier and birthday together", p: with(cny, func(p *Program) { p.BirthdayMultiplier = 2 }), amount: 20000, tier: silver, birthday: true, want: 600},
		{name: "first purchase bonus", p: with(cny, func(p *Program) { p.FirstPurchaseBonus = 500 }), amount: 20000, first: true, want: 700},
		{name: "no bonus after the first purchase", p: with(cny, func(p *Program) { p.FirstPurchaseBonus = 500 }), amount: 20000, want: 200},
		// The bonus is not multiplied: (200 × 1.5) + 500.
		{name: "bonus is added after multipliers", p: with(cny, func(p *Program) { p.FirstPurchaseBonus = 500 }), amount: 20000, tier: silver, first: true, want: 800},
		{name: "cap per order", p: with(cny, func(p *Program) { p.MaxPointsPerOrder = 250 }), amount: 100000, want: 250},
		{name: "cap includes the first purchase bonus", p: with(cny, func(p *Program) { p.MaxPointsPerOrder = 250; p.FirstPurchaseBonus = 500 }),
			amount: 1000, first: true, want: 250},
		{name: "under the cap", p: with(cny, func(p *Program) { p.MaxPointsPerOrder = 250 }), amount: 24999, want: 249},
	}
	for _, c := range cases {
		if got := c.p.PurchasePoints(c.amount, c.lines, c.tier, c.first, c.birthday); got != c.want {
			t.Errorf("%s: %d points, want %d", c.name, got, c.want)
		}
	}
}

func TestLotTermsExpireAtLocalPeriodBoundaries(t *testing.T) {
	utc := time.UTC
	shanghai := zone(t, "Asia/Shanghai")
	newYork := zone(t, "America/New_York")
	after := func(months int32) Program { return Program{Expiry: ExpireAfter, ExpiryMonths: months} }
	endOfYear := func(months int32) Program { return Program{Expiry: ExpireEndOfYear, ExpiryMonths: months} }
	cases := []struct {
		name   string
		p      Program
		earned time.Time
		loc    *time.Location
		want   time.Time // zero: never
	}{
		{"31 Jan + 1 month, leap year", after(1), time.Date(2028, 1, 31, 10, 0, 0, 0, utc), utc,
			time.Date(2028, 2, 29, 10, 0, 0, 0, utc)},
		{"31 Jan + 1 month, common year", after(1), time.Date(2027, 1, 31, 10, 0, 0, 0, utc), utc,
			time.Date(2027, 2, 28, 10, 0, 0, 0, utc)},
		{"29 Feb + 12 months", after(12), time.Date(2028, 2, 29, 23, 59, 59, 0, utc), utc,
			time.Date(2029, 2, 28, 23, 59, 59, 0, utc)},
		{"31 Mar + 1 month", after(1), time.Date(2026, 3, 31, 8, 0, 0, 0, utc), utc,
			time.Date(2026, 4, 30, 8, 0, 0, 0, utc)},
		{"over the year end", after(2), time.Date(2026, 12, 31, 8, 0, 0, 0, utc), utc,
			time.Date(2027, 2, 28, 8, 0, 0, 0, utc)},
		// 20:00 UTC on 30 Jan is 04:00 on 31 Jan in Shanghai: the local day
		// is the 31st, so it is clamped to 28 Feb 04:00 +08:00.
		{"month end counted in the member's zone", after(1), time.Date(2027, 1, 30, 20, 0, 0, 0, utc), shanghai,
			time.Date(2027, 2, 27, 20, 0, 0, 0, utc)},
		// 10:00 EST (15:00 UTC) → 10:00 EDT, which is 14:00 UTC.
		{"same wall-clock time across a DST change", after(1), time.Date(2026, 3, 1, 15, 0, 0, 0, utc), newYork,
			time.Date(2026, 4, 1, 14, 0, 0, 0, utc)},
		{"same wall-clock time back across a DST change", after(1), time.Date(2026, 10, 15, 13, 30, 0, 0, utc), newYork,
			time.Date(2026, 11, 15, 14, 30, 0, 0, utc)}, // 09:30 EDT → 09:30 EST
		// 20:00 UTC on 31 Dec 2026 is 04:00 on 1 Jan 2027 in Shanghai.
		{"end of the local year", endOfYear(0), time.Date(2026, 12, 31, 20, 0, 0, 0, utc), shanghai,
			time.Date(2027, 12, 31, 16, 0, 0, 0, utc)}, // 2028-01-01 00:00 +08:00
		{"end of the local year, 12 months on", endOfYear(12), time.Date(2026, 12, 31, 20, 0, 0, 0, utc), shanghai,
			time.Date(2028, 12, 31, 16, 0, 0, 0, utc)}, // 2029-01-01 00:00 +08:00
		{"end of the year, still the old year locally", endOfYear(0), time.Date(2027, 1, 1, 3, 0, 0, 0, utc), newYork,
			time.Date(2027, 1, 1, 5, 0, 0, 0, utc)}, // 22:00 on 31 Dec EST; 2027-01-01 00:00 -05:00
		{"never", Program{Expiry: ExpireNever}, time.Date(2026, 5, 1, 0, 0, 0, 0, utc), shanghai, time.Time{}},
		{"unspecified means never", Program{}, time.Date(2026, 5, 1, 0, 0, 0, 0, utc), shanghai, time.Time{}},
	}
	for _, c := range cases {
		_, got := c.p.LotTerms(c.earned, c.loc, false)
		if !got.Equal(c.want) {
			t.Errorf("%s: expires %v, want %v", c.name, got, c.want)
		}
	}

	// The instants above are right only if they are the local boundaries the
	// contract describes: check the wall clock and offset in the member's zone.
	const layout = "2006-01-02 15:04 -07:00"
	monthly, yearly := after(1), endOfYear(0)
	_, exp := monthly.LotTerms(time.Date(2026, 3, 1, 15, 0, 0, 0, utc), newYork, false)
	if got, want := exp.In(newYork).Format(layout), "2026-04-01 10:00 -04:00"; got != want {
		t.Errorf("DST: expires %s local, want %s", got, want)
	}
	_, exp = yearly.LotTerms(time.Date(2026, 12, 31, 20, 0, 0, 0, utc), shanghai, false)
	if got, want := exp.In(shanghai).Format(layout), "2028-01-01 00:00 +08:00"; got != want {
		t.Errorf("end of year: expires %s local, want %s", got, want)
	}
}

func TestLotTermsReturnWindowForPurchasesOnly(t *testing.T) {
	p := Program{ReturnWindowDays: 14, Expiry: ExpireAfter, ExpiryMonths: 12}
	earned := time.Date(2026, 6, 10, 9, 15, 0, 0, time.UTC)
	avail, exp := p.LotTerms(earned, time.UTC, true)
	if want := time.Date(2026, 6, 24, 9, 15, 0, 0, time.UTC); !avail.Equal(want) {
		t.Errorf("purchase: available at %v, want %v", avail, want)
	}
	if want := time.Date(2027, 6, 10, 9, 15, 0, 0, time.UTC); !exp.Equal(want) {
		t.Errorf("purchase: expires %v, want %v (the window does not delay expiry)", exp, want)
	}
	// Bonuses and adjustments are available at once, and expire the same way.
	avail, exp = p.LotTerms(earned, time.UTC, false)
	if !avail.IsZero() {
		t.Errorf("not a purchase: available at %v, want at once", avail)
	}
	if want := time.Date(2027, 6, 10, 9, 15, 0, 0, time.UTC); !exp.Equal(want) {
		t.Errorf("not a purchase: expires %v, want %v", exp, want)
	}
	if avail, _ := (&Program{}).LotTerms(earned, time.UTC, true); !avail.IsZero() {
		t.Errorf("no return window: available at %v, want at once", avail)
	}
}

func TestTierFor(t *testing.T) {
	p := Program{Tiers: []Tier{{ID: "member"}, {ID: "silver", Threshold: 1000}, {ID: "gold", Threshold: 5000}}}
	for q, want := range map[int64]int{0: 0, 999: 0, 1000: 1, 4999: 1, 5000: 2, 1 << 40: 2,
		// Refunds of purchases older than the window make the sum negative:
		// the member is still in the entry tier.
		-300: 0,
	} {
		if got := p.TierFor(q); got != want {
			t.Errorf("TierFor(%d) = %d, want %d", q, got, want)
		}
	}
	if got := (&Program{}).TierFor(100); got != -1 {
		t.Errorf("no tiers: TierFor = %d, want -1", got)
	}
}

func TestEvaluateTier(t *testing.T) {
	tiers := []Tier{{ID: "member"}, {ID: "silver", Threshold: 1000}, {ID: "gold", Threshold: 5000}}
	noGrace := Program{Tiers: tiers}
	grace := Program{Tiers: tiers, TierGraceDays: 30}
	now := time.Date(2026, 5, 10, 8, 0, 0, 0, time.UTC)
	graceEnd := time.Date(2026, 6, 9, 8, 0, 0, 0, time.UTC) // now + 30 days
	cases := []struct {
		name       string
		p          Program
		st         TierState
		q          int64
		now        time.Time
		want       TierState
		wantReason string
	}{
		{"first evaluation: entry tier", grace, TierState{}, 0, now, TierState{Tier: "member"}, "qualified"},
		{"first evaluation with a negative sum: entry tier", grace, TierState{}, -300, now, TierState{Tier: "member"}, "qualified"},
		{"first evaluation above a threshold", grace, TierState{}, 1200, now, TierState{Tier: "silver"}, "qualified"},
		{"tier no longer in the programme", grace, TierState{Tier: "platinum"}, 1200, now, TierState{Tier: "silver"}, "qualified"},
		{"upgrade at the threshold", grace, TierState{Tier: "member"}, 5000, now, TierState{Tier: "gold"}, "qualified"},
		{"upgrade during a grace period ends it", grace, TierState{Tier: "silver", GraceUntil: graceEnd}, 6000, now,
			TierState{Tier: "gold"}, "qualified"},
		{"still qualifying", grace, TierState{Tier: "silver"}, 1000, now, TierState{Tier: "silver"}, ""},
		{"entry tier with a negative sum", noGrace, TierState{Tier: "member"}, -300, now, TierState{Tier: "member"}, ""},
		{"no grace: immediate downgrade", noGrace, TierState{Tier: "gold"}, 4999, now, TierState{Tier: "silver"}, "downgraded"},
		{"no grace: down to the entry tier", noGrace, TierState{Tier: "gold"}, 0, now, TierState{Tier: "member"}, "downgraded"},
		{"no grace: negative sum, down to the entry tier", noGrace, TierState{Tier: "silver"}, -300, now, TierState{Tier: "member"}, "downgraded"},
		{"below the threshold: grace starts, tier kept", grace, TierState{Tier: "gold"}, 1200, now,
			TierState{Tier: "gold", GraceUntil: graceEnd}, ""},
		{"grace running: not extended", grace, TierState{Tier: "gold", GraceUntil: graceEnd}, 1200, now.AddDate(0, 0, 10),
			TierState{Tier: "gold", GraceUntil: graceEnd}, ""},
		{"grace running: last instant", grace, TierState{Tier: "gold", GraceUntil: graceEnd}, 1200, graceEnd.Add(-time.Nanosecond),
			TierState{Tier: "gold", GraceUntil: graceEnd}, ""},
		{"qualifying again cancels grace", grace, TierState{Tier: "gold", GraceUntil: graceEnd}, 5000, now.AddDate(0, 0, 10),
			TierState{Tier: "gold"}, ""},
		{"grace ended: down to the tier qualified for", grace, TierState{Tier: "gold", GraceUntil: graceEnd}, 1200, graceEnd,
			TierState{Tier: "silver"}, "grace ended"},
		{"grace ended long ago", grace, TierState{Tier: "gold", GraceUntil: graceEnd}, 10, graceEnd.AddDate(0, 3, 0),
			TierState{Tier: "member"}, "grace ended"},
		{"no tiers: no state", Program{TierGraceDays: 30}, TierState{Tier: "gold", GraceUntil: graceEnd}, 9000, now, TierState{}, ""},
	}
	for _, c := range cases {
		got, reason := c.p.EvaluateTier(c.st, c.q, c.now)
		if got.Tier != c.want.Tier || !got.GraceUntil.Equal(c.want.GraceUntil) || reason != c.wantReason {
			t.Errorf("%s: %+v %q, want %+v %q", c.name, got, reason, c.want, c.wantReason)
		}
	}
}
