package domain

import (
	"sort"
	"time"

	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
)

// When a comparison of a windowed feature flips.
//
// A windowed feature (purchases_30d … monetary_365d) changes whenever a
// purchase enters or leaves its window, three times a year per purchase,
// and RuleInput.WindowChange is the earliest such instant. Most of those
// changes leave a rule as it was: `features.purchases_30d >= 2` flips only
// when the count crosses 2. So a windowed feature compared with a bound
// that compiles on its own (as days_since's comparisons) gets a timer of
// its own, at the first instant the comparison flips, walking the
// customer's purchases in their windows (RuleInput.Window); the bound is
// evaluated now, any time in it covered by its own timers. Any other use
// of a windowed feature still takes WindowChange, and so does every timer
// when Window is nil (the caller does not know the purchases) or its
// purchases do not add up to the feature's value: never late.

// WindowPurchase is a purchase as the windowed features see it: when it
// was made and what it adds to the monetary windows, its net amount in the
// tenant's currency (0 in another). It is inside a window of length w at t
// when At <= t < At+w, as Features counts.
type WindowPurchase struct {
	At  time.Time
	Net int64
}

// WindowPurchases returns the purchases inside a window at now or to enter
// one later: those with At+365d after now, oldest first, and never nil
// (nil is "not known" to NextChange). They are what RuleInput.Window and
// RuleRow.Window take.
func (s *State) WindowPurchases(now time.Time, currency string) []WindowPurchase {
	from := now.Add(-Window365d)
	ps := s.Purchases
	i := sort.Search(len(ps), func(i int) bool { return ps[i].At.After(from) })
	if i == len(ps) {
		return []WindowPurchase{}
	}
	out := make([]WindowPurchase, len(ps)-i)
	for j := range out {
		p := &ps[i+j]
		out[j].At = p.At
		if currency == "" || p.Currency == currency {
			out[j].Net = p.Net()
		}
	}
	return out
}

// ruleWindow is a windowed feature: its window and whether it sums net
// amounts (monetary_*) or counts purchases (purchases_*).
type ruleWindow struct {
	w        time.Duration
	monetary bool
}

var ruleWindowOf = map[string]ruleWindow{
	"purchases_30d": {Window30d, false}, "purchases_90d": {Window90d, false}, "purchases_365d": {Window365d, false},
	"monetary_30d": {Window30d, true}, "monetary_90d": {Window90d, true}, "monetary_365d": {Window365d, true},
}

func (w ruleWindow) add(p *WindowPurchase) int64 {
	if w.monetary {
		return p.Net
	}
	return 1
}

// flip returns the first instant after now at which `feature op k` differs
// from its value at now, with the feature taken over ws; cur is the
// feature's value at now as the rule sees it. When ws is nil or does not
// give cur, the caller did not pass the customer's purchases, and flip
// returns change, the next change of any window (RuleInput.WindowChange).
func (w ruleWindow) flip(op ruleComparison, k ruleNum, ws []WindowPurchase, now time.Time, cur int64, change time.Time) (time.Time, bool) {
	if ws == nil {
		return change, !change.IsZero()
	}
	// ws[leave:enter] are inside the window at now: made by now, leaving
	// after it. The value steps where a purchase after now enters (At) or
	// one leaves (At+w): two sorted sequences, merged below.
	enter := sort.Search(len(ws), func(i int) bool { return ws[i].At.After(now) })
	leave := sort.Search(len(ws), func(i int) bool { return ws[i].At.Add(w.w).After(now) })
	var v int64
	for i := leave; i < enter; i++ {
		v += w.add(&ws[i])
	}
	if v != cur {
		return change, !change.IsZero()
	}
	if k.isNaN() {
		return time.Time{}, false // every comparison with NaN is constant
	}
	holds := func(v int64) bool { return op.holds(compareRuleNums(ruleNum{kind: ruleKindInt, i: v}, k)) }
	start := holds(v)
	for enter < len(ws) || leave < len(ws) {
		var t time.Time
		if enter < len(ws) {
			t = ws[enter].At
		}
		if leave < len(ws) {
			if l := ws[leave].At.Add(w.w); enter == len(ws) || l.Before(t) {
				t = l
			}
		}
		for enter < len(ws) && ws[enter].At.Equal(t) {
			v += w.add(&ws[enter])
			enter++
		}
		for leave < len(ws) && ws[leave].At.Add(w.w).Equal(t) {
			v -= w.add(&ws[leave])
			leave++
		}
		if holds(v) != start {
			return t, true
		}
	}
	return time.Time{}, false
}

// windowFeature reads a windowed feature from the Features message.
func windowFeature(f *segmentationv1.Features, name string) int64 {
	switch name {
	case "purchases_30d":
		return f.GetPurchases_30D()
	case "purchases_90d":
		return f.GetPurchases_90D()
	case "purchases_365d":
		return f.GetPurchases_365D()
	case "monetary_30d":
		return f.GetMonetary_30D()
	case "monetary_90d":
		return f.GetMonetary_90D()
	}
	return f.GetMonetary_365D()
}

// ruleNumOf is a CEL number as a ruleNum.
func ruleNumOf(k ref.Val) (ruleNum, bool) {
	switch x := k.(type) {
	case types.Int:
		return ruleNum{kind: ruleKindInt, i: int64(x)}, true
	case types.Uint:
		return ruleNum{kind: ruleKindUint, u: uint64(x)}, true
	case types.Double:
		return ruleNum{kind: ruleKindDouble, f: float64(x)}, true
	}
	return ruleNum{}, false
}

// nextWindow is a window timer's next flip on CEL's side.
func (tm ruleTimer) nextWindow(act *ruleActivation, in RuleInput) (time.Time, bool) {
	v, err := evalRuleProgram(tm.bound, act)
	if err != nil {
		return time.Time{}, false // the comparison fails until its bound changes
	}
	k, ok := ruleNumOf(v)
	if !ok {
		return time.Time{}, false
	}
	w := ruleWindowOf[tm.window]
	return w.flip(ruleComparisonOf(tm.op), k, in.Window, in.Now, windowFeature(in.Features, tm.window), in.WindowChange)
}

// nextWindow is ruleTimer.nextWindow on the native form.
func (tm *ruleNativeTimer) nextWindow(p *ruleProgram, fr *ruleFrame, in *RuleRow) (time.Time, bool) {
	k, ok := p.evalNum(tm.bound, fr)
	if !ok {
		return time.Time{}, false
	}
	return tm.window.flip(tm.op, k, in.Window, in.Now, fr.intField(tm.field), in.WindowChange)
}

// windowSelect reports whether e is features.<a windowed feature>, and
// which.
func (a *ruleAnalysis) windowSelect(e ast.Expr) (string, bool) {
	if e.Kind() != ast.SelectKind {
		return "", false
	}
	s := e.AsSelect()
	if _, ok := ruleWindowOf[s.FieldName()]; !ok || s.IsTestOnly() || s.Operand().Kind() != ast.IdentKind || !a.isFeatures(s.Operand()) {
		return "", false
	}
	return s.FieldName(), true
}

// windowTimer records a windowed feature compared with bound; false when
// the bound does not compile alone.
func (a *ruleAnalysis) windowTimer(field, op string, bound ast.Expr) bool {
	tm := ruleTimer{window: field, op: op, boundExpr: bound, bound: a.env.compilePart(a.unparse(bound))}
	if tm.bound == nil {
		return false
	}
	a.rule.timers = append(a.rule.timers, tm)
	return true
}
