package domain

import (
	"math"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// When time alone changes a rule.
//
// Time enters a rule in two ways only: through days_since, whose value
// steps by one at each whole day after its timestamp, and through the
// windowed features and tenure_days, whose next change the caller knows
// (RuleInput.WindowChange, RuleInput.TenureChange). NextChange takes the
// earliest of:
//
//   - for days_since(E) compared with K (E and K evaluated now): the first
//     instant the comparison flips, t + m days for the smallest threshold m
//     above today's value (d > K flips at floor(K)+1, d >= K at ceil(K),
//     d == K at K and K+1, …);
//   - for any other days_since(E): the next whole-day boundary after now
//     counted from E;
//   - for days_since calls inside a comprehension on its iteration
//     variable, which cannot be evaluated alone: the next day boundary of
//     every such call made by one traced evaluation of the rule;
//   - for tenure_days compared with K: the same as for
//     days_since(features.first_seen) compared with K. Tenure is
//     max(0, days_since(first_seen)), or 0 without a first_seen, so it
//     steps only where days_since does and its comparisons can flip only
//     where those of days_since can: `features.tenure_days < 90` has one
//     timer, at first_seen + 90 days, instead of one every day;
//   - for a windowed feature compared with K: the first instant the
//     comparison flips, from the customer's purchases (rules_window.go);
//   - WindowChange if the rule reads a windowed feature any other way,
//     TenureChange if it reads tenure_days any other way.
//
// This is sound: until that instant every days_since comparison or value
// the evaluation uses is unchanged (E and K are themselves unchanged, as
// any time inside them is covered by their own candidates), so the
// evaluation takes the same path to the same result. It may be early — a
// flipped comparison need not flip the rule — which costs one needless
// re-evaluation, never a missed one.

// ruleWindowFields are the Features fields that change as their window
// slides; ruleTenureField changes every day.
var ruleWindowFields = map[string]bool{
	"purchases_30d": true, "purchases_90d": true, "purchases_365d": true,
	"monetary_30d": true, "monetary_90d": true, "monetary_365d": true,
}

const ruleTenureField = "tenure_days"

// ruleTimer is a days_since(arg) call. op is the comparison with the call
// on the left and bound on the right; op is empty when the call's value is
// used some other way. arg is nil for a traced call. argExpr and boundExpr
// are the expressions arg and bound were compiled from, for the rule's
// native form. A tenure timer stands for tenure_days compared with bound:
// its arg is features.first_seen and argExpr nil. A window timer stands for
// the windowed feature named window compared with bound; arg is nil.
type ruleTimer struct {
	tenure    bool
	window    string
	arg       cel.Program
	op        string
	bound     cel.Program
	argExpr   ast.Expr
	boundExpr ast.Expr
}

// NextChange returns the earliest instant strictly after in.Now at which
// time alone could change the rule's result, or the zero time if it cannot.
// See the notes at the top of rules_time.go.
func (r *Rule) NextChange(in RuleInput) time.Time {
	if !r.usesTime || checkRuleInput(in) != nil {
		return time.Time{} // an input Eval refuses stays refused
	}
	var next time.Time
	consider := func(t time.Time) { considerRuleChange(&next, t, in.Now) }
	if r.window {
		consider(in.WindowChange)
	}
	if r.tenure {
		consider(in.TenureChange)
	}
	act := newRuleActivation(in)
	for _, tm := range r.timers {
		var t time.Time
		var ok bool
		if tm.window != "" {
			t, ok = tm.nextWindow(act, in)
		} else {
			t, ok = tm.next(act)
		}
		if ok {
			consider(t)
		}
	}
	if len(r.traced) > 0 {
		var calls []ruleCall
		act.trace = &calls
		_, _ = evalRuleProgram(r.prg, act) // an error is a result too: the trace up to it is what counts
		act.trace = nil
		for _, c := range calls {
			if tm, ok := r.traced[c.id]; ok {
				if t, ok := tm.after(act, c.t); ok {
					consider(t)
				}
			}
		}
	}
	return next
}

// considerRuleChange makes t the next change if it is after now and before
// *next (or *next is zero).
func considerRuleChange(next *time.Time, t, now time.Time) {
	if t.After(now) && (next.IsZero() || t.Before(*next)) {
		*next = t
	}
}

// next evaluates the timer's argument and returns when its use flips.
func (tm ruleTimer) next(act *ruleActivation) (time.Time, bool) {
	v, err := evalRuleProgram(tm.arg, act)
	if err != nil {
		return time.Time{}, false
	}
	ts, ok := v.(types.Timestamp)
	if !ok {
		return time.Time{}, false
	}
	return tm.after(act, ts.Time)
}

// after returns the first instant after act.now at which days_since(t), as
// the timer uses it, changes.
func (tm ruleTimer) after(act *ruleActivation, t time.Time) (time.Time, bool) {
	if ruleTimestampUnset(t) {
		return time.Time{}, false // an unset timestamp's days_since never changes
	}
	d := ruleDaysElapsed(t, act.now)
	m := d + 1
	if tm.op != "" {
		k, err := evalRuleProgram(tm.bound, act)
		if err != nil {
			return time.Time{}, false
		}
		var ok bool
		if m, ok = nextRuleThreshold(tm.op, k, d); !ok {
			return time.Time{}, false
		}
	}
	return addRuleDays(ruleInstant(t), m)
}

// ruleMaxDays keeps threshold arithmetic far from int64 overflow; no rule
// needs a timer three billion years out.
const ruleMaxDays = 1 << 40

// nextRuleThreshold returns the smallest m > d at which `days op k` differs
// between days = m-1 and days = m.
func nextRuleThreshold(op string, k ref.Val, d int64) (int64, bool) {
	n, ok := ruleNumOf(k)
	if !ok {
		return 0, false
	}
	return nextRuleThresholdNum(ruleComparisonOf(op), n, d)
}

// nextRuleThresholdNum is nextRuleThreshold on a native number.
func nextRuleThresholdNum(op ruleComparison, k ruleNum, d int64) (int64, bool) {
	var lo, hi int64 // floor(k), ceil(k)
	switch k.kind {
	case ruleKindInt:
		lo, hi = k.i, k.i
	case ruleKindUint:
		if k.u > ruleMaxDays {
			return 0, false
		}
		lo, hi = int64(k.u), int64(k.u)
	case ruleKindDouble:
		f := k.f
		if math.IsNaN(f) || math.Abs(f) > ruleMaxDays {
			return 0, false
		}
		lo, hi = int64(math.Floor(f)), int64(math.Ceil(f))
	default:
		return 0, false
	}
	if lo < -ruleMaxDays || hi > ruleMaxDays {
		return 0, false
	}
	// The comparison flips at one threshold, or at two for == and !=.
	var first, second int64
	var n int
	switch op {
	case ruleGreater, ruleLessEquals:
		first, n = lo+1, 1
	case ruleGreaterEquals, ruleLess:
		first, n = hi, 1
	case ruleEquals, ruleNotEquals:
		if lo == hi {
			first, second, n = lo, lo+1, 2
		}
	}
	if n >= 1 && first > d {
		return first, true
	}
	if n >= 2 && second > d {
		return second, true
	}
	return 0, false
}

// addRuleDays returns t + m whole days, when that is a sensible instant.
func addRuleDays(t ruleTime, m int64) (time.Time, bool) {
	if m > ruleMaxDays || m < -ruleMaxDays {
		return time.Time{}, false
	}
	return time.Unix(t.sec+m*int64(ruleDay/time.Second), int64(t.nsec)).UTC(), true
}

// mirrorRuleComparison gives the operator with its operands swapped:
// K < x is x > K.
func mirrorRuleComparison(fn string) string {
	switch fn {
	case operators.Less:
		return operators.Greater
	case operators.LessEquals:
		return operators.GreaterEquals
	case operators.Greater:
		return operators.Less
	case operators.GreaterEquals:
		return operators.LessEquals
	}
	return fn
}

func isDaysSinceCall(e ast.Expr) bool {
	if e.Kind() != ast.CallKind {
		return false
	}
	c := e.AsCall()
	return c.FunctionName() == ruleDaysSince && !c.IsMemberFunction() && len(c.Args()) == 1
}

// times finds what makes the rule depend on time: days_since calls and
// reads of windowed features. scope holds the comprehension variables
// visible at e.
func (a *ruleAnalysis) times(e ast.Expr, scope map[string]bool) {
	switch e.Kind() {
	case ast.ComprehensionKind:
		c := e.AsComprehension()
		a.times(c.IterRange(), scope)
		a.times(c.AccuInit(), scope)
		inner := withRuleScope(scope, c.AccuVar(), c.IterVar(), c.IterVar2())
		a.times(c.LoopCondition(), inner)
		a.times(c.LoopStep(), inner)
		a.times(c.Result(), withRuleScope(scope, c.AccuVar()))
		return
	case ast.SelectKind:
		s := e.AsSelect()
		if a.isFeatures(s.Operand()) {
			a.rule.window = a.rule.window || ruleWindowFields[s.FieldName()]
			a.rule.tenure = a.rule.tenure || s.FieldName() == ruleTenureField
			if s.Operand().Kind() == ast.IdentKind {
				return
			}
		}
		a.times(s.Operand(), scope)
		return
	case ast.IdentKind:
		// The Features message used whole (compared, passed on) may
		// change with any of its windows.
		if a.isFeatures(e) {
			a.rule.window, a.rule.tenure = true, true
		}
		return
	case ast.CallKind:
		c := e.AsCall()
		if fn := c.FunctionName(); isRuleComparison(fn) && len(c.Args()) == 2 {
			for i, x := range c.Args() {
				if !isDaysSinceCall(x) {
					continue
				}
				other := c.Args()[1-i]
				op := fn
				if i == 1 {
					op = mirrorRuleComparison(fn)
				}
				a.timer(x, op, other, scope)
				a.times(x.AsCall().Args()[0], scope)
				a.times(other, scope)
				return
			}
			for i, x := range c.Args() {
				other := c.Args()[1-i]
				if !a.isTenure(x) || a.usesRuleScope(other, scope) {
					continue
				}
				op := fn
				if i == 1 {
					op = mirrorRuleComparison(fn)
				}
				if a.tenureTimer(op, other) {
					a.times(other, scope)
					return
				}
			}
			for i, x := range c.Args() {
				other := c.Args()[1-i]
				field, ok := a.windowSelect(x)
				if !ok || a.usesRuleScope(other, scope) {
					continue
				}
				op := fn
				if i == 1 {
					op = mirrorRuleComparison(fn)
				}
				if a.windowTimer(field, op, other) {
					a.times(other, scope)
					return
				}
			}
		}
		if isDaysSinceCall(e) {
			a.timer(e, "", nil, scope)
			a.times(c.Args()[0], scope)
			return
		}
	}
	for _, x := range ruleChildren(e) {
		a.times(x, scope)
	}
}

// timer records a days_since call with the comparison it is in, if any.
// The argument (and the bound) are compiled alone when they can be; a call
// whose argument names a comprehension variable is left to tracing, and a
// bound that names one makes the call count every day boundary.
func (a *ruleAnalysis) timer(call ast.Expr, op string, bound ast.Expr, scope map[string]bool) {
	arg := call.AsCall().Args()[0]
	tm := ruleTimer{argExpr: arg}
	if bound != nil && !a.usesRuleScope(bound, scope) {
		if tm.bound = a.env.compilePart(a.unparse(bound)); tm.bound != nil {
			tm.op, tm.boundExpr = op, bound
		}
	}
	if !a.usesRuleScope(arg, scope) {
		tm.arg = a.env.compilePart(a.unparse(arg))
	}
	if tm.arg != nil {
		a.rule.timers = append(a.rule.timers, tm)
		return
	}
	if a.rule.traced == nil {
		a.rule.traced = map[int64]ruleTimer{}
	}
	a.rule.traced[call.ID()] = tm
}

// isTenure reports whether e is features.tenure_days.
func (a *ruleAnalysis) isTenure(e ast.Expr) bool {
	if e.Kind() != ast.SelectKind {
		return false
	}
	s := e.AsSelect()
	return s.FieldName() == ruleTenureField && !s.IsTestOnly() && s.Operand().Kind() == ast.IdentKind && a.isFeatures(s.Operand())
}

// tenureTimer records tenure_days compared with bound as a timer on
// features.first_seen; false when the parts do not compile alone.
func (a *ruleAnalysis) tenureTimer(op string, bound ast.Expr) bool {
	tm := ruleTimer{tenure: true, op: op, boundExpr: bound,
		arg: a.env.compilePart("features.first_seen"), bound: a.env.compilePart(a.unparse(bound))}
	if tm.arg == nil || tm.bound == nil {
		return false
	}
	a.rule.timers = append(a.rule.timers, tm)
	return true
}

func (a *ruleAnalysis) isFeatures(e ast.Expr) bool {
	t := a.native.GetType(e.ID())
	return t != nil && t.Kind() == types.StructKind &&
		t.TypeName() == string(emptyRuleFeatures.ProtoReflect().Descriptor().FullName())
}

// usesRuleScope reports whether e names a comprehension variable in scope.
func (a *ruleAnalysis) usesRuleScope(e ast.Expr, scope map[string]bool) bool {
	if len(scope) == 0 {
		return false
	}
	uses := false
	visitRuleExpr(e, func(x ast.Expr) bool {
		if x.Kind() == ast.IdentKind && scope[x.AsIdent()] {
			uses = true
		}
		return !uses
	})
	return uses
}

func withRuleScope(scope map[string]bool, names ...string) map[string]bool {
	out := make(map[string]bool, len(scope)+len(names))
	for k := range scope {
		out[k] = true
	}
	for _, n := range names {
		if n != "" {
			out[n] = true
		}
	}
	return out
}
