package domain

import (
	"slices"
	"testing"
	"time"
	_ "time/tzdata" // the zones below must not depend on the host's zoneinfo
)

// localLayout shows an instant as wall clock and offset, so that a test
// states which local midnight it expects.
const localLayout = "2006-01-02 15:04 -07:00"

func TestWindowStartIsLocalMidnight(t *testing.T) {
	berlin := zone(t, "Europe/Berlin")
	shanghai := zone(t, "Asia/Shanghai")
	cases := []struct {
		name string
		days int32
		now  time.Time
		loc  *time.Location
		want string // in loc
	}{
		// 7 whole days ending on 31 March: from 25 March, still CET.
		{"across the spring change", 7, time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC), berlin, "2026-03-25 00:00 +01:00"},
		// 20:00 UTC on 31 March is already 1 April in Shanghai.
		{"today is the local day", 1, time.Date(2026, 3, 31, 20, 0, 0, 0, time.UTC), shanghai, "2026-04-01 00:00 +08:00"},
		// 0 means 365 days: 16 June 2025 to 15 June 2026.
		{"default window", 0, time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC), time.UTC, "2025-06-16 00:00 +00:00"},
	}
	for _, c := range cases {
		p := Program{TierWindowDays: c.days}
		if got := p.WindowStart(c.now, c.loc).In(c.loc).Format(localLayout); got != c.want {
			t.Errorf("%s: window starts %s, want %s", c.name, got, c.want)
		}
	}
}

// qualifying runs Qualifying on a copy of qs, which it reuses.
func qualifying(p *Program, qs []Qualifier, now time.Time, loc *time.Location) (int64, time.Time, []Qualifier) {
	return p.Qualifying(slices.Clone(qs), now, loc)
}

func TestQualifierLeavesAtLocalMidnightAcrossDST(t *testing.T) {
	berlin := zone(t, "Europe/Berlin")
	newYork := zone(t, "America/New_York")
	cases := []struct {
		name   string
		days   int32
		loc    *time.Location
		at     time.Time // the qualifier's time
		leaves string    // in loc
		utc    time.Time // the same instant
	}{
		// Berlin moves to CEST on 29 March 2026: the 7-day window of 25 March
		// is 167 hours long, and ends at midnight CEST.
		{"Berlin, spring forward", 7, berlin, time.Date(2026, 3, 25, 11, 0, 0, 0, time.UTC),
			"2026-04-01 00:00 +02:00", time.Date(2026, 3, 31, 22, 0, 0, 0, time.UTC)},
		// 23:30 UTC on 25 March is 00:30 on 26 March in Berlin: the local day counts.
		{"Berlin, local day after the UTC day", 7, berlin, time.Date(2026, 3, 25, 23, 30, 0, 0, time.UTC),
			"2026-04-02 00:00 +02:00", time.Date(2026, 4, 1, 22, 0, 0, 0, time.UTC)},
		// New York falls back on 1 November 2026: the 3-day window of 30 October
		// is 73 hours long, and ends at midnight EST.
		{"New York, fall back", 3, newYork, time.Date(2026, 10, 30, 22, 0, 0, 0, time.UTC),
			"2026-11-02 00:00 -05:00", time.Date(2026, 11, 2, 5, 0, 0, 0, time.UTC)},
	}
	for _, c := range cases {
		p := &Program{TierWindowDays: c.days}
		qs := []Qualifier{{At: c.at, Points: 100, Spend: 5000}}

		sum, next, kept := qualifying(p, qs, c.at, c.loc)
		if sum != 100 || len(kept) != 1 {
			t.Errorf("%s: when earned: sum %d, kept %v; want 100 and the qualifier", c.name, sum, kept)
		}
		if !next.Equal(c.utc) || next.In(c.loc).Format(localLayout) != c.leaves {
			t.Errorf("%s: leaves at %s (%v), want %s (%v)", c.name, next.In(c.loc).Format(localLayout), next.UTC(), c.leaves, c.utc)
		}

		before := c.utc.Add(-time.Nanosecond)
		if sum, next, kept := qualifying(p, qs, before, c.loc); sum != 100 || len(kept) != 1 || !next.Equal(c.utc) {
			t.Errorf("%s: 1ns before it leaves: sum %d, next %v, kept %d; want 100, %v, 1", c.name, sum, next, len(kept), c.utc)
		}
		if sum, next, kept := qualifying(p, qs, c.utc, c.loc); sum != 0 || len(kept) != 0 || !next.IsZero() {
			t.Errorf("%s: when it leaves: sum %d, next %v, kept %d; want 0, none, 0", c.name, sum, next, len(kept))
		}
	}
}

func TestQualifyingSumsTheWindow(t *testing.T) {
	loc := zone(t, "Asia/Shanghai")
	now := time.Date(2026, 7, 20, 6, 0, 0, 0, time.UTC)    // 14:00 on 20 July, local
	start := time.Date(2026, 7, 10, 16, 0, 0, 0, time.UTC) // 00:00 on 11 July, local: 10 days
	old := Qualifier{At: start.Add(-time.Nanosecond), Points: 1000, Spend: 90000}
	first := Qualifier{At: start, Points: 100, Spend: 10000}                                         // leaves 21 July 00:00 local
	refund := Qualifier{At: time.Date(2026, 7, 15, 2, 0, 0, 0, time.UTC), Points: -20, Spend: -2500} // 15 July local
	future := Qualifier{At: now.Add(time.Hour), Points: 500, Spend: 40000}
	qs := []Qualifier{old, first, refund, future}
	leaves := time.Date(2026, 7, 20, 16, 0, 0, 0, time.UTC) // 21 July 00:00 +08:00

	for _, c := range []struct {
		name  string
		basis TierBasis
		want  int64
	}{
		{"points", TierOnPoints, 80},
		{"unspecified means points", 0, 80},
		{"spend", TierOnSpend, 7500},
	} {
		p := &Program{TierWindowDays: 10, TierBasis: c.basis}
		sum, next, kept := qualifying(p, qs, now, loc)
		if sum != c.want {
			t.Errorf("%s: sum %d, want %d (the old and the future qualifier do not count)", c.name, sum, c.want)
		}
		// The next change is the future qualifier being reached, an hour
		// from now, before the earliest counted one leaves.
		if !next.Equal(future.At) || !future.At.Before(leaves) {
			t.Errorf("%s: next %v, want the future qualifier's %v", c.name, next, future.At)
		}
		// Only the qualifier older than the window is dropped: the future one
		// is kept, to count once it is reached.
		if want := []Qualifier{first, refund, future}; !slices.Equal(kept, want) {
			t.Errorf("%s: kept %v, want %v", c.name, kept, want)
		}
	}

	// Once its time is reached, the future qualifier counts.
	p := &Program{TierWindowDays: 10}
	if sum, _, _ := qualifying(p, qs, future.At, loc); sum != 580 {
		t.Errorf("at the future qualifier's time: sum %d, want 580", sum)
	}
	// Without the future qualifier, the earliest counted one leaving is next.
	if _, next, _ := qualifying(p, []Qualifier{old, first, refund}, now, loc); !next.Equal(leaves) {
		t.Errorf("without the future qualifier: next %v, want %v", next, leaves)
	}
	// Only a future qualifier: nothing counts yet, it is the next change, nothing dropped.
	if sum, next, kept := qualifying(p, []Qualifier{future}, now, loc); sum != 0 || !next.Equal(future.At) || len(kept) != 1 {
		t.Errorf("only a future qualifier: sum %d, next %v, kept %d; want 0, %v, 1", sum, next, len(kept), future.At)
	}
	if sum, next, kept := qualifying(p, nil, now, loc); sum != 0 || !next.IsZero() || len(kept) != 0 {
		t.Errorf("no qualifiers: sum %d, next %v, kept %d", sum, next, len(kept))
	}
}

// A refund of a purchase whose earn has left the window makes the sum
// negative; the member then belongs in the entry tier, not in no tier.
func TestNegativeQualifyingKeepsTheEntryTier(t *testing.T) {
	p := &Program{
		TierWindowDays: 30,
		Tiers:          []Tier{{ID: "member"}, {ID: "silver", Threshold: 100}},
	}
	now := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	qs := []Qualifier{
		{At: now.AddDate(0, 0, -40), Points: 150},
		{At: now.AddDate(0, 0, -2), Points: -150},
	}
	sum, _, _ := qualifying(p, qs, now, time.UTC)
	if sum != -150 {
		t.Fatalf("sum %d, want -150", sum)
	}
	st, reason := p.EvaluateTier(TierState{Tier: "silver"}, sum, now)
	if st.Tier != "member" || reason != "downgraded" {
		t.Errorf("tier %q %q, want member downgraded", st.Tier, reason)
	}
}

func TestQualifierOf(t *testing.T) {
	a := &Account{}
	var log []Entry
	must := func(e Entry) Entry {
		t.Helper()
		if err := apply(t, a, &log, e); err != nil {
			t.Fatal(err)
		}
		return log[len(log)-1]
	}
	at := func(day int) time.Time { return time.Date(2026, 4, day, 10, 0, 0, 0, time.UTC) }

	earn := must(Entry{Kind: KindEarn, Time: at(1), Requested: 100, Order: "o1", Amount: 10000})
	zeroEarn := must(Entry{Kind: KindEarn, Time: at(1), Requested: 0, Order: "o2", Amount: 8000})
	redeem := must(Entry{Kind: KindRedeem, Time: at(2), Requested: 90})
	// Half of o1 refunded: 50 points reversed, of which only 10 are left to
	// take; the 40 short still count against qualification.
	reverse := must(Entry{Kind: KindReverse, Time: at(3), Order: "o1", Refunded: 5000})
	repeat := must(Entry{Kind: KindReverse, Time: at(4), Order: "o1", Refunded: 5000})
	// o2 earned nothing, but its refund is still spend taken back.
	zeroReverse := must(Entry{Kind: KindReverse, Time: at(5), Order: "o2", Refunded: 3000})
	plus := must(Entry{Kind: KindAdjust, Time: at(6), Requested: 25, Reason: "goodwill", Actor: "li.na"})
	minus := must(Entry{Kind: KindAdjust, Time: at(7), Requested: -5, Reason: "correction", Actor: "li.na"})
	must(Entry{Kind: KindAdjust, Time: at(8), Requested: 7, Reason: "promo", Actor: "li.na", Expires: at(9)})
	due := a.DueExpiries(at(9))
	if len(due) != 1 {
		t.Fatalf("due expiries %v, want the promo lot", due)
	}
	expire := must(due[0])

	cases := []struct {
		name string
		e    Entry
		want Qualifier
		ok   bool
	}{
		{"earn", earn, Qualifier{At: at(1), Points: 100, Spend: 10000}, true},
		{"earn of no points", zeroEarn, Qualifier{At: at(1), Points: 0, Spend: 8000}, true},
		{"redeemed points still count", redeem, Qualifier{}, false},
		{"reverse, partly short", reverse, Qualifier{At: at(3), Points: -50, Spend: -5000}, true},
		{"reverse that changed nothing", repeat, Qualifier{}, false},
		{"refund without points", zeroReverse, Qualifier{At: at(5), Points: 0, Spend: -3000}, true},
		{"positive adjust: points only", plus, Qualifier{At: at(6), Points: 25}, true},
		{"negative adjust", minus, Qualifier{}, false},
		{"expired points still count", expire, Qualifier{}, false},
	}
	for _, c := range cases {
		got, ok := QualifierOf(&c.e)
		if ok != c.ok || !got.At.Equal(c.want.At) || got.Points != c.want.Points || got.Spend != c.want.Spend {
			t.Errorf("%s: %+v %v, want %+v %v", c.name, got, ok, c.want, c.ok)
		}
	}
}
