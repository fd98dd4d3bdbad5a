package domain

import (
	"cmp"
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

// ScorePopulation scores rows together under st (defaults filled in): RFM
// quintiles and group, tier, quadrant and contribution, as defined in the
// package documentation. It runs in O(N log N) and sorts compact keys, not
// rows.
func ScorePopulation(rows []Row, st Settings) Population {
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
		s.Quadrant = quadrantOf(highValue, highLoyalty)
		if v := rows[k.i].Value; v != nil {
			s.Activity = v.Activity
		}
	}
	return pop
}

func quadrantOf(highValue, highLoyalty bool) Quadrant {
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
