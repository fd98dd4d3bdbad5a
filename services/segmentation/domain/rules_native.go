package domain

import (
	"cmp"
	"errors"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/overloads"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"google.golang.org/protobuf/types/known/timestamppb"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
)

// The native form of a rule.
//
// CEL's interpreter over protobuf messages costs some hundreds of
// nanoseconds per evaluation, plus building the Features and Scores
// messages of every customer; a full re-evaluation runs every rule over
// every customer. Compile therefore also translates the checked rule, when
// it can, into a small tree of typed nodes evaluated directly over the
// domain's own Features and Score and the customer message (RuleRow):
//
//   - literals and enum constants; field selection on customer, features
//     and scores (a table of paths, ruleFieldPaths) and has() on them;
//   - && || ! and ?: with CEL's error semantics (false && error is false,
//     true || error is true, any other error propagates);
//   - == != < <= > >= on numbers (int, uint and double, across types as
//     CEL orders them), strings, bools and timestamps;
//   - in over list literals, customer.tags and customer.traits, and map
//     keys; map and list indexing; size(); startsWith, endsWith, contains;
//   - int, uint and double arithmetic with CEL's overflow and division
//     errors;
//   - days_since, timestamp("literal"), and the exists, all and exists_one
//     macros over lists of strings and map keys.
//
// Each node computes its value and whether it is an error; which error
// does not matter, as the final error is a non-member. Anything else
// (other functions, message values, conversions, days_since whose argument
// names a comprehension variable) leaves the rule without a native form,
// and EvalRow and NextChangeRow use CEL.
//
// Two limits of Eval are kept exactly. checkRuleInput refuses customers
// with lists larger than the cost estimate assumed. The runtime cost
// limit, which applies to rules whose estimate depends on string lengths
// and to the parts NextChange evaluates, can only be reached when a string
// the rule reads is longer than the estimate assumed (ruleMaxString); for
// such a customer the native form defers to CEL, which reports what it
// always did.

// RuleRow is one customer as the native form of a rule reads it.
type RuleRow struct {
	// Customer is the profile; nil reads as an empty customer.
	Customer *profilev1.Customer
	// Features are read as FeaturesToProto converts them; nil reads as zero
	// Features.
	Features *Features
	// Score is read as ScoreToProto converts it; nil reads as a zero Score.
	Score *Score
	// Now, WindowChange, TenureChange and Window are as in RuleInput.
	Now, WindowChange, TenureChange time.Time
	Window                          []WindowPurchase

	// What the rules evaluated on the row share, made on first use: the
	// count of the customer's list items (valid when itemsKnown) and the
	// evaluation frame (valid when framed). Assigning a new RuleRow value
	// clears them: a row is one customer at one instant.
	items      int
	itemsKnown bool
	framed     bool
	fr         ruleFrame
}

// frame returns the row's evaluation frame.
func (in *RuleRow) frame() *ruleFrame {
	if !in.framed {
		in.fr.init(in)
		in.framed = true
	}
	return &in.fr
}

// RuleItems is the size of the customer's largest list or map, which rules
// refuse above a limit. A caller that keeps customers to evaluate them
// again and again can keep it too, and give it to each row (SetItems).
func RuleItems(c *profilev1.Customer) int { return ruleInputItems(c) }

// SetItems gives the row the customer's RuleItems, which it would
// otherwise count on its first evaluation.
func (in *RuleRow) SetItems(n int) { in.items, in.itemsKnown = n, true }

// tooManyItems reports whether the customer has a list or map larger than
// rules are evaluated over (checkRuleInput), counting once per row.
func (in *RuleRow) tooManyItems() bool {
	if !in.itemsKnown {
		in.items, in.itemsKnown = ruleInputItems(in.Customer), true
	}
	return in.items > ruleMaxItems
}

// Input returns the RuleInput equivalent to the row: what Eval and
// NextChange read.
func (in *RuleRow) Input() RuleInput {
	var f Features
	if in.Features != nil {
		f = *in.Features
	}
	var s Score
	if in.Score != nil {
		s = *in.Score
	}
	return RuleInput{
		Customer:     in.Customer,
		Features:     FeaturesToProto(f),
		Scores:       ScoreToProto(s),
		Now:          in.Now,
		WindowChange: in.WindowChange,
		TenureChange: in.TenureChange,
		Window:       in.Window,
	}
}

// Native reports whether the rule has a native form: EvalRow and
// NextChangeRow then run without CEL.
func (r *Rule) Native() bool { return r.native != nil }

// EvalRow reports whether the customer is a member: the same as Eval on
// in.Input() returning true without an error. A rule without a native form
// is evaluated by CEL.
func (r *Rule) EvalRow(in *RuleRow) bool {
	p := r.native
	if p != nil && in.tooManyItems() {
		return false // as checkRuleInput
	}
	if p == nil || (r.limitCost && !p.stringsFit(in.Customer)) {
		held, err := r.Eval(in.Input())
		return held && err == nil
	}
	v, ok := p.evalBool(p.root, in.frame())
	return ok && v
}

// NextChangeRow is NextChange on in.Input().
func (r *Rule) NextChangeRow(in *RuleRow) time.Time {
	if !r.usesTime {
		return time.Time{}
	}
	p := r.native
	if p != nil && in.tooManyItems() {
		return time.Time{} // as checkRuleInput
	}
	if p == nil || (len(p.timers) > 0 && !p.stringsFit(in.Customer)) {
		return r.NextChange(in.Input())
	}
	var next time.Time
	if r.window {
		considerRuleChange(&next, in.WindowChange, in.Now)
	}
	if r.tenure {
		considerRuleChange(&next, in.TenureChange, in.Now)
	}
	if len(p.timers) == 0 {
		return next
	}
	fr := in.frame()
	for i := range p.timers {
		tm := &p.timers[i]
		var t time.Time
		var ok bool
		if tm.arg < 0 {
			t, ok = tm.nextWindow(p, fr, in)
		} else {
			t, ok = tm.next(p, fr)
		}
		if ok {
			considerRuleChange(&next, t, in.Now)
		}
	}
	return next
}

// ruleKind is the type of a native node's value.
type ruleKind uint8

const (
	ruleKindNone ruleKind = iota
	ruleKindBool
	ruleKindInt
	ruleKindUint
	ruleKindDouble
	ruleKindString
	ruleKindTime
	// ruleKindList is a list of strings: a field or a list literal.
	ruleKindList
	// ruleKindNumList is a list literal of numbers, only ever the right
	// operand of in.
	ruleKindNumList
	// ruleKindMap is a map<string, string> field.
	ruleKindMap
	// ruleKindMessage is a message field, only ever the operand of has().
	ruleKindMessage
)

func (k ruleKind) numeric() bool {
	return k == ruleKindInt || k == ruleKindUint || k == ruleKindDouble
}

// ruleNum is a number of any of CEL's three numeric types.
type ruleNum struct {
	kind ruleKind
	i    int64
	u    uint64
	f    float64
}

func (n ruleNum) isNaN() bool { return n.kind == ruleKindDouble && math.IsNaN(n.f) }

// compareRuleNums orders two numbers as CEL does across types (cel-go's
// common/types compare functions); neither may be NaN.
func compareRuleNums(a, b ruleNum) int {
	switch a.kind {
	case ruleKindInt:
		switch b.kind {
		case ruleKindInt:
			return compareRuleOrdered(a.i, b.i)
		case ruleKindUint:
			return compareRuleIntUint(a.i, b.u)
		default:
			return -compareRuleDoubleInt(b.f, a.i)
		}
	case ruleKindUint:
		switch b.kind {
		case ruleKindInt:
			return -compareRuleIntUint(b.i, a.u)
		case ruleKindUint:
			return compareRuleOrdered(a.u, b.u)
		default:
			return -compareRuleDoubleUint(b.f, a.u)
		}
	default:
		switch b.kind {
		case ruleKindInt:
			return compareRuleDoubleInt(a.f, b.i)
		case ruleKindUint:
			return compareRuleDoubleUint(a.f, b.u)
		default:
			return compareRuleOrdered(a.f, b.f)
		}
	}
}

func compareRuleOrdered[T int64 | uint64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func compareRuleDoubleInt(d float64, i int64) int {
	if d < math.MinInt64 {
		return -1
	}
	if d > math.MaxInt64 {
		return 1
	}
	return compareRuleOrdered(d, float64(i))
}

func compareRuleDoubleUint(d float64, u uint64) int {
	if d < 0 {
		return -1
	}
	if d > math.MaxUint64 {
		return 1
	}
	return compareRuleOrdered(d, float64(u))
}

func compareRuleIntUint(i int64, u uint64) int {
	if i < 0 || u > math.MaxInt64 {
		return -1
	}
	return compareRuleOrdered(i, int64(u))
}

// ruleComparison is one of the six comparison operators.
type ruleComparison uint8

const (
	ruleNoComparison ruleComparison = iota
	ruleEquals
	ruleNotEquals
	ruleLess
	ruleLessEquals
	ruleGreater
	ruleGreaterEquals
)

// ruleComparisonOf maps a CEL operator to its comparison, if it is one.
func ruleComparisonOf(op string) ruleComparison {
	switch op {
	case operators.Equals:
		return ruleEquals
	case operators.NotEquals:
		return ruleNotEquals
	case operators.Less:
		return ruleLess
	case operators.LessEquals:
		return ruleLessEquals
	case operators.Greater:
		return ruleGreater
	case operators.GreaterEquals:
		return ruleGreaterEquals
	}
	return ruleNoComparison
}

// holds applies the comparison to an ordering c of the operands (-1, 0, +1).
func (op ruleComparison) holds(c int) bool {
	switch op {
	case ruleEquals:
		return c == 0
	case ruleNotEquals:
		return c != 0
	case ruleLess:
		return c < 0
	case ruleLessEquals:
		return c <= 0
	case ruleGreater:
		return c > 0
	case ruleGreaterEquals:
		return c >= 0
	}
	return false
}

// mirror gives the comparison with its operands swapped: K < x is x > K.
func (op ruleComparison) mirror() ruleComparison {
	switch op {
	case ruleLess:
		return ruleGreater
	case ruleLessEquals:
		return ruleGreaterEquals
	case ruleGreater:
		return ruleLess
	case ruleGreaterEquals:
		return ruleLessEquals
	}
	return op
}

// unordered is the comparison's value when an operand is NaN: only != holds.
func (op ruleComparison) unordered() bool { return op == ruleNotEquals }

// ruleOp is what a native node computes.
type ruleOp uint8

const (
	ruleOpConst ruleOp = iota
	ruleOpField        // a field of customer, features or scores
	ruleOpHas          // has() of such a field
	ruleOpVar          // a comprehension variable, by slot
	ruleOpList         // a list literal of kids
	ruleOpAnd          // kids
	ruleOpOr           // kids
	ruleOpNot          // !x
	ruleOpCond         // z ? x : y
	// Comparisons x cmp y, by the operands' type.
	ruleOpCmpInt
	// Comparisons of a field with a constant, fused for speed: an int
	// field with i, a number field with the number n, a string field with
	// s, and days_since of a timestamp field with i.
	ruleOpCmpIntField
	ruleOpCmpNumField
	ruleOpCmpStringField
	ruleOpCmpDaysField
	ruleOpCmpNum
	ruleOpCmpString
	ruleOpCmpBool
	ruleOpCmpTime
	// Membership x in y: y a list of strings, a list of numbers, a map.
	ruleOpInList
	ruleOpInNums
	ruleOpInMap
	ruleOpIndexList // x[y]
	ruleOpIndexMap  // x[y]
	ruleOpSize      // size(x)
	ruleOpStartsWith
	ruleOpEndsWith
	ruleOpContains
	ruleOpDaysSince // days_since(x)
	ruleOpNeg       // -x
	ruleOpAdd       // x + y, and so on
	ruleOpSub
	ruleOpMul
	ruleOpDiv
	ruleOpMod
	// Comprehensions: the predicate x over the range y, its variable in
	// slot.
	ruleOpExists
	ruleOpAll
	ruleOpExistsOne
)

// ruleNode is one node of a native rule. Operands are indexes into
// ruleProgram.nodes; constants are in the field of their kind.
type ruleNode struct {
	op      ruleOp
	kind    ruleKind
	cmp     ruleComparison
	field   ruleField
	slot    uint8
	x, y, z int32
	kids    []int32
	b       bool
	i       int64
	u       uint64
	f       float64
	s       string
	t       ruleTime
	n       ruleNum
}

// ruleProgram is a rule's native form.
type ruleProgram struct {
	nodes []ruleNode
	root  int32
	// timers mirror Rule.timers.
	timers []ruleNativeTimer
	// strings are the customer's string fields, lists and maps the rule
	// reads: what stringsFit checks.
	strings []ruleField
}

// ruleNativeTimer is a ruleTimer's native form; bound is -1 when op is
// empty. A window timer has field set, the windowed feature, and arg -1.
type ruleNativeTimer struct {
	arg    int32
	op     ruleComparison
	bound  int32
	field  ruleField
	window ruleWindow
}

// ruleMaxDepth is the deepest nesting of comprehensions the native form
// evaluates.
const ruleMaxDepth = 4

// ruleFrame is one native evaluation's input.
type ruleFrame struct {
	c    *profilev1.Customer
	f    *Features
	s    *Score
	now  ruleTime
	vars [ruleMaxDepth]string
}

// Zero values stand in for nil rows; they are never modified.
var (
	zeroRuleFeatures Features
	zeroRuleScore    Score
)

// init sets the frame up for in, in place: building a frame and copying
// it costs as much as a simple rule.
func (fr *ruleFrame) init(in *RuleRow) {
	fr.c, fr.f, fr.s, fr.now = in.Customer, in.Features, in.Score, ruleInstant(in.Now)
	if fr.f == nil {
		fr.f = &zeroRuleFeatures
	}
	if fr.s == nil {
		fr.s = &zeroRuleScore
	}
}

// stringsFit reports whether every string the rule reads from c is within
// ruleMaxString bytes, as the cost estimate assumed (a string's size in
// CEL's cost is its length in code points, never more than in bytes).
func (p *ruleProgram) stringsFit(c *profilev1.Customer) bool {
	for _, f := range p.strings {
		switch ruleFieldKinds[f] {
		case ruleKindString:
			if len(ruleStringField(c, f)) > ruleMaxString {
				return false
			}
		case ruleKindList:
			for _, s := range ruleListField(c, f) {
				if len(s) > ruleMaxString {
					return false
				}
			}
		case ruleKindMap:
			for k, v := range ruleMapField(c, f) {
				if len(k) > ruleMaxString || len(v) > ruleMaxString {
					return false
				}
			}
		}
	}
	return true
}

// next is ruleTimer.next on the native form.
func (tm *ruleNativeTimer) next(p *ruleProgram, fr *ruleFrame) (time.Time, bool) {
	t, ok := p.evalTime(tm.arg, fr)
	if !ok || t.unset() {
		return time.Time{}, false
	}
	d := t.daysUntil(fr.now)
	m := d + 1
	if tm.op != ruleNoComparison {
		k, ok := p.evalNum(tm.bound, fr)
		if !ok {
			return time.Time{}, false
		}
		if m, ok = nextRuleThresholdNum(tm.op, k, d); !ok {
			return time.Time{}, false
		}
	}
	return addRuleDays(t, m)
}

// evalKid is evalBool for an operand of && or ||: the comparisons of a
// feature or score with a constant, most operands, are done here rather
// than through another call of evalBool, whose frame and dispatch cost
// about as much as the comparison.
func (p *ruleProgram) evalKid(n int32, fr *ruleFrame) (v, ok bool) {
	nd := &p.nodes[n]
	switch nd.op {
	case ruleOpCmpIntField:
		return nd.cmp.holds(compareRuleOrdered(fr.intField(nd.field), nd.i)), true
	case ruleOpCmpDaysField:
		return nd.cmp.holds(compareRuleOrdered(fr.timeField(nd.field).daysUntil(fr.now), nd.i)), true
	}
	return p.evalBool(n, fr)
}

// evalBool evaluates a bool node: its value, and false for an error.
func (p *ruleProgram) evalBool(n int32, fr *ruleFrame) (v, ok bool) {
	nd := &p.nodes[n]
	switch nd.op {
	case ruleOpConst:
		return nd.b, true
	case ruleOpField:
		return ruleBoolField(fr.c, nd.field), true
	case ruleOpHas:
		return fr.has(nd.field), true
	case ruleOpAnd:
		failed := false
		for _, k := range nd.kids {
			v, ok := p.evalKid(k, fr)
			if ok && !v {
				return false, true
			}
			failed = failed || !ok
		}
		return !failed, !failed
	case ruleOpOr:
		failed := false
		for _, k := range nd.kids {
			v, ok := p.evalKid(k, fr)
			if ok && v {
				return true, true
			}
			failed = failed || !ok
		}
		return false, !failed
	case ruleOpNot:
		v, ok := p.evalBool(nd.x, fr)
		return ok && !v, ok
	case ruleOpCond:
		c, ok := p.evalBool(nd.z, fr)
		if !ok {
			return false, false
		}
		if c {
			return p.evalBool(nd.x, fr)
		}
		return p.evalBool(nd.y, fr)
	case ruleOpCmpIntField:
		return nd.cmp.holds(compareRuleOrdered(fr.intField(nd.field), nd.i)), true
	case ruleOpCmpNumField:
		a := fr.numField(nd.field)
		if a.isNaN() || nd.n.isNaN() {
			return nd.cmp.unordered(), true
		}
		return nd.cmp.holds(compareRuleNums(a, nd.n)), true
	case ruleOpCmpStringField:
		return nd.cmp.holds(strings.Compare(ruleStringField(fr.c, nd.field), nd.s)), true
	case ruleOpCmpDaysField:
		return nd.cmp.holds(compareRuleOrdered(fr.timeField(nd.field).daysUntil(fr.now), nd.i)), true
	case ruleOpCmpInt:
		a, ok := p.evalInt(nd.x, fr)
		if !ok {
			return false, false
		}
		b, ok := p.evalInt(nd.y, fr)
		if !ok {
			return false, false
		}
		return nd.cmp.holds(compareRuleOrdered(a, b)), true
	case ruleOpCmpNum:
		a, ok := p.evalNum(nd.x, fr)
		if !ok {
			return false, false
		}
		b, ok := p.evalNum(nd.y, fr)
		if !ok {
			return false, false
		}
		if a.isNaN() || b.isNaN() {
			return nd.cmp.unordered(), true
		}
		return nd.cmp.holds(compareRuleNums(a, b)), true
	case ruleOpCmpString:
		a, ok := p.evalString(nd.x, fr)
		if !ok {
			return false, false
		}
		b, ok := p.evalString(nd.y, fr)
		if !ok {
			return false, false
		}
		return nd.cmp.holds(strings.Compare(a, b)), true
	case ruleOpCmpBool:
		a, ok := p.evalBool(nd.x, fr)
		if !ok {
			return false, false
		}
		b, ok := p.evalBool(nd.y, fr)
		if !ok {
			return false, false
		}
		c := 0
		if a != b {
			c = 1
			if b {
				c = -1
			}
		}
		return nd.cmp.holds(c), true
	case ruleOpCmpTime:
		a, ok := p.evalTime(nd.x, fr)
		if !ok {
			return false, false
		}
		b, ok := p.evalTime(nd.y, fr)
		if !ok {
			return false, false
		}
		return nd.cmp.holds(a.compare(b)), true
	case ruleOpInList:
		s, ok := p.evalString(nd.x, fr)
		if !ok {
			return false, false
		}
		if l := &p.nodes[nd.y]; l.op == ruleOpField {
			for _, e := range ruleListField(fr.c, l.field) {
				if e == s {
					return true, true
				}
			}
			return false, true
		}
		// A list literal is built whole before it is searched: an error
		// in any element is the result.
		found := false
		for _, k := range p.nodes[nd.y].kids {
			e, ok := p.evalString(k, fr)
			if !ok {
				return false, false
			}
			found = found || e == s
		}
		return found, true
	case ruleOpInNums:
		a, ok := p.evalNum(nd.x, fr)
		if !ok {
			return false, false
		}
		found := false
		for _, k := range p.nodes[nd.y].kids {
			b, ok := p.evalNum(k, fr)
			if !ok {
				return false, false
			}
			found = found || (!a.isNaN() && !b.isNaN() && compareRuleNums(a, b) == 0)
		}
		return found, true
	case ruleOpInMap:
		k, ok := p.evalString(nd.x, fr)
		if !ok {
			return false, false
		}
		_, found := ruleMapField(fr.c, p.nodes[nd.y].field)[k]
		return found, true
	case ruleOpStartsWith, ruleOpEndsWith, ruleOpContains:
		s, ok := p.evalString(nd.x, fr)
		if !ok {
			return false, false
		}
		a, ok := p.evalString(nd.y, fr)
		if !ok {
			return false, false
		}
		switch nd.op {
		case ruleOpStartsWith:
			return strings.HasPrefix(s, a), true
		case ruleOpEndsWith:
			return strings.HasSuffix(s, a), true
		}
		return strings.Contains(s, a), true
	case ruleOpExists, ruleOpAll, ruleOpExistsOne:
		return p.evalComprehension(nd, fr)
	}
	return false, false
}

// ruleFold accumulates a comprehension macro the way its CEL expansion
// does: exists is true at the first true predicate, else an error if any
// predicate failed, else false; all mirrors it; exists_one fails with any
// predicate and otherwise counts.
type ruleFold struct {
	op     ruleOp
	failed bool
	held   bool // exists or all decided
	count  int
}

// step adds one predicate value and reports whether the result is decided.
func (f *ruleFold) step(v, ok bool) bool {
	switch f.op {
	case ruleOpExists:
		if ok && v {
			f.held = true
			return true
		}
	case ruleOpAll:
		if ok && !v {
			f.held = true
			return true
		}
	default:
		if ok && v {
			f.count++
		}
	}
	f.failed = f.failed || !ok
	return false
}

func (f *ruleFold) result() (v, ok bool) {
	switch f.op {
	case ruleOpExists:
		if f.held {
			return true, true
		}
		return false, !f.failed
	case ruleOpAll:
		if f.held {
			return false, true
		}
		return !f.failed, !f.failed
	}
	if f.failed {
		return false, false
	}
	return f.count == 1, true
}

func (p *ruleProgram) evalComprehension(nd *ruleNode, fr *ruleFrame) (bool, bool) {
	f := ruleFold{op: nd.op}
	rng := &p.nodes[nd.y]
	switch {
	case rng.kind == ruleKindMap:
		for k := range ruleMapField(fr.c, rng.field) {
			fr.vars[nd.slot] = k
			if f.step(p.evalBool(nd.x, fr)) {
				break
			}
		}
	case rng.op == ruleOpField:
		for _, s := range ruleListField(fr.c, rng.field) {
			fr.vars[nd.slot] = s
			if f.step(p.evalBool(nd.x, fr)) {
				break
			}
		}
	default:
		// A list literal: built whole first, then iterated.
		for _, k := range rng.kids {
			if _, ok := p.evalString(k, fr); !ok {
				return false, false
			}
		}
		for _, k := range rng.kids {
			fr.vars[nd.slot], _ = p.evalString(k, fr)
			if f.step(p.evalBool(nd.x, fr)) {
				break
			}
		}
	}
	return f.result()
}

// evalNum evaluates a node of any numeric kind.
func (p *ruleProgram) evalNum(n int32, fr *ruleFrame) (ruleNum, bool) {
	switch k := p.nodes[n].kind; k {
	case ruleKindInt:
		v, ok := p.evalInt(n, fr)
		return ruleNum{kind: k, i: v}, ok
	case ruleKindUint:
		v, ok := p.evalUint(n, fr)
		return ruleNum{kind: k, u: v}, ok
	case ruleKindDouble:
		v, ok := p.evalDouble(n, fr)
		return ruleNum{kind: k, f: v}, ok
	}
	return ruleNum{}, false
}

func (p *ruleProgram) evalInt(n int32, fr *ruleFrame) (int64, bool) {
	nd := &p.nodes[n]
	switch nd.op {
	case ruleOpConst:
		return nd.i, true
	case ruleOpField:
		return fr.intField(nd.field), true
	case ruleOpDaysSince:
		t, ok := p.evalTime(nd.x, fr)
		if !ok {
			return 0, false
		}
		return t.daysUntil(fr.now), true
	case ruleOpSize:
		return p.size(nd.x, fr)
	case ruleOpCond:
		c, ok := p.evalBool(nd.z, fr)
		if !ok {
			return 0, false
		}
		if c {
			return p.evalInt(nd.x, fr)
		}
		return p.evalInt(nd.y, fr)
	case ruleOpNeg:
		a, ok := p.evalInt(nd.x, fr)
		if !ok || a == math.MinInt64 {
			return 0, false
		}
		return -a, true
	case ruleOpAdd, ruleOpSub, ruleOpMul, ruleOpDiv, ruleOpMod:
		a, ok := p.evalInt(nd.x, fr)
		if !ok {
			return 0, false
		}
		b, ok := p.evalInt(nd.y, fr)
		if !ok {
			return 0, false
		}
		return ruleIntArithmetic(nd.op, a, b)
	}
	return 0, false
}

// ruleIntArithmetic is CEL's checked int64 arithmetic (cel-go's
// common/types/overflow.go): overflow and division by zero are errors.
func ruleIntArithmetic(op ruleOp, x, y int64) (int64, bool) {
	switch op {
	case ruleOpAdd:
		if (y > 0 && x > math.MaxInt64-y) || (y < 0 && x < math.MinInt64-y) {
			return 0, false
		}
		return x + y, true
	case ruleOpSub:
		if (y < 0 && x > math.MaxInt64+y) || (y > 0 && x < math.MinInt64+y) {
			return 0, false
		}
		return x - y, true
	case ruleOpMul:
		if (x == -1 && y == math.MinInt64) || (y == -1 && x == math.MinInt64) ||
			(x > 0 && y > 0 && x > math.MaxInt64/y) ||
			(x > 0 && y < 0 && y < math.MinInt64/x) ||
			(x < 0 && y > 0 && x < math.MinInt64/y) ||
			(x < 0 && y < 0 && y < math.MaxInt64/x) {
			return 0, false
		}
		return x * y, true
	case ruleOpDiv:
		if y == 0 || (x == math.MinInt64 && y == -1) {
			return 0, false
		}
		return x / y, true
	case ruleOpMod:
		if y == 0 || (x == math.MinInt64 && y == -1) {
			return 0, false
		}
		return x % y, true
	}
	return 0, false
}

func (p *ruleProgram) evalUint(n int32, fr *ruleFrame) (uint64, bool) {
	nd := &p.nodes[n]
	switch nd.op {
	case ruleOpConst:
		return nd.u, true
	case ruleOpCond:
		c, ok := p.evalBool(nd.z, fr)
		if !ok {
			return 0, false
		}
		if c {
			return p.evalUint(nd.x, fr)
		}
		return p.evalUint(nd.y, fr)
	case ruleOpAdd, ruleOpSub, ruleOpMul, ruleOpDiv, ruleOpMod:
		a, ok := p.evalUint(nd.x, fr)
		if !ok {
			return 0, false
		}
		b, ok := p.evalUint(nd.y, fr)
		if !ok {
			return 0, false
		}
		return ruleUintArithmetic(nd.op, a, b)
	}
	return 0, false
}

// ruleUintArithmetic is CEL's checked uint64 arithmetic.
func ruleUintArithmetic(op ruleOp, x, y uint64) (uint64, bool) {
	switch op {
	case ruleOpAdd:
		if y > 0 && x > math.MaxUint64-y {
			return 0, false
		}
		return x + y, true
	case ruleOpSub:
		if y > x {
			return 0, false
		}
		return x - y, true
	case ruleOpMul:
		if y != 0 && x > math.MaxUint64/y {
			return 0, false
		}
		return x * y, true
	case ruleOpDiv:
		if y == 0 {
			return 0, false
		}
		return x / y, true
	case ruleOpMod:
		if y == 0 {
			return 0, false
		}
		return x % y, true
	}
	return 0, false
}

func (p *ruleProgram) evalDouble(n int32, fr *ruleFrame) (float64, bool) {
	nd := &p.nodes[n]
	switch nd.op {
	case ruleOpConst:
		return nd.f, true
	case ruleOpField:
		return fr.doubleField(nd.field), true
	case ruleOpCond:
		c, ok := p.evalBool(nd.z, fr)
		if !ok {
			return 0, false
		}
		if c {
			return p.evalDouble(nd.x, fr)
		}
		return p.evalDouble(nd.y, fr)
	case ruleOpNeg:
		a, ok := p.evalDouble(nd.x, fr)
		return -a, ok
	case ruleOpAdd, ruleOpSub, ruleOpMul, ruleOpDiv:
		a, ok := p.evalDouble(nd.x, fr)
		if !ok {
			return 0, false
		}
		b, ok := p.evalDouble(nd.y, fr)
		if !ok {
			return 0, false
		}
		switch nd.op {
		case ruleOpAdd:
			return a + b, true
		case ruleOpSub:
			return a - b, true
		case ruleOpMul:
			return a * b, true
		}
		return a / b, true
	}
	return 0, false
}

func (p *ruleProgram) evalString(n int32, fr *ruleFrame) (string, bool) {
	nd := &p.nodes[n]
	switch nd.op {
	case ruleOpConst:
		return nd.s, true
	case ruleOpField:
		return ruleStringField(fr.c, nd.field), true
	case ruleOpVar:
		return fr.vars[nd.slot], true
	case ruleOpCond:
		c, ok := p.evalBool(nd.z, fr)
		if !ok {
			return "", false
		}
		if c {
			return p.evalString(nd.x, fr)
		}
		return p.evalString(nd.y, fr)
	case ruleOpIndexMap:
		k, ok := p.evalString(nd.y, fr)
		if !ok {
			return "", false
		}
		v, found := ruleMapField(fr.c, p.nodes[nd.x].field)[k]
		return v, found // a missing key is an error
	case ruleOpIndexList:
		l, ok := p.size(nd.x, fr)
		if !ok {
			return "", false
		}
		i, ok := p.evalInt(nd.y, fr)
		if !ok || i < 0 || i >= l {
			return "", false
		}
		if lst := &p.nodes[nd.x]; lst.op == ruleOpField {
			return ruleListField(fr.c, lst.field)[i], true
		}
		return p.evalString(p.nodes[nd.x].kids[i], fr)
	}
	return "", false
}

func (p *ruleProgram) evalTime(n int32, fr *ruleFrame) (ruleTime, bool) {
	nd := &p.nodes[n]
	switch nd.op {
	case ruleOpConst:
		return nd.t, true
	case ruleOpField:
		return fr.timeField(nd.field), true
	case ruleOpCond:
		c, ok := p.evalBool(nd.z, fr)
		if !ok {
			return ruleTime{}, false
		}
		if c {
			return p.evalTime(nd.x, fr)
		}
		return p.evalTime(nd.y, fr)
	}
	return ruleTime{}, false
}

// size is CEL's size() of a string (in code points), list or map node.
func (p *ruleProgram) size(n int32, fr *ruleFrame) (int64, bool) {
	nd := &p.nodes[n]
	switch nd.kind {
	case ruleKindString:
		s, ok := p.evalString(n, fr)
		return int64(utf8.RuneCountInString(s)), ok
	case ruleKindMap:
		return int64(len(ruleMapField(fr.c, nd.field))), true
	}
	if nd.op == ruleOpField {
		return int64(len(ruleListField(fr.c, nd.field))), true
	}
	for _, k := range nd.kids {
		if _, ok := p.evalString(k, fr); !ok {
			return 0, false
		}
	}
	return int64(len(nd.kids)), true
}

// errRuleNotNative stops the translation of a rule without a native form.
var errRuleNotNative = errors.New("rule has no native form")

// compileRuleNative translates a checked rule; nil when it has no native
// form. timers are the rule's days_since calls (Rule.timers).
func compileRuleNative(checked *ast.AST, root ast.Expr, timers []ruleTimer) *ruleProgram {
	c := ruleNativeCompiler{ast: checked, p: &ruleProgram{}}
	var err error
	if c.p.root, err = c.exprOf(root, ruleKindBool); err != nil {
		return nil
	}
	for _, tm := range timers {
		nt := ruleNativeTimer{op: ruleComparisonOf(tm.op), bound: -1}
		if tm.window != "" {
			nt.arg, nt.window = -1, ruleWindowOf[tm.window]
			nt.field = ruleFieldPaths["features."+tm.window]
		} else if tm.tenure {
			nt.arg, _ = c.add(ruleNode{op: ruleOpField, kind: ruleKindTime, field: ruleFieldFirstSeen})
		} else if nt.arg, err = c.exprOf(tm.argExpr, ruleKindTime); err != nil {
			return nil
		}
		if tm.op != "" {
			if nt.op == ruleNoComparison {
				return nil
			}
			if nt.bound, err = c.expr(tm.boundExpr); err != nil || !c.p.nodes[nt.bound].kind.numeric() {
				return nil
			}
		}
		c.p.timers = append(c.p.timers, nt)
	}
	return c.p
}

// ruleNativeCompiler translates checked expressions into nodes.
type ruleNativeCompiler struct {
	ast *ast.AST
	p   *ruleProgram
	// scope are the comprehension variables, innermost last; a variable's
	// slot is its index.
	scope []string
}

func (c *ruleNativeCompiler) add(n ruleNode) (int32, error) {
	c.p.nodes = append(c.p.nodes, n)
	return int32(len(c.p.nodes) - 1), nil
}

// exprOf translates e, which must be of kind k.
func (c *ruleNativeCompiler) exprOf(e ast.Expr, k ruleKind) (int32, error) {
	n, err := c.expr(e)
	if err != nil {
		return 0, err
	}
	if c.p.nodes[n].kind != k {
		return 0, errRuleNotNative
	}
	return n, nil
}

// kindOf is the native kind of e's checked type.
func (c *ruleNativeCompiler) kindOf(e ast.Expr) ruleKind {
	t := c.ast.GetType(e.ID())
	if t == nil {
		return ruleKindNone
	}
	switch t.Kind() {
	case types.BoolKind:
		return ruleKindBool
	case types.IntKind:
		return ruleKindInt
	case types.UintKind:
		return ruleKindUint
	case types.DoubleKind:
		return ruleKindDouble
	case types.StringKind:
		return ruleKindString
	case types.TimestampKind:
		return ruleKindTime
	case types.ListKind:
		if ps := t.Parameters(); len(ps) == 1 && ps[0].Kind() == types.StringKind {
			return ruleKindList
		}
	case types.MapKind:
		if ps := t.Parameters(); len(ps) == 2 && ps[0].Kind() == types.StringKind && ps[1].Kind() == types.StringKind {
			return ruleKindMap
		}
	}
	return ruleKindNone
}

// expr translates e.
func (c *ruleNativeCompiler) expr(e ast.Expr) (int32, error) {
	if ref, ok := c.ast.ReferenceMap()[e.ID()]; ok && ref.Value != nil {
		return c.constant(ref.Value) // an enum constant
	}
	switch e.Kind() {
	case ast.LiteralKind:
		return c.constant(e.AsLiteral())
	case ast.IdentKind:
		for i := len(c.scope) - 1; i >= 0; i-- {
			if c.scope[i] == e.AsIdent() {
				if c.kindOf(e) != ruleKindString {
					return 0, errRuleNotNative
				}
				return c.add(ruleNode{op: ruleOpVar, kind: ruleKindString, slot: uint8(i)})
			}
		}
	case ast.SelectKind:
		return c.selection(e)
	case ast.ListKind:
		return c.list(e)
	case ast.CallKind:
		return c.call(e)
	case ast.ComprehensionKind:
		return c.comprehension(e)
	}
	return 0, errRuleNotNative
}

func (c *ruleNativeCompiler) constant(v ref.Val) (int32, error) {
	switch x := v.(type) {
	case types.Bool:
		return c.add(ruleNode{op: ruleOpConst, kind: ruleKindBool, b: bool(x)})
	case types.Int:
		return c.add(ruleNode{op: ruleOpConst, kind: ruleKindInt, i: int64(x)})
	case types.Uint:
		return c.add(ruleNode{op: ruleOpConst, kind: ruleKindUint, u: uint64(x)})
	case types.Double:
		return c.add(ruleNode{op: ruleOpConst, kind: ruleKindDouble, f: float64(x)})
	case types.String:
		return c.add(ruleNode{op: ruleOpConst, kind: ruleKindString, s: string(x)})
	case types.Timestamp:
		return c.add(ruleNode{op: ruleOpConst, kind: ruleKindTime, t: ruleInstant(x.Time)})
	}
	return 0, errRuleNotNative
}

// selection translates a field read or a has() test on a path of
// ruleFieldPaths.
func (c *ruleNativeCompiler) selection(e ast.Expr) (int32, error) {
	var names []string
	x := e
	for x.Kind() == ast.SelectKind {
		names = append(names, x.AsSelect().FieldName())
		x = x.AsSelect().Operand()
	}
	if x.Kind() != ast.IdentKind || c.scoped(x.AsIdent()) {
		return 0, errRuleNotNative
	}
	path := x.AsIdent()
	for i := len(names) - 1; i >= 0; i-- {
		path += "." + names[i]
	}
	f, ok := ruleFieldPaths[path]
	if !ok {
		return 0, errRuleNotNative
	}
	k := ruleFieldKinds[f]
	if e.AsSelect().IsTestOnly() {
		return c.add(ruleNode{op: ruleOpHas, kind: ruleKindBool, field: f})
	}
	if k == ruleKindMessage || k != c.kindOf(e) {
		return 0, errRuleNotNative
	}
	if f.ofCustomer() && (k == ruleKindString || k == ruleKindList || k == ruleKindMap) {
		c.readsString(f)
	}
	return c.add(ruleNode{op: ruleOpField, kind: k, field: f})
}

func (c *ruleNativeCompiler) scoped(name string) bool {
	for _, s := range c.scope {
		if s == name {
			return true
		}
	}
	return false
}

func (c *ruleNativeCompiler) readsString(f ruleField) {
	for _, g := range c.p.strings {
		if g == f {
			return
		}
	}
	c.p.strings = append(c.p.strings, f)
}

// list translates a list literal of strings or of numbers.
func (c *ruleNativeCompiler) list(e ast.Expr) (int32, error) {
	l := e.AsList()
	if len(l.OptionalIndices()) > 0 || len(l.Elements()) == 0 {
		return 0, errRuleNotNative
	}
	k := ruleKindList
	if c.kindOf(e) != ruleKindList {
		k = ruleKindNumList
	}
	var kids []int32
	for _, x := range l.Elements() {
		n, err := c.expr(x)
		if err != nil {
			return 0, err
		}
		ek := c.p.nodes[n].kind
		if (k == ruleKindList && ek != ruleKindString) || (k == ruleKindNumList && !ek.numeric()) {
			return 0, errRuleNotNative
		}
		kids = append(kids, n)
	}
	return c.add(ruleNode{op: ruleOpList, kind: k, kids: kids})
}

// operands translates a call's operands: the target first for a member
// call.
func (c *ruleNativeCompiler) operands(call ast.CallExpr) ([]int32, []ruleKind, error) {
	args := call.Args()
	if call.IsMemberFunction() {
		args = append([]ast.Expr{call.Target()}, args...)
	}
	ns := make([]int32, len(args))
	ks := make([]ruleKind, len(args))
	for i, a := range args {
		n, err := c.expr(a)
		if err != nil {
			return nil, nil, err
		}
		ns[i], ks[i] = n, c.p.nodes[n].kind
	}
	return ns, ks, nil
}

func (c *ruleNativeCompiler) call(e ast.Expr) (int32, error) {
	call := e.AsCall()
	fn := call.FunctionName()
	if fn == operators.LogicalAnd || fn == operators.LogicalOr {
		op := ruleOpAnd
		if fn == operators.LogicalOr {
			op = ruleOpOr
		}
		type kid struct{ n, cost int32 }
		var ks []kid
		for _, x := range flattenLogic(e, fn) {
			before := int32(len(c.p.nodes))
			n, err := c.exprOf(x, ruleKindBool)
			if err != nil {
				return 0, err
			}
			ks = append(ks, kid{n, c.p.cost(n, before)})
		}
		// CEL's && and || are commutative, errors included (false && error
		// is false, whichever comes first), so the operands run cheapest
		// first: the customer's message, a pointer or two away from its
		// features, is read only when the features leave the result open.
		slices.SortStableFunc(ks, func(a, b kid) int { return cmp.Compare(a.cost, b.cost) })
		kids := make([]int32, len(ks))
		for i, k := range ks {
			kids[i] = k.n
		}
		return c.add(ruleNode{op: op, kind: ruleKindBool, kids: kids})
	}
	if fn == "timestamp" && !call.IsMemberFunction() && len(call.Args()) == 1 && call.Args()[0].Kind() == ast.LiteralKind {
		// Converted as CEL converts it, once; an invalid literal is left
		// to CEL.
		s, ok := call.Args()[0].AsLiteral().(types.String)
		if !ok {
			return 0, errRuleNotNative
		}
		return c.constant(s.ConvertToType(types.TimestampType))
	}
	ns, ks, err := c.operands(call)
	if err != nil {
		return 0, err
	}
	want := c.kindOf(e)
	node := ruleNode{kind: want}
	if len(ns) > 0 {
		node.x = ns[0]
	}
	if len(ns) > 1 {
		node.y = ns[1]
	}
	switch {
	case fn == operators.LogicalNot && len(ns) == 1 && ks[0] == ruleKindBool:
		node.op = ruleOpNot
	case fn == operators.Conditional && len(ns) == 3 && ks[0] == ruleKindBool && ks[1] == want && ks[2] == want:
		node.op, node.z, node.x, node.y = ruleOpCond, ns[0], ns[1], ns[2]
	case ruleComparisonOf(fn) != ruleNoComparison && len(ns) == 2:
		node.cmp = ruleComparisonOf(fn)
		switch {
		case c.fuseComparison(&node, ns[0], ns[1]):
		case ks[0] == ruleKindInt && ks[1] == ruleKindInt:
			node.op = ruleOpCmpInt
		case ks[0].numeric() && ks[1].numeric():
			node.op = ruleOpCmpNum
		case ks[0] == ruleKindString && ks[1] == ruleKindString:
			node.op = ruleOpCmpString
		case ks[0] == ruleKindBool && ks[1] == ruleKindBool:
			node.op = ruleOpCmpBool
		case ks[0] == ruleKindTime && ks[1] == ruleKindTime:
			node.op = ruleOpCmpTime
		}
	case fn == operators.In && len(ns) == 2:
		switch {
		case ks[0] == ruleKindString && ks[1] == ruleKindList:
			node.op = ruleOpInList
		case ks[0].numeric() && ks[1] == ruleKindNumList:
			node.op = ruleOpInNums
		case ks[0] == ruleKindString && ks[1] == ruleKindMap:
			node.op = ruleOpInMap
		}
	case fn == operators.Index && len(ns) == 2:
		switch {
		case ks[0] == ruleKindList && ks[1] == ruleKindInt:
			node.op = ruleOpIndexList
		case ks[0] == ruleKindMap && ks[1] == ruleKindString:
			node.op = ruleOpIndexMap
		}
	case fn == overloads.Size && len(ns) == 1 &&
		(ks[0] == ruleKindString || ks[0] == ruleKindList || ks[0] == ruleKindMap):
		node.op = ruleOpSize
	case call.IsMemberFunction() && len(ns) == 2 && ks[0] == ruleKindString && ks[1] == ruleKindString:
		switch fn {
		case overloads.StartsWith:
			node.op = ruleOpStartsWith
		case overloads.EndsWith:
			node.op = ruleOpEndsWith
		case overloads.Contains:
			node.op = ruleOpContains
		}
	case fn == ruleDaysSince && !call.IsMemberFunction() && len(ns) == 1 && ks[0] == ruleKindTime:
		node.op = ruleOpDaysSince
	case fn == operators.Negate && len(ns) == 1 && (ks[0] == ruleKindInt || ks[0] == ruleKindDouble):
		node.op = ruleOpNeg
	case len(ns) == 2 && ks[0] == ks[1] && ks[0].numeric():
		switch fn {
		case operators.Add:
			node.op = ruleOpAdd
		case operators.Subtract:
			node.op = ruleOpSub
		case operators.Multiply:
			node.op = ruleOpMul
		case operators.Divide:
			node.op = ruleOpDiv
		case operators.Modulo:
			if ks[0] != ruleKindDouble {
				node.op = ruleOpMod
			}
		}
	}
	if node.op == ruleOpConst || node.kind == ruleKindNone || !c.resultKindFits(node) {
		return 0, errRuleNotNative
	}
	return c.add(node)
}

// fuseComparison makes node, a comparison of x and y, one of the fused
// comparisons of a field (or days_since of one) with a constant, when it
// is one.
func (c *ruleNativeCompiler) fuseComparison(node *ruleNode, x, y int32) bool {
	fx, cy := c.p.nodes[x], c.p.nodes[y]
	cmp := node.cmp
	if fx.op == ruleOpConst {
		fx, cy, cmp = cy, fx, cmp.mirror()
	}
	if cy.op != ruleOpConst {
		return false
	}
	if fx.op == ruleOpDaysSince && cy.kind == ruleKindInt {
		if arg := c.p.nodes[fx.x]; arg.op == ruleOpField {
			node.op, node.field, node.i, node.cmp = ruleOpCmpDaysField, arg.field, cy.i, cmp
			return true
		}
	}
	if fx.op != ruleOpField {
		return false
	}
	switch {
	case fx.kind == ruleKindInt && cy.kind == ruleKindInt:
		node.op, node.field, node.i, node.cmp = ruleOpCmpIntField, fx.field, cy.i, cmp
	case fx.kind.numeric() && cy.kind.numeric():
		n := ruleNum{kind: cy.kind, i: cy.i, u: cy.u, f: cy.f}
		node.op, node.field, node.n, node.cmp = ruleOpCmpNumField, fx.field, n, cmp
	case fx.kind == ruleKindString && cy.kind == ruleKindString:
		node.op, node.field, node.s, node.cmp = ruleOpCmpStringField, fx.field, cy.s, cmp
	default:
		return false
	}
	return true
}

// resultKindFits checks the checked type of a call against what its native
// node computes.
func (c *ruleNativeCompiler) resultKindFits(n ruleNode) bool {
	switch n.op {
	case ruleOpNot, ruleOpCmpInt, ruleOpCmpIntField, ruleOpCmpNumField, ruleOpCmpStringField, ruleOpCmpDaysField, ruleOpCmpNum, ruleOpCmpString, ruleOpCmpBool, ruleOpCmpTime,
		ruleOpInList, ruleOpInNums, ruleOpInMap, ruleOpStartsWith, ruleOpEndsWith, ruleOpContains:
		return n.kind == ruleKindBool
	case ruleOpSize, ruleOpDaysSince:
		return n.kind == ruleKindInt
	case ruleOpIndexList, ruleOpIndexMap:
		return n.kind == ruleKindString
	case ruleOpNeg, ruleOpAdd, ruleOpSub, ruleOpMul, ruleOpDiv, ruleOpMod:
		return n.kind == c.p.nodes[n.x].kind
	case ruleOpCond:
		return n.kind != ruleKindList && n.kind != ruleKindMap
	}
	return false
}

// comprehension translates the expansions of exists, all and exists_one
// over a list of strings or a map's keys.
func (c *ruleNativeCompiler) comprehension(e ast.Expr) (int32, error) {
	comp := e.AsComprehension()
	if comp.IterVar2() != "" || len(c.scope) >= ruleMaxDepth {
		return 0, errRuleNotNative
	}
	accu := comp.AccuVar()
	op, pred, ok := ruleMacroShape(comp)
	if !ok || ruleNamesVar(pred, accu) || ruleNamesVar(comp.IterRange(), accu) {
		return 0, errRuleNotNative
	}
	rng, err := c.expr(comp.IterRange())
	if err != nil {
		return 0, err
	}
	if k := c.p.nodes[rng].kind; k != ruleKindList && k != ruleKindMap {
		return 0, errRuleNotNative
	}
	c.scope = append(c.scope, comp.IterVar())
	x, err := c.exprOf(pred, ruleKindBool)
	c.scope = c.scope[:len(c.scope)-1]
	if err != nil {
		return 0, err
	}
	return c.add(ruleNode{op: op, kind: ruleKindBool, x: x, y: rng, slot: uint8(len(c.scope))})
}

// ruleMacroShape recognizes the comprehension CEL's parser makes of
//
//	exists:     init false; loop while @not_strictly_false(!accu); accu = accu || P; result accu
//	all:        init true;  loop while @not_strictly_false(accu);  accu = accu && P; result accu
//	exists_one: init 0;     loop while true; accu = P ? accu + 1 : accu; result accu == 1
//
// and returns the predicate P.
func ruleMacroShape(comp ast.ComprehensionExpr) (ruleOp, ast.Expr, bool) {
	accu := comp.AccuVar()
	isAccu := func(e ast.Expr) bool { return e.Kind() == ast.IdentKind && e.AsIdent() == accu }
	isCall := func(e ast.Expr, fn string, n int) bool {
		return e.Kind() == ast.CallKind && e.AsCall().FunctionName() == fn && !e.AsCall().IsMemberFunction() &&
			len(e.AsCall().Args()) == n
	}
	isLit := func(e ast.Expr, v ref.Val) bool {
		return e.Kind() == ast.LiteralKind && e.AsLiteral().Type() == v.Type() && e.AsLiteral().Equal(v) == types.True
	}
	init, cond, step, result := comp.AccuInit(), comp.LoopCondition(), comp.LoopStep(), comp.Result()
	switch {
	case isLit(init, types.False) && isAccu(result) &&
		isCall(cond, operators.NotStrictlyFalse, 1) && isCall(cond.AsCall().Args()[0], operators.LogicalNot, 1) &&
		isAccu(cond.AsCall().Args()[0].AsCall().Args()[0]) &&
		isCall(step, operators.LogicalOr, 2) && isAccu(step.AsCall().Args()[0]):
		return ruleOpExists, step.AsCall().Args()[1], true
	case isLit(init, types.True) && isAccu(result) &&
		isCall(cond, operators.NotStrictlyFalse, 1) && isAccu(cond.AsCall().Args()[0]) &&
		isCall(step, operators.LogicalAnd, 2) && isAccu(step.AsCall().Args()[0]):
		return ruleOpAll, step.AsCall().Args()[1], true
	case isLit(init, types.Int(0)) && isLit(cond, types.True) &&
		isCall(result, operators.Equals, 2) && isAccu(result.AsCall().Args()[0]) && isLit(result.AsCall().Args()[1], types.Int(1)) &&
		isCall(step, operators.Conditional, 3) && isAccu(step.AsCall().Args()[2]):
		inc := step.AsCall().Args()[1]
		if isCall(inc, operators.Add, 2) && isAccu(inc.AsCall().Args()[0]) && isLit(inc.AsCall().Args()[1], types.Int(1)) {
			return ruleOpExistsOne, step.AsCall().Args()[0], true
		}
	}
	return 0, nil, false
}

// ruleNamesVar reports whether e names the variable outside any
// comprehension that binds the name again.
func ruleNamesVar(e ast.Expr, name string) bool {
	switch e.Kind() {
	case ast.IdentKind:
		return e.AsIdent() == name
	case ast.ComprehensionKind:
		c := e.AsComprehension()
		if ruleNamesVar(c.IterRange(), name) || ruleNamesVar(c.AccuInit(), name) {
			return true
		}
		if name == c.AccuVar() {
			return false
		}
		if ruleNamesVar(c.Result(), name) {
			return true
		}
		if name == c.IterVar() || name == c.IterVar2() {
			return false
		}
		return ruleNamesVar(c.LoopCondition(), name) || ruleNamesVar(c.LoopStep(), name)
	}
	for _, x := range ruleChildren(e) {
		if ruleNamesVar(x, name) {
			return true
		}
	}
	return false
}

// ruleField is a field the native form reads.
type ruleField uint8

// Fields of features (Features), scores (Score) and customer (the
// message), in that order.
const (
	ruleFieldNone ruleField = iota

	ruleFieldFirstPurchase
	ruleFieldLastPurchase
	ruleFieldPurchases
	ruleFieldPurchases30d
	ruleFieldPurchases90d
	ruleFieldPurchases365d
	ruleFieldMonetary
	ruleFieldMonetary30d
	ruleFieldMonetary90d
	ruleFieldMonetary365d
	ruleFieldAverageOrder
	ruleFieldMeanInterpurchaseDays
	ruleFieldTenureDays
	ruleFieldComplaints
	ruleFieldLastContact
	ruleFieldCSAT
	ruleFieldNPS
	ruleFieldReferrals
	ruleFieldRefunds
	ruleFieldFirstSeen

	ruleFieldRfm
	ruleFieldRecency
	ruleFieldFrequency
	ruleFieldRfmMonetary
	ruleFieldRfmGroup
	ruleFieldTier
	ruleFieldQuadrant
	ruleFieldContribution
	ruleFieldScoreTime
	ruleFieldActivity

	ruleFieldCustomerID
	ruleFieldKind
	ruleFieldDisplayName
	ruleFieldPerson
	ruleFieldGivenName
	ruleFieldFamilyName
	ruleFieldGender
	ruleFieldBirthday
	ruleFieldBirthdayYear
	ruleFieldBirthdayMonth
	ruleFieldBirthdayDay
	ruleFieldLunarBirthday
	ruleFieldLunarYear
	ruleFieldLunarMonth
	ruleFieldLunarDay
	ruleFieldLunarLeapMonth
	ruleFieldOccupation
	ruleFieldIncomeBand
	ruleFieldEducation
	ruleFieldOrganization
	ruleFieldLegalName
	ruleFieldIndustry
	ruleFieldEmployeeCount
	ruleFieldRelationshipType
	ruleFieldPhone
	ruleFieldEmail
	ruleFieldRegion
	ruleFieldCountry
	ruleFieldProvince
	ruleFieldCity
	ruleFieldTags
	ruleFieldAttributes
	ruleFieldTraits
	ruleFieldTimeZone
	ruleFieldLanguage
	ruleFieldDoNotContact
	ruleFieldAcquisition
	ruleFieldAcquisitionChannel
	ruleFieldCampaign
	ruleFieldReferredBy
	ruleFieldAcquireTime
	ruleFieldStage
	ruleFieldIntent
	ruleFieldOwner
	ruleFieldCreateTime
	ruleFieldUpdateTime
	ruleFieldEtag
	ruleFieldErased
	ruleFieldMergedInto

	ruleFieldCount
)

func (f ruleField) ofCustomer() bool { return f >= ruleFieldCustomerID }

// cost ranks evaluating node n, compiled into the nodes from before on: 0
// when it reads features and scores only, 1 when it reads the customer, 2
// when it iterates.
func (p *ruleProgram) cost(n, before int32) int32 {
	worst := int32(0)
	for i := range p.nodes[before:] {
		worst = max(worst, p.nodes[before+int32(i)].cost())
	}
	return max(worst, p.nodes[n].cost())
}

// cost is the node's own part of ruleProgram.cost.
func (nd *ruleNode) cost() int32 {
	switch nd.op {
	case ruleOpExists, ruleOpAll, ruleOpExistsOne:
		return 2
	case ruleOpField, ruleOpHas, ruleOpCmpIntField, ruleOpCmpNumField, ruleOpCmpStringField, ruleOpCmpDaysField:
		if nd.field.ofCustomer() {
			return 1
		}
	}
	return 0
}

// ruleFieldPaths maps the paths a rule may read natively to their fields.
var ruleFieldPaths = map[string]ruleField{
	"features.first_purchase":          ruleFieldFirstPurchase,
	"features.last_purchase":           ruleFieldLastPurchase,
	"features.purchases":               ruleFieldPurchases,
	"features.purchases_30d":           ruleFieldPurchases30d,
	"features.purchases_90d":           ruleFieldPurchases90d,
	"features.purchases_365d":          ruleFieldPurchases365d,
	"features.monetary":                ruleFieldMonetary,
	"features.monetary_30d":            ruleFieldMonetary30d,
	"features.monetary_90d":            ruleFieldMonetary90d,
	"features.monetary_365d":           ruleFieldMonetary365d,
	"features.average_order":           ruleFieldAverageOrder,
	"features.mean_interpurchase_days": ruleFieldMeanInterpurchaseDays,
	"features.tenure_days":             ruleFieldTenureDays,
	"features.complaints":              ruleFieldComplaints,
	"features.last_contact":            ruleFieldLastContact,
	"features.csat":                    ruleFieldCSAT,
	"features.nps":                     ruleFieldNPS,
	"features.referrals":               ruleFieldReferrals,
	"features.refunds":                 ruleFieldRefunds,
	"features.first_seen":              ruleFieldFirstSeen,

	"scores.rfm":           ruleFieldRfm,
	"scores.rfm.recency":   ruleFieldRecency,
	"scores.rfm.frequency": ruleFieldFrequency,
	"scores.rfm.monetary":  ruleFieldRfmMonetary,
	"scores.rfm.group":     ruleFieldRfmGroup,
	"scores.tier":          ruleFieldTier,
	"scores.quadrant":      ruleFieldQuadrant,
	"scores.contribution":  ruleFieldContribution,
	"scores.score_time":    ruleFieldScoreTime,
	"scores.activity":      ruleFieldActivity,

	"customer.customer_id":                      ruleFieldCustomerID,
	"customer.kind":                             ruleFieldKind,
	"customer.display_name":                     ruleFieldDisplayName,
	"customer.person":                           ruleFieldPerson,
	"customer.person.given_name":                ruleFieldGivenName,
	"customer.person.family_name":               ruleFieldFamilyName,
	"customer.person.gender":                    ruleFieldGender,
	"customer.person.birthday":                  ruleFieldBirthday,
	"customer.person.birthday.year":             ruleFieldBirthdayYear,
	"customer.person.birthday.month":            ruleFieldBirthdayMonth,
	"customer.person.birthday.day":              ruleFieldBirthdayDay,
	"customer.person.lunar_birthday":            ruleFieldLunarBirthday,
	"customer.person.lunar_birthday.year":       ruleFieldLunarYear,
	"customer.person.lunar_birthday.month":      ruleFieldLunarMonth,
	"customer.person.lunar_birthday.day":        ruleFieldLunarDay,
	"customer.person.lunar_birthday.leap_month": ruleFieldLunarLeapMonth,
	"customer.person.occupation":                ruleFieldOccupation,
	"customer.person.income_band":               ruleFieldIncomeBand,
	"customer.person.education":                 ruleFieldEducation,
	"customer.organization":                     ruleFieldOrganization,
	"customer.organization.legal_name":          ruleFieldLegalName,
	"customer.organization.industry":            ruleFieldIndustry,
	"customer.organization.employee_count":      ruleFieldEmployeeCount,
	"customer.organization.relationship_type":   ruleFieldRelationshipType,
	"customer.phone":                            ruleFieldPhone,
	"customer.email":                            ruleFieldEmail,
	"customer.region":                           ruleFieldRegion,
	"customer.region.country":                   ruleFieldCountry,
	"customer.region.province":                  ruleFieldProvince,
	"customer.region.city":                      ruleFieldCity,
	"customer.tags":                             ruleFieldTags,
	"customer.attributes":                       ruleFieldAttributes,
	"customer.traits":                           ruleFieldTraits,
	"customer.time_zone":                        ruleFieldTimeZone,
	"customer.language":                         ruleFieldLanguage,
	"customer.do_not_contact":                   ruleFieldDoNotContact,
	"customer.acquisition":                      ruleFieldAcquisition,
	"customer.acquisition.channel":              ruleFieldAcquisitionChannel,
	"customer.acquisition.campaign":             ruleFieldCampaign,
	"customer.acquisition.referred_by":          ruleFieldReferredBy,
	"customer.acquisition.acquire_time":         ruleFieldAcquireTime,
	"customer.stage":                            ruleFieldStage,
	"customer.intent":                           ruleFieldIntent,
	"customer.owner":                            ruleFieldOwner,
	"customer.create_time":                      ruleFieldCreateTime,
	"customer.update_time":                      ruleFieldUpdateTime,
	"customer.etag":                             ruleFieldEtag,
	"customer.erased":                           ruleFieldErased,
	"customer.merged_into":                      ruleFieldMergedInto,
}

// ruleFieldKinds gives each field's kind.
var ruleFieldKinds = [ruleFieldCount]ruleKind{
	ruleFieldFirstPurchase:         ruleKindTime,
	ruleFieldLastPurchase:          ruleKindTime,
	ruleFieldPurchases:             ruleKindInt,
	ruleFieldPurchases30d:          ruleKindInt,
	ruleFieldPurchases90d:          ruleKindInt,
	ruleFieldPurchases365d:         ruleKindInt,
	ruleFieldMonetary:              ruleKindInt,
	ruleFieldMonetary30d:           ruleKindInt,
	ruleFieldMonetary90d:           ruleKindInt,
	ruleFieldMonetary365d:          ruleKindInt,
	ruleFieldAverageOrder:          ruleKindInt,
	ruleFieldMeanInterpurchaseDays: ruleKindDouble,
	ruleFieldTenureDays:            ruleKindInt,
	ruleFieldComplaints:            ruleKindInt,
	ruleFieldLastContact:           ruleKindTime,
	ruleFieldCSAT:                  ruleKindDouble,
	ruleFieldNPS:                   ruleKindInt,
	ruleFieldReferrals:             ruleKindInt,
	ruleFieldRefunds:               ruleKindInt,
	ruleFieldFirstSeen:             ruleKindTime,

	ruleFieldRfm:          ruleKindMessage,
	ruleFieldRecency:      ruleKindInt,
	ruleFieldFrequency:    ruleKindInt,
	ruleFieldRfmMonetary:  ruleKindInt,
	ruleFieldRfmGroup:     ruleKindInt,
	ruleFieldTier:         ruleKindInt,
	ruleFieldQuadrant:     ruleKindInt,
	ruleFieldContribution: ruleKindInt,
	ruleFieldScoreTime:    ruleKindTime,
	ruleFieldActivity:     ruleKindInt,

	ruleFieldCustomerID:         ruleKindString,
	ruleFieldKind:               ruleKindInt,
	ruleFieldDisplayName:        ruleKindString,
	ruleFieldPerson:             ruleKindMessage,
	ruleFieldGivenName:          ruleKindString,
	ruleFieldFamilyName:         ruleKindString,
	ruleFieldGender:             ruleKindInt,
	ruleFieldBirthday:           ruleKindMessage,
	ruleFieldBirthdayYear:       ruleKindInt,
	ruleFieldBirthdayMonth:      ruleKindInt,
	ruleFieldBirthdayDay:        ruleKindInt,
	ruleFieldLunarBirthday:      ruleKindMessage,
	ruleFieldLunarYear:          ruleKindInt,
	ruleFieldLunarMonth:         ruleKindInt,
	ruleFieldLunarDay:           ruleKindInt,
	ruleFieldLunarLeapMonth:     ruleKindBool,
	ruleFieldOccupation:         ruleKindString,
	ruleFieldIncomeBand:         ruleKindInt,
	ruleFieldEducation:          ruleKindInt,
	ruleFieldOrganization:       ruleKindMessage,
	ruleFieldLegalName:          ruleKindString,
	ruleFieldIndustry:           ruleKindString,
	ruleFieldEmployeeCount:      ruleKindInt,
	ruleFieldRelationshipType:   ruleKindInt,
	ruleFieldPhone:              ruleKindString,
	ruleFieldEmail:              ruleKindString,
	ruleFieldRegion:             ruleKindMessage,
	ruleFieldCountry:            ruleKindString,
	ruleFieldProvince:           ruleKindString,
	ruleFieldCity:               ruleKindString,
	ruleFieldTags:               ruleKindList,
	ruleFieldAttributes:         ruleKindMap,
	ruleFieldTraits:             ruleKindList,
	ruleFieldTimeZone:           ruleKindString,
	ruleFieldLanguage:           ruleKindString,
	ruleFieldDoNotContact:       ruleKindBool,
	ruleFieldAcquisition:        ruleKindMessage,
	ruleFieldAcquisitionChannel: ruleKindInt,
	ruleFieldCampaign:           ruleKindString,
	ruleFieldReferredBy:         ruleKindString,
	ruleFieldAcquireTime:        ruleKindTime,
	ruleFieldStage:              ruleKindInt,
	ruleFieldIntent:             ruleKindInt,
	ruleFieldOwner:              ruleKindString,
	ruleFieldCreateTime:         ruleKindTime,
	ruleFieldUpdateTime:         ruleKindTime,
	ruleFieldEtag:               ruleKindString,
	ruleFieldErased:             ruleKindBool,
	ruleFieldMergedInto:         ruleKindString,
}

// intField reads an int field. The rfm fields read zero for an unranked
// score (R == 0), which ScoreToProto gives no rfm message.
func (fr *ruleFrame) intField(f ruleField) int64 {
	switch f {
	case ruleFieldPurchases:
		return fr.f.Purchases
	case ruleFieldPurchases30d:
		return fr.f.Purchases30d
	case ruleFieldPurchases90d:
		return fr.f.Purchases90d
	case ruleFieldPurchases365d:
		return fr.f.Purchases365d
	case ruleFieldMonetary:
		return fr.f.Monetary
	case ruleFieldMonetary30d:
		return fr.f.Monetary30d
	case ruleFieldMonetary90d:
		return fr.f.Monetary90d
	case ruleFieldMonetary365d:
		return fr.f.Monetary365d
	case ruleFieldAverageOrder:
		return fr.f.AverageOrder
	case ruleFieldTenureDays:
		return fr.f.TenureDays
	case ruleFieldComplaints:
		return fr.f.Complaints
	case ruleFieldNPS:
		return int64(fr.f.NPS)
	case ruleFieldReferrals:
		return fr.f.Referrals
	case ruleFieldRefunds:
		return fr.f.Refunds
	case ruleFieldRecency, ruleFieldFrequency, ruleFieldRfmMonetary, ruleFieldRfmGroup:
		s := fr.s
		switch {
		case s.R == 0:
			return 0
		case f == ruleFieldRecency:
			return int64(s.R)
		case f == ruleFieldFrequency:
			return int64(s.F)
		case f == ruleFieldRfmMonetary:
			return int64(s.M)
		}
		return int64(s.Group)
	case ruleFieldTier:
		return int64(fr.s.Tier)
	case ruleFieldQuadrant:
		return int64(fr.s.Quadrant)
	case ruleFieldContribution:
		return fr.s.Contribution
	case ruleFieldActivity:
		return int64(fr.s.Activity)
	}
	c := fr.c
	switch f {
	case ruleFieldKind:
		return int64(c.GetKind())
	case ruleFieldGender:
		return int64(c.GetPerson().GetGender())
	case ruleFieldBirthdayYear:
		return int64(c.GetPerson().GetBirthday().GetYear())
	case ruleFieldBirthdayMonth:
		return int64(c.GetPerson().GetBirthday().GetMonth())
	case ruleFieldBirthdayDay:
		return int64(c.GetPerson().GetBirthday().GetDay())
	case ruleFieldLunarYear:
		return int64(c.GetPerson().GetLunarBirthday().GetYear())
	case ruleFieldLunarMonth:
		return int64(c.GetPerson().GetLunarBirthday().GetMonth())
	case ruleFieldLunarDay:
		return int64(c.GetPerson().GetLunarBirthday().GetDay())
	case ruleFieldIncomeBand:
		return int64(c.GetPerson().GetIncomeBand())
	case ruleFieldEducation:
		return int64(c.GetPerson().GetEducation())
	case ruleFieldEmployeeCount:
		return int64(c.GetOrganization().GetEmployeeCount())
	case ruleFieldRelationshipType:
		return int64(c.GetOrganization().GetRelationshipType())
	case ruleFieldAcquisitionChannel:
		return int64(c.GetAcquisition().GetChannel())
	case ruleFieldStage:
		return int64(c.GetStage())
	case ruleFieldIntent:
		return int64(c.GetIntent())
	}
	return 0
}

// numField reads an int or double field.
func (fr *ruleFrame) numField(f ruleField) ruleNum {
	if ruleFieldKinds[f] == ruleKindDouble {
		return ruleNum{kind: ruleKindDouble, f: fr.doubleField(f)}
	}
	return ruleNum{kind: ruleKindInt, i: fr.intField(f)}
}

func (fr *ruleFrame) doubleField(f ruleField) float64 {
	switch f {
	case ruleFieldMeanInterpurchaseDays:
		return fr.f.MeanInterpurchaseDays
	case ruleFieldCSAT:
		return fr.f.CSAT
	}
	return 0
}

// timeField reads a timestamp field. FeaturesToProto leaves a zero time
// unset and ScoreToProto never sets score_time: both read as the epoch.
func (fr *ruleFrame) timeField(f ruleField) ruleTime {
	switch f {
	case ruleFieldFirstPurchase:
		return ruleTimeOf(fr.f.FirstPurchase)
	case ruleFieldLastPurchase:
		return ruleTimeOf(fr.f.LastPurchase)
	case ruleFieldLastContact:
		return ruleTimeOf(fr.f.LastContact)
	case ruleFieldFirstSeen:
		return ruleTimeOf(fr.f.FirstSeen)
	case ruleFieldAcquireTime:
		return ruleTimeOfProto(fr.c.GetAcquisition().GetAcquireTime())
	case ruleFieldCreateTime:
		return ruleTimeOfProto(fr.c.GetCreateTime())
	case ruleFieldUpdateTime:
		return ruleTimeOfProto(fr.c.GetUpdateTime())
	}
	return ruleTime{}
}

// ruleTimeOf is a domain time as its proto conversion reads: the epoch
// for the zero time.
func ruleTimeOf(t time.Time) ruleTime {
	if t.IsZero() {
		return ruleTime{}
	}
	return ruleInstant(t)
}

// ruleTimeOfProto is a timestamp as CEL reads it: AsTime, the epoch when
// absent.
func ruleTimeOfProto(ts *timestamppb.Timestamp) ruleTime {
	if ts == nil {
		return ruleTime{}
	}
	return ruleInstant(ts.AsTime())
}

func ruleBoolField(c *profilev1.Customer, f ruleField) bool {
	switch f {
	case ruleFieldLunarLeapMonth:
		return c.GetPerson().GetLunarBirthday().GetLeapMonth()
	case ruleFieldDoNotContact:
		return c.GetDoNotContact()
	case ruleFieldErased:
		return c.GetErased()
	}
	return false
}

func ruleStringField(c *profilev1.Customer, f ruleField) string {
	switch f {
	case ruleFieldCustomerID:
		return c.GetCustomerId()
	case ruleFieldDisplayName:
		return c.GetDisplayName()
	case ruleFieldGivenName:
		return c.GetPerson().GetGivenName()
	case ruleFieldFamilyName:
		return c.GetPerson().GetFamilyName()
	case ruleFieldOccupation:
		return c.GetPerson().GetOccupation()
	case ruleFieldLegalName:
		return c.GetOrganization().GetLegalName()
	case ruleFieldIndustry:
		return c.GetOrganization().GetIndustry()
	case ruleFieldPhone:
		return c.GetPhone()
	case ruleFieldEmail:
		return c.GetEmail()
	case ruleFieldCountry:
		return c.GetRegion().GetCountry()
	case ruleFieldProvince:
		return c.GetRegion().GetProvince()
	case ruleFieldCity:
		return c.GetRegion().GetCity()
	case ruleFieldTimeZone:
		return c.GetTimeZone()
	case ruleFieldLanguage:
		return c.GetLanguage()
	case ruleFieldCampaign:
		return c.GetAcquisition().GetCampaign()
	case ruleFieldReferredBy:
		return c.GetAcquisition().GetReferredBy()
	case ruleFieldOwner:
		return c.GetOwner()
	case ruleFieldEtag:
		return c.GetEtag()
	case ruleFieldMergedInto:
		return c.GetMergedInto()
	}
	return ""
}

func ruleListField(c *profilev1.Customer, f ruleField) []string {
	if f == ruleFieldTraits {
		return c.GetTraits()
	}
	return c.GetTags()
}

func ruleMapField(c *profilev1.Customer, _ ruleField) map[string]string {
	return c.GetAttributes()
}

// has is has() on a field: presence for a message, non-zero for a scalar
// (a double is present unless +0.0, as protobuf's reflection counts it),
// non-empty for a list or map.
func (fr *ruleFrame) has(f ruleField) bool {
	switch k := ruleFieldKinds[f]; {
	case f == ruleFieldRfm:
		return fr.s.R != 0
	case f == ruleFieldScoreTime:
		return false
	case f.ofCustomer() && (k == ruleKindMessage || k == ruleKindTime):
		c := fr.c
		switch f {
		case ruleFieldPerson:
			return c.GetPerson() != nil
		case ruleFieldBirthday:
			return c.GetPerson().GetBirthday() != nil
		case ruleFieldLunarBirthday:
			return c.GetPerson().GetLunarBirthday() != nil
		case ruleFieldOrganization:
			return c.GetOrganization() != nil
		case ruleFieldRegion:
			return c.GetRegion() != nil
		case ruleFieldAcquisition:
			return c.GetAcquisition() != nil
		case ruleFieldAcquireTime:
			return c.GetAcquisition().GetAcquireTime() != nil
		case ruleFieldCreateTime:
			return c.GetCreateTime() != nil
		case ruleFieldUpdateTime:
			return c.GetUpdateTime() != nil
		}
		return false
	case k == ruleKindTime:
		return ruleFeaturesTimeSet(fr.f, f)
	case k == ruleKindInt:
		return fr.intField(f) != 0
	case k == ruleKindDouble:
		return math.Float64bits(fr.doubleField(f)) != 0
	case k == ruleKindBool:
		return ruleBoolField(fr.c, f)
	case k == ruleKindString:
		return ruleStringField(fr.c, f) != ""
	case k == ruleKindList:
		return len(ruleListField(fr.c, f)) > 0
	case k == ruleKindMap:
		return len(ruleMapField(fr.c, f)) > 0
	}
	return false
}

// ruleFeaturesTimeSet reports whether FeaturesToProto sets the timestamp
// field: whether the time is not zero (the epoch itself is set).
func ruleFeaturesTimeSet(f *Features, field ruleField) bool {
	switch field {
	case ruleFieldFirstPurchase:
		return !f.FirstPurchase.IsZero()
	case ruleFieldLastPurchase:
		return !f.LastPurchase.IsZero()
	case ruleFieldLastContact:
		return !f.LastContact.IsZero()
	case ruleFieldFirstSeen:
		return !f.FirstSeen.IsZero()
	}
	return false
}
