package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	loyaltyv1 "rapport.dev/gen/go/rapport/loyalty/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/fault"
	"rapport.dev/services/loyalty/domain"
	"rapport.dev/services/loyalty/store"
)

func TestEarnByProgrammeRules(t *testing.T) {
	t.Run("points per unit and category bonus", func(t *testing.T) {
		e := newEnv(t)
		e.program(domain.Program{PointsPerUnit: 2, CategoryBonuses: map[string]float64{"shoes": 3}})
		// 123.45 EUR at 2 points a euro: 246.9, rounded down.
		if got := e.record("club", "ann", purchase("k1", "o1", 12345)).Entry; got.Points != 246 || got.Requested != 246 {
			t.Fatalf("earned %+v, want 246 points", got)
		}
		// 50 EUR of the 100 are shoes, counted three times: 200 EUR, 400 points.
		op := purchase("k2", "o2", 10000)
		op.Purchase.Lines = []domain.Line{{Category: "shoes", Amount: 5000}, {Category: "socks", Amount: 5000}}
		if got := e.record("club", "ann", op).Entry; got.Points != 400 {
			t.Fatalf("earned %d with a category bonus, want 400", got.Points)
		}
		if v := e.member("club", "ann"); v.Balance != 646 || v.LifetimeEarned != 646 {
			t.Fatalf("balance %d, lifetime %d, want 646", v.Balance, v.LifetimeEarned)
		}
	})

	t.Run("first purchase bonus once", func(t *testing.T) {
		e := newEnv(t)
		e.program(domain.Program{FirstPurchaseBonus: 50})
		if got := e.record("club", "ann", purchase("k1", "o1", 1000)).Entry.Points; got != 60 {
			t.Fatalf("first purchase earned %d, want 10 + 50", got)
		}
		if got := e.record("club", "ann", purchase("k2", "o2", 1000)).Entry.Points; got != 10 {
			t.Fatalf("second purchase earned %d, want 10", got)
		}
		// Another member's first purchase has its own bonus.
		if got := e.record("club", "bob", purchase("k1", "o1", 1000)).Entry.Points; got != 60 {
			t.Fatalf("bob's first purchase earned %d, want 60", got)
		}
	})

	t.Run("tier multiplier after an upgrade", func(t *testing.T) {
		e := newEnv(t)
		e.program(domain.Program{Tiers: []domain.Tier{{ID: "bronze", Name: "Bronze"},
			{ID: "silver", Name: "Silver", Threshold: 100, Multiplier: 2}}})
		r := e.record("club", "ann", purchase("k1", "o1", 15000))
		if r.Entry.Points != 150 || r.View.Tier != "silver" {
			t.Fatalf("purchase before the upgrade: %d points, tier %q; want 150 (no multiplier) and silver", r.Entry.Points, r.View.Tier)
		}
		if got := e.record("club", "ann", purchase("k2", "o2", 1000)).Entry.Points; got != 20 {
			t.Fatalf("a silver member's 10 EUR earned %d, want 20", got)
		}
	})

	t.Run("birthday month in the member's zone", func(t *testing.T) {
		e := newEnv(t)
		e.program(domain.Program{Enrollment: domain.EnrollExplicit, BirthdayMultiplier: 3})
		e.enroll("club", "kiri", "Pacific/Auckland", 4) // UTC+13 until 5 April 2026
		e.enroll("club", "ulla", "UTC", 4)
		e.clk.Set(time.Date(2026, 3, 31, 10, 30, 0, 0, time.UTC)) // 23:30 on 31 March in Auckland
		if got := e.record("club", "kiri", purchase("k1", "o1", 1000)).Entry.Points; got != 10 {
			t.Fatalf("31 March in Auckland earned %d, want 10", got)
		}
		e.clk.Set(time.Date(2026, 3, 31, 11, 30, 0, 0, time.UTC)) // 00:30 on 1 April in Auckland
		if got := e.record("club", "kiri", purchase("k2", "o2", 1000)).Entry.Points; got != 30 {
			t.Fatalf("1 April in Auckland earned %d, want the birthday's 30", got)
		}
		if got := e.record("club", "ulla", purchase("k1", "o1", 1000)).Entry.Points; got != 10 {
			t.Fatalf("31 March in UTC earned %d, want 10", got)
		}
	})

	t.Run("another currency is refused", func(t *testing.T) {
		e := newEnv(t)
		e.program(domain.Program{})
		op := purchase("k1", "o1", 1000)
		op.Purchase.Currency = "USD"
		_, err := e.st.Record(ctx, tenant, "club", "ann", op)
		wantField(t, err, "purchase.amount.currency")
	})
}

// wantField expects an *fault.Invalid naming field.
func wantField(t *testing.T, err error, field string) {
	t.Helper()
	var inv *fault.Invalid
	if !errors.As(err, &inv) || !slices.ContainsFunc(inv.Violations, func(v fault.Violation) bool { return v.Field == field }) {
		t.Fatalf("got %v, want an invalid argument naming %q", err, field)
	}
}

func TestEnrolment(t *testing.T) {
	t.Run("on first purchase", func(t *testing.T) {
		e := newEnv(t)
		e.program(domain.Program{Enrollment: domain.EnrollOnFirstPurchase})
		// Only a purchase enrols; a redemption by a stranger is not found.
		if _, err := e.st.Record(ctx, tenant, "club", "ann", redeem("r1", 1)); !errors.Is(err, fault.ErrNotFound) {
			t.Fatalf("redeem by a non-member: %v, want NOT_FOUND", err)
		}
		r := e.record("club", "ann", purchase("k1", "o1", 2000))
		if r.View.Customer != "ann" || !r.View.Enrolled.Equal(t0) || r.View.Balance != 20 {
			t.Fatalf("auto-enrolled member %+v", r.View)
		}
		var types []string
		for _, ev := range e.events(0) {
			types = append(types, ev.Type+" "+ev.Key)
		}
		if want := []string{"member.enrolled ann", "points.changed ann"}; !slices.Equal(types, want) {
			t.Fatalf("feed %q, want %q", types, want)
		}
		if _, created, err := e.st.Enroll(ctx, tenant, "club", store.Enrollment{Customer: "ann"}); err != nil || created {
			t.Fatalf("enrolling a member again: created %t, %v", created, err)
		}
	})

	t.Run("explicit", func(t *testing.T) {
		e := newEnv(t)
		e.program(domain.Program{Enrollment: domain.EnrollExplicit})
		op := purchase("k1", "o1", 2000)
		if _, err := e.st.Record(ctx, tenant, "club", "ann", op); !errors.Is(err, fault.ErrNotFound) {
			t.Fatalf("purchase by a non-member of an explicit programme: %v, want NOT_FOUND", err)
		}
		if _, err := e.st.Member(ctx, tenant, "club", "ann"); !errors.Is(err, fault.ErrNotFound) {
			t.Fatalf("the purchase enrolled her: %v", err)
		}
		if n := e.lastEvent(); n != 0 {
			t.Fatalf("a refused purchase wrote %d feed events", n)
		}
		v := e.enroll("club", "ann", "Europe/Paris", 7)
		if v.TimeZone != "Europe/Paris" || v.BirthMonth != 7 || v.Balance != 0 {
			t.Fatalf("enrolled %+v", v)
		}
		// The refused request consumed nothing: its key applies now.
		if r := e.record("club", "ann", op); r.Replayed || r.Entry.Seq != 1 || r.Entry.Points != 20 {
			t.Fatalf("the purchase after enrolling: %+v replayed %t", r.Entry, r.Replayed)
		}
	})

	t.Run("unknown programme", func(t *testing.T) {
		e := newEnv(t)
		if _, err := e.st.Record(ctx, tenant, "nope", "ann", purchase("k1", "o1", 100)); !errors.Is(err, fault.ErrNotFound) {
			t.Fatalf("purchase in an unknown programme: %v", err)
		}
		if _, _, err := e.st.Enroll(ctx, tenant, "nope", store.Enrollment{Customer: "ann"}); !errors.Is(err, fault.ErrNotFound) {
			t.Fatalf("enrolment in an unknown programme: %v", err)
		}
	})
}

func TestEnrolledMemberIsInTheEntryTier(t *testing.T) {
	e := newEnv(t)
	e.program(domain.Program{Enrollment: domain.EnrollExplicit, Tiers: []domain.Tier{{ID: "bronze", Name: "Bronze"},
		{ID: "silver", Name: "Silver", Threshold: 100}}})
	e.enroll("club", "ann", "", 0)
	// The first tier is the entry tier (loyalty.proto, Program.tiers):
	// a member is in it from the start, before any points.
	if v := e.member("club", "ann"); v.Tier != "bronze" || v.NextTier != "silver" || v.ToNext != 100 {
		t.Fatalf("a new member: tier %q, next %q, %d to go; want bronze, silver, 100", v.Tier, v.NextTier, v.ToNext)
	}
	if got, want := e.tierChanges(0), []string{"ann >bronze qualified"}; !slices.Equal(got, want) {
		t.Fatalf("tier events %q, want %q", got, want)
	}
	// Enrolling again changes nothing.
	e.st.Enroll(ctx, tenant, "club", store.Enrollment{Customer: "ann"})
	if got := e.tierChanges(0); len(got) != 1 {
		t.Fatalf("tier events after enrolling again: %q", got)
	}
}

func TestRedeemMoreThanBalanceChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.program(domain.Program{Expiry: domain.ExpireAfter, ExpiryMonths: 1})
	e.record("club", "ann", purchase("k1", "o1", 10000)) // 100 points, expire 2 April
	e.clk.Advance(20 * day)
	e.record("club", "ann", purchase("k2", "o2", 5000)) // 50 points
	// The first lot is due to expire, and nothing has recorded it yet.
	e.clk.Set(time.Date(2026, 4, 3, 0, 0, 0, 0, time.UTC))
	before, feedBefore := e.member("club", "ann"), e.lastEvent()
	if before.Balance != 50 {
		t.Fatalf("balance %d, want 50 once the first lot expired", before.Balance)
	}
	_, err := e.st.Record(ctx, tenant, "club", "ann", redeem("r1", 51))
	if !errors.Is(err, fault.ErrFailedPrecondition) {
		t.Fatalf("redeeming 51 of 50: %v, want FAILED_PRECONDITION", err)
	}
	if got := e.entries("club", "ann", 10); len(got) != 2 {
		t.Fatalf("%d entries after a refused redemption, want 2 (not even the due expiry)", len(got))
	}
	if n := e.lastEvent(); n != feedBefore {
		t.Fatalf("a refused redemption wrote feed events %d..%d", feedBefore+1, n)
	}
	if after := e.member("club", "ann"); after.Balance != 50 || after.LifetimeRedeemed != 0 || after.Expired != 0 {
		t.Fatalf("after a refused redemption: %+v", after)
	}
	e.reconcile("club")
	// The refused request left its key free; the same key for what the
	// balance covers applies, after the due expiry.
	r := e.record("club", "ann", redeem("r1", 50))
	if r.Replayed || r.Entry.Seq != 4 || r.View.Balance != 0 {
		t.Fatalf("redeeming 50: %+v replayed %t, balance %d", r.Entry, r.Replayed, r.View.Balance)
	}
	if got := e.entries("club", "ann", 10); got[2].Kind != domain.KindExpire || got[2].Points != -100 {
		t.Fatalf("entry 3 is %+v, want the expiry of 100", got[2])
	}
	// A negative adjustment beyond the balance is refused the same way.
	if _, err := e.st.Record(ctx, tenant, "club", "ann", adjust("a1", -1)); !errors.Is(err, fault.ErrFailedPrecondition) {
		t.Fatalf("adjusting -1 at 0: %v", err)
	}
}

func TestReverseOfUnknownOrder(t *testing.T) {
	e := newEnv(t)
	e.program(domain.Program{})
	e.record("club", "ann", purchase("k1", "o1", 10000))
	feedBefore := e.lastEvent()
	_, err := e.st.Record(ctx, tenant, "club", "ann", refund("r1", "o-unknown", 100))
	var inv *fault.Invalid
	if !errors.As(err, &inv) || len(inv.Violations) != 1 || inv.Violations[0].Field != "order_id" {
		t.Fatalf("refund of an unknown order: %v, want an invalid argument naming order_id", err)
	}
	// A refund beyond the purchase's amount, and one lower than before, too.
	e.record("club", "ann", refund("r2", "o1", 4000))
	_, err = e.st.Record(ctx, tenant, "club", "ann", refund("r3", "o1", 10001))
	wantField(t, err, "order_id")
	_, err = e.st.Record(ctx, tenant, "club", "ann", refund("r4", "o1", 3999))
	wantField(t, err, "order_id")
	if got := e.entries("club", "ann", 10); len(got) != 2 || e.lastEvent() != feedBefore+1 {
		t.Fatalf("%d entries, feed %d; the refused refunds must write nothing", len(got), e.lastEvent())
	}
	if v := e.member("club", "ann"); v.Balance != 60 {
		t.Fatalf("balance %d, want 100 less 40%%", v.Balance)
	}
}

func TestReverseTakesBackCumulatively(t *testing.T) {
	for _, neg := range []bool{false, true} {
		t.Run(fmt.Sprintf("allow negative %t", neg), func(t *testing.T) {
			e := newEnv(t)
			e.program(domain.Program{AllowNegative: neg})
			e.record("club", "ann", purchase("k1", "o1", 9999)) // 99 points
			e.record("club", "ann", redeem("r1", 90))
			// A third refunded: 99/3 = 33 to take back, 9 left to take; the
			// other 24 become debt or a shortfall.
			r := e.record("club", "ann", refund("f1", "o1", 3333))
			wantPoints, wantDebt := int64(-9), int64(0)
			if neg {
				wantPoints, wantDebt = -33, 24
			}
			if r.Entry.Reversed() != 33 || r.Entry.Points != wantPoints || r.Entry.Debt != wantDebt || r.Entry.Shortfall != 24-wantDebt {
				t.Fatalf("first refund: %+v", r.Entry)
			}
			// All of it: 99 in total, 66 more.
			r = e.record("club", "ann", refund("f2", "o1", 9999))
			if r.Entry.Reversed() != 66 {
				t.Fatalf("full refund reversed %d, want 66 (99 in all)", r.Entry.Reversed())
			}
			if neg {
				wantDebt = 24 + 66
			}
			if r.View.Balance != -wantDebt {
				t.Fatalf("balance %d, want %d", r.View.Balance, -wantDebt)
			}
			var total int64
			for _, x := range e.entries("club", "ann", 10) {
				total += x.Reversed()
			}
			if total != 99 {
				t.Fatalf("reversed %d in all, want the 99 earned", total)
			}
			e.reconcile("club")
		})
	}
}

func TestPendingUntilTheReturnWindowPasses(t *testing.T) {
	e := newEnv(t)
	e.program(domain.Program{ReturnWindowDays: 14, PointValue: 3})
	r := e.record("club", "ann", purchase("k1", "o1", 10000))
	if r.View.Balance != 0 || r.View.Pending != 100 || r.View.ValueAtStake != 300 {
		t.Fatalf("after the purchase: balance %d, pending %d, value at stake %d; want 0, 100, 300", r.View.Balance, r.View.Pending, r.View.ValueAtStake)
	}
	if _, err := e.st.Record(ctx, tenant, "club", "ann", redeem("r1", 1)); !errors.Is(err, fault.ErrFailedPrecondition) {
		t.Fatalf("redeeming pending points: %v", err)
	}
	e.clk.Set(t0.Add(14*day - time.Nanosecond))
	if v := e.member("club", "ann"); v.Balance != 0 || v.Pending != 100 {
		t.Fatalf("just before the window ends: balance %d pending %d", v.Balance, v.Pending)
	}
	e.clk.Set(t0.Add(14 * day))
	if v := e.member("club", "ann"); v.Balance != 100 || v.Pending != 0 {
		t.Fatalf("as the window ends: balance %d pending %d", v.Balance, v.Pending)
	}
	if r := e.record("club", "ann", redeem("r1", 100)); r.View.Balance != 0 {
		t.Fatalf("redeemed: %+v", r.View)
	}
}

func TestExpiryFiresAtItsInstantOnce(t *testing.T) {
	e := newEnv(t)
	e.program(domain.Program{Enrollment: domain.EnrollExplicit, Expiry: domain.ExpireAfter, ExpiryMonths: 1})
	// 05:00 in New York on 2 March; a month later is 05:00 EDT, 09:00 UTC.
	for _, c := range []string{"ann", "bob"} {
		e.enroll("club", c, "America/New_York", 0)
		e.record("club", c, purchase("k1", "o1", 10000))
	}
	e.record("club", "ann", redeem("r1", 30))
	exp := time.Date(2026, 4, 2, 9, 0, 0, 0, time.UTC)
	if v := e.member("club", "ann"); !v.NextExpiry.Equal(exp) || v.ExpiringSoon != 0 {
		t.Fatalf("next expiry %s, expiring soon %d; want %s and 0 (over 30 days away)", v.NextExpiry, v.ExpiringSoon, exp)
	}

	e.clk.Set(exp.Add(-10 * day))
	if v := e.member("club", "ann"); v.ExpiringSoon != 70 {
		t.Fatalf("expiring soon %d ten days before, want 70", v.ExpiringSoon)
	}
	e.clk.Set(exp.Add(-time.Nanosecond))
	if n, next, err := e.st.FireDue(ctx, e.clk.Now()); err != nil || n != 0 || !next.Equal(exp) {
		t.Fatalf("just before the expiry: %d fired, next %s, %v; want 0 and %s", n, next, err, exp)
	}
	feedBefore := e.lastEvent()

	// Three timer loops at the instant, racing: each lot expires once.
	e.clk.Set(exp)
	var wg sync.WaitGroup
	fired := make([]int, 3)
	for i := range fired {
		wg.Go(func() {
			n, _, err := e.st.FireDue(ctx, exp)
			if err != nil {
				t.Errorf("fire due: %v", err)
			}
			fired[i] = n
		})
	}
	wg.Wait()
	if n := fired[0] + fired[1] + fired[2]; n != 2 {
		t.Fatalf("the racing timer loops fired %v, want 2 in all", fired)
	}
	if n := e.fire(); n != 0 {
		t.Fatalf("fire due again at the instant: %d fired", n)
	}
	e.clk.Advance(day)
	e.fire()
	e.record("club", "ann", adjust("a1", 5))

	for c, left := range map[string]int64{"ann": 70, "bob": 100} {
		var expiries []*domain.Entry
		for _, x := range e.entries("club", c, 10) {
			if x.Kind == domain.KindExpire {
				expiries = append(expiries, x)
			}
		}
		if len(expiries) != 1 || !expiries[0].Time.Equal(exp) || expiries[0].Points != -left || expiries[0].Of != 1 {
			t.Fatalf("%s's expiries: %+v; want one of %d at %s", c, expiries, left, exp)
		}
		if v := e.member("club", c); v.Expired != left || !v.NextExpiry.IsZero() && c == "bob" {
			t.Fatalf("%s: expired %d, next expiry %s", c, v.Expired, v.NextExpiry)
		}
	}
	var expireEvents int
	for _, ev := range e.events(feedBefore) {
		var x loyaltyv1.Entry
		if ev.Type == store.TypePointsChanged && ev.Payload.UnmarshalTo(&x) == nil && x.Kind == loyaltyv1.EntryKind_ENTRY_KIND_EXPIRE {
			expireEvents++
		}
	}
	if expireEvents != 2 {
		t.Fatalf("%d expiry events, want 2", expireEvents)
	}
	e.reconcile("club")
}

// tierChanges reads the tier.changed events after sequence after, each as
// "customer before>after reason".
func (e *env) tierChanges(after uint64) []string {
	e.t.Helper()
	evs, err := e.feed.Read(tenant, after, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		if ev.Type != store.TypeTierChanged {
			continue
		}
		var c loyaltyv1.TierChange
		if err := ev.Payload.UnmarshalTo(&c); err != nil {
			e.t.Fatal(err)
		}
		if ev.Key != c.CustomerId {
			e.t.Fatalf("tier change of %s keyed %s", c.CustomerId, ev.Key)
		}
		out = append(out, fmt.Sprintf("%s %s>%s %s", c.CustomerId, c.Before, c.After, c.Reason))
	}
	return out
}

func TestTierUpgradeGraceAndDowngrade(t *testing.T) {
	e := newEnv(t)
	e.program(domain.Program{PointValue: 2, TierWindowDays: 30, TierGraceDays: 10, Tiers: []domain.Tier{
		{ID: "bronze", Name: "Bronze"},
		{ID: "silver", Name: "Silver", Threshold: 1000, Multiplier: 1.5, BenefitValue: 5000},
		{ID: "gold", Name: "Gold", Threshold: 5000, Multiplier: 2, BenefitValue: 20000}}})
	e.record("club", "ann", purchase("k1", "o1", 100000)) // 1000 points on 2 March
	e.record("club", "bob", purchase("k1", "o1", 100000))
	v := e.member("club", "ann")
	if v.Tier != "silver" || v.NextTier != "gold" || v.Qualifying != 1000 || v.ToNext != 4000 || v.ValueAtStake != 5000+1000*2 {
		t.Fatalf("after 1000 points: %+v", v)
	}
	if got, want := e.tierChanges(0), []string{"ann >silver qualified", "bob >silver qualified"}; !slices.Equal(got, want) {
		t.Fatalf("tier events %q, want %q", got, want)
	}
	seen := e.lastEvent()

	// The points leave the 30-day window at midnight starting 1 April.
	rollover := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	if n, next, err := e.st.FireDue(ctx, rollover.Add(-time.Second)); err != nil || n != 0 || !next.Equal(rollover) {
		t.Fatalf("before the window rolls: %d fired, next %s, %v", n, next, err)
	}
	e.clk.Set(rollover)
	if n := e.fire(); n != 2 {
		t.Fatalf("window rollover fired %d, want 2", n)
	}
	graceEnd := rollover.Add(10 * day)
	v = e.member("club", "ann")
	if v.Tier != "silver" || v.Qualifying != 0 || !v.GraceUntil.Equal(graceEnd) {
		t.Fatalf("in grace: tier %q, qualifying %d, grace until %s; want silver, 0, %s", v.Tier, v.Qualifying, v.GraceUntil, graceEnd)
	}
	if got := e.tierChanges(seen); len(got) != 0 {
		t.Fatalf("tier events as grace starts: %q", got)
	}

	// Bob qualifies again during the grace period: it is cancelled.
	e.clk.Set(rollover.Add(3 * day))
	if r := e.record("club", "bob", purchase("k2", "o2", 100000)); r.Entry.Points != 1500 || r.View.Tier != "silver" || !r.View.GraceUntil.IsZero() {
		t.Fatalf("bob's silver purchase in grace: %d points, tier %q, grace until %s", r.Entry.Points, r.View.Tier, r.View.GraceUntil)
	}

	if n, next, err := e.st.FireDue(ctx, graceEnd.Add(-time.Second)); err != nil || n != 0 || !next.Equal(graceEnd) {
		t.Fatalf("before grace ends: %d fired, next %s, %v", n, next, err)
	}
	e.clk.Set(graceEnd)
	if n := e.fire(); n != 1 {
		t.Fatalf("grace end fired %d, want 1", n)
	}
	v = e.member("club", "ann")
	if v.Tier != "bronze" || !v.GraceUntil.IsZero() || v.NextTier != "silver" || v.ValueAtStake != 1000*2 {
		t.Fatalf("after grace: %+v", v)
	}
	if got, want := e.tierChanges(seen), []string{"ann silver>bronze grace ended"}; !slices.Equal(got, want) {
		t.Fatalf("tier events %q, want %q", got, want)
	}
	if v := e.member("club", "bob"); v.Tier != "silver" {
		t.Fatalf("bob fell to %q", v.Tier)
	}
	if got := e.record("club", "ann", purchase("k2", "o2", 1000)).Entry.Points; got != 10 {
		t.Fatalf("a bronze purchase earned %d, want 10", got)
	}
}

func TestEntriesPagination(t *testing.T) {
	e := newEnv(t)
	e.program(domain.Program{})
	e.program(domain.Program{ID: "other"})
	// In the entries bucket, club/ann comes before club/anna, and
	// other/ann ends the bucket.
	e.enroll("club", "ann", "", 0)
	e.enroll("club", "anna", "", 0)
	e.enroll("other", "ann", "", 0)
	for i := range 7 {
		e.record("club", "ann", adjust(fmt.Sprintf("a%d", i), int64(i+1)))
	}
	for i := range 3 {
		e.record("club", "anna", adjust(fmt.Sprintf("a%d", i), 100))
		e.record("other", "ann", adjust(fmt.Sprintf("a%d", i), 100))
	}
	pages := func(program, customer string, size int) [][]uint64 {
		var out [][]uint64
		token := ""
		for range 10 {
			page, next, err := e.st.Entries(ctx, tenant, program, customer, token, size)
			if err != nil {
				t.Fatal(err)
			}
			var seqs []uint64
			for _, x := range page {
				seqs = append(seqs, x.Seq)
			}
			out = append(out, seqs)
			if next == "" {
				return out
			}
			token = next
		}
		t.Fatal("the pages never end")
		return nil
	}
	for _, c := range []struct {
		program, customer string
		size              int
		want              string
	}{
		{"club", "ann", 3, "[[7 6 5] [4 3 2] [1]]"},
		{"club", "ann", 7, "[[7 6 5 4 3 2 1]]"},
		{"club", "ann", 100, "[[7 6 5 4 3 2 1]]"},
		{"club", "anna", 2, "[[3 2] [1]]"},
		{"club", "anna", 3, "[[3 2 1]]"},
		{"other", "ann", 2, "[[3 2] [1]]"}, // the last keys of the bucket
		{"other", "ann", 1, "[[3] [2] [1]]"},
	} {
		if got := fmt.Sprint(pages(c.program, c.customer, c.size)); got != c.want {
			t.Errorf("%s/%s in pages of %d: %s, want %s", c.program, c.customer, c.size, got, c.want)
		}
	}
	if _, _, err := e.st.Entries(ctx, tenant, "club", "ann", "not a token!", 3); err == nil {
		t.Fatal("a bad token was accepted")
	} else {
		wantField(t, err, "page_token")
	}
	if _, _, err := e.st.Entries(ctx, tenant, "club", "nobody", "", 3); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("entries of a non-member: %v", err)
	}
}

// tamper rewrites a stored member record through edit.
func (e *env) tamper(program, customer string, edit func(m *store.Member)) {
	e.t.Helper()
	err := e.db.Update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("members"))
		k := boltdb.Key(tenant, program, customer)
		m, err := store.DecodeMember(b.Get(k))
		if err != nil {
			return err
		}
		edit(m)
		return b.Put(k, store.EncodeMember(m))
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func TestReconcileDetectsTampering(t *testing.T) {
	e := newEnv(t)
	e.program(domain.Program{})
	for _, c := range []string{"ann", "bob", "cai", "dan"} {
		e.record("club", c, purchase("k1", "o1", 10000))
		e.record("club", c, redeem("r1", 30))
	}
	if r := e.reconcile("club"); r.Members != 4 || r.Entries != 8 {
		t.Fatalf("reconciled %d members and %d entries, want 4 and 8", r.Members, r.Entries)
	}
	// A lot with a point more than the ledger gives.
	e.tamper("club", "bob", func(m *store.Member) { m.Account.Lots[0].Points++ })
	// A debt nobody owes.
	e.tamper("club", "cai", func(m *store.Member) { m.Account.Debt = 5 })
	// An entry lost: the ledger no longer replays, and its key names nothing.
	if err := e.db.Update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("entries")).Delete(boltdb.Key(tenant, "club", "dan", boltdb.U64(2)))
	}); err != nil {
		t.Fatal(err)
	}
	r, err := e.st.Reconcile(ctx, tenant, "club")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]int{}
	for _, d := range r.Differences {
		found[d.Customer]++
	}
	if found["ann"] != 0 || found["bob"] != 1 || found["cai"] != 1 || found["dan"] != 2 {
		t.Fatalf("differences %+v; want one each for bob and cai, two for dan (account and key), none for ann", r.Differences)
	}
}

func TestPrograms(t *testing.T) {
	e := newEnv(t)
	p := domain.Program{ID: "club", Name: "Club", Currency: "EUR", PointsPerUnit: 1}
	first, created, err := e.st.CreateProgram(ctx, tenant, &p)
	if err != nil || !created || first.Etag == "" || !first.Created.Equal(t0) {
		t.Fatalf("create: %+v created %t, %v", first, created, err)
	}
	// The same request again (a retry) returns the stored programme.
	e.clk.Advance(time.Hour)
	again, created, err := e.st.CreateProgram(ctx, tenant, &p)
	if err != nil || created || again.Etag != first.Etag || !again.Created.Equal(t0) {
		t.Fatalf("create again: %+v created %t, %v", again, created, err)
	}
	other := p
	other.PointsPerUnit = 2
	if _, _, err := e.st.CreateProgram(ctx, tenant, &other); !errors.Is(err, fault.ErrAlreadyExists) {
		t.Fatalf("another programme under the same id: %v, want ALREADY_EXISTS", err)
	}
	if _, created, err := e.st.CreateProgram(ctx, "t2", &other); err != nil || !created {
		t.Fatalf("the same id in another tenant: created %t, %v", created, err)
	}

	stale := *first
	upd := *first
	upd.PointsPerUnit = 3
	updated, err := e.st.UpdateProgram(ctx, tenant, &upd)
	if err != nil || updated.Etag == first.Etag || updated.PointsPerUnit != 3 || !updated.Updated.Equal(t0.Add(time.Hour)) || !updated.Created.Equal(t0) {
		t.Fatalf("update: %+v, %v", updated, err)
	}
	stale.Name = "Lost update"
	if _, err := e.st.UpdateProgram(ctx, tenant, &stale); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("update with a stale etag: %v, want CONFLICT", err)
	}
	got, err := e.st.GetProgram(ctx, tenant, "club")
	if err != nil || got.Name != "Club" || got.PointsPerUnit != 3 || got.Etag != updated.Etag {
		t.Fatalf("get after the conflict: %+v, %v", got, err)
	}
	if _, err := e.st.GetProgram(ctx, tenant, "nope"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
	if _, err := e.st.UpdateProgram(ctx, tenant, &domain.Program{ID: "nope"}); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("update unknown: %v", err)
	}
	e.program(domain.Program{ID: "alpha"})
	list, err := e.st.ListPrograms(ctx, tenant)
	if err != nil || len(list) != 2 || list[0].ID != "alpha" || list[1].ID != "club" {
		t.Fatalf("list: %v, %v", list, err)
	}
	// Points follow the updated rules.
	if got := e.record("club", "ann", purchase("k1", "o1", 1000)).Entry.Points; got != 30 {
		t.Fatalf("earned %d at 3 a euro", got)
	}
}

// history is a member's ledger and view, to compare before and after a restart.
func (e *env) history(program, customer string) string {
	e.t.Helper()
	raw, err := json.Marshal(e.entries(program, customer, 1000))
	if err != nil {
		e.t.Fatal(err)
	}
	v := e.member(program, customer)
	v.Program = nil
	return fmt.Sprintf("%s %+v", raw, *v)
}

func TestReopenKeepsStateAndKeys(t *testing.T) {
	e := newEnv(t)
	e.program(domain.Program{Expiry: domain.ExpireAfter, ExpiryMonths: 1, AllowNegative: true})
	ops := []store.Op{purchase("k1", "o1", 10000), redeem("r1", 20), adjust("a1", 7), refund("f1", "o1", 5000)}
	first := make([]*store.Result, len(ops))
	for i, op := range ops {
		first[i] = e.record("club", "ann", op)
	}
	before := e.history("club", "ann")

	e.reopen()
	if after := e.history("club", "ann"); after != before {
		t.Fatalf("after reopening:\n %s\nbefore:\n %s", after, before)
	}
	e.reconcile("club")
	for i, op := range ops {
		r := e.record("club", "ann", op)
		if !r.Replayed || !sameEntry(r.Entry, first[i].Entry) {
			t.Fatalf("retry of %q after reopening: replayed %t, %+v", op.Key, r.Replayed, r.Entry)
		}
	}
	if _, err := e.st.Record(ctx, tenant, "club", "ann", redeem("r1", 21)); !errors.Is(err, fault.ErrAlreadyExists) {
		t.Fatalf("key reuse after reopening: %v", err)
	}
	// The expiry timer survives too: the purchase's 30 points left and the
	// adjustment's 7 expire on 2 April.
	e.clk.Set(time.Date(2026, 4, 2, 10, 0, 0, 0, time.UTC))
	if n := e.fire(); n != 1 {
		t.Fatalf("the timer after reopening fired %d", n)
	}
	got := e.entries("club", "ann", 100)
	if len(got) != 6 || got[4].Kind != domain.KindExpire || got[5].Kind != domain.KindExpire || got[4].Points+got[5].Points != -37 {
		t.Fatalf("entries after the expiry: %d, last %+v", len(got), got[len(got)-1])
	}
	e.reconcile("club")
}

// TestKilledProcessKeepsCommittedWrites copies the file of a database that
// is still open, as a process killed without closing it leaves it, and
// opens the copy: every acknowledged write is there.
func TestKilledProcessKeepsCommittedWrites(t *testing.T) {
	e := newEnv(t)
	e.program(domain.Program{})
	for i := range 5 {
		e.record("club", "ann", purchase(fmt.Sprintf("k%d", i), fmt.Sprintf("o%d", i), 1000))
	}
	before := e.history("club", "ann")
	raw, err := os.ReadFile(e.db.Path())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "killed.db")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	e.openAt(path)
	if after := e.history("club", "ann"); after != before {
		t.Fatalf("after the kill:\n %s\nbefore:\n %s", after, before)
	}
	if r := e.record("club", "ann", purchase("k4", "o4", 1000)); !r.Replayed || r.Entry.Seq != 5 {
		t.Fatalf("retry after the kill: %+v replayed %t", r.Entry, r.Replayed)
	}
	e.reconcile("club")
}

// TestCloseMidwayKeepsAnsweredWrites closes the database while writers
// race: every write answered with success is there after reopening and
// replays; every write refused because the database closed is not, and
// applies when retried.
func TestCloseMidwayKeepsAnsweredWrites(t *testing.T) {
	e := newEnv(t)
	e.program(domain.Program{})
	const writers, perWriter = 6, 25
	type result struct {
		op  store.Op
		seq uint64
		err error
	}
	results := make([][]result, writers)
	var wg sync.WaitGroup
	started := make(chan struct{}, writers*perWriter)
	for w := range writers {
		wg.Go(func() {
			customer := fmt.Sprintf("c%d", w)
			for i := range perWriter {
				op := purchase(fmt.Sprintf("k%d", i), fmt.Sprintf("o%d", i), 1000)
				r, err := e.st.Record(ctx, tenant, "club", customer, op)
				res := result{op: op, err: err}
				if err == nil {
					res.seq = r.Entry.Seq
				}
				results[w] = append(results[w], res)
				started <- struct{}{}
			}
		})
	}
	for range writers * 3 { // let some writes land first
		<-started
	}
	path := e.db.Path()
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	e.openAt(path)

	var answered, refused int
	for w := range writers {
		customer := fmt.Sprintf("c%d", w)
		var applied uint64
		for _, r := range results[w] {
			switch {
			case r.err == nil:
				answered++
				applied++
				if r.seq != applied {
					t.Fatalf("%s: write %q got entry %d, want %d", customer, r.op.Key, r.seq, applied)
				}
			case errors.Is(r.err, boltdb.ErrClosed):
				refused++
			default:
				t.Fatalf("%s: write %q: %v", customer, r.op.Key, r.err)
			}
		}
		if got := e.entries("club", customer, 1000); uint64(len(got)) != applied {
			t.Fatalf("%s: %d entries after reopening, %d writes answered", customer, len(got), applied)
		}
		for _, r := range results[w] {
			again := e.record("club", customer, r.op)
			if again.Replayed != (r.err == nil) || (r.err == nil && again.Entry.Seq != r.seq) {
				t.Fatalf("%s: retry of %q (first answer %v): replayed %t, entry %d", customer, r.op.Key, r.err, again.Replayed, again.Entry.Seq)
			}
		}
	}
	if answered == 0 || refused == 0 {
		t.Logf("answered %d, refused %d: the close did not land mid-way this time", answered, refused)
	}
	e.reconcile("club")
}
