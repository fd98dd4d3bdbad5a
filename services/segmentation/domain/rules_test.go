package domain_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
	"rapport.dev/platform/fault"
	"rapport.dev/services/segmentation/domain"
)

const ruleTestDay = 24 * time.Hour

// ruleTestNow is the evaluation time of the tests, mid-day, mid-minute.
var ruleTestNow = time.Date(2026, 3, 14, 15, 9, 26, 535_000_000, time.UTC)

func newRuleTestEnv(t testing.TB) *domain.RuleEnv {
	t.Helper()
	env, err := domain.NewRuleEnv()
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func mustCompileRule(t testing.TB, env *domain.RuleEnv, src string) *domain.Rule {
	t.Helper()
	r, err := env.Compile(src)
	if err != nil {
		t.Fatalf("Compile(%q): %v", src, err)
	}
	return r
}

// ruleTestInput is a customer in 浙江 who spent 5123.00 in the last year,
// last bought 100 days ago and is platinum.
func ruleTestInput() domain.RuleInput {
	return domain.RuleInput{
		Customer: &profilev1.Customer{
			CustomerId: "c1",
			Region:     &profilev1.Region{Country: "CN", Province: "浙江", City: "杭州"},
			Tags:       []string{"vip", "wholesale"},
			Attributes: map[string]string{"plan": "pro"},
			Person:     &profilev1.Person{Birthday: &typev1.Date{Month: 2, Day: 29}},
			CreateTime: timestamppb.New(ruleTestNow.Add(-400 * ruleTestDay)),
		},
		Features: &segmentationv1.Features{
			Purchases:     7,
			Monetary:      900000,
			Monetary_365D: 512300,
			LastPurchase:  timestamppb.New(ruleTestNow.Add(-100 * ruleTestDay)),
			FirstPurchase: timestamppb.New(ruleTestNow.Add(-380 * ruleTestDay)),
			Csat:          4.5,
			TenureDays:    400,
		},
		Scores: &segmentationv1.Scores{Tier: segmentationv1.Tier_TIER_PLATINUM},
		Now:    ruleTestNow,
	}
}

var ruleLocation = regexp.MustCompile(`line \d+, column \d+`)

func TestRuleCompileRejects(t *testing.T) {
	env := newRuleTestEnv(t)
	for _, tc := range []struct {
		name, src string
		want      []string // substrings of the description
		noPos     bool
	}{
		{name: "empty", src: "", want: []string{"is required"}, noPos: true},
		{name: "blank", src: " \n\t", want: []string{"is required"}, noPos: true},
		{name: "too long", src: strings.Repeat("true || ", 600) + "true", want: []string{"at most 4096 bytes"}, noPos: true},
		{name: "syntax", src: `customer.region.province == `, want: []string{"line 1, column 29", "Syntax error"}},
		{name: "syntax on line 2", src: "features.purchases > 1 &&\n  features.monetary >", want: []string{"line 2, column"}},
		{name: "unknown field", src: `customer.nosuch == "x"`, want: []string{"line 1, column 9", "undefined field 'nosuch'"}},
		{name: "unknown variable", src: `orders.size() > 1`, want: []string{"undeclared reference to 'orders'"}},
		{name: "wrong type", src: `features.monetary > "x"`, want: []string{"line 1, column 19", "no matching overload for '_>_'", "(int, string)"}},
		{name: "days_since on a number", src: `days_since(features.monetary) > 1`, want: []string{"no matching overload for 'days_since'"}},
		{name: "not a condition", src: `features.monetary + 1`, want: []string{"line 1, column 19", "must be a condition (bool)", "int"}},
		{name: "string result", src: `customer.region.province`, want: []string{"must be a condition (bool)", "string"}},
		{
			name: "runaway cost",
			src:  `customer.tags.all(t, customer.tags.all(u, customer.tags.all(v, t + u + v != "")))`,
			want: []string{"line 1, column 18", "too expensive", "exceeds the limit"},
		},
		{
			name: "nested loops",
			src:  `customer.tags.exists(t, customer.traits.exists(u, t == u))`,
			want: []string{"too expensive"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := env.Compile(tc.src)
			if err == nil {
				t.Fatalf("Compile(%q) = %v, want an error", tc.src, r.Source())
			}
			if !errors.Is(err, fault.ErrInvalid) {
				t.Fatalf("error %v does not match fault.ErrInvalid", err)
			}
			var inv *fault.Invalid
			if !errors.As(err, &inv) || len(inv.Violations) != 1 || inv.Violations[0].Field != "rule" {
				t.Fatalf("error %#v: want one violation on field \"rule\"", err)
			}
			desc := inv.Violations[0].Description
			if !tc.noPos && !ruleLocation.MatchString(desc) {
				t.Errorf("description %q has no position", desc)
			}
			for _, w := range tc.want {
				if !strings.Contains(desc, w) {
					t.Errorf("description %q does not contain %q", desc, w)
				}
			}
		})
	}
}

func TestRuleEval(t *testing.T) {
	env := newRuleTestEnv(t)
	in := ruleTestInput()
	for _, tc := range []struct {
		src  string
		want bool
	}{
		{`customer.region.province == "浙江" && features.monetary_365d > 500000`, true},
		{`customer.region.province == "浙江" && features.monetary_365d > 600000`, false},
		{`customer.region.province == "上海" || features.monetary_365d > 600000`, false},
		{`days_since(features.last_purchase) > 90`, true},
		{`days_since(features.last_purchase) == 100`, true},
		{`days_since(features.last_purchase) > 100`, false},
		{`days_since(features.first_purchase) >= 380 && days_since(customer.create_time) == 400`, true},
		{`days_since(features.last_contact) > 90`, true}, // never contacted
		{`days_since(features.last_contact) < 30`, false},
		{`"vip" in customer.tags`, true},
		{`"gold" in customer.tags`, false},
		{`customer.tags.exists(t, t.startsWith("whole"))`, true},
		{`customer.attributes["plan"] == "pro"`, true},
		{`"plan" in customer.attributes && customer.attributes["plan"] != "free"`, true},
		{`has(customer.region) && !has(customer.organization)`, true},
		{`scores.tier == rapport.segmentation.v1.Tier.TIER_PLATINUM`, true},
		{`scores.tier == rapport.segmentation.v1.Tier.TIER_GOLD`, false},
		{`scores.tier == 1`, true},
		{`scores.tier <= 2 && scores.rfm.group != rapport.segmentation.v1.RfmGroup.RFM_GROUP_LOST`, true},
		{`customer.person.birthday.month == 2`, true},
		{`features.csat >= 4 && features.nps < 9`, true}, // double against int
		{`features.monetary / features.purchases > 100000`, true},
		{`customer.create_time < timestamp("2026-01-01T00:00:00Z")`, true},
		{`days_since(timestamp("2026-03-13T15:09:27Z")) == 0`, true},
		{`days_since(timestamp("2026-03-15T00:00:00Z")) == -1`, true},
	} {
		r := mustCompileRule(t, env, tc.src)
		got, err := r.Eval(in)
		if err != nil || got != tc.want {
			t.Errorf("Eval(%s) = %v, %v; want %v", tc.src, got, err, tc.want)
		}
		if r.Source() != tc.src {
			t.Errorf("Source() = %q, want %q", r.Source(), tc.src)
		}
	}
}

func TestRuleEvalEmptyInput(t *testing.T) {
	env := newRuleTestEnv(t)
	for src, want := range map[string]bool{
		`customer.region.province == ""`:               true,
		`days_since(features.last_purchase) > 90`:      true,
		`scores.tier == 0 && size(customer.tags) == 0`: true,
		`features.monetary_365d > 0`:                   false,
	} {
		got, err := mustCompileRule(t, env, src).Eval(domain.RuleInput{Now: ruleTestNow})
		if err != nil || got != want {
			t.Errorf("Eval(%s) on an empty input = %v, %v; want %v", src, got, err, want)
		}
	}
}

func TestRuleEvalRuntimeErrors(t *testing.T) {
	env := newRuleTestEnv(t)
	huge := ruleTestInput()
	huge.Customer.Tags = make([]string, 501) // beyond what the profile service stores
	long := ruleTestInput()
	long.Customer.Region.City = strings.Repeat("ab", 6_000_000) // far longer than the estimate assumed
	for _, tc := range []struct {
		src  string
		in   domain.RuleInput
		want string
	}{
		{`customer.attributes["nosuch"] == "x"`, ruleTestInput(), "no such key"},
		{`features.monetary / features.refunds > 1`, ruleTestInput(), "division by zero"},
		{`int(customer.attributes["plan"]) > 1`, ruleTestInput(), "type conversion error"},
		{`customer.region.city.matches("a+c")`, long, "cost limit"},
		{`customer.tags.exists(t, t == "never")`, huge, "501 entries"},
	} {
		r := mustCompileRule(t, env, tc.src)
		got, err := r.Eval(tc.in)
		if got || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Eval(%s) = %v, %v; want false and an error containing %q", tc.src, got, err, tc.want)
		}
	}
}

func TestRuleExplain(t *testing.T) {
	env := newRuleTestEnv(t)
	r := mustCompileRule(t, env, `customer.region.province == "浙江" && (features.monetary_365d > 500000 || "vip" in customer.tags) && !(days_since(features.last_purchase) > 90) && customer.attributes["tier"] == "a"`)
	got := r.Explain(ruleTestInput())
	want := []domain.Clause{
		// false && error is false: the missing key does not matter.
		{Expression: `customer.region.province == "浙江" && (features.monetary_365d > 500000 || "vip" in customer.tags) && !(days_since(features.last_purchase) > 90) && customer.attributes["tier"] == "a"`, Value: "false"},
		{Expression: `customer.region.province == "浙江"`, Value: "true", Held: true},
		{Expression: `customer.region.province`, Value: "'浙江'"},
		{Expression: `features.monetary_365d > 500000 || "vip" in customer.tags`, Value: "true", Held: true},
		{Expression: `features.monetary_365d > 500000`, Value: "true", Held: true},
		{Expression: `features.monetary_365d`, Value: "512300"},
		{Expression: `"vip" in customer.tags`, Value: "true", Held: true},
		{Expression: `customer.tags`, Value: "['vip', 'wholesale']"},
		{Expression: `!(days_since(features.last_purchase) > 90)`, Value: "false"},
		{Expression: `days_since(features.last_purchase) > 90`, Value: "true", Held: true},
		{Expression: `days_since(features.last_purchase)`, Value: "100"},
		{Expression: `customer.attributes["tier"] == "a"`, Value: "error: no such key: tier"},
		{Expression: `customer.attributes["tier"]`, Value: "error: no such key: tier"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Explain:\n%s\nwant:\n%s", formatClauses(got), formatClauses(want))
	}
	if member, err := r.Eval(ruleTestInput()); member || err != nil {
		t.Errorf("Eval = %v, %v; want false", member, err)
	}
}

func TestRuleExplainValues(t *testing.T) {
	env := newRuleTestEnv(t)
	in := ruleTestInput()
	for src, want := range map[string]string{
		`features.first_purchase < timestamp("2026-01-01T00:00:00Z")`: "2025-02-27T15:09:26.535Z",
		`features.csat > 4`:                                         "4.5",
		`customer.attributes == {"plan": "pro"}`:                    "{'plan': 'pro'}",
		`customer.region.city != "it's"`:                            "'杭州'",
		`scores.tier == rapport.segmentation.v1.Tier.TIER_PLATINUM`: "1",
	} {
		got := mustCompileRule(t, env, src).Explain(in)
		if len(got) < 2 || !got[0].Held || got[1].Value != want {
			t.Errorf("Explain(%s) = %s; want a held clause and an operand valued %s", src, formatClauses(got), want)
		}
	}
}

func formatClauses(cs []domain.Clause) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "  %s => %s (held %v)\n", c.Expression, c.Value, c.Held)
	}
	return b.String()
}

func TestRuleNextChange(t *testing.T) {
	env := newRuleTestEnv(t)
	last := time.Date(2026, 1, 10, 8, 30, 0, 0, time.UTC)
	now := last.Add(10*ruleTestDay + 5*time.Hour) // days_since(last) == 10
	at := func(days int) time.Time { return last.Add(time.Duration(days) * ruleTestDay) }
	window := now.Add(7 * time.Hour)
	tenure := now.Add(3 * time.Hour)
	seen := now.Add(-300*ruleTestDay - 3*time.Hour) // tenure_days == 300; TenureChange is tenure
	for _, tc := range []struct {
		src      string
		now      time.Time
		noLast   bool
		seen     time.Time
		want     time.Time
		usesTime bool
	}{
		{src: `days_since(features.last_purchase) > 90`, want: at(91), usesTime: true},
		{src: `days_since(features.last_purchase) >= 90`, want: at(90), usesTime: true},
		{src: `days_since(features.last_purchase) < 90`, want: at(90), usesTime: true},
		{src: `days_since(features.last_purchase) <= 90`, want: at(91), usesTime: true},
		{src: `days_since(features.last_purchase) == 90`, want: at(90), usesTime: true},
		{src: `days_since(features.last_purchase) == 90`, now: at(90).Add(time.Hour), want: at(91), usesTime: true},
		{src: `days_since(features.last_purchase) == 90`, now: at(91), want: time.Time{}, usesTime: true},
		{src: `days_since(features.last_purchase) != 90`, want: at(90), usesTime: true},
		{src: `90 < days_since(features.last_purchase)`, want: at(91), usesTime: true},
		{src: `90 >= days_since(features.last_purchase)`, want: at(91), usesTime: true},
		{src: `days_since(features.last_purchase) > 12.5`, want: at(13), usesTime: true},
		{src: `days_since(features.last_purchase) >= 12.5`, want: at(13), usesTime: true},
		{src: `days_since(features.last_purchase) > 9`, want: time.Time{}, usesTime: true},  // already true, stays true
		{src: `days_since(features.last_purchase) < 10`, want: time.Time{}, usesTime: true}, // already false, stays false
		{src: `days_since(features.last_purchase) > features.purchases * 10`, want: at(31), usesTime: true},
		{src: `days_since(features.last_purchase) > 90`, noLast: true, want: time.Time{}, usesTime: true},
		{src: `days_since(features.last_purchase) % 7 == 0`, want: at(11), usesTime: true},
		{src: `days_since(features.last_purchase) > 90 || days_since(features.first_purchase) > 400`, want: at(91), usesTime: true},
		{src: `customer.consents.exists(c, days_since(c.update_time) >= 20)`, want: at(19), usesTime: true}, // the consent a day older
		{src: `days_since(features.last_purchase) > 90 || features.purchases_90d > 2`, want: window, usesTime: true},
		{src: `features.monetary_30d > 0`, want: window, usesTime: true},
		// tenure_days compared with a constant flips once, when the
		// comparison does; used any other way, it changes every day.
		{src: `features.tenure_days > 365`, want: seen.Add(366 * ruleTestDay), usesTime: true},
		{src: `365 <= features.tenure_days`, want: seen.Add(365 * ruleTestDay), usesTime: true},
		{src: `features.tenure_days < 90`, want: time.Time{}, usesTime: true}, // already false, stays false
		{src: `features.tenure_days == 300`, want: seen.Add(301 * ruleTestDay), usesTime: true},
		{src: `features.tenure_days > 0`, seen: now.Add(2 * time.Hour), want: now.Add(2*time.Hour + ruleTestDay), usesTime: true}, // first seen ahead: 0 until a day after
		{src: `features.tenure_days > 365`, seen: time.Unix(0, 0), want: time.Time{}, usesTime: true},                             // never seen: 0 for ever
		{src: `features.tenure_days * 2 > 365`, want: tenure, usesTime: true},
		{src: `features.tenure_days > features.purchases * 100`, want: seen.Add(301 * ruleTestDay), usesTime: true},
		{src: `[features].exists(f, f.monetary_30d > 0)`, want: tenure, usesTime: true}, // the whole message: any window
		{src: `features.monetary > 0 && customer.region.province == "浙江"`, want: time.Time{}},
		{src: `features.last_purchase < timestamp("2026-01-01T00:00:00Z")`, want: time.Time{}},
	} {
		r := mustCompileRule(t, env, tc.src)
		in := domain.RuleInput{
			Customer: &profilev1.Customer{Consents: []*profilev1.Consent{
				{UpdateTime: timestamppb.New(last)},
				{UpdateTime: timestamppb.New(last.Add(-ruleTestDay))},
			}},
			Features: &segmentationv1.Features{
				Purchases:     3,
				LastPurchase:  timestamppb.New(last),
				FirstPurchase: timestamppb.New(last.Add(-100 * ruleTestDay)),
				FirstSeen:     timestamppb.New(seen),
			},
			Now:          now,
			WindowChange: window,
			TenureChange: tenure,
		}
		if !tc.now.IsZero() {
			in.Now = tc.now
		}
		if tc.noLast {
			in.Features.LastPurchase = nil
		}
		if !tc.seen.IsZero() {
			in.Features.FirstSeen = timestamppb.New(tc.seen)
		}
		if got := r.NextChange(in); !got.Equal(tc.want) {
			t.Errorf("NextChange(%s) at %s = %s, want %s", tc.src, in.Now.Format(time.RFC3339), got, tc.want)
		}
		if r.UsesTime() != tc.usesTime {
			t.Errorf("UsesTime(%s) = %v, want %v", tc.src, r.UsesTime(), tc.usesTime)
		}
	}
}

func TestRuleNextChangeIgnoresPastCandidates(t *testing.T) {
	env := newRuleTestEnv(t)
	r := mustCompileRule(t, env, `features.monetary_30d > 0 || features.tenure_days > 3`)
	in := domain.RuleInput{Now: ruleTestNow, WindowChange: ruleTestNow, TenureChange: ruleTestNow.Add(-time.Hour)}
	if got := r.NextChange(in); !got.IsZero() {
		t.Errorf("NextChange with candidates not after Now = %s, want zero", got)
	}
}

// TestRuleNextChangeProperty checks NextChange against brute force on random
// rules made of days_since comparisons: the result does not change at any
// hour before NextChange, nor 1ns before it, and for a single comparison it
// does change at NextChange.
func TestRuleNextChangeProperty(t *testing.T) {
	env := newRuleTestEnv(t)
	rng := rand.New(rand.NewPCG(3, 14))
	const horizon = 80 * ruleTestDay
	ops := []string{">", ">=", "<", "<=", "==", "!="}
	operands := []string{
		"days_since(features.last_purchase)",
		"days_since(features.first_purchase)",
		"days_since(customer.create_time)",
	}
	leaf := func() string {
		x := operands[rng.IntN(len(operands))]
		k := fmt.Sprint(rng.IntN(70) - 5)
		op := ops[rng.IntN(len(ops))]
		if rng.IntN(8) == 0 && op != "==" && op != "!=" { // == needs operands of one type
			k += ".5"
		}
		if rng.IntN(2) == 0 {
			return x + " " + op + " " + k
		}
		return k + " " + op + " " + x
	}
	stamp := func() *timestamppb.Timestamp {
		if rng.IntN(10) == 0 {
			return nil
		}
		return timestamppb.New(ruleTestNow.Add(10*ruleTestDay - time.Duration(rng.Int64N(int64(70*ruleTestDay)))))
	}
	for i := range 300 {
		src := randomRule(rng, rng.IntN(4), leaf)
		r := mustCompileRule(t, env, src)
		in := domain.RuleInput{
			Customer: &profilev1.Customer{CreateTime: stamp()},
			Features: &segmentationv1.Features{LastPurchase: stamp(), FirstPurchase: stamp()},
			Now:      ruleTestNow.Add(time.Duration(rng.Int64N(int64(ruleTestDay)))),
		}
		eval := func(at time.Time) bool {
			in := in
			in.Now = at
			v, err := r.Eval(in)
			if err != nil {
				t.Fatalf("case %d: Eval(%s): %v", i, src, err)
			}
			return v
		}
		start := eval(in.Now)
		next := r.NextChange(in)
		end := in.Now.Add(horizon)
		if !next.IsZero() {
			if !next.After(in.Now) {
				t.Fatalf("case %d: NextChange(%s) = %s, not after %s", i, src, next, in.Now)
			}
			if eval(next.Add(-time.Nanosecond)) != start {
				t.Fatalf("case %d: %s changed before NextChange %s", i, src, next)
			}
			if single := !strings.Contains(src, "&&") && !strings.Contains(src, "||") && !strings.HasPrefix(src, "!"); single && eval(next) == start {
				t.Errorf("case %d: single comparison %s did not change at NextChange %s", i, src, next)
			}
			if next.Before(end) {
				end = next
			}
		}
		for at := in.Now.Add(time.Hour); at.Before(end); at = at.Add(time.Hour) {
			if eval(at) != start {
				t.Fatalf("case %d: %s changed at %s, NextChange said %s", i, src, at, next)
			}
		}
	}
}

// randomRule joins leaves drawn by leaf with !, && and || into a rule up
// to depth levels deep.
func randomRule(rng *rand.Rand, depth int, leaf func() string) string {
	switch n := rng.IntN(4); {
	case depth == 0 || n == 0:
		return leaf()
	case n == 1:
		return "!(" + randomRule(rng, depth-1, leaf) + ")"
	case n == 2:
		return "(" + randomRule(rng, depth-1, leaf) + " && " + randomRule(rng, depth-1, leaf) + ")"
	default:
		return "(" + randomRule(rng, depth-1, leaf) + " || " + randomRule(rng, depth-1, leaf) + ")"
	}
}

func TestRuleConcurrentEval(t *testing.T) {
	env := newRuleTestEnv(t)
	r := mustCompileRule(t, env, `customer.region.province == "浙江" && days_since(features.last_purchase) > 90`)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			in := ruleTestInput()
			in.Now = ruleTestNow.Add(time.Duration(g-4) * 3 * ruleTestDay) // days_since 88 … 109
			want := 100+3*(g-4) > 90
			for range 200 {
				if got, err := r.Eval(in); err != nil || got != want {
					errs <- fmt.Errorf("goroutine %d: Eval = %v, %v; want %v", g, got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkEval(b *testing.B) {
	env := newRuleTestEnv(b)
	for _, src := range []string{
		`customer.region.province == "浙江" && features.monetary_365d > 500000`,
		`days_since(features.last_purchase) > 90 && "vip" in customer.tags`,
	} {
		r := mustCompileRule(b, env, src)
		in := ruleTestInput()
		b.Run(src, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if ok, err := r.Eval(in); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
}
