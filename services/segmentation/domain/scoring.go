package domain

import (
	"cmp"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"rapport.dev/platform/fault"
)

// RfmGroup is a named RFM group; the numbers are those of
// rapport.segmentation.v1.RfmGroup.
type RfmGroup int32

// RFM groups. RfmGroupUnspecified is a customer without purchases.
const (
	RfmGroupUnspecified  RfmGroup = 0
	RfmChampions         RfmGroup = 1
	RfmLoyal             RfmGroup = 2
	RfmPotentialLoyalist RfmGroup = 3
	RfmNew               RfmGroup = 4
	RfmPromising         RfmGroup = 5
	RfmNeedAttention     RfmGroup = 6
	RfmAboutToSleep      RfmGroup = 7
	RfmAtRisk            RfmGroup = 8
	RfmCantLose          RfmGroup = 9
	RfmHibernating       RfmGroup = 10
	RfmLost              RfmGroup = 11
)

var rfmGroupNames = [...]string{"unspecified", "champions", "loyal", "potential loyalist", "new", "promising",
	"need attention", "about to sleep", "at risk", "can't lose", "hibernating", "lost"}

func (g RfmGroup) String() string { return enumName(rfmGroupNames[:], int32(g)) }

// Tier is a level of the value pyramid; the numbers are those of
// rapport.segmentation.v1.Tier.
type Tier int32

// Tiers. TierUnspecified is a customer without purchases.
const (
	TierUnspecified Tier = 0
	TierPlatinum    Tier = 1
	TierGold        Tier = 2
	TierIron        Tier = 3
	TierLead        Tier = 4
)

var tierNames = [...]string{"unspecified", "platinum", "gold", "iron", "lead"}

func (t Tier) String() string { return enumName(tierNames[:], int32(t)) }

// Quadrant is a cell of the value × loyalty matrix; the numbers are those of
// rapport.segmentation.v1.Quadrant.
type Quadrant int32

// Quadrants. QuadrantUnspecified is a customer without purchases.
const (
	QuadrantUnspecified       Quadrant = 0
	QuadrantStrategicPartner  Quadrant = 1 // high value, high loyalty
	QuadrantRetain            Quadrant = 2 // high value, low loyalty
	QuadrantDevelop           Quadrant = 3 // low value, high loyalty
	QuadrantBuildRelationship Quadrant = 4 // low value, low loyalty
)

var quadrantNames = [...]string{"unspecified", "strategic partner", "retain", "develop", "build relationship"}

func (q Quadrant) String() string { return enumName(quadrantNames[:], int32(q)) }

// ValueMeasure is what the pyramid and the quadrants rank customers on; the
// numbers are those of rapport.segmentation.v1.ValueMeasure.
type ValueMeasure int32

// Value measures; unspecified means ValueMonetary.
const (
	ValueUnspecified  ValueMeasure = 0
	ValueMonetary     ValueMeasure = 1 // Features.Monetary
	ValueMonetary365d ValueMeasure = 2 // Features.Monetary365d
	ValueCLV          ValueMeasure = 3 // CustomerValue.CLV, Monetary without a value model
)

// LoyaltyMeasure is what the quadrants take as loyalty; the numbers are
// those of rapport.segmentation.v1.LoyaltyMeasure.
type LoyaltyMeasure int32

// Loyalty measures; unspecified means LoyaltyPurchases365d.
const (
	LoyaltyUnspecified   LoyaltyMeasure = 0
	LoyaltyPurchases365d LoyaltyMeasure = 1 // Features.Purchases365d
	LoyaltyPurchases     LoyaltyMeasure = 2 // Features.Purchases
	LoyaltyTenure        LoyaltyMeasure = 3 // Features.TenureDays
)

func enumName(names []string, v int32) string {
	if v < 0 || int(v) >= len(names) {
		return "unknown"
	}
	return names[v]
}

// Settings are a tenant's scoring settings. Zero values mean the defaults
// (see WithDefaults).
type Settings struct {
	// Currency is the reporting currency (ISO 4217); money features count
	// only purchases in it. Empty counts every purchase.
	Currency string `json:"currency,omitempty"`
	// PlatinumShare, GoldShare and IronShare are the tiers' shares of the
	// ranked customers.
	PlatinumShare float64 `json:"platinum,omitempty"`
	GoldShare     float64 `json:"gold,omitempty"`
	IronShare     float64 `json:"iron,omitempty"`
	// Value is what the pyramid and the quadrants rank on.
	Value ValueMeasure `json:"value,omitempty"`
	// Loyalty is what the quadrants take as loyalty.
	Loyalty LoyaltyMeasure `json:"loyalty,omitempty"`
	// ValueSplit and LoyaltySplit are the shares of ranked customers whose
	// position makes them high value and highly loyal.
	ValueSplit   float64 `json:"value_split,omitempty"`
	LoyaltySplit float64 `json:"loyalty_split,omitempty"`
	// ValueModel are the value model's settings.
	ValueModel ValueModelSettings `json:"value_model,omitzero"`
}

// WithDefaults fills in the zero fields: shares 0.01 / 0.04 / 0.15, value
// Monetary, loyalty Purchases365d, splits 0.5. The currency stays as given.
func (s Settings) WithDefaults() Settings {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&s.PlatinumShare, DefaultPlatinumShare)
	def(&s.GoldShare, DefaultGoldShare)
	def(&s.IronShare, DefaultIronShare)
	def(&s.ValueSplit, DefaultSplit)
	def(&s.LoyaltySplit, DefaultSplit)
	if s.Value == ValueUnspecified {
		s.Value = ValueMonetary
	}
	if s.Loyalty == LoyaltyUnspecified {
		s.Loyalty = LoyaltyPurchases365d
	}
	s.ValueModel = s.ValueModel.withDefaults()
	return s
}

// Defaults of the settings (seed 003: 1% / 4% / 15% / 80%; the median split).
const (
	DefaultPlatinumShare = 0.01
	DefaultGoldShare     = 0.04
	DefaultIronShare     = 0.15
	DefaultSplit         = 0.5
)

// ParetoShare is the share of ranked customers the 20/80 report looks at.
const ParetoShare = 0.2

var currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)

// Validate checks the settings; zero fields stand for their defaults. Shares
// and splits must lie in (0, 1), the three shares (defaults filled in) must
// sum to less than 1, the currency must be three capital letters when set
// and the measures known. Violations name the API fields (platinum_share …).
func (s Settings) Validate() error {
	var v fault.Violations
	if s.Currency != "" && !currencyRE.MatchString(s.Currency) {
		v.Add("currency", "must be an ISO 4217 code of three capital letters, got %q", s.Currency)
	}
	sharesOK := true
	share := func(field string, x float64) {
		if x != 0 && !(x > 0 && x < 1) {
			v.Add(field, "must be between 0 and 1 (exclusive), got %v", x)
			sharesOK = false
		}
	}
	share("platinum_share", s.PlatinumShare)
	share("gold_share", s.GoldShare)
	share("iron_share", s.IronShare)
	share("value_split", s.ValueSplit)
	share("loyalty_split", s.LoyaltySplit)
	if sharesOK {
		d := s.WithDefaults()
		if sum := d.PlatinumShare + d.GoldShare + d.IronShare; sum >= 1 {
			for _, f := range []string{"platinum_share", "gold_share", "iron_share"} {
				v.Add(f, "platinum_share + gold_share + iron_share must be below 1, got %v", sum)
			}
		}
	}
	s.ValueModel.validate(&v)
	if s.Value < ValueUnspecified || s.Value > ValueCLV {
		v.Add("value_measure", "unknown value measure %d", s.Value)
	}
	if s.Loyalty < LoyaltyUnspecified || s.Loyalty > LoyaltyTenure {
		v.Add("loyalty_measure", "unknown loyalty measure %d", s.Loyalty)
	}
	return v.Err()
}

// Contribution is the customer's value measure from features: Monetary, or
// Monetary365d when Value is ValueMonetary365d. (ValueCLV is taken from
// Row.Value by ScorePopulation.)
func (s Settings) Contribution(f *Features) int64 {
	if s.Value == ValueMonetary365d {
		return f.Monetary365d
	}
	return f.Monetary
}

// LoyaltyOf is the customer's loyalty measure as a float64: Purchases365d
// (the default), Purchases or TenureDays.
func (s Settings) LoyaltyOf(f *Features) float64 {
	switch s.Loyalty {
	case LoyaltyPurchases:
		return float64(f.Purchases)
	case LoyaltyTenure:
		return float64(f.TenureDays)
	}
	return float64(f.Purchases365d)
}

// Row is one customer's input to scoring.
type Row struct {
	CustomerID string
	Features   Features
	// Value is the value model's view of the customer; nil without a
	// fitted model or without purchases.
	Value *CustomerValue
}

// Score is a customer's population-relative scores. The zero Score is an
// unranked customer (no purchases).
type Score struct {
	// R, F and M are the RFM quintile scores, 1 (worst) to 5 (best).
	R int32 `json:"r,omitempty"`
	F int32 `json:"f,omitempty"`
	M int32 `json:"m,omitempty"`
	// Group is the named group of (R, F, M).
	Group    RfmGroup `json:"g,omitempty"`
	Tier     Tier     `json:"t,omitempty"`
	Quadrant Quadrant `json:"q,omitempty"`
	// Contribution is the value measure the pyramid ranks on, in minor units.
	Contribution int64 `json:"c,omitempty"`
	// Activity is the customer's activity state from the value model.
	Activity Activity `json:"a,omitempty"`
}

// SameClass reports whether two scores put the customer in the same
// classes: equal but for Contribution, which is a measure, not a class.
func (s Score) SameClass(o Score) bool {
	s.Contribution, o.Contribution = 0, 0
	return s == o
}

// Ranked reports whether the customer took part in the ranking.
func (s Score) Ranked() bool { return s.Tier != TierUnspecified }

// Population is the outcome of scoring a tenant's customers.
type Population struct {
	// Scores are aligned with the scored rows.
	Scores []Score
	// Ranked is N, the number of customers with at least one purchase.
	Ranked int
	// ValueThreshold is the contribution at or above which a customer is
	// high value; LoyaltyThreshold the loyalty measure at or above which a
	// customer is highly loyal. Both are 0 when nobody is ranked.
	ValueThreshold   int64
	LoyaltyThreshold float64
}

// tceil is the ceiling tolerant of float noise: 0.07·100 is 7.000000000000001
// in float64 and must give 7, not 8.
func tceil(x float64) int { return int(math.Ceil(x - 1e-9)) }

// position is tceil(n·share) clamped to [lo, n].
func position(n int, share float64, lo int) int {
	return max(lo, min(n, tceil(float64(n)*share)))
}

// ScorePopulation scores rows together under st (defaults filled in): RFM
// quintiles and group, tier, quadrant and contribution, as defined in the
// package documentation. It is ScoreEach over the rows.
func ScorePopulation(rows []Row, st Settings) Population {
	return ScoreEach(len(rows), func(i int) (string, *Features, *CustomerValue) {
		r := &rows[i]
		return r.CustomerID, &r.Features, r.Value
	}, st)
}

// ScoreEach scores n customers given by row(i); it gives the same
// Population as ScorePopulation on the equivalent rows (a nil f is a
// customer without features). row is called once for every i in order,
// then again for the customers whose ids break a tie at a tier cut (and for
// every ranked customer when a LastPurchase lies more than 292 years from
// the first ranked customer's), so it must be cheap; it is never called concurrently, and neither f nor v
// is kept past the call. n must fit in an int32.
//
// It runs in expected O(n): one pass gathers the measures of the ranked
// customers into int64 columns, selection (selectInt64, one per distinct
// column) finds the few order statistics the scores depend on, and one more
// pass scores everyone:
//
//   - RFM: with x the ascending order of a measure over the N ranked
//     customers, a value v scores 1 + #{k in 2..5 : v > x[p_k-1]}, where
//     p_k = ⌈(k-1)·N/5⌉. That is the documented min(5, 1+⌊5·below/N⌋):
//     1+⌊5·below/N⌋ ≥ k ⇔ below ≥ (k-1)·N/5 ⇔ below ≥ p_k, and
//     below = #{x < v} ≥ p_k ⇔ x[p_k-1] < v.
//   - Pyramid: a customer is in the top c (c = a tier cut) when its
//     contribution is above t, the c-th largest, or equal to t and among the
//     first c - #{contribution > t} of the customers at t ordered by
//     (customer id, row); only a cut through such a tie run reads the ids.
//   - The value threshold is the tceil(N·ValueSplit)-th largest
//     contribution and the loyalty threshold the tceil(N·LoyaltySplit)-th
//     largest loyalty measure: order statistics too.
func ScoreEach(n int, row func(i int) (id string, f *Features, v *CustomerValue), st Settings) Population {
	return new(ScoreBuffers).ScoreEach(n, row, st)
}

// ScoreBuffers are ScoreEach's working memory, for a caller that scores
// populations again and again (a full re-evaluation every hour): kept
// between calls, they spare it allocating and the garbage collector
// scanning some hundred bytes per customer at every pass. The zero value
// is ready; a ScoreBuffers serves one call at a time.
type ScoreBuffers struct {
	scores        []Score
	idx           []int32
	r, f, m, c, l []int64
	scratch       []int64
}

// grow returns s resized to n, its old contents unspecified.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// ScoreEach is the package's ScoreEach in b's memory. The returned
// Population's Scores are b's: valid until b's next call.
func (b *ScoreBuffers) ScoreEach(n int, row func(i int) (id string, f *Features, v *CustomerValue), st Settings) Population {
	if n < 0 || int64(n) > math.MaxInt32 {
		panic(fmt.Sprintf("domain.ScoreEach: %d customers", n))
	}
	st = st.WithDefaults()
	b.scores = grow(b.scores, n)
	clear(b.scores)
	pop := Population{Scores: b.scores}
	scores := pop.Scores
	c := b.gatherColumns(n, row, st, scores)
	nr := len(c.idx)
	pop.Ranked = nr
	if nr == 0 {
		return pop
	}
	// The order statistics: RFM quintile boundaries, the tier cuts (the
	// cut-th largest contribution is at nr-cut ascending) and the
	// thresholds.
	qb := quintileBounds(nr)
	cuts := [3]tierCut{
		{cut: position(nr, st.PlatinumShare, 0)},
		{cut: position(nr, st.PlatinumShare+st.GoldShare, 0)},
		{cut: position(nr, st.PlatinumShare+st.GoldShare+st.IronShare, 0)},
	}
	var rT, fT, mT [4]int64
	var cutT [3]int64
	var valueT, loyaltyT [1]int64
	jobs := []statJob{
		{c.f, qb[:], fT[:]},
		{c.m, qb[:], mT[:]},
		{c.c, []int{nr - position(nr, st.ValueSplit, 1)}, valueT[:]},
		{c.l, []int{nr - position(nr, st.LoyaltySplit, 1)}, loyaltyT[:]},
	}
	if c.recencyExact {
		jobs = append(jobs, statJob{c.r, qb[:], rT[:]})
	} else {
		recencyScores(c, row, qb)
		rT = [4]int64{1, 2, 3, 4} // c.r holds the scores themselves
	}
	for q, tc := range cuts {
		if tc.cut > 0 && tc.cut < nr {
			jobs = append(jobs, statJob{c.c, []int{nr - tc.cut}, cutT[q : q+1]})
		}
	}
	b.scratch = orderStats(jobs, b.scratch)
	pop.ValueThreshold, pop.LoyaltyThreshold = valueT[0], float64(loyaltyT[0])
	for q := range cuts {
		cuts[q].t = cutT[q]
	}
	ties := splitTies(c, &cuts, row)
	tb := newTierBounds(&cuts, nr)

	eachRange(nr, func(lo, hi int) {
		for j := lo; j < hi; j++ {
			s := &scores[c.idx[j]]
			s.R = quintile(c.r[j], &rT)
			s.F = quintile(c.f[j], &fT)
			s.M = quintile(c.m[j], &mT)
			s.Group = Group(s.R, s.F, s.M)
			v := c.c[j]
			s.Contribution = v
			s.Tier = tb.tier(v)
			s.Quadrant = quadrantOf(v >= pop.ValueThreshold, float64(c.l[j]) >= pop.LoyaltyThreshold)
		}
	})
	// The customers at a contribution a cut splits: their place in the run
	// decides.
	for q, j := range ties.j {
		scores[c.idx[j]].Tier = tierOf(&cuts, nr, c.c[j], &ties.keys[q])
	}
	return pop
}

// quintile is 1 + the number of boundaries t below v.
func quintile(v int64, t *[4]int64) int32 {
	return int32(1 + b2i(v > t[0]) + b2i(v > t[1]) + b2i(v > t[2]) + b2i(v > t[3]))
}

// columns are the ranked customers' measures, aligned: the j-th ranked
// customer is row idx[j] (ascending).
type columns struct {
	idx []int32
	// r is the recency key: LastPurchase as nanoseconds since the first
	// ranked customer's second when recencyExact, which holds unless a time
	// lies more than 292 years from that second (see recencyScores).
	r            []int64
	recencyExact bool
	f, m         []int64 // Purchases, Monetary
	c            []int64 // the contribution
	l            []int64 // the loyalty measure; Settings.LoyaltyOf is its float64
}

// maxSpan is the largest distance in seconds from the base that keeps
// d·1e9 + nanoseconds within an int64.
const maxSpan = (math.MaxInt64 - 999_999_999) / 1_000_000_000

// gatherColumns calls row once for every customer and keeps the measures of
// those with purchases; it sets their Activity in scores directly.
func (b *ScoreBuffers) gatherColumns(n int, row func(int) (string, *Features, *CustomerValue), st Settings, scores []Score) *columns {
	b.idx, b.r, b.f, b.m = grow(b.idx, n), grow(b.r, n), grow(b.f, n), grow(b.m, n)
	idx, r, f, m := b.idx, b.r, b.f, b.m
	var c, l []int64
	switch st.Value {
	case ValueMonetary365d, ValueCLV:
		b.c = grow(b.c, n)
		c = b.c
	default:
		c = m
	}
	if st.Loyalty == LoyaltyPurchases {
		l = f
	} else {
		b.l = grow(b.l, n)
		l = b.l
	}
	var base int64
	exact, anyValue := true, false
	j := 0
	for i := range n {
		_, ft, v := row(i)
		if ft == nil || ft.Purchases < 1 {
			continue
		}
		idx[j] = int32(i)
		sec, ns := ft.LastPurchase.Unix(), int64(ft.LastPurchase.Nanosecond())
		if j == 0 {
			base = sec
		}
		if sec >= base && uint64(sec)-uint64(base) <= maxSpan {
			r[j] = (sec-base)*1_000_000_000 + ns
		} else if sec < base && uint64(base)-uint64(sec) <= maxSpan {
			r[j] = -int64(uint64(base)-uint64(sec))*1_000_000_000 + ns
		} else {
			exact = false
		}
		f[j] = ft.Purchases
		m[j] = ft.Monetary
		switch st.Value {
		case ValueMonetary365d:
			c[j] = ft.Monetary365d
		case ValueCLV:
			c[j] = 0 // b's memory holds the last call's
			if v != nil {
				c[j] = v.CLV
				anyValue = true
			}
		}
		switch st.Loyalty {
		case LoyaltyPurchases: // l is f
		case LoyaltyTenure:
			l[j] = ft.TenureDays
		default:
			l[j] = ft.Purchases365d
		}
		if v != nil {
			scores[i].Activity = v.Activity
		}
		j++
	}
	if st.Value == ValueCLV && !anyValue {
		c = m // CLV without a value model is monetary
	}
	return &columns{idx: idx[:j], r: r[:j], recencyExact: exact, f: f[:j], m: m[:j], c: c[:j], l: l[:j]}
}

// recencyScores puts the recency scores themselves in c.r when the times
// are too far apart for one int64 key: each boundary is selected on the
// seconds, then on the nanoseconds among the times in that second.
func recencyScores(c *columns, row func(int) (string, *Features, *CustomerValue), qb [4]int) {
	nr := len(c.idx)
	sec, ns, scratch := make([]int64, nr), make([]int64, nr), make([]int64, nr)
	for j, i := range c.idx {
		_, f, _ := row(int(i))
		sec[j], ns[j] = f.LastPurchase.Unix(), int64(f.LastPurchase.Nanosecond())
	}
	var bs, bn [4]int64
	for q, k := range qb {
		var s [1]int64
		scratch = orderStats([]statJob{{sec, []int{k}, s[:]}}, scratch)
		below, same := 0, scratch[:0]
		for j, x := range sec {
			if x < s[0] {
				below++
			} else if x == s[0] {
				same = append(same, ns[j])
			}
		}
		selectInt64(same, []int{k - below})
		bs[q], bn[q] = s[0], same[k-below]
	}
	for j := range sec {
		score := int64(1)
		for q := range bs {
			if sec[j] > bs[q] || sec[j] == bs[q] && ns[j] > bn[q] {
				score++
			}
		}
		c.r[j] = score
	}
}

// tierCut is one of the pyramid's cuts: the top cut customers of the
// contribution order are in the tier or above.
type tierCut struct {
	cut int
	// t is the cut-th largest contribution (with 0 < cut < N).
	t int64
	// split is set when the cut passes through the run of contributions
	// equal to t; then last is the last customer of the run inside the cut.
	split bool
	last  tieKey
}

// tieKey orders customers of equal contribution: by id, then row.
type tieKey struct {
	id string
	i  int32
}

func compareTieKeys(a, b tieKey) int {
	if c := strings.Compare(a.id, b.id); c != 0 {
		return c
	}
	return cmp.Compare(a.i, b.i)
}

// in reports whether a customer of contribution v and key k is inside the
// cut.
func (tc *tierCut) in(n int, v int64, k *tieKey) bool {
	switch {
	case tc.cut <= 0:
		return false
	case tc.cut >= n:
		return true
	case v != tc.t:
		return v > tc.t
	case !tc.split:
		return true
	}
	return compareTieKeys(*k, tc.last) <= 0
}

func tierOf(cuts *[3]tierCut, n int, v int64, k *tieKey) Tier {
	switch {
	case cuts[0].in(n, v, k):
		return TierPlatinum
	case cuts[1].in(n, v, k):
		return TierGold
	case cuts[2].in(n, v, k):
		return TierIron
	}
	return TierLead
}

// tierBounds are the cuts as bounds on the contribution alone: a customer
// is inside cut q when !never[q] && v >= lo[q]. That is tierCut.in for every
// contribution but the t of a split cut, whose customers are settled
// afterwards by their tieKey.
type tierBounds struct {
	lo    [3]int64
	never [3]bool
}

func newTierBounds(cuts *[3]tierCut, n int) *tierBounds {
	var b tierBounds
	for q := range cuts {
		tc := &cuts[q]
		switch {
		case tc.cut <= 0:
			b.never[q] = true
		case tc.cut >= n:
			b.lo[q] = math.MinInt64
		default:
			b.lo[q] = tc.t
		}
	}
	return &b
}

func (b *tierBounds) tier(v int64) Tier {
	switch {
	case !b.never[0] && v >= b.lo[0]:
		return TierPlatinum
	case !b.never[1] && v >= b.lo[1]:
		return TierGold
	case !b.never[2] && v >= b.lo[2]:
		return TierIron
	}
	return TierLead
}

// ties are the ranked customers (by column position j) at a contribution
// some cut splits, with their keys.
type ties struct {
	j    []int
	keys []tieKey
}

// splitTies settles the cuts through runs of equal contributions: counts
// each cut value's run and the customers above it, and where the cut takes
// only part of the run, selects by (id, row) the last customer it takes.
func splitTies(c *columns, cuts *[3]tierCut, row func(int) (string, *Features, *CustomerValue)) ties {
	nr := len(c.idx)
	var above, equal [3]int
	t0, t1, t2 := cuts[0].t, cuts[1].t, cuts[2].t
	for _, v := range c.c {
		above[0] += b2i(v > t0)
		above[1] += b2i(v > t1)
		above[2] += b2i(v > t2)
		equal[0] += b2i(v == t0)
		equal[1] += b2i(v == t1)
		equal[2] += b2i(v == t2)
	}
	var out ties
	for q := range cuts {
		tc := &cuts[q]
		if tc.cut <= 0 || tc.cut >= nr || tc.cut-above[q] >= equal[q] {
			continue
		}
		tc.split = true
		// Each run is gathered once, for all the cuts through it.
		first := true
		for p := range q {
			if cuts[p].split && cuts[p].t == tc.t {
				first = false
			}
		}
		if !first {
			continue
		}
		start := len(out.j)
		for j, v := range c.c {
			if v == tc.t {
				id, _, _ := row(int(c.idx[j]))
				out.j = append(out.j, j)
				out.keys = append(out.keys, tieKey{id: id, i: c.idx[j]})
			}
		}
		run := slices.Clone(out.keys[start:])
		var ks []int
		for p := q; p < len(cuts); p++ {
			if cuts[p].cut > 0 && cuts[p].cut < nr && cuts[p].t == tc.t {
				ks = append(ks, cuts[p].cut-above[q]-1)
			}
		}
		slices.Sort(ks)
		selectFunc(run, ks, compareTieKeys)
		for p := q; p < len(cuts); p++ {
			if cuts[p].cut > 0 && cuts[p].cut < nr && cuts[p].t == tc.t {
				cuts[p].last = run[cuts[p].cut-above[q]-1]
			}
		}
	}
	return out
}

// quadrantOf is strategic partner (1) when high on both, retain (2) when
// high value only, develop (3) when highly loyal only, build relationship
// (4) otherwise.
func quadrantOf(highValue, highLoyalty bool) Quadrant {
	return Quadrant(4 - 2*b2i(highValue) - b2i(highLoyalty))
}

// rfmGroups is the group table, indexed [R-1][FM-1] with FM = ⌈(F+M)/2⌉:
//
//	        FM=1            FM=2                FM=3                FM=4       FM=5
//	R=5     new             potential loyalist  potential loyalist  champions  champions
//	R=4     promising       potential loyalist  potential loyalist  loyal      loyal
//	R=3     about to sleep  about to sleep      need attention      loyal      loyal
//	R=2     hibernating     hibernating         at risk             at risk    can't lose
//	R=1     lost            lost                at risk             at risk    can't lose
var rfmGroups = [5][5]RfmGroup{
	{RfmLost, RfmLost, RfmAtRisk, RfmAtRisk, RfmCantLose},
	{RfmHibernating, RfmHibernating, RfmAtRisk, RfmAtRisk, RfmCantLose},
	{RfmAboutToSleep, RfmAboutToSleep, RfmNeedAttention, RfmLoyal, RfmLoyal},
	{RfmPromising, RfmPotentialLoyalist, RfmPotentialLoyalist, RfmLoyal, RfmLoyal},
	{RfmNew, RfmPotentialLoyalist, RfmPotentialLoyalist, RfmChampions, RfmChampions},
}

// Group names RFM scores: the rfmGroups table at R and FM, the average of F
// and M rounded half up. Scores outside 1..5 give RfmGroupUnspecified.
func Group(r, f, m int32) RfmGroup {
	if r < 1 || r > 5 || f < 1 || f > 5 || m < 1 || m > 5 {
		return RfmGroupUnspecified
	}
	fm := (f + m + 1) / 2
	return rfmGroups[r-1][fm-1]
}
