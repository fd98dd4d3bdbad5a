package domain

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/interpreter"
	"github.com/google/cel-go/parser"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	"rapport.dev/platform/fault"
)

const (
	// ruleMaxBytes is the longest rule accepted.
	ruleMaxBytes = 4096
	// ruleCostLimit bounds both the static worst-case estimate and the
	// runtime cost of one evaluation. One unit is roughly one cheap
	// operation: comparisons of fields estimate under 10, `"vip" in
	// customer.tags` about 500, a loop over tags a few thousand (200,000
	// with a regular expression per item), and any loop nested in another
	// loop over a customer's lists 10^8 or more.
	ruleCostLimit = 1_000_000
	// ruleMaxItems is the assumed largest list or map in a customer record.
	ruleMaxItems = 500
	// ruleMaxString is the assumed longest string in a customer record.
	ruleMaxString = 4096

	// ruleDaysSinceUnset is what days_since returns for an unset timestamp: far
	// larger than any real age, far smaller than int64 overflow.
	ruleDaysSinceUnset = 1 << 40

	ruleDaysSince = "days_since"
	// ruleNowVar is the name under which a ruleActivation hands itself to
	// days_since. It is not a valid CEL identifier, so rules cannot name it.
	ruleNowVar = "@rapport.now"
	ruleDay    = 24 * time.Hour
)

// RuleEnv compiles segment rules.
//
// A dynamic segment's rule is a boolean CEL expression written against the
// API's own messages, because those are what the people writing rules read
// in the API reference:
//
//	customer  rapport.profile.v1.Customer
//	features  rapport.segmentation.v1.Features
//	scores    rapport.segmentation.v1.Scores
//
// with one function, days_since(google.protobuf.Timestamp) -> int: the whole
// days elapsed from the timestamp to the evaluation time,
// floor((now - t) / 24h), negative for a future timestamp. An unset
// timestamp (absent, which CEL reads as the Unix epoch, or a zero time.Time)
// gives 1<<40, so `days_since(features.last_purchase) > 90` holds for a
// customer who never bought and `days_since(features.last_purchase) < 30`
// does not.
//
// Enum constants are written by their full name
// (scores.tier == rapport.segmentation.v1.Tier.TIER_PLATINUM) or as plain
// ints. Ints and doubles may be ordered against each other
// (features.csat >= 4); == and != need operands of one type.
//
// A rule is bounded twice: when compiled, by CEL's static estimate of its
// worst-case cost, with every list and map of a customer assumed to hold at
// most ruleMaxItems entries and every string at most ruleMaxString
// characters (the profile service's own limits, rounded up); when
// evaluated, by the same figure as a runtime cost limit, and by refusing a
// customer whose lists are larger than the estimate assumed.
//
// A RuleEnv is safe for concurrent use.
type RuleEnv struct {
	env *cel.Env
}

// NewRuleEnv builds the rule environment.
func NewRuleEnv() (*RuleEnv, error) {
	env, err := cel.NewEnv(
		cel.Types(&profilev1.Customer{}, &segmentationv1.Features{}, &segmentationv1.Scores{}),
		cel.Variable("customer", cel.ObjectType(string((&profilev1.Customer{}).ProtoReflect().Descriptor().FullName()))),
		cel.Variable("features", cel.ObjectType(string((&segmentationv1.Features{}).ProtoReflect().Descriptor().FullName()))),
		cel.Variable("scores", cel.ObjectType(string((&segmentationv1.Scores{}).ProtoReflect().Descriptor().FullName()))),
		// The binding is a placeholder: ruleDecorator replaces every call
		// with a node that reads the evaluation time from the activation.
		cel.Function(ruleDaysSince,
			cel.Overload("days_since_timestamp", []*cel.Type{cel.TimestampType}, cel.IntType,
				cel.UnaryBinding(func(ref.Val) ref.Val {
					return types.NewErr("days_since: no evaluation time")
				}))),
		// Sub-expressions are unparsed for Explain; without the macro calls
		// the unparser would print expanded comprehensions.
		cel.EnableMacroCallTracking(),
		cel.CrossTypeNumericComparisons(true),
	)
	if err != nil {
		return nil, fmt.Errorf("rule environment: %w", err)
	}
	return &RuleEnv{env: env}, nil
}

// Rule is a compiled rule. It is immutable and safe for concurrent Eval,
// Explain and NextChange.
type Rule struct {
	src     string
	prg     cel.Program
	clauses []ruleClause
	timers  []ruleTimer
	// traced holds, by expression id, the days_since calls whose argument
	// names a comprehension variable: NextChange finds their timestamps by
	// tracing an evaluation.
	traced   map[int64]ruleTimer
	window   bool // reads a windowed feature: WindowChange is a candidate
	tenure   bool // reads tenure_days: TenureChange is a candidate
	usesTime bool
	// limitCost is set when prg tracks its cost (see Compile).
	limitCost bool
	// native is the rule's native form, nil if it has none (rules_native.go).
	native *ruleProgram
}

// ruleClause is a part of the rule, compiled alone for Explain. prg is nil
// when the part could not be compiled alone; Explain then reports no value.
type ruleClause struct {
	expr string
	prg  cel.Program
}

// RuleInput is what a rule is evaluated on. Nil messages read as empty ones.
type RuleInput struct {
	Customer *profilev1.Customer
	Features *segmentationv1.Features
	Scores   *segmentationv1.Scores
	// Now is the evaluation time days_since counts to.
	Now time.Time
	// WindowChange is the next instant after Now at which a windowed
	// feature (purchases_30d … monetary_365d) changes by time alone, zero if
	// none will. Only NextChange reads it.
	WindowChange time.Time
	// TenureChange is the next instant after Now at which tenure_days
	// changes, zero if it will not. Only NextChange reads it.
	TenureChange time.Time
	// Window are the customer's purchases in a window at Now or to enter
	// one (State.WindowPurchases): with them NextChange finds when a
	// windowed feature's comparison flips; nil when not known, and then
	// every windowed feature counts as changing at WindowChange. Only
	// NextChange reads them.
	Window []WindowPurchase
}

// Clause is one part of a rule with the value it had: the whole rule, each
// operand of && and || and !, each comparison, and each comparison's
// non-constant operands.
type Clause struct {
	// Expression is the part's source text (normalized by CEL's unparser).
	Expression string
	// Value is the part's value as text: strings quoted ('浙江'), timestamps
	// in RFC 3339, numbers plain, "error: …" when it failed.
	Value string
	// Held is true when the value is boolean true.
	Held bool
}

// Compile parses and type-checks a rule. Every problem is a *fault.Invalid
// on the field "rule" whose description gives the line and column.
func (e *RuleEnv) Compile(src string) (*Rule, error) {
	if strings.TrimSpace(src) == "" {
		return nil, fault.InvalidField("rule", "is required")
	}
	if len(src) > ruleMaxBytes {
		return nil, fault.InvalidField("rule", "must be at most %d bytes, got %d", ruleMaxBytes, len(src))
	}
	checked, iss := e.env.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, fault.InvalidField("rule", "%s", ruleIssues(iss.Errors()))
	}
	native := checked.NativeRep()
	root := native.Expr()
	if t := checked.OutputType(); !t.IsExactType(cel.BoolType) {
		return nil, fault.InvalidField("rule", "%s: the rule must be a condition (bool), but it is %s",
			ruleLocation(native.SourceInfo().GetStartLocation(root.ID())), t)
	}
	est, err := e.env.EstimateCost(checked, ruleCostEstimator{})
	if err != nil {
		return nil, fault.InvalidField("rule", "%s: cannot estimate cost: %v",
			ruleLocation(native.SourceInfo().GetStartLocation(root.ID())), err)
	}
	if est.Max > ruleCostLimit {
		at, hint := root, ""
		if c := ruleFirstComprehension(root); c != nil {
			at, hint = c, "; avoid nesting loops over lists"
		}
		return nil, fault.InvalidField("rule",
			"%s: the rule could be too expensive to evaluate (estimated worst-case cost %s exceeds the limit %d)%s",
			ruleLocation(native.SourceInfo().GetStartLocation(at.ID())), ruleCostText(est.Max), ruleCostLimit, hint)
	}
	// The runtime cost limit is a backstop for what the estimate assumed
	// about string lengths, and tracking cost makes evaluation three to four
	// times slower. A rule whose estimate is within the limit whatever the
	// strings (no regular expression or string search over customer text)
	// is bounded by construction, since checkRuleInput holds the lists to
	// the assumed sizes, and runs untracked.
	anyString, err := e.env.EstimateCost(checked, ruleCostEstimator{anyString: true})
	limitCost := err != nil || anyString.Max > ruleCostLimit
	prg, err := e.program(checked, limitCost)
	if err != nil {
		return nil, fmt.Errorf("rule program: %w", err)
	}
	r := &Rule{src: src, prg: prg, limitCost: limitCost}
	a := ruleAnalysis{env: e, native: native, rule: r, seen: map[string]bool{}}
	r.clauses = append(r.clauses, ruleClause{expr: a.unparse(root), prg: prg})
	a.seen[r.clauses[0].expr] = true
	a.clauses(root)
	a.times(root, nil)
	r.usesTime = len(r.timers) > 0 || len(r.traced) > 0 || r.window || r.tenure
	if len(r.traced) == 0 {
		r.native = compileRuleNative(native, root, r.timers)
	}
	return r, nil
}

func (e *RuleEnv) program(a *cel.Ast, limitCost bool) (cel.Program, error) {
	if !limitCost {
		return e.env.Program(a, cel.CustomDecorator(ruleDecorator))
	}
	return e.env.Program(a, cel.CustomDecorator(ruleDecorator), cel.CostLimit(ruleCostLimit))
}

// compilePart compiles a sub-expression's unparsed text; nil when it does
// not compile alone (it names a comprehension variable). Parts serve
// Explain and NextChange, which are not hot: they always track cost.
func (e *RuleEnv) compilePart(src string) cel.Program {
	checked, iss := e.env.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil
	}
	prg, err := e.program(checked, true)
	if err != nil {
		return nil
	}
	return prg
}

// Source returns the rule as written.
func (r *Rule) Source() string { return r.src }

// UsesTime reports whether the passing of time alone can change the rule's
// result: it calls days_since or reads a windowed feature or tenure_days.
func (r *Rule) UsesTime() bool { return r.usesTime }

// Eval evaluates the rule. A runtime error (a missing map key, a division by
// zero, the cost limit) gives false and the error: the caller treats the
// customer as not a member and records why. It never panics.
func (r *Rule) Eval(in RuleInput) (bool, error) {
	if err := checkRuleInput(in); err != nil {
		return false, err
	}
	act := newRuleActivation(in)
	v, err := evalRuleProgram(r.prg, act)
	if err != nil {
		return false, fmt.Errorf("evaluate rule: %w", err)
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, fmt.Errorf("evaluate rule: result is %s, not bool", v.Type().TypeName())
	}
	return bool(b), nil
}

// Explain evaluates every clause of the rule on in, outermost first, then
// depth first. Clauses inside comprehensions (exists, all, …) are reported
// as the whole comprehension.
func (r *Rule) Explain(in RuleInput) []Clause {
	inputErr := checkRuleInput(in)
	act := newRuleActivation(in)
	out := make([]Clause, 0, len(r.clauses))
	for _, c := range r.clauses {
		if inputErr != nil {
			out = append(out, Clause{Expression: c.expr, Value: "error: " + inputErr.Error()})
			continue
		}
		if c.prg == nil {
			out = append(out, Clause{Expression: c.expr, Value: "unavailable"})
			continue
		}
		v, err := evalRuleProgram(c.prg, act)
		if err != nil {
			out = append(out, Clause{Expression: c.expr, Value: "error: " + err.Error()})
			continue
		}
		b, isBool := v.(types.Bool)
		out = append(out, Clause{Expression: c.expr, Value: formatRuleValue(v), Held: isBool && bool(b)})
	}
	return out
}

// checkRuleInput refuses a customer with a list or map larger than the cost
// estimate assumed. The profile service never stores one; the check keeps a
// rule's evaluation time bounded even so, because cel-go's runtime cost
// tracking is quadratic in the length of a comprehension.
func checkRuleInput(in RuleInput) error {
	c := in.Customer
	if n := ruleInputItems(c); n > ruleMaxItems {
		return fmt.Errorf("customer %q has a list or map of %d entries, rules are evaluated over at most %d", c.GetCustomerId(), n, ruleMaxItems)
	}
	return nil
}

// ruleInputItems is the size of the customer's largest list or map.
func ruleInputItems(c *profilev1.Customer) int {
	return max(len(c.GetTags()), len(c.GetTraits()), len(c.GetAttributes()), len(c.GetConsents()),
		len(c.GetOrganization().GetContacts()), len(c.GetOrganization().GetUncoveredRoles()))
}

// evalRuleProgram runs prg, turning a CEL error value or a panic into an error.
func evalRuleProgram(prg cel.Program, act *ruleActivation) (v ref.Val, err error) {
	defer func() {
		if p := recover(); p != nil {
			v, err = nil, fmt.Errorf("rule evaluation panicked: %v", p)
		}
	}()
	v, _, err = prg.Eval(act)
	if err != nil {
		return nil, err
	}
	if types.IsUnknownOrError(v) {
		return nil, fmt.Errorf("%v", v)
	}
	return v, nil
}

// Empty messages stand in for nil inputs; they are never modified.
var (
	emptyRuleCustomer = &profilev1.Customer{}
	emptyRuleFeatures = &segmentationv1.Features{}
	emptyRuleScores   = &segmentationv1.Scores{}
)

// ruleActivation resolves the three variables and hands itself to
// days_since for the evaluation time. One is built per Eval, Explain or
// NextChange and shared by every program run in it.
type ruleActivation struct {
	customer proto.Message
	features proto.Message
	scores   proto.Message
	now      time.Time
	// trace, when set, receives every days_since call evaluated.
	trace *[]ruleCall
}

type ruleCall struct {
	id int64
	t  time.Time
}

func newRuleActivation(in RuleInput) *ruleActivation {
	a := &ruleActivation{customer: emptyRuleCustomer, features: emptyRuleFeatures, scores: emptyRuleScores, now: in.Now}
	if in.Customer != nil {
		a.customer = in.Customer
	}
	if in.Features != nil {
		a.features = in.Features
	}
	if in.Scores != nil {
		a.scores = in.Scores
	}
	return a
}

// ResolveName implements interpreter.Activation.
func (a *ruleActivation) ResolveName(name string) (any, bool) {
	switch name {
	case "customer":
		return a.customer, true
	case "features":
		return a.features, true
	case "scores":
		return a.scores, true
	case ruleNowVar:
		return a, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (a *ruleActivation) Parent() interpreter.Activation { return nil }

// ruleDecorator replaces each days_since call with a ruleDaysSinceCall,
// because the function needs the evaluation time and CEL function bindings
// are fixed when the program is built.
func ruleDecorator(i interpreter.Interpretable) (interpreter.Interpretable, error) {
	call, ok := i.(interpreter.InterpretableCall)
	if !ok || call.Function() != ruleDaysSince || len(call.Args()) != 1 {
		return i, nil
	}
	return &ruleDaysSinceCall{id: call.ID(), arg: call.Args()[0]}, nil
}

type ruleDaysSinceCall struct {
	id  int64
	arg interpreter.InterpretableV2
}

func (c *ruleDaysSinceCall) ID() int64 { return c.id }

func (c *ruleDaysSinceCall) Eval(vars interpreter.Activation) ref.Val {
	return c.apply(vars, c.arg.Eval(vars))
}

func (c *ruleDaysSinceCall) Exec(f *interpreter.ExecutionFrame) ref.Val {
	return c.apply(f, c.arg.Exec(f))
}

func (c *ruleDaysSinceCall) apply(vars interpreter.Activation, v ref.Val) ref.Val {
	if types.IsUnknownOrError(v) {
		return v
	}
	ts, ok := v.(types.Timestamp)
	if !ok {
		return types.NewErrWithNodeID(c.id, "days_since: want a timestamp, got %s", v.Type().TypeName())
	}
	x, _ := vars.ResolveName(ruleNowVar)
	a, ok := x.(*ruleActivation)
	if !ok {
		return types.NewErrWithNodeID(c.id, "days_since: no evaluation time")
	}
	if a.trace != nil {
		*a.trace = append(*a.trace, ruleCall{id: c.id, t: ts.Time})
	}
	return types.Int(ruleDaysElapsed(ts.Time, a.now))
}

// ruleTime is an instant as rules see it: seconds since the Unix epoch and
// nanoseconds within the second, as in a google.protobuf.Timestamp.
type ruleTime struct {
	sec  int64
	nsec int32
}

// ruleInstant is t's instant, whatever its location or monotonic reading.
func ruleInstant(t time.Time) ruleTime { return ruleTime{sec: t.Unix(), nsec: int32(t.Nanosecond())} }

// ruleZeroUnix is the zero time.Time's instant in Unix seconds.
var ruleZeroUnix = time.Time{}.Unix()

// unset reports an unset proto timestamp (CEL reads an absent
// google.protobuf.Timestamp as the Unix epoch) or a zero time.Time.
func (t ruleTime) unset() bool {
	return t.nsec == 0 && (t.sec == 0 || t.sec == ruleZeroUnix)
}

// compare orders two instants: -1, 0 or +1.
func (t ruleTime) compare(u ruleTime) int {
	switch {
	case t.sec < u.sec || (t.sec == u.sec && t.nsec < u.nsec):
		return -1
	case t == u:
		return 0
	}
	return 1
}

// ruleTimestampUnset reports whether t is an unset proto timestamp (CEL reads
// an absent google.protobuf.Timestamp as the Unix epoch) or a zero time.Time.
func ruleTimestampUnset(t time.Time) bool { return ruleInstant(t).unset() }

// ruleDaysElapsed is floor((now - t) / 24h), computed on seconds so that it
// cannot overflow time.Duration, or ruleDaysSinceUnset for an unset t.
func ruleDaysElapsed(t, now time.Time) int64 { return ruleInstant(t).daysUntil(ruleInstant(now)) }

// daysUntil is ruleDaysElapsed on instants.
func (t ruleTime) daysUntil(now ruleTime) int64 {
	if t.unset() {
		return ruleDaysSinceUnset
	}
	secs := now.sec - t.sec
	if now.nsec < t.nsec {
		secs--
	}
	return ruleFloorDiv(secs, int64(ruleDay/time.Second))
}

func ruleFloorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// ruleCostEstimator sizes what CEL cannot see: every list and map of a
// customer record is assumed to hold at most ruleMaxItems entries and every
// string at most ruleMaxString characters, or any number with anyString.
type ruleCostEstimator struct {
	anyString bool
}

func (c ruleCostEstimator) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	switch n.Type().Kind() {
	case types.ListKind, types.MapKind:
		return &checker.SizeEstimate{Min: 0, Max: ruleMaxItems}
	case types.StringKind, types.BytesKind:
		if c.anyString {
			return nil
		}
		return &checker.SizeEstimate{Min: 0, Max: ruleMaxString}
	}
	return nil
}

func (ruleCostEstimator) EstimateCallCost(function, _ string, _ *checker.AstNode, _ []checker.AstNode) *checker.CallEstimate {
	if function == ruleDaysSince {
		return &checker.CallEstimate{CostEstimate: checker.CostEstimate{Min: 1, Max: 1}}
	}
	return nil
}

func ruleCostText(c uint64) string {
	if c == math.MaxUint64 {
		return "unbounded"
	}
	return strconv.FormatUint(c, 10)
}

func ruleIssues(errs []*cel.Error) string {
	parts := make([]string, 0, len(errs))
	for _, e := range errs {
		parts = append(parts, ruleLocation(e.Location)+": "+e.Message)
	}
	if len(parts) == 0 {
		return "is not a valid rule"
	}
	return strings.Join(parts, "; ")
}

// ruleLocation gives a 1-based line and column, as editors count them.
func ruleLocation(l common.Location) string {
	if l == nil || l.Line() < 1 {
		return "line 1, column 1"
	}
	return fmt.Sprintf("line %d, column %d", l.Line(), l.Column()+1)
}

func ruleFirstComprehension(e ast.Expr) ast.Expr {
	var found ast.Expr
	visitRuleExpr(e, func(x ast.Expr) bool {
		if found != nil {
			return false
		}
		if x.Kind() == ast.ComprehensionKind {
			found = x
			return false
		}
		return true
	})
	return found
}

// visitRuleExpr calls f on e and, while f returns true, on its children,
// depth first.
func visitRuleExpr(e ast.Expr, f func(ast.Expr) bool) {
	if e == nil || !f(e) {
		return
	}
	for _, c := range ruleChildren(e) {
		visitRuleExpr(c, f)
	}
}

func ruleChildren(e ast.Expr) []ast.Expr {
	switch e.Kind() {
	case ast.CallKind:
		c := e.AsCall()
		if c.IsMemberFunction() {
			return append([]ast.Expr{c.Target()}, c.Args()...)
		}
		return c.Args()
	case ast.SelectKind:
		return []ast.Expr{e.AsSelect().Operand()}
	case ast.ListKind:
		return e.AsList().Elements()
	case ast.MapKind:
		var out []ast.Expr
		for _, en := range e.AsMap().Entries() {
			me := en.AsMapEntry()
			out = append(out, me.Key(), me.Value())
		}
		return out
	case ast.StructKind:
		var out []ast.Expr
		for _, f := range e.AsStruct().Fields() {
			out = append(out, f.AsStructField().Value())
		}
		return out
	case ast.ComprehensionKind:
		c := e.AsComprehension()
		return []ast.Expr{c.IterRange(), c.AccuInit(), c.LoopCondition(), c.LoopStep(), c.Result()}
	}
	return nil
}

// ruleAnalysis walks a checked rule once at Compile time to collect the
// clauses Explain reports and the timers NextChange computes.
type ruleAnalysis struct {
	env    *RuleEnv
	native *ast.AST
	rule   *Rule
	seen   map[string]bool
}

func (a *ruleAnalysis) unparse(e ast.Expr) string {
	// No wrapping: a clause is shown on one line.
	s, err := parser.Unparse(e, a.native.SourceInfo(), parser.WrapOnOperators())
	if err != nil {
		return fmt.Sprintf("<expression %d>", e.ID())
	}
	return s
}

func (a *ruleAnalysis) addClause(e ast.Expr) {
	if a.isConstant(e) {
		return
	}
	text := a.unparse(e)
	if a.seen[text] {
		return
	}
	a.seen[text] = true
	a.rule.clauses = append(a.rule.clauses, ruleClause{expr: text, prg: a.env.compilePart(text)})
}

// isConstant reports a literal or an enum constant: its value says nothing
// about the customer.
func (a *ruleAnalysis) isConstant(e ast.Expr) bool {
	if e.Kind() == ast.LiteralKind {
		return true
	}
	if ref, ok := a.native.ReferenceMap()[e.ID()]; ok && ref.Value != nil {
		return true
	}
	return false
}

// clauses adds the clauses below e (e itself was added by the caller):
// operands of &&, || and !, comparisons and their operands, the condition
// of ?:. It does not enter comprehensions, whose parts name the
// iteration variable and cannot be evaluated alone.
func (a *ruleAnalysis) clauses(e ast.Expr) {
	if e.Kind() != ast.CallKind {
		return
	}
	c := e.AsCall()
	switch fn := c.FunctionName(); {
	case fn == operators.LogicalAnd || fn == operators.LogicalOr:
		for _, x := range flattenLogic(e, fn) {
			a.addClause(x)
			a.clauses(x)
		}
	case fn == operators.LogicalNot, fn == operators.Conditional:
		a.addClause(c.Args()[0])
		a.clauses(c.Args()[0])
	case isRuleComparison(fn) || fn == operators.In:
		for _, x := range c.Args() {
			a.addClause(x)
			a.clauses(x)
		}
	}
}

// flattenLogic lists the operands of a chain of one logical operator, so
// that a && b && c reports a, b and c rather than the parser's grouping.
func flattenLogic(e ast.Expr, fn string) []ast.Expr {
	if e.Kind() != ast.CallKind || e.AsCall().FunctionName() != fn {
		return []ast.Expr{e}
	}
	var out []ast.Expr
	for _, x := range e.AsCall().Args() {
		out = append(out, flattenLogic(x, fn)...)
	}
	return out
}

func isRuleComparison(fn string) bool {
	switch fn {
	case operators.Equals, operators.NotEquals, operators.Less, operators.LessEquals,
		operators.Greater, operators.GreaterEquals:
		return true
	}
	return false
}

// formatRuleValue writes a CEL value for a person.
func formatRuleValue(v ref.Val) string {
	var b strings.Builder
	writeRuleValue(&b, v)
	return b.String()
}

func writeRuleValue(b *strings.Builder, v ref.Val) {
	switch x := v.(type) {
	case types.Bool:
		b.WriteString(strconv.FormatBool(bool(x)))
	case types.Int:
		b.WriteString(strconv.FormatInt(int64(x), 10))
	case types.Uint:
		b.WriteString(strconv.FormatUint(uint64(x), 10))
	case types.Double:
		b.WriteString(strconv.FormatFloat(float64(x), 'g', -1, 64))
	case types.String:
		writeRuleQuoted(b, string(x))
	case types.Bytes:
		b.WriteByte('b')
		writeRuleQuoted(b, string(x))
	case types.Timestamp:
		b.WriteString(x.Time.UTC().Format(time.RFC3339Nano))
	case types.Duration:
		b.WriteString(x.Duration.String())
	case types.Null:
		b.WriteString("null")
	case *types.Err:
		b.WriteString("error: " + x.Error())
	case traits.Lister:
		b.WriteByte('[')
		n, _ := x.Size().(types.Int)
		for i := types.Int(0); i < n; i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRuleValue(b, x.Get(i))
		}
		b.WriteByte(']')
	case traits.Mapper:
		type entry struct{ k, v string }
		var entries []entry
		for it := x.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			entries = append(entries, entry{formatRuleValue(k), formatRuleValue(x.Get(k))})
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i].k < entries[j].k })
		b.WriteByte('{')
		for i, e := range entries {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(e.k + ": " + e.v)
		}
		b.WriteByte('}')
	default:
		if m, ok := v.Value().(proto.Message); ok {
			text, err := prototext.MarshalOptions{}.Marshal(m)
			if err == nil {
				b.WriteString(string(m.ProtoReflect().Descriptor().FullName()) + "{" + strings.TrimSpace(string(text)) + "}")
				return
			}
		}
		fmt.Fprint(b, v.Value())
	}
}

// writeRuleQuoted writes s in single quotes, the form the API documents for
// Clause.value ('浙江'), escaping what a reader could not see.
func writeRuleQuoted(b *strings.Builder, s string) {
	b.WriteByte('\'')
	for _, r := range s {
		switch {
		case r == '\'' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case strconv.IsPrint(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
	}
	b.WriteByte('\'')
}
