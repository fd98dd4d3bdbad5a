package domain

import (
	"math"
	"math/rand"
	"testing"
	"time"
)

func stateOf(events ...ProfileEvent) *State {
	s := &State{}
	for _, e := range events {
		s.Apply(e)
	}
	return s
}

func TestFeaturesWindows(t *testing.T) {
	now := day(1000)
	s := stateOf(
		buy("future", now.Add(time.Hour), 1, "CNY"),
		buy("now", now, 10, "CNY"),
		buy("in30", now.Add(-Window30d+time.Nanosecond), 100, "CNY"),
		buy("usd", now.Add(-Day), 5000, "USD"),
		buy("edge30", now.Add(-Window30d), 1000, "CNY"),
		buy("edge90", now.Add(-Window90d), 10000, "CNY"),
		buy("in365", now.Add(-Window365d+time.Second), 100000, "CNY"),
		buy("edge365", now.Add(-Window365d), 1000000, "CNY"),
		buy("old", now.Add(-400*Day), 10000000, "CNY"),
		refund("in30", now, 40),
		refund("edge90", now, 20000),
	)
	f := s.Features(now, "CNY")
	checks := []struct {
		name      string
		got, want int64
	}{
		{"Purchases", f.Purchases, 9},
		{"Purchases30d", f.Purchases30d, 3},   // now, in30, usd
		{"Purchases90d", f.Purchases90d, 4},   // + edge30; edge90 sits exactly at now-90d: out
		{"Purchases365d", f.Purchases365d, 6}, // + edge90, in365; edge365 out
		{"Monetary", f.Monetary, 1 + 10 + 60 + 1000 + 0 + 100000 + 1000000 + 10000000},
		{"Monetary30d", f.Monetary30d, 10 + 60},
		{"Monetary90d", f.Monetary90d, 10 + 60 + 1000},
		{"Monetary365d", f.Monetary365d, 10 + 60 + 1000 + 0 + 100000},
		{"AverageOrder", f.AverageOrder, (1 + 10 + 60 + 1000 + 100000 + 1000000 + 10000000) / 8},
		{"Refunds", f.Refunds, 2},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if !f.FirstPurchase.Equal(now.Add(-400*Day)) || !f.LastPurchase.Equal(now.Add(time.Hour)) {
		t.Errorf("first/last purchase = %v / %v", f.FirstPurchase, f.LastPurchase)
	}

	// Every currency counts when none is given; another currency counts only its own.
	if all := s.Features(now, ""); all.Monetary != f.Monetary+5000 || all.Monetary30d != f.Monetary30d+5000 || all.AverageOrder != all.Monetary/9 {
		t.Errorf("all currencies: monetary %d, 30d %d, average %d", all.Monetary, all.Monetary30d, all.AverageOrder)
	}
	if usd := s.Features(now, "USD"); usd.Monetary != 5000 || usd.Monetary30d != 5000 || usd.AverageOrder != 5000 || usd.Purchases != 9 {
		t.Errorf("USD: %+v", usd)
	}
	if eur := s.Features(now, "EUR"); eur.Monetary != 0 || eur.AverageOrder != 0 || eur.Purchases30d != 3 {
		t.Errorf("EUR: %+v", eur)
	}
}

func TestFeaturesWindowEdges(t *testing.T) {
	now := day(500)
	for _, w := range []struct {
		name   string
		length time.Duration
		count  func(Features) int64
	}{
		{"30d", Window30d, func(f Features) int64 { return f.Purchases30d }},
		{"90d", Window90d, func(f Features) int64 { return f.Purchases90d }},
		{"365d", Window365d, func(f Features) int64 { return f.Purchases365d }},
	} {
		for _, c := range []struct {
			at   time.Time
			want int64
		}{
			{now.Add(-w.length - time.Nanosecond), 0},
			{now.Add(-w.length), 0},
			{now.Add(-w.length + time.Nanosecond), 1},
			{now, 1},
			{now.Add(time.Nanosecond), 0},
		} {
			s := stateOf(buy("o", c.at, 7, "CNY"))
			f := s.Features(now, "CNY")
			if got := w.count(f); got != c.want {
				t.Errorf("%s window, purchase at now%+v: count %d, want %d", w.name, c.at.Sub(now), got, c.want)
			}
			if f.Purchases != 1 || f.Monetary != 7 {
				t.Errorf("lifetime features miss the purchase at now%+v: %+v", c.at.Sub(now), f)
			}
		}
	}
}

func TestFeaturesOthers(t *testing.T) {
	now := day(100)
	tests := []struct {
		name  string
		state *State
		check func(t *testing.T, f Features)
	}{
		{"empty", &State{}, func(t *testing.T, f Features) {
			if (f != Features{NPS: -1}) {
				t.Errorf("got %+v", f)
			}
		}},
		{"inter-purchase mean over every currency", stateOf(
			buy("a", day(0), 1, "CNY"), buy("b", day(3), 1, "USD"), buy("c", day(10), 1, "CNY")),
			func(t *testing.T, f Features) {
				if f.MeanInterpurchaseDays != 5 {
					t.Errorf("mean = %v, want 5", f.MeanInterpurchaseDays)
				}
			}},
		{"inter-purchase mean in fractions of days", stateOf(
			buy("a", day(0), 1, "CNY"), buy("b", day(1).Add(12*time.Hour), 1, "CNY")),
			func(t *testing.T, f Features) {
				if f.MeanInterpurchaseDays != 1.5 {
					t.Errorf("mean = %v, want 1.5", f.MeanInterpurchaseDays)
				}
			}},
		{"one purchase has no inter-purchase mean", stateOf(buy("a", day(0), 1, "CNY")),
			func(t *testing.T, f Features) {
				if f.MeanInterpurchaseDays != 0 {
					t.Errorf("mean = %v", f.MeanInterpurchaseDays)
				}
			}},
		{"same-instant purchases", stateOf(buy("a", day(2), 1, "CNY"), buy("b", day(2), 1, "CNY")),
			func(t *testing.T, f Features) {
				if f.MeanInterpurchaseDays != 0 || f.Purchases != 2 {
					t.Errorf("%+v", f)
				}
			}},
		{"average order divides by purchases in the currency", stateOf(
			buy("a", day(1), 1000, "CNY"), buy("b", day(2), 1001, "CNY"), buy("c", day(3), 999999, "USD"), refund("a", day(4), 1)),
			func(t *testing.T, f Features) {
				if f.AverageOrder != 1000 || f.Monetary != 2000 {
					t.Errorf("average %d monetary %d", f.AverageOrder, f.Monetary)
				}
			}},
		{"CSAT mean, latest NPS, complaints, contact, referrals", stateOf(
			ProfileEvent{At: day(1), Kind: EventSurvey, CSAT: i32(4), NPS: i32(2)},
			ProfileEvent{At: day(2), Kind: EventSurvey, CSAT: i32(5), NPS: i32(7)},
			ProfileEvent{At: day(3), Kind: EventComplaint, ComplaintID: "k1"},
			ProfileEvent{At: day(3), Kind: EventComplaint, ComplaintID: "k1"},
			ProfileEvent{At: day(3), Kind: EventComplaint, ComplaintID: "k2"},
			ProfileEvent{At: day(9), Kind: EventContactLog},
			ProfileEvent{At: day(9), Kind: EventReferral}),
			func(t *testing.T, f Features) {
				if f.CSAT != 4.5 || f.NPS != 7 || f.Complaints != 2 || !f.LastContact.Equal(day(9)) || f.Referrals != 1 {
					t.Errorf("%+v", f)
				}
			}},
		{"tenure counts whole days", &State{FirstSeen: now.Add(-3*Day + time.Nanosecond)},
			func(t *testing.T, f Features) {
				if f.TenureDays != 2 {
					t.Errorf("tenure %d, want 2", f.TenureDays)
				}
			}},
		{"tenure at a whole day", &State{FirstSeen: now.Add(-3 * Day)},
			func(t *testing.T, f Features) {
				if f.TenureDays != 3 || !f.FirstSeen.Equal(now.Add(-3*Day)) {
					t.Errorf("tenure %d, want 3", f.TenureDays)
				}
			}},
		{"tenure of a customer seen in the future", &State{FirstSeen: now.Add(5 * Day)},
			func(t *testing.T, f Features) {
				if f.TenureDays != 0 {
					t.Errorf("tenure %d, want 0", f.TenureDays)
				}
			}},
		{"tenure from the first event", stateOf(buy("a", now.Add(-10*Day), 1, "CNY")),
			func(t *testing.T, f Features) {
				if f.TenureDays != 10 {
					t.Errorf("tenure %d, want 10", f.TenureDays)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, tt.state.Features(now, "CNY")) })
	}
}

func TestNextWindowChange(t *testing.T) {
	now := day(1000)
	tests := []struct {
		name string
		ats  []time.Time
		want time.Time
	}{
		{"no purchases", nil, time.Time{}},
		{"only purchases older than every window", []time.Time{now.Add(-Window365d), now.Add(-2000 * Day)}, time.Time{}},
		{"leaving the 30-day window", []time.Time{now.Add(-10 * Day), now.Add(-50 * Day)}, now.Add(20 * Day)},
		{"leaving the 90-day window", []time.Time{now.Add(-50 * Day), now.Add(-100 * Day)}, now.Add(40 * Day)},
		{"leaving the 365-day window", []time.Time{now.Add(-100 * Day)}, now.Add(265 * Day)},
		{"a purchase at exactly now-30d has left the 30-day window", []time.Time{now.Add(-Window30d)}, now.Add(60 * Day)},
		{"a purchase at now leaves the 30-day window in 30 days", []time.Time{now}, now.Add(Window30d)},
		{"a future purchase enters at its time", []time.Time{now.Add(-10 * Day), now.Add(5 * Day)}, now.Add(5 * Day)},
		{"the oldest in-window purchase leaves first", []time.Time{now.Add(-20 * Day), now.Add(-29 * Day), now.Add(-Day)}, now.Add(Day)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &State{}
			for i, at := range tt.ats {
				s.Apply(buy(string(rune('a'+i)), at, 1, "CNY"))
			}
			if got := s.NextWindowChange(now); !got.Equal(tt.want) {
				t.Errorf("NextWindowChange = %v, want %v", got, tt.want)
			}
		})
	}
}

func windowed(f Features) [6]int64 {
	return [6]int64{f.Purchases30d, f.Purchases90d, f.Purchases365d, f.Monetary30d, f.Monetary90d, f.Monetary365d}
}

// TestNextWindowChangeIsExact checks on random states that the windowed
// features hold until the instant returned and change at it.
func TestNextWindowChangeIsExact(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	now := day(2000)
	for range 300 {
		s := &State{}
		for i := range rng.Intn(6) {
			at := now.Add(time.Duration(rng.Int63n(int64(400*Day))) - 390*Day)
			if rng.Intn(3) == 0 {
				at = now.Add(-time.Duration(rng.Intn(400)) * Day) // whole days: edges line up
			}
			s.Apply(buy(string(rune('a'+i)), at, 1+rng.Int63n(100), "CNY"))
		}
		next := s.NextWindowChange(now)
		if next.IsZero() {
			if a, b := windowed(s.Features(now, "CNY")), windowed(s.Features(now.Add(400*Day), "CNY")); a != b {
				t.Fatalf("no change announced but %v became %v; purchases %+v", a, b, s.Purchases)
			}
			continue
		}
		if !next.After(now) {
			t.Fatalf("next %v not after now", next)
		}
		before, at := s.Features(next.Add(-time.Nanosecond), "CNY"), s.Features(next, "CNY")
		if windowed(before) != windowed(s.Features(now, "CNY")) {
			t.Fatalf("features changed before %v; purchases %+v", next, s.Purchases)
		}
		if windowed(at) == windowed(before) {
			t.Fatalf("features did not change at %v; purchases %+v", next, s.Purchases)
		}
	}
}

func TestNextTenureChange(t *testing.T) {
	now := day(100)
	tests := []struct {
		name      string
		firstSeen time.Time
		want      time.Time
	}{
		{"never seen", time.Time{}, time.Time{}},
		{"mid-day", now.Add(-60 * time.Hour), now.Add(12 * time.Hour)},
		{"at a day boundary the next is a day later", now.Add(-2 * Day), now.Add(Day)},
		{"seen just now", now, now.Add(Day)},
		{"seen in the future", now.Add(time.Hour), now.Add(25 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &State{FirstSeen: tt.firstSeen}
			got := s.NextTenureChange(now)
			if !got.Equal(tt.want) {
				t.Fatalf("NextTenureChange = %v, want %v", got, tt.want)
			}
			if got.IsZero() {
				return
			}
			if a, b := s.Features(now, "").TenureDays, s.Features(got.Add(-time.Nanosecond), "").TenureDays; a != b {
				t.Errorf("tenure changed before %v: %d → %d", got, a, b)
			}
			if a, b := s.Features(now, "").TenureDays, s.Features(got, "").TenureDays; b != a+1 {
				t.Errorf("tenure at %v is %d, want %d", got, b, a+1)
			}
		})
	}
}

func TestFeaturesMeanIsFinite(t *testing.T) {
	s := stateOf(buy("a", day(0), 1, "CNY"), buy("b", day(0), 1, "CNY"), buy("c", day(0), 1, "CNY"))
	if m := s.Features(day(1), "CNY").MeanInterpurchaseDays; math.IsNaN(m) || m != 0 {
		t.Fatalf("mean = %v", m)
	}
}
