package domain

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"rapport.dev/platform/fault"
)

func TestSettingsWithDefaults(t *testing.T) {
	got := Settings{Currency: "CNY"}.WithDefaults()
	want := Settings{Currency: "CNY", PlatinumShare: 0.01, GoldShare: 0.04, IronShare: 0.15,
		Value: ValueMonetary, Loyalty: LoyaltyPurchases365d, ValueSplit: 0.5, LoyaltySplit: 0.5,
		ValueModel: ValueModelSettings{Unit: UnitWeeks, FitIntervalHours: 24, HorizonDays: 365,
			AnnualDiscountRate: 0.1, Margin: 1, ActiveThreshold: 0.5, LostThreshold: 0.15}}
	if got != want {
		t.Fatalf("defaults\n got %+v\nwant %+v", got, want)
	}
	set := Settings{PlatinumShare: 0.02, GoldShare: 0.03, IronShare: 0.1, Value: ValueMonetary365d,
		Loyalty: LoyaltyTenure, ValueSplit: 0.2, LoyaltySplit: 0.8,
		ValueModel: ValueModelSettings{Unit: UnitDays, FitIntervalHours: -1, HorizonDays: 90,
			AnnualDiscountRate: -1, Margin: 0.3, ActiveThreshold: 0.7, LostThreshold: 0.2}}
	if got := set.WithDefaults(); got != set {
		t.Fatalf("set values changed: %+v", got)
	}
}

func TestSettingsValidate(t *testing.T) {
	tests := []struct {
		name   string
		s      Settings
		fields []string // nil: valid
	}{
		{"zero means defaults", Settings{}, nil},
		{"all set", Settings{Currency: "CNY", PlatinumShare: 0.02, GoldShare: 0.08, IronShare: 0.3,
			Value: ValueMonetary365d, Loyalty: LoyaltyTenure, ValueSplit: 0.1, LoyaltySplit: 0.9}, nil},
		{"shares just below 1", Settings{PlatinumShare: 0.3, GoldShare: 0.3, IronShare: 0.39}, nil},
		{"negative share", Settings{PlatinumShare: -0.01}, []string{"platinum_share"}},
		{"share of 1", Settings{GoldShare: 1}, []string{"gold_share"}},
		{"NaN share", Settings{IronShare: math.NaN()}, []string{"iron_share"}},
		{"infinite split", Settings{ValueSplit: math.Inf(1)}, []string{"value_split"}},
		{"split of 1", Settings{LoyaltySplit: 1}, []string{"loyalty_split"}},
		{"shares summing to 1", Settings{PlatinumShare: 0.5, GoldShare: 0.3, IronShare: 0.2},
			[]string{"gold_share", "iron_share", "platinum_share"}},
		{"a share summing to 1 with the defaults", Settings{PlatinumShare: 0.9},
			[]string{"gold_share", "iron_share", "platinum_share"}},
		{"lower-case currency", Settings{Currency: "cny"}, []string{"currency"}},
		{"long currency", Settings{Currency: "CNYY"}, []string{"currency"}},
		{"unknown value measure", Settings{Value: 4}, []string{"value_measure"}},
		{"value model set", Settings{Value: ValueCLV, ValueModel: ValueModelSettings{Unit: UnitDays, FitIntervalHours: -1,
			HorizonDays: 730, AnnualDiscountRate: 0.05, Margin: 0.25, ActiveThreshold: 0.8, LostThreshold: 0.1}}, nil},
		{"bad value model", Settings{ValueModel: ValueModelSettings{Unit: 3, FitIntervalHours: 10000, HorizonDays: -1,
			AnnualDiscountRate: math.NaN(), Margin: 1.5, ActiveThreshold: 1}},
			[]string{"active_threshold", "clv_annual_discount_rate", "clv_horizon_days", "clv_margin",
				"value_model_fit_interval_hours", "value_model_unit"}},
		{"lost above active", Settings{ValueModel: ValueModelSettings{ActiveThreshold: 0.3, LostThreshold: 0.4}},
			[]string{"lost_threshold"}},
		{"lost above the default active", Settings{ValueModel: ValueModelSettings{LostThreshold: 0.6}},
			[]string{"lost_threshold"}},
		{"NaN threshold", Settings{ValueModel: ValueModelSettings{LostThreshold: math.NaN()}}, []string{"lost_threshold"}},
		{"negative loyalty measure", Settings{Loyalty: -1}, []string{"loyalty_measure"}},
		{"unknown loyalty measure", Settings{Loyalty: 4}, []string{"loyalty_measure"}},
		{"several at once", Settings{Currency: "x", ValueSplit: 2, Loyalty: 9},
			[]string{"currency", "loyalty_measure", "value_split"}},
		{"a bad currency does not hide a bad sum", Settings{Currency: "x", PlatinumShare: 0.5, GoldShare: 0.5},
			[]string{"currency", "gold_share", "iron_share", "platinum_share"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Validate()
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var inv *fault.Invalid
			if !errors.Is(err, fault.ErrInvalid) || !errors.As(err, &inv) {
				t.Fatalf("Validate = %v, want an *fault.Invalid", err)
			}
			var got []string
			for _, v := range inv.Violations {
				got = append(got, v.Field)
			}
			if !slices.Equal(got, tt.fields) {
				t.Fatalf("fields %v, want %v (%v)", got, tt.fields, err)
			}
		})
	}
}

func TestGroup(t *testing.T) {
	tests := []struct {
		r, f, m int32
		want    RfmGroup
	}{
		{5, 5, 5, RfmChampions},
		{5, 4, 3, RfmChampions}, // FM = 3.5 → 4
		{5, 3, 3, RfmPotentialLoyalist},
		{5, 1, 1, RfmNew},
		{5, 1, 2, RfmPotentialLoyalist}, // FM = 1.5 → 2
		{4, 1, 1, RfmPromising},
		{4, 2, 2, RfmPotentialLoyalist},
		{4, 5, 1, RfmPotentialLoyalist}, // FM = 3
		{4, 4, 5, RfmLoyal},
		{3, 5, 4, RfmLoyal},
		{3, 3, 3, RfmNeedAttention},
		{3, 3, 2, RfmNeedAttention}, // FM = 2.5 → 3
		{3, 2, 2, RfmAboutToSleep},
		{3, 1, 1, RfmAboutToSleep},
		{2, 4, 4, RfmAtRisk},
		{2, 3, 2, RfmAtRisk},
		{2, 4, 5, RfmCantLose},
		{1, 5, 5, RfmCantLose},
		{2, 2, 2, RfmHibernating},
		{2, 1, 1, RfmHibernating},
		{1, 2, 2, RfmLost},
		{1, 1, 2, RfmLost},
		{1, 1, 1, RfmLost},
		{0, 3, 3, RfmGroupUnspecified},
		{6, 3, 3, RfmGroupUnspecified},
		{3, 0, 3, RfmGroupUnspecified},
		{3, 3, 6, RfmGroupUnspecified},
	}
	for _, tt := range tests {
		if got := Group(tt.r, tt.f, tt.m); got != tt.want {
			t.Errorf("Group(%d,%d,%d) = %v, want %v", tt.r, tt.f, tt.m, got, tt.want)
		}
	}
	// Every valid combination agrees with the reference and every group is reachable.
	seen := map[RfmGroup]bool{}
	for r := int32(1); r <= 5; r++ {
		for f := int32(1); f <= 5; f++ {
			for m := int32(1); m <= 5; m++ {
				g := Group(r, f, m)
				if want := refGroup(r, f, m); g != want {
					t.Errorf("Group(%d,%d,%d) = %v, reference %v", r, f, m, g, want)
				}
				seen[g] = true
			}
		}
	}
	if len(seen) != 11 || seen[RfmGroupUnspecified] {
		t.Errorf("groups reached: %v", seen)
	}
}

func TestEnumStrings(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{RfmCantLose.String(), "can't lose"}, {RfmGroup(12).String(), "unknown"},
		{TierIron.String(), "iron"}, {Tier(-1).String(), "unknown"},
		{QuadrantBuildRelationship.String(), "build relationship"},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
}

// refGroup is the group table written as rules, independently of the lookup.
func refGroup(r, f, m int32) RfmGroup {
	fm := int32(math.Floor(float64(f+m)/2 + 0.5))
	switch {
	case r == 5 && fm >= 4:
		return RfmChampions
	case (r == 3 || r == 4) && fm >= 4:
		return RfmLoyal
	case r >= 4 && (fm == 2 || fm == 3):
		return RfmPotentialLoyalist
	case r == 5 && fm == 1:
		return RfmNew
	case r == 4 && fm == 1:
		return RfmPromising
	case r == 3 && fm == 3:
		return RfmNeedAttention
	case r == 3:
		return RfmAboutToSleep
	case fm == 5:
		return RfmCantLose
	case fm >= 3:
		return RfmAtRisk
	case r == 2:
		return RfmHibernating
	}
	return RfmLost
}

// genPurchase is a purchase as the generator made it, with what the
// reference expects of it.
type genPurchase struct {
	order    string
	at       time.Time
	amount   int64
	currency string
	refunded int64 // expected, capped
}

type genCustomer struct {
	id        string
	seen      time.Time // the Seen call, zero for none
	purchases []genPurchase
}

var (
	genNow     = time.Date(2025, 6, 30, 12, 0, 0, 0, time.UTC)
	genAmounts = []int64{990, 1000, 1000, 2500, 5000, 12000}
)

// generate makes n customers with many ties (amounts from a small set,
// purchases at whole days, the same purchase counts), refunds (full,
// partial, excessive), other currencies, future purchases and customers
// without purchases. Ids are a shuffled sequence, so id order is not row order.
func generate(seed int64, n int) ([]*State, []genCustomer) {
	rng := rand.New(rand.NewSource(seed))
	ids := rng.Perm(n)
	states := make([]*State, n)
	custs := make([]genCustomer, n)
	counts := []int{0, 1, 1, 1, 1, 2, 2, 3, 4, 7}
	for c := range n {
		g := genCustomer{id: fmt.Sprintf("c%06d", ids[c])}
		if rng.Intn(4) > 0 {
			g.seen = genNow.Add(-time.Duration(rng.Intn(900)) * Day).Add(-time.Duration(rng.Intn(24)) * time.Hour)
		}
		k := counts[rng.Intn(len(counts))]
		for j := range k {
			d := rng.Intn(40) * 10 // few distinct days: recency ties
			at := genNow.Add(-time.Duration(d) * Day)
			switch rng.Intn(50) {
			case 0:
				at = genNow.Add(Day) // clock skew
			case 1:
				at = genNow.Add(-Window365d) // exactly at the 365-day edge: out
			case 2, 3, 4:
				at = at.Add(time.Duration(rng.Intn(3)) * time.Hour) // same day, another hour
			case 5, 6:
				at = at.Add(time.Duration(rng.Intn(2)) * time.Nanosecond) // a nanosecond apart
			}
			p := genPurchase{order: fmt.Sprintf("o%d", j), at: at, amount: genAmounts[rng.Intn(len(genAmounts))], currency: "CNY"}
			if rng.Intn(10) == 0 {
				p.currency = "USD"
			}
			g.purchases = append(g.purchases, p)
		}
		s := &State{CustomerID: g.id}
		s.Seen(g.seen)
		// Purchases arrive in any order, refunds after their purchase.
		for _, j := range rng.Perm(k) {
			p := g.purchases[j]
			s.Apply(ProfileEvent{ID: g.id + p.order, At: p.at, Kind: EventPurchase, OrderID: p.order, Amount: p.amount, Currency: p.currency})
		}
		for j := range g.purchases {
			p := &g.purchases[j]
			var refunds []int64
			switch rng.Intn(8) {
			case 0: // refunded to zero in one go
				refunds = []int64{p.amount}
			case 1: // partially, twice
				refunds = []int64{p.amount / 4, p.amount / 3}
			case 2: // more than paid: capped
				refunds = []int64{p.amount / 2, p.amount}
			}
			var sum int64
			for _, r := range refunds {
				s.Apply(ProfileEvent{At: p.at.Add(time.Hour), Kind: EventRefund, OrderID: p.order, Amount: r, Currency: p.currency})
				sum += r
			}
			p.refunded = min(sum, p.amount)
		}
		states[c], custs[c] = s, g
	}
	return states, custs
}

// refFeatures computes the features scoring uses straight from the
// generator's purchases.
func refFeatures(g genCustomer, now time.Time, currency string) (purchases, purchases365, monetary, monetary365, tenure int64, last time.Time) {
	first := g.seen
	for _, p := range g.purchases {
		purchases++
		if p.at.After(last) {
			last = p.at
		}
		if first.IsZero() || p.at.Before(first) {
			first = p.at
		}
		in365 := p.at.After(now.Add(-365*24*time.Hour)) && !p.at.After(now)
		if in365 {
			purchases365++
		}
		if currency == "" || p.currency == currency {
			monetary += p.amount - p.refunded
			if in365 {
				monetary365 += p.amount - p.refunded
			}
		}
	}
	if !first.IsZero() && !now.Before(first) {
		tenure = int64(now.Sub(first) / (24 * time.Hour))
	}
	return
}

type refScore struct {
	r, f, m   int32
	tier      Tier
	highValue bool
	highLoyal bool
	contrib   int64
	loyalty   float64
}

// reference scores the rows in the plainest way: nested loops for the
// quintiles and the quadrants, a full sort for the pyramid.
func reference(rows []Row, st Settings) (scores []refScore, valueThreshold int64, loyaltyThreshold float64) {
	st = st.WithDefaults()
	var ranked []int
	for i, r := range rows {
		if r.Features.Purchases > 0 {
			ranked = append(ranked, i)
		}
	}
	n := len(ranked)
	scores = make([]refScore, len(rows))
	if n == 0 {
		return scores, 0, 0
	}
	quint := func(below int) int32 {
		s := 1 + (5*below)/n
		if s > 5 {
			s = 5
		}
		return int32(s)
	}
	for _, i := range ranked {
		fi := rows[i].Features
		var bR, bF, bM int
		for _, j := range ranked {
			fj := rows[j].Features
			if fj.LastPurchase.Before(fi.LastPurchase) {
				bR++
			}
			if fj.Purchases < fi.Purchases {
				bF++
			}
			if fj.Monetary < fi.Monetary {
				bM++
			}
		}
		s := &scores[i]
		s.r, s.f, s.m = quint(bR), quint(bF), quint(bM)
		if st.Value == ValueMonetary365d {
			s.contrib = fi.Monetary365d
		} else {
			s.contrib = fi.Monetary
		}
		switch st.Loyalty {
		case LoyaltyPurchases:
			s.loyalty = float64(fi.Purchases)
		case LoyaltyTenure:
			s.loyalty = float64(fi.TenureDays)
		default:
			s.loyalty = float64(fi.Purchases365d)
		}
	}

	// The pyramid: a plain stable sort, then count off the tiers.
	order := slices.Clone(ranked)
	sort.SliceStable(order, func(a, b int) bool {
		ca, cb := scores[order[a]].contrib, scores[order[b]].contrib
		if ca != cb {
			return ca > cb
		}
		return rows[order[a]].CustomerID < rows[order[b]].CustomerID
	})
	ceil := func(x float64) int { return int(math.Ceil(x - 1e-9)) }
	nPlatinum := ceil(float64(n) * st.PlatinumShare)
	nGold := ceil(float64(n)*(st.PlatinumShare+st.GoldShare)) - nPlatinum
	nIron := ceil(float64(n)*(st.PlatinumShare+st.GoldShare+st.IronShare)) - nPlatinum - nGold
	for pos, i := range order {
		switch {
		case pos < nPlatinum:
			scores[i].tier = TierPlatinum
		case pos < nPlatinum+nGold:
			scores[i].tier = TierGold
		case pos < nPlatinum+nGold+nIron:
			scores[i].tier = TierIron
		default:
			scores[i].tier = TierLead
		}
	}

	// Quadrants: high when fewer than k customers are strictly better,
	// which is the same as being at least the k-th best value.
	clamp := func(k int) int { return max(1, min(n, k)) }
	kValue, kLoyal := clamp(ceil(float64(n)*st.ValueSplit)), clamp(ceil(float64(n)*st.LoyaltySplit))
	for _, i := range ranked {
		var betterV, betterL int
		for _, j := range ranked {
			if scores[j].contrib > scores[i].contrib {
				betterV++
			}
			if scores[j].loyalty > scores[i].loyalty {
				betterL++
			}
		}
		scores[i].highValue, scores[i].highLoyal = betterV < kValue, betterL < kLoyal
	}
	valueThreshold = scores[order[kValue-1]].contrib
	loyalties := make([]float64, 0, n)
	for _, i := range ranked {
		loyalties = append(loyalties, scores[i].loyalty)
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(loyalties)))
	loyaltyThreshold = loyalties[kLoyal-1]
	return scores, valueThreshold, loyaltyThreshold
}

func refQuadrant(s refScore) Quadrant {
	switch {
	case s.highValue && s.highLoyal:
		return QuadrantStrategicPartner
	case s.highValue:
		return QuadrantRetain
	case s.highLoyal:
		return QuadrantDevelop
	}
	return QuadrantBuildRelationship
}

var referenceSettings = []Settings{
	{Currency: "CNY"},
	{Currency: "CNY", PlatinumShare: 0.02, GoldShare: 0.08, IronShare: 0.2, Value: ValueMonetary365d,
		Loyalty: LoyaltyTenure, ValueSplit: 0.3, LoyaltySplit: 0.7},
	{Currency: "USD", PlatinumShare: 0.05, GoldShare: 0.1, IronShare: 0.3, Loyalty: LoyaltyPurchases, ValueSplit: 0.25},
	{PlatinumShare: 0.07, GoldShare: 0.13, IronShare: 0.5, Value: ValueMonetary365d, Loyalty: LoyaltyPurchases365d,
		ValueSplit: 0.9, LoyaltySplit: 0.1},
}

func TestScoringMatchesReference(t *testing.T) {
	for _, pop := range []struct {
		seed int64
		n    int
	}{{1, 5000}, {2, 2500}, {3, 1000}, {4, 100}, {5, 37}, {6, 3}, {7, 1}, {8, 0}} {
		states, custs := generate(pop.seed, pop.n)
		for si, st := range referenceSettings {
			t.Run(fmt.Sprintf("seed%d_n%d_settings%d", pop.seed, pop.n, si), func(t *testing.T) {
				rows := make([]Row, len(states))
				for i, s := range states {
					f := s.Features(genNow, st.Currency)
					np, np365, m, m365, tenure, last := refFeatures(custs[i], genNow, st.Currency)
					if f.Purchases != np || f.Purchases365d != np365 || f.Monetary != m || f.Monetary365d != m365 ||
						f.TenureDays != tenure || !f.LastPurchase.Equal(last) {
						t.Fatalf("customer %s: features %+v, reference purchases %d/%d monetary %d/%d tenure %d last %v",
							s.CustomerID, f, np, np365, m, m365, tenure, last)
					}
					rows[i] = Row{CustomerID: s.CustomerID, Features: f}
				}
				got := ScorePopulation(rows, st)
				want, vt, lt := reference(rows, st)
				ranked := 0
				for i := range rows {
					w := want[i]
					g := got.Scores[i]
					if rows[i].Features.Purchases == 0 {
						if g != (Score{}) {
							t.Fatalf("customer %s without purchases scored %+v", rows[i].CustomerID, g)
						}
						continue
					}
					ranked++
					exp := Score{R: w.r, F: w.f, M: w.m, Group: refGroup(w.r, w.f, w.m), Tier: w.tier,
						Quadrant: refQuadrant(w), Contribution: w.contrib}
					if g != exp {
						t.Fatalf("customer %s (%+v): score %+v, reference %+v", rows[i].CustomerID, rows[i].Features, g, exp)
					}
				}
				if got.Ranked != ranked || got.ValueThreshold != vt || got.LoyaltyThreshold != lt {
					t.Fatalf("ranked %d thresholds %d / %v; reference %d, %d / %v",
						got.Ranked, got.ValueThreshold, got.LoyaltyThreshold, ranked, vt, lt)
				}
				checkReports(t, rows, got, want)
			})
		}
	}
}

// TestScoreTolerantCeil pins the cut-offs where float64 noise would push a
// plain ceiling up by one: 100·0.07 = 7.000000000000001.
func TestScoreTolerantCeil(t *testing.T) {
	rows := make([]Row, 100)
	for i := range rows {
		rows[i] = Row{CustomerID: fmt.Sprintf("c%03d", i), Features: Features{Purchases: 1, Monetary: int64(1000 - i),
			LastPurchase: day(i), Purchases365d: int64(i)}}
	}
	pop := ScorePopulation(rows, Settings{PlatinumShare: 0.07, GoldShare: 0.03, IronShare: 0.2, ValueSplit: 0.07, LoyaltySplit: 0.29})
	count := map[Tier]int{}
	for _, s := range pop.Scores {
		count[s.Tier]++
	}
	if count[TierPlatinum] != 7 || count[TierGold] != 3 || count[TierIron] != 20 || count[TierLead] != 70 {
		t.Fatalf("tiers %v", count)
	}
	if pop.Scores[6].Tier != TierPlatinum || pop.Scores[7].Tier != TierGold {
		t.Fatalf("the 7th and 8th by contribution are %v and %v", pop.Scores[6].Tier, pop.Scores[7].Tier)
	}
	// The 7th contribution is 994; loyalty 0..99 descending, the 29th is 71.
	if pop.ValueThreshold != 994 || pop.LoyaltyThreshold != 71 {
		t.Fatalf("thresholds %d / %v", pop.ValueThreshold, pop.LoyaltyThreshold)
	}
}

func TestScoreSmallPopulations(t *testing.T) {
	t.Run("nobody ranked", func(t *testing.T) {
		pop := ScorePopulation([]Row{{CustomerID: "a"}, {CustomerID: "b", Features: Features{Complaints: 3}}}, Settings{})
		if len(pop.Scores) != 2 || pop.Scores[0] != (Score{}) || pop.Scores[1] != (Score{}) || pop.Ranked != 0 ||
			pop.ValueThreshold != 0 || pop.LoyaltyThreshold != 0 {
			t.Fatalf("%+v", pop)
		}
		if pr := NewPyramidReport(pop.Scores); pr.Customers != 0 || pr.Top20Share != 0 || len(pr.Tiers) != 4 {
			t.Fatalf("%+v", pr)
		}
	})
	t.Run("no rows", func(t *testing.T) {
		if pop := ScorePopulation(nil, Settings{}); len(pop.Scores) != 0 || pop.Ranked != 0 {
			t.Fatalf("%+v", pop)
		}
	})
	t.Run("one customer is the worst on every measure and the top of the pyramid", func(t *testing.T) {
		pop := ScorePopulation([]Row{{CustomerID: "a", Features: Features{Purchases: 1, Monetary: 100, Purchases365d: 1, LastPurchase: day(1)}}}, Settings{})
		want := Score{R: 1, F: 1, M: 1, Group: RfmLost, Tier: TierPlatinum, Quadrant: QuadrantStrategicPartner, Contribution: 100}
		if pop.Scores[0] != want || pop.ValueThreshold != 100 || pop.LoyaltyThreshold != 1 {
			t.Fatalf("%+v", pop)
		}
	})
	t.Run("ties share a score and contribution ties go by id", func(t *testing.T) {
		rows := []Row{
			{CustomerID: "b", Features: Features{Purchases: 2, Monetary: 50, LastPurchase: day(3)}},
			{CustomerID: "a", Features: Features{Purchases: 2, Monetary: 50, LastPurchase: day(3)}},
			{CustomerID: "c", Features: Features{Purchases: 1, Monetary: 10, LastPurchase: day(1)}},
			{CustomerID: "d"},
		}
		pop := ScorePopulation(rows, Settings{PlatinumShare: 0.3, GoldShare: 0.3, IronShare: 0.3})
		// below: c = 0 → 1; a, b = 1 → 1 + floor(5/3) = 2.
		a, b, c := pop.Scores[1], pop.Scores[0], pop.Scores[2]
		if a.R != 2 || a.F != 2 || a.M != 2 || b.R != 2 || c.R != 1 || c.M != 1 {
			t.Fatalf("scores %+v", pop.Scores)
		}
		// tceil(0.9) = 1 platinum, tceil(1.8) = 2 → 1 gold, tceil(2.7) = 3 → 1 iron.
		if a.Tier != TierPlatinum || b.Tier != TierGold || c.Tier != TierIron || pop.Scores[3] != (Score{}) {
			t.Fatalf("tiers %+v", pop.Scores)
		}
	})
}

func TestScoreOnCLVWithActivity(t *testing.T) {
	// a spent most, long ago; b is worth most ahead; c bought only in
	// another currency, so the model has no view of it; d never bought
	// (a value there must not rank it).
	rows := []Row{
		{CustomerID: "a", Features: Features{Purchases: 3, Monetary: 90_000, LastPurchase: day(1)},
			Value: &CustomerValue{CLV: 100, PAlive: 0.05, Activity: ActivityLost}},
		{CustomerID: "b", Features: Features{Purchases: 9, Monetary: 1_000, LastPurchase: day(30)},
			Value: &CustomerValue{CLV: 80_000, PAlive: 0.9, Activity: ActivityActive}},
		{CustomerID: "c", Features: Features{Purchases: 1, Monetary: 50_000, LastPurchase: day(20)}},
		{CustomerID: "d", Value: &CustomerValue{CLV: 1_000_000, Activity: ActivityActive}},
	}
	noModel := slices.Clone(rows)
	for i := range noModel {
		noModel[i].Value = nil
	}
	type want struct {
		tier         Tier
		contribution int64
		activity     Activity
	}
	for _, tt := range []struct {
		name  string
		rows  []Row
		value ValueMeasure
		want  []want
	}{
		{"CLV ranks on the model, 0 without a view", rows, ValueCLV, []want{
			{TierGold, 100, ActivityLost}, {TierPlatinum, 80_000, ActivityActive}, {TierIron, 0, ActivityUnspecified}, {}}},
		{"monetary ignores CLV but keeps the activity", rows, ValueMonetary, []want{
			{TierPlatinum, 90_000, ActivityLost}, {TierIron, 1_000, ActivityActive}, {TierGold, 50_000, ActivityUnspecified}, {}}},
		{"CLV without a model is monetary", noModel, ValueCLV, []want{
			{TierPlatinum, 90_000, 0}, {TierIron, 1_000, 0}, {TierGold, 50_000, 0}, {}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// One customer in each tier.
			pop := ScorePopulation(tt.rows, Settings{PlatinumShare: 0.3, GoldShare: 0.3, IronShare: 0.3, Value: tt.value})
			for i, w := range tt.want {
				s := pop.Scores[i]
				if s.Tier != w.tier || s.Contribution != w.contribution || s.Activity != w.activity {
					t.Errorf("%s: %+v, want tier %v contribution %d activity %v", tt.rows[i].CustomerID, s, w.tier, w.contribution, w.activity)
				}
			}
			if pop.Ranked != 3 || pop.Scores[3] != (Score{}) {
				t.Errorf("ranked %d, d scored %+v; want 3 and nothing", pop.Ranked, pop.Scores[3])
			}
		})
	}
}

func TestSameClassIgnoresOnlyContribution(t *testing.T) {
	base := Score{R: 3, F: 2, M: 4, Group: RfmNeedAttention, Tier: TierGold, Quadrant: QuadrantRetain, Contribution: 500, Activity: ActivityActive}
	for _, tt := range []struct {
		name   string
		change func(*Score)
		same   bool
	}{
		{"equal", func(*Score) {}, true},
		{"contribution", func(s *Score) { s.Contribution = 900 }, true},
		{"activity", func(s *Score) { s.Activity = ActivityDormant }, false},
		{"tier", func(s *Score) { s.Tier = TierIron }, false},
		{"quadrant", func(s *Score) { s.Quadrant = QuadrantDevelop }, false},
		{"recency", func(s *Score) { s.R = 4 }, false},
		{"group", func(s *Score) { s.Group = RfmLoyal }, false},
	} {
		o := base
		tt.change(&o)
		if got := base.SameClass(o); got != tt.same || o.SameClass(base) != tt.same {
			t.Errorf("%s: SameClass = %v, want %v", tt.name, got, tt.same)
		}
	}
}

func TestNewRfmGridMisaligned(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "rows") {
			t.Fatalf("recover() = %v", r)
		}
	}()
	NewRfmGrid(make([]Row, 2), make([]Score, 1))
}

// rankKey is one ranked customer's value on one measure: v, then lo for
// the nanoseconds of a time. i is the row index. 16 bytes, so the sorts move
// little memory.
type rankKey struct {
	v  int64
	lo int32
	i  int32
}

func compareAsc(a, b rankKey) int {
	if c := cmp.Compare(a.v, b.v); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

// sortedReference is ScorePopulation as it was before selection replaced
// its sorts, kept verbatim as the differential reference: it sorts compact
// keys for each measure (O(N log N)) and sorts by customer id the tie runs a
// tier cut passes through.
func sortedReference(rows []Row, st Settings) Population {
	st = st.WithDefaults()
	pop := Population{Scores: make([]Score, len(rows))}
	keys := make([]rankKey, 0, len(rows))
	for i := range rows {
		if rows[i].Features.Purchases >= 1 {
			keys = append(keys, rankKey{i: int32(i)})
		}
	}
	n := len(keys)
	pop.Ranked = n
	if n == 0 {
		return pop
	}
	scores := pop.Scores

	// Recency, frequency, monetary: sort ascending, then every run of equal
	// keys gets the score of its first position (the number strictly below).
	quintile := func(fill func(k *rankKey, f *Features), set func(s *Score, v int32)) {
		for j := range keys {
			fill(&keys[j], &rows[keys[j].i].Features)
		}
		slices.SortFunc(keys, compareAsc)
		below := 0
		for j := range keys {
			if j > 0 && compareAsc(keys[j-1], keys[j]) != 0 {
				below = j
			}
			set(&scores[keys[j].i], int32(min(5, 1+5*below/n)))
		}
	}
	quintile(func(k *rankKey, f *Features) {
		k.v, k.lo = f.LastPurchase.Unix(), int32(f.LastPurchase.Nanosecond())
	}, func(s *Score, v int32) { s.R = v })
	quintile(func(k *rankKey, f *Features) { k.v, k.lo = f.Purchases, 0 },
		func(s *Score, v int32) { s.F = v })
	quintile(func(k *rankKey, f *Features) { k.v, k.lo = f.Monetary, 0 },
		func(s *Score, v int32) { s.M = v })

	// The contribution order: descending, ties by customer id (then row).
	// Ties only matter where a tier boundary cuts through them, so only
	// those runs are sorted by id.
	useCLV := false
	if st.Value == ValueCLV {
		for _, k := range keys {
			if rows[k.i].Value != nil {
				useCLV = true
				break
			}
		}
	}
	for j := range keys {
		k := &keys[j]
		r := &rows[k.i]
		switch {
		case !useCLV:
			k.v = st.Contribution(&r.Features)
		case r.Value != nil:
			k.v = r.Value.CLV
		default:
			k.v = 0
		}
		k.lo = 0
	}
	slices.SortFunc(keys, func(a, b rankKey) int { return cmp.Compare(b.v, a.v) })
	platinum := position(n, st.PlatinumShare, 0)
	gold := position(n, st.PlatinumShare+st.GoldShare, 0)
	iron := position(n, st.PlatinumShare+st.GoldShare+st.IronShare, 0)
	sortedTo := 0 // keys[:sortedTo] are in their final order
	for _, cut := range [...]int{platinum, gold, iron} {
		if cut <= sortedTo || cut >= n || keys[cut-1].v != keys[cut].v {
			continue
		}
		lo, hi := cut-1, cut+1
		for lo > 0 && keys[lo-1].v == keys[cut].v {
			lo--
		}
		for hi < n && keys[hi].v == keys[cut].v {
			hi++
		}
		slices.SortFunc(keys[lo:hi], func(a, b rankKey) int {
			if c := strings.Compare(rows[a.i].CustomerID, rows[b.i].CustomerID); c != 0 {
				return c
			}
			return cmp.Compare(a.i, b.i)
		})
		sortedTo = hi
	}
	for j, k := range keys {
		s := &scores[k.i]
		s.Contribution = k.v
		switch {
		case j < platinum:
			s.Tier = TierPlatinum
		case j < gold:
			s.Tier = TierGold
		case j < iron:
			s.Tier = TierIron
		default:
			s.Tier = TierLead
		}
	}
	pop.ValueThreshold = keys[position(n, st.ValueSplit, 1)-1].v

	loyalty := make([]float64, n)
	for j, k := range keys {
		loyalty[j] = st.LoyaltyOf(&rows[k.i].Features)
	}
	slices.Sort(loyalty)
	pop.LoyaltyThreshold = loyalty[n-position(n, st.LoyaltySplit, 1)]

	for _, k := range keys {
		s := &scores[k.i]
		s.Group = Group(s.R, s.F, s.M)
		highValue := s.Contribution >= pop.ValueThreshold
		highLoyalty := st.LoyaltyOf(&rows[k.i].Features) >= pop.LoyaltyThreshold
		s.Quadrant = sortedQuadrantOf(highValue, highLoyalty)
		if v := rows[k.i].Value; v != nil {
			s.Activity = v.Activity
		}
	}
	return pop
}

// sortedQuadrantOf is quadrantOf as sortedReference had it.
func sortedQuadrantOf(highValue, highLoyalty bool) Quadrant {
	switch {
	case highValue && highLoyalty:
		return QuadrantStrategicPartner
	case highValue:
		return QuadrantRetain
	case highLoyalty:
		return QuadrantDevelop
	}
	return QuadrantBuildRelationship
}

var (
	benchOnce sync.Once
	benchRows []Row
)

// benchPopulation is a million customers with realistic ties.
func benchPopulation() []Row {
	benchOnce.Do(func() {
		rng := rand.New(rand.NewSource(42))
		const n = 1_000_000
		ids := rng.Perm(n)
		benchRows = make([]Row, n)
		for i := range benchRows {
			r := &benchRows[i]
			r.CustomerID = fmt.Sprintf("cust-%07d", ids[i])
			if rng.Intn(10) == 0 {
				continue
			}
			k := int64(1 + rng.ExpFloat64()*2)
			f := &r.Features
			f.Purchases = k
			f.Purchases365d = rng.Int63n(k + 1)
			f.LastPurchase = genNow.Add(-time.Duration(rng.Intn(1500)) * Day).Add(time.Duration(rng.Intn(86400)) * time.Second)
			f.Monetary = k * genAmounts[rng.Intn(len(genAmounts))] * int64(1+rng.Intn(20))
			f.Monetary365d = f.Monetary * f.Purchases365d / k
			f.TenureDays = int64(rng.Intn(2000))
		}
	})
	return benchRows
}

func BenchmarkScorePopulation1M(b *testing.B) {
	rows := benchPopulation()
	st := Settings{Currency: "CNY"}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		pop := ScorePopulation(rows, st)
		if pop.Ranked == 0 {
			b.Fatal("nobody ranked")
		}
	}
}

// BenchmarkScoreBuffers1M is a full re-evaluation's scoring: the same
// population again and again through one ScoreBuffers.
func BenchmarkScoreBuffers1M(b *testing.B) {
	rows := benchPopulation()
	st := Settings{Currency: "CNY"}
	row := func(i int) (string, *Features, *CustomerValue) {
		return rows[i].CustomerID, &rows[i].Features, rows[i].Value
	}
	var buf ScoreBuffers
	buf.ScoreEach(len(rows), row, st)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if buf.ScoreEach(len(rows), row, st).Ranked == 0 {
			b.Fatal("nobody ranked")
		}
	}
}

func BenchmarkScoreReports1M(b *testing.B) {
	rows := benchPopulation()
	pop := ScorePopulation(rows, Settings{})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		NewPyramidReport(pop.Scores)
		NewQuadrantReport(pop.Scores, pop.ValueThreshold, pop.LoyaltyThreshold)
		NewRfmGrid(rows, pop.Scores)
	}
}

func BenchmarkScoreSortedReference1M(b *testing.B) {
	rows := benchPopulation()
	st := Settings{Currency: "CNY"}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		pop := sortedReference(rows, st)
		if pop.Ranked == 0 {
			b.Fatal("nobody ranked")
		}
	}
}

// TestQuintileBounds checks the identity selection rests on, for every
// population size up to 500 and every count below: min(5, 1+⌊5·below/N⌋)
// is 1 + #{k in 2..5 : below ≥ p_k}, with p_k - 1 = quintileBounds(N)[k-2];
// and below ≥ p_k is x[p_k-1] < v for a value v with below values under it.
func TestQuintileBounds(t *testing.T) {
	for n := 1; n <= 500; n++ {
		qb := quintileBounds(n)
		for q, b := range qb {
			if b < 0 || b >= n || (q > 0 && b < qb[q-1]) {
				t.Fatalf("N=%d: bounds %v", n, qb)
			}
		}
		for below := range n {
			want := min(5, 1+5*below/n)
			got := 1
			for _, b := range qb {
				if below >= b+1 {
					got++
				}
			}
			if got != want {
				t.Fatalf("N=%d below=%d: %d by the bounds %v, %d by the formula", n, below, got, qb, want)
			}
		}
	}
}

// randomPopulation makes n rows with heavy ties on every measure (or none,
// by chance): few distinct times, some a nanosecond apart in the same
// second, customers without purchases (some with a value model's view,
// which must not rank them), duplicate ids, values for some; with farTimes
// also times too far apart for the one-int64 recency key.
func randomPopulation(rng *rand.Rand, n int, farTimes bool) []Row {
	pick := func(xs ...int64) int64 { return xs[rng.Intn(len(xs))] }
	distinct := []int{1, 2, 3, 5, 20, 1 << 30}[rng.Intn(6)] // per measure
	// Now and then runs at the ends of int64.
	extremes := rng.Intn(8) == 0
	val := func(scale int64) int64 {
		if extremes && rng.Intn(2) == 0 {
			return pick(math.MinInt64, math.MaxInt64, math.MaxInt64-1)
		}
		if rng.Intn(50) == 0 {
			return pick(math.MinInt64, math.MaxInt64, 0, -1, 1<<53+1, 1<<60)
		}
		return int64(rng.Intn(distinct)) * scale
	}
	noPurchases := []int{0, 1, 3, 10}[rng.Intn(4)] // in 10
	ids := []int{1, 3, n + 1, 1 << 30}[rng.Intn(4)]
	base := time.Date(2025, 6, 30, 12, 0, 0, 0, time.UTC).Unix()
	rows := make([]Row, n)
	for i := range rows {
		r := &rows[i]
		r.CustomerID = fmt.Sprintf("c%d", rng.Intn(ids))
		f := &r.Features
		if rng.Intn(10) >= noPurchases {
			f.Purchases = 1 + val(1)
			if f.Purchases < 1 {
				f.Purchases = 1 + int64(rng.Intn(3))
			}
		} else if rng.Intn(2) == 0 {
			f.Purchases = pick(0, -1) // unranked either way
		}
		at := time.Unix(base-val(86400)%(3000*86400), pick(0, 0, 0, 1, 2, 999_999_999))
		if farTimes && rng.Intn(20) == 0 {
			at = []time.Time{{}, time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
				time.Unix(math.MaxInt64/4, 5), time.Unix(math.MinInt64/4, 7)}[rng.Intn(5)]
		}
		f.LastPurchase = at
		f.Monetary = val(100)
		f.Monetary365d = val(100)
		f.Purchases365d = val(1)
		f.TenureDays = val(7)
		if rng.Intn(3) > 0 {
			r.Value = &CustomerValue{CLV: val(1000), Activity: Activity(rng.Intn(4))}
		}
	}
	return rows
}

// randomSettings draws every setting from values that matter: defaults,
// tiny shares (cuts at 0), shares that make cuts coincide or pass N, the
// unvalidated (negative, above 1, NaN), every measure and unknown ones.
func randomSettings(rng *rand.Rand) Settings {
	share := func() float64 {
		return []float64{0, 0, 1e-12, 0.01, 0.04, 0.1, 0.15, 0.2, 1.0 / 3, 0.5, 0.9, 1, 1.5, -0.2, math.NaN()}[rng.Intn(15)]
	}
	return Settings{
		PlatinumShare: share(), GoldShare: share(), IronShare: share(),
		Value:      []ValueMeasure{ValueUnspecified, ValueMonetary, ValueMonetary365d, ValueCLV, ValueCLV, 7}[rng.Intn(6)],
		Loyalty:    []LoyaltyMeasure{LoyaltyUnspecified, LoyaltyPurchases365d, LoyaltyPurchases, LoyaltyTenure, 9}[rng.Intn(5)],
		ValueSplit: share(), LoyaltySplit: share(),
	}
}

func samePopulation(t *testing.T, what string, got, want Population) {
	t.Helper()
	if len(got.Scores) != len(want.Scores) || got.Ranked != want.Ranked ||
		got.ValueThreshold != want.ValueThreshold || got.LoyaltyThreshold != want.LoyaltyThreshold {
		t.Fatalf("%s: %d scores, ranked %d, thresholds %d / %v; want %d, %d, %d / %v", what,
			len(got.Scores), got.Ranked, got.ValueThreshold, got.LoyaltyThreshold,
			len(want.Scores), want.Ranked, want.ValueThreshold, want.LoyaltyThreshold)
	}
	for i := range got.Scores {
		if got.Scores[i] != want.Scores[i] {
			t.Fatalf("%s: row %d scored %+v, want %+v", what, i, got.Scores[i], want.Scores[i])
		}
	}
}

// TestScoreMatchesSortedReference compares the selection-based scoring with
// the sort-based one it replaced on many random populations and settings.
func TestScoreMatchesSortedReference(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	sizes := []int{0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 16, 17, 99, 100, 101}
	runs := 3000
	if testing.Short() {
		runs = 300
	}
	// One ScoreBuffers for every population, of every size and settings,
	// with and without values: what a call leaves in it must not leak
	// into the next.
	var buf ScoreBuffers
	for run := range runs {
		var n int
		switch {
		case run < len(sizes)*20:
			n = sizes[run%len(sizes)]
		case run == len(sizes)*20 && !testing.Short():
			n = 3 * parallelMin // the columns selected and scored concurrently
		case run%10 == 0:
			n = 500 + rng.Intn(2501)
		default:
			n = rng.Intn(300)
		}
		rows := randomPopulation(rng, n, run%7 == 0)
		for range 3 {
			st := randomSettings(rng)
			what := fmt.Sprintf("run %d, n=%d, %+v", run, n, st)
			want := sortedReference(rows, st)
			samePopulation(t, what, ScorePopulation(rows, st), want)
			{
				// The accessor, with nil features for the unranked and
				// checking it is first called once per row, in order.
				calls := 0
				got := buf.ScoreEach(n, func(i int) (string, *Features, *CustomerValue) {
					if calls < n && i != calls {
						t.Fatalf("%s: call %d for row %d", what, calls, i)
					}
					calls++
					r := &rows[i]
					if r.Features.Purchases < 1 {
						return r.CustomerID, nil, r.Value
					}
					return r.CustomerID, &r.Features, r.Value
				}, st)
				samePopulation(t, what+" (ScoreEach)", got, want)
			}
		}
	}
}

// TestScoreRecencyKeyEdge puts times at the edge of the one-int64 recency
// key: maxSpan seconds and their last nanosecond on either side of the first
// ranked customer's second still fit, a second more does not; either way
// the scores are those of the sort.
func TestScoreRecencyKeyEdge(t *testing.T) {
	const base = 1_750_000_000
	for _, tt := range []struct {
		name  string
		secs  []int64
		exact bool
	}{
		{"within", []int64{base + maxSpan, base - maxSpan, base}, true},
		{"a second later", []int64{base + maxSpan + 1, base}, false},
		{"a second earlier", []int64{base - maxSpan - 1, base}, false},
		{"wrapping int64", []int64{math.MaxInt64 / 2, math.MinInt64 / 2}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rows := []Row{{CustomerID: "first", Features: Features{Purchases: 1, LastPurchase: time.Unix(base, 500)}}}
			for i, s := range tt.secs {
				for _, ns := range []int64{0, 499, 500, 999_999_999} {
					rows = append(rows, Row{CustomerID: fmt.Sprint(i, ns),
						Features: Features{Purchases: 1, LastPurchase: time.Unix(s, ns)}})
				}
			}
			c := new(ScoreBuffers).gatherColumns(len(rows), func(i int) (string, *Features, *CustomerValue) {
				return rows[i].CustomerID, &rows[i].Features, nil
			}, Settings{}.WithDefaults(), make([]Score, len(rows)))
			if c.recencyExact != tt.exact {
				t.Fatalf("recencyExact = %v, want %v", c.recencyExact, tt.exact)
			}
			samePopulation(t, tt.name, ScorePopulation(rows, Settings{}), sortedReference(rows, Settings{}))
		})
	}
}
