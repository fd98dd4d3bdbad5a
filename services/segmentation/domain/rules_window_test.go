package domain_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"rapport.dev/services/segmentation/domain"
)

// windowRuleState draws a customer whose purchases sit around now: past
// ones inside and outside every window, a few in the future (backdated
// clocks), some at the same instant, some in another currency, some
// refunded.
func windowRuleState(rng *rand.Rand, now time.Time) *domain.State {
	st := &domain.State{CustomerID: "c1", FirstSeen: now.Add(-500 * ruleTestDay)}
	at := now.Add(-time.Duration(rng.Int64N(int64(420 * ruleTestDay))))
	for i := range rng.IntN(9) {
		if i > 0 && rng.IntN(5) > 0 {
			at = at.Add(time.Duration(rng.Int64N(int64(80 * ruleTestDay))))
		}
		p := domain.Purchase{OrderID: fmt.Sprint("o", i), At: at, Amount: 100 * (1 + rng.Int64N(50)), Currency: "EUR"}
		if rng.IntN(6) == 0 {
			p.Currency = "USD"
		}
		if rng.IntN(5) == 0 {
			p.Refunded = p.Amount / 2
		}
		st.Purchases = append(st.Purchases, p)
	}
	return st
}

// windowRuleInput is what the store gives a rule for st at t.
func windowRuleInput(st *domain.State, t time.Time) domain.RuleInput {
	return domain.RuleInput{
		Features:     domain.FeaturesToProto(st.Features(t, "EUR")),
		Scores:       domain.ScoreToProto(domain.Score{}),
		Now:          t,
		WindowChange: st.NextWindowChange(t),
		TenureChange: st.NextTenureChange(t),
		Window:       st.WindowPurchases(t, "EUR"),
	}
}

// A rule comparing windowed features changes neither before NextChange
// nor at any instant a window moves before it; a single comparison
// changes at it; and the native form agrees with CEL's. Between the
// instants a window moves the features are constant, so checking at each
// of them (and at day boundaries, for days_since) checks everywhere.
func TestRuleNextChangeWindowProperty(t *testing.T) {
	env := newRuleTestEnv(t)
	rng := rand.New(rand.NewPCG(5, 27))
	ops := []string{">", ">=", "<", "<=", "==", "!="}
	fields := []string{"purchases_30d", "purchases_90d", "purchases_365d", "monetary_30d", "monetary_90d", "monetary_365d"}
	leaf := func() string {
		if rng.IntN(6) == 0 {
			return fmt.Sprintf("days_since(features.last_purchase) %s %d", ops[rng.IntN(len(ops))], rng.IntN(120))
		}
		f := fields[rng.IntN(len(fields))]
		k := fmt.Sprint(rng.IntN(5))
		if strings.HasPrefix(f, "monetary") {
			k = fmt.Sprint(100 * rng.IntN(120))
		}
		op := ops[rng.IntN(len(ops))]
		// == and != need operands of one type.
		switch rng.IntN(8) {
		case 0:
			k += ".5"
			if op == "==" || op == "!=" {
				op = "<"
			}
		case 1:
			k += "u"
			if op == "==" || op == "!=" {
				op = ">="
			}
		}
		if rng.IntN(2) == 0 {
			return "features." + f + " " + op + " " + k
		}
		return k + " " + op + " features." + f
	}
	exact := 0
	for i := range 600 {
		src := randomRule(rng, rng.IntN(3), leaf)
		r := mustCompileRule(t, env, src)
		st := windowRuleState(rng, ruleTestNow)
		now := ruleTestNow.Add(time.Duration(rng.Int64N(int64(ruleTestDay))))
		in := windowRuleInput(st, now)
		eval := func(at time.Time) bool {
			v, err := r.Eval(windowRuleInput(st, at))
			if err != nil {
				t.Fatalf("case %d: Eval(%s): %v", i, src, err)
			}
			return v
		}
		start := eval(now)
		next := r.NextChange(in)
		f := st.Features(now, "EUR")
		row := &domain.RuleRow{Features: &f, Score: &domain.Score{}, Now: now, WindowChange: in.WindowChange,
			TenureChange: in.TenureChange, Window: in.Window}
		if got := r.NextChangeRow(row); !got.Equal(next) {
			t.Fatalf("case %d: %s: NextChangeRow %s, NextChange %s", i, src, got, next)
		}
		if i%50 == 0 {
			if allocs := testing.AllocsPerRun(20, func() { r.NextChangeRow(row) }); allocs != 0 {
				t.Errorf("case %d: %s: %v allocations per NextChangeRow", i, src, allocs)
			}
		}
		end := now.Add(500 * ruleTestDay)
		if !next.IsZero() {
			if !next.After(now) {
				t.Fatalf("case %d: NextChange(%s) = %s, not after %s", i, src, next, now)
			}
			if eval(next.Add(-time.Nanosecond)) != start {
				t.Fatalf("case %d: %s changed before NextChange %s", i, src, next)
			}
			single := !strings.ContainsAny(src, "&|!")
			if single && eval(next) == start {
				t.Fatalf("case %d: single comparison %s did not change at NextChange %s", i, src, next)
			}
			if single {
				exact++
			}
			end = next
		}
		for at := st.NextWindowChange(now); !at.IsZero() && at.Before(end); at = st.NextWindowChange(at) {
			if eval(at) != start {
				t.Fatalf("case %d: %s changed at %s, when a window moved; NextChange said %s", i, src, at, next)
			}
		}
		for at := now.Add(ruleTestDay); at.Before(end); at = at.Add(ruleTestDay) {
			if eval(at) != start {
				t.Fatalf("case %d: %s changed at %s; NextChange said %s", i, src, at, next)
			}
		}
	}
	if exact < 50 {
		t.Errorf("only %d single comparisons flipped within the horizon: the draw tests too little", exact)
	}
}

// Without the purchases, or with purchases that do not give the feature's
// value, a windowed comparison takes the next change of any window, as
// before its timers: never later than a flip.
func TestRuleNextChangeWindowWithoutPurchases(t *testing.T) {
	env := newRuleTestEnv(t)
	r := mustCompileRule(t, env, `features.purchases_30d >= 2`)
	st := &domain.State{CustomerID: "c1", Purchases: []domain.Purchase{
		{OrderID: "a", At: ruleTestNow.Add(-20 * ruleTestDay), Amount: 100},
		{OrderID: "b", At: ruleTestNow.Add(-10 * ruleTestDay), Amount: 100},
	}}
	in := windowRuleInput(st, ruleTestNow)
	if got, want := r.NextChange(in), ruleTestNow.Add(10*ruleTestDay); !got.Equal(want) {
		t.Errorf("with the purchases: NextChange = %s, want %s, when the older leaves the window", got, want)
	}
	// Only the second purchase counts in 30 days from now+10d on, so a
	// count of 2 drops to 1 there: the first leaving is the flip, and the
	// window's earlier change (none here) would be the fallback.
	for name, ws := range map[string][]domain.WindowPurchase{"nil": nil, "one missing": in.Window[1:]} {
		in := in
		in.Window = ws
		in.WindowChange = ruleTestNow.Add(3 * ruleTestDay) // any earlier instant: it must be taken
		if got := r.NextChange(in); !got.Equal(in.WindowChange) {
			t.Errorf("purchases %s: NextChange = %s, want WindowChange %s", name, got, in.WindowChange)
		}
	}
	// A purchase dated after now (a client's clock ahead) enters the
	// window later: from a count of 0, only the purchases tell, so without
	// them WindowChange, its arrival, is the answer.
	r = mustCompileRule(t, env, `features.purchases_30d >= 1`)
	ahead := &domain.State{CustomerID: "c2", Purchases: []domain.Purchase{{OrderID: "a", At: ruleTestNow.Add(5 * ruleTestDay), Amount: 100}}}
	in = windowRuleInput(ahead, ruleTestNow)
	if got, want := r.NextChange(in), ruleTestNow.Add(5*ruleTestDay); !got.Equal(want) {
		t.Errorf("a purchase ahead: NextChange = %s, want %s", got, want)
	}
	in.Window = nil
	if got, want := r.NextChange(in), ruleTestNow.Add(5*ruleTestDay); !got.Equal(want) {
		t.Errorf("a purchase ahead, purchases not known: NextChange = %s, want WindowChange %s", got, want)
	}
	// A rule that uses the feature other than in a comparison keeps
	// WindowChange.
	r = mustCompileRule(t, env, `features.purchases_30d + 1 >= 3`)
	in.WindowChange = ruleTestNow.Add(3 * ruleTestDay)
	if got := r.NextChange(in); !got.Equal(in.WindowChange) {
		t.Errorf("arithmetic on the feature: NextChange = %s, want WindowChange %s", got, in.WindowChange)
	}
}
