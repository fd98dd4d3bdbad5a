package domain_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
	"rapport.dev/services/segmentation/convert"
	"rapport.dev/services/segmentation/domain"
)

// nativeBenchRules are the full re-evaluation benchmark's rules
// (cmd/rapport/internal/segbench Rules), and one as its later laps write
// them.
var nativeBenchRules = []string{
	`features.purchases >= 2 && days_since(features.last_purchase) <= 30`,
	`days_since(features.last_purchase) > 180 && features.purchases >= 3`,
	`features.monetary_365d >= 100000`,
	`scores.tier == rapport.segmentation.v1.Tier.TIER_PLATINUM || scores.tier == rapport.segmentation.v1.Tier.TIER_GOLD`,
	`customer.region.country == "FR" && features.purchases_90d >= 1`,
	`"vip" in customer.tags`,
	`"plan" in customer.attributes && customer.attributes["plan"] == "premium"`,
	`features.refunds >= 1 && features.purchases_365d <= 2`,
	`features.tenure_days < 90`,
	`features.purchases == 0 && days_since(customer.create_time) >= 30`,
	`features.complaints >= 1`,
	`features.nps >= 9`,
	`features.nps >= 0 && features.nps <= 6`,
	`scores.rfm.group == rapport.segmentation.v1.RfmGroup.RFM_GROUP_AT_RISK`,
	`features.average_order >= 10000 && customer.region.country in ["DE", "AT", "CH"]`,
	`features.purchases_30d >= 2`,
	`features.mean_interpurchase_days > 0.0 && features.mean_interpurchase_days < 30.0`,
	`scores.rfm.recency >= 4 && scores.rfm.frequency <= 2`,
	`customer.tags.exists(t, t.startsWith("b2b"))`,
	`scores.quadrant == rapport.segmentation.v1.Quadrant.QUADRANT_STRATEGIC_PARTNER && days_since(features.last_purchase) > 60`,
	`(features.purchases >= 2 && days_since(features.last_purchase) <= 30) && features.purchases >= 0`,
}

// nativeEdgeRules have a native form: the differential test holds them to
// CEL on edge inputs.
var nativeEdgeRules = []string{
	// The existing rules tests' rules.
	`customer.region.province == "浙江" && features.monetary_365d > 500000`,
	`customer.region.province == "上海" || features.monetary_365d > 600000`,
	`days_since(features.last_purchase) == 100`,
	`days_since(features.first_purchase) >= 380 && days_since(customer.create_time) == 400`,
	`days_since(features.last_contact) < 30`,
	`customer.attributes["plan"] == "pro"`,
	`"plan" in customer.attributes && customer.attributes["plan"] != "free"`,
	`has(customer.region) && !has(customer.organization)`,
	`scores.tier == 1`,
	`scores.tier <= 2 && scores.rfm.group != rapport.segmentation.v1.RfmGroup.RFM_GROUP_LOST`,
	`customer.person.birthday.month == 2`,
	`features.csat >= 4 && features.nps < 9`,
	`features.monetary / features.purchases > 100000`,
	`customer.create_time < timestamp("2026-01-01T00:00:00Z")`,
	`days_since(timestamp("2026-03-13T15:09:27Z")) == 0`,
	`days_since(timestamp("2026-03-15T00:00:00Z")) == -1`,
	`customer.region.province == ""`,
	`scores.tier == 0 && size(customer.tags) == 0`,
	`features.monetary / features.refunds > 1`,
	`customer.tags.exists(t, t == "never")`,
	`customer.region.province == "浙江" && (features.monetary_365d > 500000 || "vip" in customer.tags) && !(days_since(features.last_purchase) > 90) && customer.attributes["tier"] == "a"`,
	`customer.attributes["nosuch"] == "x"`,
	`features.first_purchase < timestamp("2026-01-01T00:00:00Z")`,
	`customer.region.city != "it's"`,
	`days_since(features.last_purchase) >= 90`,
	`90 < days_since(features.last_purchase)`,
	`90 >= days_since(features.last_purchase)`,
	`days_since(features.last_purchase) > 12.5`,
	`days_since(features.last_purchase) >= 12.5`,
	`days_since(features.last_purchase) > features.purchases * 10`,
	`days_since(features.last_purchase) % 7 == 0`,
	`days_since(features.last_purchase) > 90 || days_since(features.first_purchase) > 400`,
	`days_since(features.last_purchase) > 90 || features.purchases_90d > 2`,
	`features.monetary_30d > 0`,
	`features.tenure_days > 365`,
	`features.monetary > 0 && customer.region.province == "浙江"`,
	`features.monetary_30d > 0 || features.tenure_days > 3`,
	`customer.region.province == "浙江" && days_since(features.last_purchase) > 90`,
	`days_since(features.last_purchase) > 90 && "vip" in customer.tags`,

	// Errors and their absorption.
	`features.purchases >= 2 && customer.attributes["plan"] == "premium"`,
	`customer.attributes["plan"] == "premium" || features.purchases >= 2`,
	`!(customer.attributes["plan"] == "premium")`,
	`(customer.attributes["plan"] == "premium" ? features.purchases : features.refunds) > 0`,
	`customer.attributes["plan"] == "premium" || customer.attributes["tier"] == "a" || features.nps >= 9`,
	`features.purchases + 9223372036854775807 > 0 || features.complaints >= 1`,
	`customer.tags[0] == "vip"`,
	`customer.tags[0] != "vip"`,
	`customer.tags[-1] == "" || customer.tags[2] == ""`,
	`["a", "b"][features.nps] == "b"`,
	`size(customer.tags) > 1 && customer.tags[1].startsWith("b2b")`,
	`customer.region.country in ["DE", customer.attributes["plan"]]`,
	`customer.tags.exists(t, customer.attributes[t] == "premium")`,
	`customer.tags.all(t, customer.attributes[t] != "x")`,
	`customer.tags.exists_one(t, customer.attributes[t] == "premium")`,
	`!(features.purchases >= 2 && customer.attributes["plan"] == "premium")`,
	`!(features.purchases >= 2 || customer.attributes["plan"] == "premium")`,
	`(customer.attributes["plan"] == "premium") == (features.purchases >= 2)`,
	`!customer.tags.exists(t, customer.attributes[t] == "premium")`,
	`!customer.tags.all(t, customer.attributes[t] != "x")`,
	`!customer.tags.exists_one(t, customer.attributes[t] == "premium")`,
	`!(customer.region.country in ["DE", customer.attributes["plan"]])`,
	`!(customer.attributes["plan"] == "premium" ? features.purchases > 0 : features.refunds > 0)`,
	`!(features.purchases + 9223372036854775807 > 0) || !(features.monetary / features.refunds > 1)`,
	`["vip", customer.attributes["plan"]].exists(t, t in customer.tags)`,

	// Numbers across types, NaN, infinities and int64 extremes.
	`features.csat > features.nps`,
	`features.nps < 9.5`,
	`features.purchases <= 2u`,
	`1u < features.purchases`,
	`features.mean_interpurchase_days != features.mean_interpurchase_days`,
	`features.mean_interpurchase_days == 0.0`,
	`features.mean_interpurchase_days >= features.purchases`,
	`features.monetary > 9.3e18 || features.monetary < -9.3e18`,
	`features.monetary >= 9223372036854775807.0`,
	`features.purchases < 18446744073709551615u`,
	`-features.mean_interpurchase_days < 0.0`,
	`-features.purchases > 0`,
	`features.monetary * 2 > features.monetary`,
	`features.purchases - 1 < 0`,
	`features.monetary % features.refunds == 0`,
	`features.csat / 0.0 > 1.0`,
	`features.csat * 2.0 - 1.0 >= features.mean_interpurchase_days`,
	`18446744073709551615u + 1u > 0u || 2u * 3u + 1u > 6u`,
	`5u - 7u > 0u || 5u / 0u > 1u || 5u % 2u == 1u`,
	`features.purchases > 0 ? features.monetary / features.purchases > 1000 : false`,
	`features.nps in [9, 10]`,
	`features.csat in [4, 4.5, 5u]`,
	`features.purchases in [1, 2.0]`,
	`features.mean_interpurchase_days in [features.mean_interpurchase_days]`,
	`scores.tier > 2.5`,
	`scores.activity == rapport.segmentation.v1.Activity.ACTIVITY_LOST`,
	`scores.contribution > 1000`,
	`scores.rfm.monetary == 0 && scores.rfm.recency == 0`,

	// Strings, bools, timestamps, has().
	`customer.region.country < "M"`,
	`customer.region.country >= "DE" && customer.region.country <= "FR"`,
	`size(customer.region.city) > 2`,
	`customer.region.city.endsWith("州") || customer.display_name.contains("a")`,
	`customer.do_not_contact == false`,
	`customer.erased != customer.do_not_contact`,
	`(features.purchases > 1) > (features.refunds > 0)`,
	`(features.purchases > 1) <= customer.do_not_contact`,
	`features.last_purchase >= timestamp("2026-03-14T15:09:26.535Z")`,
	`features.last_purchase == features.first_purchase`,
	`features.first_seen != timestamp("1970-01-01T00:00:00Z")`,
	`scores.score_time == timestamp("1970-01-01T00:00:00Z")`,
	`features.last_purchase > customer.create_time`,
	`customer.create_time == customer.update_time`,
	`customer.create_time < customer.update_time`,
	`customer.update_time <= timestamp("0001-01-01T00:00:00Z") || days_since(timestamp("0001-01-01T00:00:00Z")) > 5`,
	`has(customer.region.country) && has(customer.tags) && has(customer.attributes)`,
	`has(features.last_purchase) || has(features.csat)`,
	`has(features.mean_interpurchase_days)`,
	`has(scores.rfm) != has(scores.rfm.recency)`,
	`has(scores.score_time) || has(features.nps) || has(customer.create_time)`,
	`has(customer.person.birthday) && customer.person.birthday.day > 15`,
	`customer.kind == rapport.profile.v1.CustomerKind.CUSTOMER_KIND_PERSON`,
	`customer.organization.employee_count > 100 || customer.acquisition.channel == 3 || customer.stage >= 3`,
	`size(customer.attributes) == 1 || size(customer.traits) > 0`,
	`customer.attributes.exists(k, k.startsWith("p") && customer.attributes[k] == "pro")`,
	`customer.traits.all(t, size(t) < 5)`,
	`customer.tags.exists_one(t, t == "vip")`,
	`customer.tags.exists(customer, customer == "vip")`,
	`customer.tags.exists(t, ["b2b", "vip"].exists(u, u == t))`,
	`true`,
	`!false && !(1 > 2)`,
	`((features.purchases >= 2) && ((days_since(features.last_purchase) <= 30) || !(features.refunds >= 1)))`,

	// days_since in every position NextChange distinguishes.
	`days_since(features.last_purchase) >= 30.0`,
	`days_since(features.last_purchase) == 30`,
	`days_since(features.last_purchase) != 0`,
	`days_since(customer.create_time) < 0`,
	`30 > days_since(features.last_contact)`,
	`days_since(features.last_purchase) + 1 > 31`,
	`days_since(features.first_purchase) - days_since(features.last_purchase) > 100`,
	`days_since(features.last_purchase) > 2u`,
	`days_since(features.last_purchase) < features.mean_interpurchase_days * 2.0`,
	`days_since(features.last_purchase) == days_since(features.first_purchase)`,
	`days_since(features.last_purchase) > 1e300`,
	`days_since(features.first_seen) > features.tenure_days`,
	`customer.tags.exists(t, days_since(customer.create_time) > 3 && t == "vip")`,
	`days_since(features.last_purchase) <= 30 ? features.purchases > 1 : features.purchases > 5`,
	`days_since(features.last_purchase > customer.create_time ? features.last_purchase : customer.create_time) < 60`,
	`days_since(scores.score_time) > 1`,
	`days_since(customer.acquisition.acquire_time) >= 7`,
}

// nativeFallbackRules have no native form: they must still agree, through
// CEL.
var nativeFallbackRules = []string{
	`customer.region.city.matches("^杭")`,
	`int(customer.attributes["plan"]) > 1`,
	`string(features.purchases) == "3"`,
	`customer.attributes == {"plan": "pro"}`,
	`[features].exists(f, f.monetary_30d > 0)`,
	`customer.consents.exists(c, days_since(c.update_time) >= 20)`,
	`size(customer.consents) > 0`,
	`customer.update_time - customer.create_time > duration("24h")`,
	`customer.create_time.getFullYear() == 2025`,
	`[1, 2, 3].exists(x, x == features.purchases)`,
	`customer.tags.map(t, t + "!").exists(t, t == "vip!")`,
	`customer.region.country + "x" == "FRx"`,
	`customer.tags == ["vip"]`,
	`dyn(features.purchases) == 3`,
	`string(days_since(features.last_purchase)) == "30"`,
	`double(days_since(features.last_purchase)) > 30.5 || days_since(features.first_purchase) > 90`,
	`dyn(days_since(features.last_purchase)) == 30.0`,
}

// nativeRuleNow are the evaluation times of the differential test:
// mid-day, midnight, a nanosecond before midnight, another zone, and before
// the epoch.
var nativeRuleNow = []time.Time{
	ruleTestNow,
	time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC),
	time.Date(2026, 3, 13, 23, 59, 59, 999_999_999, time.UTC),
	ruleTestNow.In(time.FixedZone("UTC+8", 8*3600)),
	time.Date(1969, 12, 31, 12, 0, 0, 0, time.UTC),
}

// nativeRowGen draws rows around now: times on and beside day boundaries,
// unset and epoch timestamps, NaN and extreme numbers, empty and oversized
// lists.
type nativeRowGen struct {
	rng *rand.Rand
	now time.Time
}

func (g *nativeRowGen) pick(n int) int { return g.rng.IntN(n) }

func (g *nativeRowGen) time() time.Time {
	now := g.now
	switch g.pick(12) {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(0, 0) // the epoch, set: reads as unset
	case 2:
		return time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)
	case 3:
		return time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	case 4: // a whole number of days away, give or take a tick
		d := []int{0, 1, 2, 29, 30, 31, 59, 60, 61, 90, 100, 180, 181, 380, 400}[g.pick(15)]
		t := now.Add(-time.Duration(d) * ruleTestDay)
		return t.Add([]time.Duration{0, 0, -1, 1, -time.Second, time.Second}[g.pick(6)])
	case 5: // the future
		return now.Add(time.Duration(g.rng.Int64N(int64(40 * ruleTestDay))))
	case 6:
		return now.Add(-time.Duration(g.rng.Int64N(int64(500 * ruleTestDay)))).In(time.FixedZone("UTC-5", -5*3600))
	}
	return now.Add(-time.Duration(g.rng.Int64N(int64(400 * ruleTestDay))))
}

func (g *nativeRowGen) stamp() *timestamppb.Timestamp {
	// Not normalized, the same instant normalized, and that instant a day
	// boundary of now.
	boundary := g.now.Unix() - 86400*31 - 1
	switch g.pick(10) {
	case 0:
		return nil
	case 1:
		return &timestamppb.Timestamp{} // the epoch
	case 2:
		return &timestamppb.Timestamp{Seconds: g.now.Unix() - 86400*30, Nanos: -1}
	case 3:
		return &timestamppb.Timestamp{Seconds: boundary, Nanos: 1_000_000_000 + int32(g.now.Nanosecond())}
	case 4:
		return &timestamppb.Timestamp{Seconds: boundary + 1, Nanos: int32(g.now.Nanosecond())}
	}
	t := g.time()
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func (g *nativeRowGen) int64() int64 {
	switch g.pick(10) {
	case 0:
		return 0
	case 1:
		return math.MaxInt64
	case 2:
		return math.MinInt64
	case 3:
		return -g.rng.Int64N(5)
	case 4:
		return []int64{1, 2, 3, 9, 10, 89, 90, 91, 99_999, 100_000, 100_001, 10_000, 500_001}[g.pick(13)]
	}
	return g.rng.Int64N(200_000)
}

func (g *nativeRowGen) double() float64 {
	switch g.pick(10) {
	case 0:
		return math.NaN()
	case 1:
		return math.Inf(1 - 2*g.pick(2))
	case 2:
		return math.Copysign(0, -1)
	case 3:
		return 0
	case 4:
		return []float64{29.999, 30, 4, 4.5, 5, 1e19, -1e19, 9.223372036854775807e18}[g.pick(8)]
	}
	return g.rng.Float64() * 60
}

func (g *nativeRowGen) str(vocab ...string) string { return vocab[g.pick(len(vocab))] }

func (g *nativeRowGen) strings(vocab ...string) []string {
	switch g.pick(12) {
	case 0:
		return nil
	case 1:
		return []string{}
	case 2:
		return make([]string, 500) // at the limit
	case 3:
		return append(make([]string, 500), "vip") // beyond it
	case 4:
		return []string{strings.Repeat("b2b", 1500)} // longer than the cost estimate assumed
	}
	out := make([]string, g.pick(5))
	for i := range out {
		out[i] = g.str(vocab...)
	}
	return out
}

func (g *nativeRowGen) customer() *profilev1.Customer {
	if g.pick(15) == 0 {
		return nil
	}
	c := &profilev1.Customer{
		CustomerId:   "c" + g.str("1", "2", "3"),
		Kind:         profilev1.CustomerKind(g.pick(4)),
		DisplayName:  g.str("", "Ada", "Bob", "浙江 a"),
		Tags:         g.strings("vip", "VIP", "b2b", "b2b-gold", "b2", "", "wholesale", "plan"),
		Traits:       g.strings("x", "long trait", "vip"),
		DoNotContact: g.pick(2) == 0,
		Erased:       g.pick(3) == 0,
		Stage:        profilev1.LifecycleStage(g.pick(8)),
		CreateTime:   g.stamp(),
		UpdateTime:   g.stamp(),
	}
	if g.pick(4) != 0 {
		c.Region = &profilev1.Region{
			Country:  g.str("FR", "DE", "AT", "CH", "CN", "", "fr", "M"),
			Province: g.str("浙江", "上海", ""),
			City:     g.str("杭州", "it's", "", "ab", strings.Repeat("州", 5000)),
		}
	}
	switch g.pick(5) {
	case 0:
	case 1:
		c.Attributes = map[string]string{}
	case 2:
		c.Attributes = map[string]string{"plan": g.str("premium", "pro", "free", "")}
	case 3:
		c.Attributes = map[string]string{"plan": "premium", "tier": "a", "vip": "premium", "pro": "pro", "b2b": "x"}
	case 4:
		c.Attributes = map[string]string{"other": "premium"}
	}
	if g.pick(2) == 0 {
		c.Person = &profilev1.Person{Gender: profilev1.Gender(g.pick(5))}
		if g.pick(2) == 0 {
			c.Person.Birthday = &typev1.Date{Year: int32(g.pick(3000)), Month: int32(g.pick(13)), Day: int32(g.pick(32))}
		}
	}
	if g.pick(3) == 0 {
		c.Organization = &profilev1.Organization{EmployeeCount: int32(g.rng.IntN(300))}
		if g.pick(5) == 0 {
			c.Organization.UncoveredRoles = make([]profilev1.DecisionRole, 501)
		}
	}
	if g.pick(3) == 0 {
		c.Acquisition = &profilev1.Acquisition{Channel: profilev1.AcquisitionChannel(g.pick(9)), AcquireTime: g.stamp()}
	}
	return c
}

func (g *nativeRowGen) features() *domain.Features {
	if g.pick(15) == 0 {
		return nil
	}
	return &domain.Features{
		FirstPurchase:         g.time(),
		LastPurchase:          g.time(),
		Purchases:             g.int64(),
		Purchases30d:          g.int64(),
		Purchases90d:          g.int64(),
		Purchases365d:         g.int64(),
		Monetary:              g.int64(),
		Monetary30d:           g.int64(),
		Monetary90d:           g.int64(),
		Monetary365d:          g.int64(),
		AverageOrder:          g.int64(),
		MeanInterpurchaseDays: g.double(),
		TenureDays:            g.int64(),
		Complaints:            g.int64(),
		LastContact:           g.time(),
		CSAT:                  g.double(),
		NPS:                   []int32{-1, 0, 6, 7, 9, 10, math.MinInt32, math.MaxInt32}[g.pick(8)],
		Referrals:             g.int64(),
		Refunds:               g.int64(),
		FirstSeen:             g.time(),
	}
}

func (g *nativeRowGen) score() *domain.Score {
	if g.pick(15) == 0 {
		return nil
	}
	s := &domain.Score{
		F:            int32(g.pick(6)),
		M:            int32(g.pick(6)),
		Group:        domain.RfmGroup(g.pick(13)),
		Tier:         domain.Tier(g.pick(6)),
		Quadrant:     domain.Quadrant(g.pick(5)),
		Contribution: g.int64(),
		Activity:     domain.Activity(g.pick(4)),
	}
	if g.pick(3) != 0 {
		s.R = int32(1 + g.pick(5)) // ranked; otherwise rfm is absent whatever F, M and Group say
	}
	return s
}

func (g *nativeRowGen) change() time.Time {
	switch g.pick(4) {
	case 0:
		return time.Time{}
	case 1:
		return g.now
	case 2:
		return g.now.Add(-time.Hour)
	}
	return g.now.Add(time.Duration(1 + g.rng.Int64N(int64(20*ruleTestDay))))
}

func (g *nativeRowGen) row() *domain.RuleRow {
	return &domain.RuleRow{
		Customer:     g.customer(),
		Features:     g.features(),
		Score:        g.score(),
		Now:          g.now,
		WindowChange: g.change(),
		TenureChange: g.change(),
	}
}

// TestRuleRowDifferential holds EvalRow and NextChangeRow to Eval and
// NextChange on every rule of the corpora over random edge rows.
func TestRuleRowDifferential(t *testing.T) {
	env := newRuleTestEnv(t)
	var rules []*domain.Rule
	for _, corpus := range [][]string{nativeBenchRules, nativeEdgeRules, nativeFallbackRules} {
		for _, src := range corpus {
			rules = append(rules, mustCompileRule(t, env, src))
		}
	}
	rowsPerNow := 120
	if testing.Short() {
		rowsPerNow = 20
	}
	rng := rand.New(rand.NewPCG(20260314, 1))
	cases, members, changes := 0, 0, 0
	for _, now := range nativeRuleNow {
		g := &nativeRowGen{rng: rng, now: now}
		for range rowsPerNow {
			row := g.row()
			in := row.Input()
			for _, r := range rules {
				held, err := r.Eval(in)
				want := held && err == nil
				if got := r.EvalRow(row); got != want {
					t.Fatalf("EvalRow(%s) = %v, Eval = %v, %v\nrow: %s", r.Source(), got, held, err, formatRuleRow(row))
				}
				wantNext := r.NextChange(in)
				if got := r.NextChangeRow(row); !got.Equal(wantNext) || got.IsZero() != wantNext.IsZero() {
					t.Fatalf("NextChangeRow(%s) = %v, NextChange = %v\nrow: %s", r.Source(), got, wantNext, formatRuleRow(row))
				}
				cases++
				if want {
					members++
				}
				if !wantNext.IsZero() {
					changes++
				}
			}
		}
	}
	// The corpus must exercise both outcomes, or it proves little.
	if members < cases/20 || members > cases*19/20 || changes < cases/20 {
		t.Errorf("%d cases: %d members, %d with a next change; the generator is lopsided", cases, members, changes)
	}
	t.Logf("%d cases, %d members, %d with a next change", cases, members, changes)
}

func formatRuleRow(row *domain.RuleRow) string {
	var b strings.Builder
	if row.Customer != nil {
		c := proto.Clone(row.Customer).(*profilev1.Customer)
		for i, tag := range c.Tags {
			if len(tag) > 40 {
				c.Tags[i] = tag[:40] + "…"
			}
		}
		if len(c.Tags) > 10 {
			c.Tags = c.Tags[:10]
		}
		if c.Region != nil && len(c.Region.City) > 40 {
			c.Region.City = c.Region.City[:40] + "…"
		}
		b.WriteString("customer{" + strings.TrimSpace(c.String()) + "} ")
	}
	if row.Features != nil {
		b.WriteString("features{" + strings.TrimSpace(convert.FeaturesToProto(*row.Features).String()) + "} ")
	}
	if row.Score != nil {
		b.WriteString("score{" + strings.TrimSpace(convert.ScoreToProto(*row.Score).String()) + "} ")
	}
	b.WriteString("now " + row.Now.Format(time.RFC3339Nano))
	return b.String()
}

func TestRuleNativeBenchmarkRules(t *testing.T) {
	env := newRuleTestEnv(t)
	for _, src := range nativeBenchRules {
		if !mustCompileRule(t, env, src).Native() {
			t.Errorf("%s has no native form", src)
		}
	}
}

func TestRuleNativeCoverage(t *testing.T) {
	env := newRuleTestEnv(t)
	for _, src := range nativeEdgeRules {
		if !mustCompileRule(t, env, src).Native() {
			t.Errorf("%s has no native form", src)
		}
	}
	for _, src := range nativeFallbackRules {
		if mustCompileRule(t, env, src).Native() {
			t.Errorf("%s has a native form; it should fall back to CEL", src)
		}
	}
}

// TestEvalRowCostLimit checks that a string far longer than the cost
// estimate assumed still reaches CEL's runtime cost limit: a non-member,
// though the native form alone would say otherwise.
func TestEvalRowCostLimit(t *testing.T) {
	env := newRuleTestEnv(t)
	r := mustCompileRule(t, env, `customer.region.city.contains("abc") || days_since(features.last_purchase) > 10`)
	if !r.Native() {
		t.Fatal("no native form")
	}
	row := &domain.RuleRow{
		Customer: &profilev1.Customer{Region: &profilev1.Region{City: strings.Repeat("ab", 6_000_000) + "c"}},
		Features: &domain.Features{LastPurchase: ruleTestNow.Add(-20 * ruleTestDay)},
		Now:      ruleTestNow,
	}
	held, err := r.Eval(row.Input())
	if held || err == nil || !strings.Contains(err.Error(), "cost limit") {
		t.Fatalf("Eval = %v, %v; want the cost limit", held, err)
	}
	if r.EvalRow(row) {
		t.Error("EvalRow = true past the cost limit")
	}
	if got, want := r.NextChangeRow(row), r.NextChange(row.Input()); !got.Equal(want) {
		t.Errorf("NextChangeRow = %v, NextChange = %v", got, want)
	}
	row.Customer.Region.City = "abc"
	if !r.EvalRow(row) {
		t.Error("EvalRow = false on a short city containing abc")
	}
}

func TestEvalRowAllocations(t *testing.T) {
	env := newRuleTestEnv(t)
	g := &nativeRowGen{rng: rand.New(rand.NewPCG(1, 2)), now: ruleTestNow}
	rows := make([]*domain.RuleRow, 64)
	for i := range rows {
		rows[i] = g.row()
		if c := rows[i].Customer; c != nil { // no CEL fallbacks here
			c.Tags, c.Organization = []string{"vip", "b2b"}, nil
			if c.Region != nil {
				c.Region.City = "杭州"
			}
		}
	}
	for _, src := range append(nativeBenchRules, nativeEdgeRules...) {
		r := mustCompileRule(t, env, src)
		i := 0
		allocs := testing.AllocsPerRun(200, func() {
			row := rows[i%len(rows)]
			i++
			r.EvalRow(row)
			r.NextChangeRow(row)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per EvalRow and NextChangeRow", src, allocs)
		}
	}
}

// nativeBenchRows are the benchmarks' customers: drawn like the
// differential test's, without oversized lists and strings.
func nativeBenchRows(n int) []*domain.RuleRow {
	g := &nativeRowGen{rng: rand.New(rand.NewPCG(7, 11)), now: ruleTestNow}
	rows := make([]*domain.RuleRow, n)
	for i := range rows {
		row := g.row()
		if row.Customer == nil {
			row.Customer = &profilev1.Customer{}
		}
		c := row.Customer
		c.Tags, c.Traits, c.Organization = []string{"vip", "b2b-gold", "x"}[:g.pick(4)], nil, nil
		if c.Region != nil {
			c.Region.City = "杭州"
		}
		if row.Features == nil {
			row.Features = &domain.Features{}
		}
		if row.Score == nil {
			row.Score = &domain.Score{}
		}
		rows[i] = row
	}
	return rows
}

// BenchmarkEvalRow is one native evaluation of one of the benchmark's
// rules on one customer.
func BenchmarkEvalRow(b *testing.B) {
	env := newRuleTestEnv(b)
	rules := make([]*domain.Rule, 20)
	for i := range rules {
		rules[i] = mustCompileRule(b, env, nativeBenchRules[i])
	}
	rows := nativeBenchRows(1024)
	b.ReportAllocs()
	r, row := 0, rows[0]
	for i := 0; b.Loop(); {
		rules[r].EvalRow(row)
		if r++; r == len(rules) {
			r, i = 0, (i+1)%len(rows)
			row = rows[i]
		}
	}
}

// BenchmarkEvalCEL is the same through CEL, converting the customer's
// Features and Score to messages once for all 20 rules, as a caller
// evaluating every rule on a customer would.
func BenchmarkEvalCEL(b *testing.B) {
	env := newRuleTestEnv(b)
	rules := make([]*domain.Rule, 20)
	for i := range rules {
		rules[i] = mustCompileRule(b, env, nativeBenchRules[i])
	}
	rows := nativeBenchRows(1024)
	b.ReportAllocs()
	r, in := 0, rows[0].Input()
	for i := 0; b.Loop(); {
		_, _ = rules[r].Eval(in)
		if r++; r == len(rules) {
			r, i = 0, (i+1)%len(rows)
			in = rows[i].Input()
		}
	}
}

// BenchmarkNextChangeRow is one native NextChangeRow of one of the
// benchmark's rules that use time.
func BenchmarkNextChangeRow(b *testing.B) {
	rules, rows := nativeTimeBenchRules(b), nativeBenchRows(1024)
	b.ReportAllocs()
	r, row := 0, rows[0]
	for i := 0; b.Loop(); {
		rules[r].NextChangeRow(row)
		if r++; r == len(rules) {
			r, i = 0, (i+1)%len(rows)
			row = rows[i]
		}
	}
}

// BenchmarkNextChangeCEL is the same through CEL, converting once per
// customer.
func BenchmarkNextChangeCEL(b *testing.B) {
	rules, rows := nativeTimeBenchRules(b), nativeBenchRows(1024)
	b.ReportAllocs()
	r, in := 0, rows[0].Input()
	for i := 0; b.Loop(); {
		rules[r].NextChange(in)
		if r++; r == len(rules) {
			r, i = 0, (i+1)%len(rows)
			in = rows[i].Input()
		}
	}
}

func nativeTimeBenchRules(b *testing.B) []*domain.Rule {
	env := newRuleTestEnv(b)
	var rules []*domain.Rule
	for _, src := range nativeBenchRules[:20] {
		if r := mustCompileRule(b, env, src); r.UsesTime() {
			rules = append(rules, r)
		}
	}
	return rules
}
