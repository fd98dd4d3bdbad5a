package store_test

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	loyaltyv1 "rapport.dev/gen/go/rapport/loyalty/v1"
	"rapport.dev/platform/fault"
	"rapport.dev/services/loyalty/domain"
	"rapport.dev/services/loyalty/store"
)

var (
	flagSequences = flag.Int("loyalty.sequences", 0,
		"random sequences TestLedgerProperty runs (0: 1,000; 150 under -short or the race detector)")
	flagSeed = flag.Uint64("loyalty.seed", 0, "run only TestLedgerProperty's sequence of this seed")
)

// propertyWorkers run sequences side by side, each on its own database:
// a store call spends much of its time in write syscalls, not on a CPU.
const propertyWorkers = 4

func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// TestLedgerProperty drives random sequences of purchases, refunds,
// redemptions, adjustments, clock moves, timer runs and retries (the same
// key and request again, sequentially and from racing goroutines, and the
// same key with another request) through the store, checks every answer as
// it comes, and after each sequence checks the ledger: it reconciles, no
// lot is negative or above its original, no order lost more points than it
// earned (nor other than its refunded share), the entries are exactly one
// per successful key plus the expiries, each expiry at its lot's instant,
// the feed has one event per entry, and the member view's balance is the
// available lots less the debt.
//
// A failing sequence prints its seed; -loyalty.seed=N runs it alone.
func TestLedgerProperty(t *testing.T) {
	n := 1000
	if testing.Short() || raceEnabled() {
		n = 150
	}
	if *flagSequences > 0 {
		n = *flagSequences
	}
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = uint64(i + 1)
	}
	if *flagSeed != 0 {
		seeds = []uint64{*flagSeed}
	}
	for w := range propertyWorkers {
		t.Run(fmt.Sprintf("worker%d", w), func(t *testing.T) {
			t.Parallel()
			// Durability is not what this test is about (the reopen and
			// crash tests are), and without fsync it runs ten times more
			// sequences in the same time. Every sequence has its own
			// programme in the worker's database, and the clock only moves
			// forward, so earlier sequences' members are left alone; a new
			// database every few dozen sequences keeps the clock within
			// decades (timers count nanoseconds since 1970 in an int64,
			// which ends in 2262).
			opts := store.Options()
			opts.NoSync = true
			var e *env
			for n, i := 0, w; i < len(seeds); n, i = n+1, i+propertyWorkers {
				if n%40 == 0 {
					e = newEnvOpts(t, opts)
				}
				runSequence(t, e, seeds[i])
			}
		})
	}
}

// sim is one random sequence against a store.
type sim struct {
	t       *testing.T
	e       *env
	seed    uint64
	rng     *rand.Rand
	prog    *domain.Program
	members []*simMember
	// start is the feed's last sequence before the sequence began.
	start uint64
	keys  int
	trace []string
	// tierMoving is set while a timer run races requests.
	tierMoving bool
}

// simMember is what the sequence knows of a member.
type simMember struct {
	id, tz   string
	enrolled bool
	// used holds the successful keys: the request and the first answer.
	used    map[string]*usedKey
	keyList []string
	orders  map[string]*simOrder
	orderOf []string
	// view is the member's view at the clock's time, nil when it must be read.
	view *store.View
}

type usedKey struct {
	op    store.Op
	entry *domain.Entry
}

type simOrder struct {
	amount, refunded, earned int64
}

// outcome is the class of a store answer.
type outcome int

const (
	outApplied outcome = iota
	outNotFound
	outInsufficient
	outInvalid
	outExists
)

var outcomeNames = [...]string{"applied", "NOT_FOUND", "FAILED_PRECONDITION", "INVALID_ARGUMENT", "ALREADY_EXISTS"}

func (o outcome) String() string { return outcomeNames[o] }

func classify(err error) (outcome, bool) {
	switch {
	case err == nil:
		return outApplied, true
	case errors.Is(err, fault.ErrNotFound):
		return outNotFound, true
	case errors.Is(err, fault.ErrFailedPrecondition):
		return outInsufficient, true
	case errors.Is(err, fault.ErrInvalid):
		return outInvalid, true
	case errors.Is(err, fault.ErrAlreadyExists):
		return outExists, true
	}
	return 0, false
}

var zones = []string{"UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Pacific/Kiritimati", "America/St_Johns"}

func runSequence(t *testing.T, e *env, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x10ca1))
	s := &sim{t: t, e: e, seed: seed, rng: rng, start: e.lastEvent()}
	p := randomProgram(rng, fmt.Sprintf("p%d", seed))
	var created bool
	var err error
	s.prog, created, err = e.st.CreateProgram(ctx, tenant, &p)
	if err != nil || !created {
		s.fail("create programme: created %t, %v", created, err)
	}
	s.note("programme %+v", p)
	for i := range 2 + rng.IntN(3) {
		m := &simMember{id: fmt.Sprintf("c%d", i+1), tz: zones[rng.IntN(len(zones))],
			used: map[string]*usedKey{}, orders: map[string]*simOrder{}}
		s.members = append(s.members, m)
		// Members of an explicit programme are enrolled, but for one; of
		// the others, some are enrolled and some join with a purchase.
		if (p.Enrollment == domain.EnrollExplicit && i > 0) || rng.IntN(2) == 0 {
			s.enroll(m)
		}
	}
	for range 30 + rng.IntN(31) {
		s.step()
	}
	s.verify()
}

func randomProgram(rng *rand.Rand, id string) domain.Program {
	p := domain.Program{ID: id, Name: "Club " + id, Currency: "EUR",
		PointsPerUnit: []float64{1, 2.5, 10, 0.3}[rng.IntN(4)],
		Enrollment:    []domain.Enrollment{0, domain.EnrollExplicit, domain.EnrollOnFirstPurchase}[rng.IntN(3)],
		PointValue:    int64(rng.IntN(3)), AllowNegative: rng.IntN(2) == 0}
	if rng.IntN(2) == 0 {
		p.FirstPurchaseBonus = 25
	}
	if rng.IntN(3) == 0 {
		p.CategoryBonuses = map[string]float64{"shoes": 2}
	}
	if rng.IntN(4) == 0 {
		p.MaxPointsPerOrder = 400
	}
	switch rng.IntN(4) {
	case 0:
	case 1:
		p.Expiry = domain.ExpireNever
	case 2:
		p.Expiry, p.ExpiryMonths = domain.ExpireAfter, int32(1+rng.IntN(4))
	case 3:
		p.Expiry, p.ExpiryMonths = domain.ExpireEndOfYear, int32(12*rng.IntN(2))
	}
	if rng.IntN(2) == 0 {
		p.ReturnWindowDays = int32(1 + rng.IntN(30))
	}
	if rng.IntN(3) == 0 {
		p.TierBasis = []domain.TierBasis{0, domain.TierOnPoints, domain.TierOnSpend}[rng.IntN(3)]
		scale := int64(1)
		if p.TierBasis == domain.TierOnSpend {
			scale = 100
		}
		p.Tiers = []domain.Tier{{ID: "bronze", Name: "Bronze"},
			{ID: "silver", Name: "Silver", Threshold: 300 * scale, Multiplier: 1.5, BenefitValue: 500},
			{ID: "gold", Name: "Gold", Threshold: 1500 * scale, Multiplier: 2, BenefitValue: 2000}}
		p.TierWindowDays = int32(rng.IntN(90))
		p.TierGraceDays = int32(rng.IntN(3) * 7)
	}
	return p
}

func (s *sim) note(format string, args ...any) {
	s.trace = append(s.trace, fmt.Sprintf("%s  ", s.e.clk.Now().Format(time.RFC3339))+fmt.Sprintf(format, args...))
}

func (s *sim) fail(format string, args ...any) {
	s.t.Helper()
	tail := s.trace[max(0, len(s.trace)-60):]
	s.t.Fatalf("sequence seed %d (rerun with -run TestLedgerProperty -loyalty.seed=%d): %s\nlast steps:\n  %s",
		s.seed, s.seed, fmt.Sprintf(format, args...), strings.Join(tail, "\n  "))
}

func (s *sim) enroll(m *simMember) {
	v, created, err := s.e.st.Enroll(ctx, tenant, s.prog.ID, store.Enrollment{Customer: m.id, TimeZone: m.tz})
	if err != nil || created == m.enrolled {
		s.fail("enroll %s (enrolled before: %t): created %t, %v", m.id, m.enrolled, created, err)
	}
	s.note("enroll %s %s", m.id, m.tz)
	m.enrolled, m.view = true, v
}

func (s *sim) newKey() string {
	s.keys++
	return fmt.Sprintf("k%d-%x", s.keys, s.rng.Uint32())
}

// current returns the member's view at the clock's time (nil for one not
// enrolled), reading it when it is not known.
func (s *sim) current(m *simMember) *store.View {
	if !m.enrolled {
		return nil
	}
	if m.view == nil {
		v, err := s.e.st.Member(ctx, tenant, s.prog.ID, m.id)
		if err != nil {
			s.fail("member %s: %v", m.id, err)
		}
		m.view = v
	}
	return m.view
}

func (s *sim) forgetViews() {
	for _, m := range s.members {
		m.view = nil
	}
}

func (s *sim) pick() *simMember { return s.members[s.rng.IntN(len(s.members))] }

func (s *sim) step() {
	m := s.pick()
	switch r := s.rng.IntN(100); {
	case r < 26:
		s.do(m, s.newOp(m, 0))
	case r < 38:
		s.do(m, s.newOp(m, 1))
	case r < 50:
		s.do(m, s.newOp(m, 2))
	case r < 57:
		s.do(m, s.newOp(m, 3))
	case r < 60:
		s.do(m, s.newOp(m, 4))
	case r < 68:
		s.advance()
	case r < 72:
		s.fireTwice()
	case r < 80:
		s.retry(m)
	case r < 84:
		s.conflict(m)
	case r < 85 && !m.enrolled:
		s.enroll(m)
	default:
		s.burst(m)
	}
}

// newOp makes a new request of a kind: 0 purchase, 1 refund, 2 redeem,
// 3 adjust, 4 bonus points.
func (s *sim) newOp(m *simMember, kind int) store.Op {
	key := s.newKey()
	rng := s.rng
	if kind == 1 && len(m.orderOf) == 0 {
		kind = 0
	}
	switch kind {
	case 0:
		order := fmt.Sprintf("o%d", s.keys)
		if len(m.orderOf) > 0 && rng.IntN(40) == 0 {
			order = m.orderOf[rng.IntN(len(m.orderOf))] // an order that earned already: invalid
		}
		op := purchase(key, order, 1+rng.Int64N(60000))
		if rng.IntN(7) == 0 { // reported late by the profile feed
			op.Time = s.e.clk.Now().Add(-time.Duration(rng.Int64N(int64(120 * day))))
		}
		if rng.IntN(3) == 0 {
			op.Purchase.Lines = []domain.Line{{Category: "shoes", Amount: rng.Int64N(op.Purchase.Amount + 1)}}
		}
		return op
	case 1:
		if rng.IntN(40) == 0 {
			return refund(key, "no-such-order", 100)
		}
		o := m.orderOf[rng.IntN(len(m.orderOf))]
		so := m.orders[o]
		refunded := so.refunded
		switch r := rng.IntN(20); {
		case r < 6:
			refunded = so.amount
		case r < 19:
			refunded += rng.Int64N(so.amount - so.refunded + 1)
		case so.refunded > 0:
			refunded = so.refunded - 1 - rng.Int64N(so.refunded) // less than before: invalid
		default:
			refunded = so.amount + 1 // more than the purchase: invalid
		}
		op := refund(key, o, refunded)
		if d := refunded - so.refunded; d > 0 && rng.IntN(4) == 0 {
			op.Refunded, op.RefundDelta = 0, d // this refund alone, as the profile feed reports it
		}
		if rng.IntN(7) == 0 {
			op.Time = s.e.clk.Now().Add(-time.Duration(rng.Int64N(int64(3 * day))))
		}
		return op
	case 2, 3:
		var bal int64
		if v := s.current(m); v != nil {
			bal = max(v.Balance, 0)
		}
		n := 1 + rng.Int64N(bal*3/2+40)
		if kind == 2 {
			return redeem(key, n)
		}
		if rng.IntN(2) == 0 {
			return adjust(key, 1+rng.Int64N(300))
		}
		return adjust(key, -n)
	}
	return store.Op{Kind: domain.KindEarn, Key: key, Points: 1 + rng.Int64N(200), Bonus: true, Reason: "referral"}
}

// expect says how the store must answer a new request, from the member's
// view before it.
func (s *sim) expect(m *simMember, op store.Op, before *store.View) (outcome, string) {
	if !m.enrolled {
		if op.AutoEnroll && s.prog.Enrollment != domain.EnrollExplicit {
			return outApplied, ""
		}
		return outNotFound, ""
	}
	switch op.Kind {
	case domain.KindEarn:
		if op.Purchase != nil && m.orders[op.Purchase.Order] != nil {
			return outInvalid, "purchase.order_id"
		}
	case domain.KindReverse:
		so := m.orders[op.Order]
		if so == nil || refundedTotal(op, so) < so.refunded || refundedTotal(op, so) > so.amount {
			return outInvalid, "order_id"
		}
	case domain.KindRedeem:
		if op.Points > before.Balance {
			return outInsufficient, ""
		}
	case domain.KindAdjust:
		if op.Points < 0 && -op.Points > before.Balance {
			return outInsufficient, ""
		}
	}
	return outApplied, ""
}

// refundedTotal is the order's refunded total a refund asks for.
func refundedTotal(op store.Op, so *simOrder) int64 {
	if op.RefundDelta != 0 {
		return so.refunded + op.RefundDelta
	}
	return op.Refunded
}

func describe(op store.Op) string {
	switch {
	case op.Purchase != nil:
		return fmt.Sprintf("purchase %q %s amount %d lines %v%s", op.Key, op.Purchase.Order, op.Purchase.Amount, op.Purchase.Lines, at(op))
	case op.Kind == domain.KindReverse:
		return fmt.Sprintf("refund %q %s refunded %d (+%d)%s", op.Key, op.Order, op.Refunded, op.RefundDelta, at(op))
	}
	return fmt.Sprintf("%s %q %d", op.Kind, op.Key, op.Points)
}

// do sends a new request once and checks the answer.
func (s *sim) do(m *simMember, op store.Op) {
	before := s.current(m)
	want, field := s.expect(m, op, before)
	feedBefore := s.e.lastEvent()
	res, err := s.e.st.Record(ctx, tenant, s.prog.ID, m.id, op)
	s.note("%s %s -> %s", m.id, describe(op), answer(res, err))
	s.checkNew(m, op, before, want, field, res, err)
	if err != nil && s.e.lastEvent() != feedBefore {
		s.fail("a refused request wrote feed events")
	}
	if err == nil && s.e.lastEvent() == feedBefore {
		s.fail("an applied request wrote no feed event")
	}
}

func at(op store.Op) string {
	if op.Time.IsZero() {
		return ""
	}
	return " at " + op.Time.Format(time.RFC3339)
}

func answer(res *store.Result, err error) string {
	if err != nil {
		return "error " + err.Error()
	}
	e := res.Entry
	return fmt.Sprintf("seq %d %+d (req %d, takes %v, debt paid %d, debt %d, short %d) replayed %t; balance %d pending %d",
		e.Seq, e.Points, e.Requested, e.Takes, e.DebtPaid, e.Debt, e.Shortfall, res.Replayed, res.View.Balance, res.View.Pending)
}

// checkNew checks the answer to a request with a new key and records it.
func (s *sim) checkNew(m *simMember, op store.Op, before *store.View, want outcome, field string, res *store.Result, err error) {
	got, known := classify(err)
	if !known || got != want {
		s.fail("%s for %s: got %v, want %v", describe(op), m.id, err, want)
	}
	if err != nil {
		if field != "" {
			var inv *fault.Invalid
			if !errors.As(err, &inv) || len(inv.Violations) != 1 || inv.Violations[0].Field != field {
				s.fail("%s: error %v does not name the field %q", describe(op), err, field)
			}
		}
		return
	}
	e := res.Entry
	if !m.enrolled {
		m.enrolled = true
		m.tz = "" // enrolled by a purchase: the profile gave no zone
	}
	if res.Replayed || e.Key != op.Key || e.Kind != op.Kind {
		s.fail("a new request answered with entry %+v, replayed %t", e, res.Replayed)
	}
	var bal, pend int64
	if before != nil {
		bal, pend = before.Balance, before.Pending
	}
	// Expiries due now are out of both the balance and pending before
	// they are recorded, so the entry alone moves their sum; but for a
	// late purchase whose points have expired already: it pays debt only.
	now := s.e.clk.Now()
	delta := e.Points
	if e.Kind == domain.KindEarn && !e.Expires.IsZero() && !e.Expires.After(now) {
		delta = e.DebtPaid
	}
	if res.View.Balance+res.View.Pending != bal+pend+delta {
		s.fail("%s: balance+pending %d+%d -> %d+%d, but the entry changed the points by %d",
			describe(op), bal, pend, res.View.Balance, res.View.Pending, e.Points)
	}
	if !s.prog.AllowNegative && res.View.Balance < 0 {
		s.fail("negative balance %d on a programme that does not allow it", res.View.Balance)
	}
	switch {
	case op.Purchase != nil:
		var tier *domain.Tier
		if before != nil {
			if i := s.prog.TierIndex(before.Tier); i >= 0 {
				tier = &s.prog.Tiers[i]
			}
		}
		first := len(m.orders) == 0
		pts := s.prog.PurchasePoints(op.Purchase.Amount, op.Purchase.Lines, tier, first, false)
		for i := range s.prog.Tiers {
			// A timer run racing the purchase may have moved the tier first.
			if p := s.prog.PurchasePoints(op.Purchase.Amount, op.Purchase.Lines, &s.prog.Tiers[i], first, false); s.tierMoving && p == e.Requested {
				pts = p
			}
		}
		if e.Requested != pts {
			s.fail("purchase earned %d points, the programme's rules give %d (tier %v)", e.Requested, pts, tier)
		}
		loc, _ := time.LoadLocation(m.zone())
		at := op.Time
		if at.IsZero() {
			at = now
		}
		avail, exp := s.prog.LotTerms(at, loc, true)
		if !e.AvailableAt.Equal(avail) || !e.Expires.Equal(exp) {
			s.fail("purchase lot available %s expires %s, want %s and %s", e.AvailableAt, e.Expires, avail, exp)
		}
		m.orders[op.Purchase.Order] = &simOrder{amount: op.Purchase.Amount, earned: e.Requested}
		m.orderOf = append(m.orderOf, op.Purchase.Order)
	case op.Kind == domain.KindReverse:
		// What the balance cannot cover is debt exactly when the programme
		// allows a negative balance, and a shortfall otherwise.
		if e.Debt < 0 || e.Shortfall < 0 || (s.prog.AllowNegative && e.Shortfall != 0) || (!s.prog.AllowNegative && e.Debt != 0) {
			s.fail("%s: debt %d, shortfall %d (negative balance allowed: %t)", describe(op), e.Debt, e.Shortfall, s.prog.AllowNegative)
		}
		m.orders[op.Order].refunded = refundedTotal(op, m.orders[op.Order])
	case op.Kind == domain.KindRedeem && e.Points != -op.Points,
		op.Kind == domain.KindAdjust && e.Points != op.Points,
		op.Kind == domain.KindEarn && e.Points != op.Points:
		s.fail("%s changed the points by %d", describe(op), e.Points)
	}
	m.used[op.Key] = &usedKey{op: op, entry: e}
	m.keyList = append(m.keyList, op.Key)
	m.view = res.View
}

func (m *simMember) zone() string {
	if m.tz == "" {
		return "UTC"
	}
	return m.tz
}

// checkReplay checks the answer to a request sent again with a used key.
func (s *sim) checkReplay(m *simMember, u *usedKey, res *store.Result, err error) {
	if err != nil {
		s.fail("retry of %s: %v", describe(u.op), err)
	}
	if !res.Replayed || !sameEntry(res.Entry, u.entry) {
		s.fail("retry of %s: replayed %t, entry %+v, want the first %+v", describe(u.op), res.Replayed, res.Entry, u.entry)
	}
	if v := s.current(m); res.View.Balance != v.Balance || res.View.Pending != v.Pending {
		s.fail("retry of %s: view %d+%d, want the unchanged %d+%d", describe(u.op), res.View.Balance, res.View.Pending, v.Balance, v.Pending)
	}
}

func sameEntry(a, b *domain.Entry) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// retry sends a used key's request again.
func (s *sim) retry(m *simMember) {
	if len(m.keyList) == 0 {
		s.do(m, s.newOp(m, s.rng.IntN(5)))
		return
	}
	u := m.used[m.keyList[s.rng.IntN(len(m.keyList))]]
	feedBefore := s.e.lastEvent()
	res, err := s.e.st.Record(ctx, tenant, s.prog.ID, m.id, u.op)
	s.note("%s retry %s -> %s", m.id, describe(u.op), answer(res, err))
	s.checkReplay(m, u, res, err)
	if s.e.lastEvent() != feedBefore {
		s.fail("a retry wrote feed events")
	}
}

// conflict sends another request with a used key.
func (s *sim) conflict(m *simMember) {
	if len(m.keyList) == 0 {
		s.do(m, s.newOp(m, s.rng.IntN(5)))
		return
	}
	u := m.used[m.keyList[s.rng.IntN(len(m.keyList))]]
	op := u.op
	switch s.rng.IntN(4) {
	case 0:
		if op.Kind == domain.KindRedeem {
			op.Kind, op.Points = domain.KindAdjust, -op.Points
		} else {
			op.Kind, op.Purchase, op.Points = domain.KindRedeem, nil, 1
		}
	case 1:
		op.Points++
	case 2:
		op.Reason = "another"
	default:
		if op.Purchase != nil {
			pu := *op.Purchase
			pu.Amount++
			op.Purchase = &pu
		} else if op.RefundDelta != 0 {
			op.RefundDelta++
		} else {
			op.Refunded++
		}
	}
	feedBefore := s.e.lastEvent()
	res, err := s.e.st.Record(ctx, tenant, s.prog.ID, m.id, op)
	s.note("%s conflict %s -> %s", m.id, describe(op), answer(res, err))
	if !errors.Is(err, fault.ErrAlreadyExists) {
		s.fail("key %q reused for another request: got %v, want ALREADY_EXISTS", op.Key, err)
	}
	if s.e.lastEvent() != feedBefore {
		s.fail("a refused key reuse wrote feed events")
	}
}

// advance moves the clock: a little, a lot, or to the next expiry.
func (s *sim) advance() {
	var d time.Duration
	switch r := s.rng.IntN(10); {
	case r < 5:
		d = time.Duration(1+s.rng.Int64N(72*60)) * time.Minute
	case r < 8:
		d = time.Duration(10+s.rng.Int64N(190)) * day
	default:
		now := s.e.clk.Now()
		var next time.Time
		for _, m := range s.members {
			if v := s.current(m); v != nil && !v.NextExpiry.IsZero() && (next.IsZero() || v.NextExpiry.Before(next)) {
				next = v.NextExpiry
			}
		}
		if next.IsZero() {
			d = 30 * day
		} else {
			d = next.Sub(now) // exactly at the instant
		}
	}
	s.e.clk.Advance(d)
	s.note("advance %s", d)
	s.forgetViews()
	if s.rng.IntN(2) == 0 {
		s.fireTwice()
	}
}

// fireTwice runs the due timers twice at the same instant: the second run
// finds nothing due and writes nothing.
func (s *sim) fireTwice() {
	now := s.e.clk.Now()
	n, next, err := s.e.st.FireDue(ctx, now)
	if err != nil {
		s.fail("fire due: %v", err)
	}
	if !next.IsZero() && !next.After(now) {
		s.fail("fire due at %s: the next timer is at %s, not after", now, next)
	}
	feedBefore := s.e.lastEvent()
	again, _, err := s.e.st.FireDue(ctx, now)
	s.note("fire due: %d fired, then %d", n, again)
	if err != nil || again != 0 || s.e.lastEvent() != feedBefore {
		s.fail("fire due again at the same instant: %d fired, %v, feed %d -> %d", again, err, feedBefore, s.e.lastEvent())
	}
	s.forgetViews()
}

// burst sends one new request from several goroutines at once, its key
// the same, so that group commit puts them in one transaction or in
// racing ones; alongside, maybe, a timer run and another member's request.
func (s *sim) burst(m *simMember) {
	op := s.newOp(m, s.rng.IntN(5))
	before := s.current(m)
	want, field := s.expect(m, op, before)
	copies := 2 + s.rng.IntN(4)
	var other *simMember
	var otherOp store.Op
	var otherBefore *store.View
	var otherWant outcome
	var otherField string
	if o := s.pick(); o != m && s.rng.IntN(2) == 0 {
		other, otherOp = o, s.newOp(o, s.rng.IntN(5))
		otherBefore = s.current(o)
		otherWant, otherField = s.expect(o, otherOp, otherBefore)
	}
	fire := s.rng.IntN(2) == 0

	results := make([]*store.Result, copies)
	errs := make([]error, copies)
	var otherRes *store.Result
	var otherErr, fireErr error
	var wg sync.WaitGroup
	startGun := make(chan struct{})
	for i := range copies {
		wg.Go(func() {
			<-startGun
			results[i], errs[i] = s.e.st.Record(ctx, tenant, s.prog.ID, m.id, op)
		})
	}
	if other != nil {
		wg.Go(func() {
			<-startGun
			otherRes, otherErr = s.e.st.Record(ctx, tenant, s.prog.ID, other.id, otherOp)
		})
	}
	s.tierMoving = fire
	defer func() { s.tierMoving = false }()
	if fire {
		wg.Go(func() {
			<-startGun
			_, _, fireErr = s.e.st.FireDue(ctx, s.e.clk.Now())
		})
	}
	close(startGun)
	wg.Wait()

	var lines []string
	for i := range copies {
		lines = append(lines, answer(results[i], errs[i]))
	}
	s.note("%s burst of %d × %s (fire %t) -> %s", m.id, copies, describe(op), fire, strings.Join(lines, " | "))
	if other != nil {
		s.note("   alongside %s %s -> %s", other.id, describe(otherOp), answer(otherRes, otherErr))
	}
	if fireErr != nil {
		s.fail("fire due during a burst: %v", fireErr)
	}
	first := -1
	for i := range copies {
		if errs[i] == nil && !results[i].Replayed {
			if first >= 0 {
				s.fail("the same key applied twice: entries %d and %d", results[first].Entry.Seq, results[i].Entry.Seq)
			}
			first = i
		}
	}
	if want != outApplied {
		for i := range copies {
			if got, _ := classify(errs[i]); errs[i] == nil || got != want {
				s.fail("burst of %s: copy %d got %v, want %v", describe(op), i, errs[i], want)
			}
		}
		s.checkNew(m, op, before, want, field, nil, errs[0])
	} else {
		if first < 0 {
			s.fail("burst of %s: no copy applied: %v", describe(op), errs)
		}
		s.checkNew(m, op, before, want, field, results[first], errs[first])
		for i := range copies {
			if i != first {
				s.checkReplay(m, m.used[op.Key], results[i], errs[i])
			}
		}
	}
	if other != nil {
		s.checkNew(other, otherOp, otherBefore, otherWant, otherField, otherRes, otherErr)
	}
	if fire {
		s.forgetViews()
	}
}

// verify checks the ledgers at the end of a sequence.
func (s *sim) verify() {
	now := s.e.clk.Now()
	if _, _, err := s.e.st.FireDue(ctx, now); err != nil {
		s.fail("fire due: %v", err)
	}
	s.forgetViews()
	rec, err := s.e.st.Reconcile(ctx, tenant, s.prog.ID)
	if err != nil || len(rec.Differences) > 0 {
		s.fail("reconcile: %v %+v", err, rec)
	}
	enrolled := 0
	var total int64
	pointsEvents, enrolEvents := s.feedCounts()
	for _, m := range s.members {
		if !m.enrolled {
			if _, err := s.e.st.Member(ctx, tenant, s.prog.ID, m.id); !errors.Is(err, fault.ErrNotFound) {
				s.fail("member %s never enrolled: %v", m.id, err)
			}
			continue
		}
		enrolled++
		entries := s.e.entries(s.prog.ID, m.id, 1+s.rng.IntN(16))
		total += int64(len(entries))
		s.verifyMember(m, entries, now)
		if pointsEvents[m.id] != len(entries) || enrolEvents[m.id] != 1 {
			s.fail("%s: %d points.changed events for %d entries, %d member.enrolled events", m.id, pointsEvents[m.id], len(entries), enrolEvents[m.id])
		}
	}
	if rec.Members != int64(enrolled) || rec.Entries != total {
		s.fail("reconcile saw %d members and %d entries, want %d and %d", rec.Members, rec.Entries, enrolled, total)
	}
}

// feedCounts counts the sequence's feed events per member.
func (s *sim) feedCounts() (points, enrolled map[string]int) {
	points, enrolled = map[string]int{}, map[string]int{}
	for _, ev := range s.e.events(s.start) {
		switch ev.Type {
		case store.TypePointsChanged:
			var x loyaltyv1.Entry
			if err := ev.Payload.UnmarshalTo(&x); err != nil {
				s.fail("feed event %d: %v", ev.Sequence, err)
			}
			if x.ProgramId == s.prog.ID {
				points[ev.Key]++
			}
		case store.TypeMemberEnrolled:
			var x loyaltyv1.Member
			if err := ev.Payload.UnmarshalTo(&x); err != nil {
				s.fail("feed event %d: %v", ev.Sequence, err)
			}
			if x.ProgramId == s.prog.ID {
				enrolled[ev.Key]++
			}
		}
	}
	return points, enrolled
}

func (s *sim) verifyMember(m *simMember, entries []*domain.Entry, now time.Time) {
	byKey := map[string]*domain.Entry{}
	lotTerms := map[uint64]*domain.Entry{} // entries that created lots
	expired := map[uint64]bool{}
	reversed := map[string]int64{}
	var sum int64
	plain := make([]domain.Entry, len(entries))
	for i, e := range entries {
		plain[i] = *e
		if e.Seq != uint64(i+1) {
			s.fail("%s: entry %d has sequence %d", m.id, i+1, e.Seq)
		}
		sum += e.Points
		switch e.Kind {
		case domain.KindExpire:
			lot := lotTerms[e.Of]
			switch {
			case lot == nil:
				s.fail("%s: expiry %d of lot %d, which no earlier entry created", m.id, e.Seq, e.Of)
			case expired[e.Of]:
				s.fail("%s: lot %d expired twice", m.id, e.Of)
			case !e.Time.Equal(lot.Expires) || e.Time.After(now):
				s.fail("%s: lot %d expiring at %s recorded at %s (now %s)", m.id, e.Of, lot.Expires, e.Time, now)
			case e.Key != fmt.Sprintf("expire/%d", e.Of):
				s.fail("%s: expiry key %q", m.id, e.Key)
			}
			expired[e.Of] = true
			continue
		case domain.KindEarn:
			lotTerms[e.Seq] = e
		case domain.KindAdjust:
			if e.Requested > 0 {
				lotTerms[e.Seq] = e
			}
		case domain.KindReverse:
			reversed[e.Order] += e.Reversed()
		}
		if byKey[e.Key] != nil {
			s.fail("%s: key %q has two entries", m.id, e.Key)
		}
		byKey[e.Key] = e
		u := m.used[e.Key]
		if u == nil || !sameEntry(u.entry, e) {
			s.fail("%s: entry %+v is not the answer to a request (%+v)", m.id, e, u)
		}
	}
	// One entry per successful key, plus the expiries.
	if len(byKey) != len(m.used) || len(entries) != len(m.used)+len(expired) {
		s.fail("%s: %d entries for %d keys and %d expiries", m.id, len(entries), len(m.used), len(expired))
	}
	for o, so := range m.orders {
		want := so.earned * so.refunded / so.amount // small enough not to overflow
		if reversed[o] != want || reversed[o] > so.earned || reversed[o] < 0 {
			s.fail("%s: order %s (%d earned on %d, %d refunded) had %d reversed, want %d", m.id, o, so.earned, so.amount, so.refunded, reversed[o], want)
		}
	}
	acc := s.e.account(s.prog.ID, m.id)
	replayed, err := domain.Replay(plain)
	if err != nil || !replayed.Equal(&acc) {
		s.fail("%s: the ledger replays to %+v (%v), stored %+v", m.id, replayed, err, acc)
	}
	var avail, pending, lots int64
	for _, l := range acc.Lots {
		switch src := lotTerms[l.ID]; {
		case l.Points <= 0 || l.Points > l.Original:
			s.fail("%s: lot %d has %d of %d points", m.id, l.ID, l.Points, l.Original)
		case src == nil || src.Requested != l.Original:
			s.fail("%s: lot %d of %d points was not created by an entry of as many (%+v)", m.id, l.ID, l.Original, src)
		case l.Expired(now):
			s.fail("%s: lot %d expired at %s, still has %d points at %s after the timers ran", m.id, l.ID, l.Expires, l.Points, now)
		case l.Pending(now):
			pending += l.Points
		default:
			avail += l.Points
		}
		lots += l.Points
	}
	if acc.Debt < 0 || (acc.Debt > 0 && !s.prog.AllowNegative) {
		s.fail("%s: debt %d (negative balance allowed: %t)", m.id, acc.Debt, s.prog.AllowNegative)
	}
	if sum != lots-acc.Debt {
		s.fail("%s: the entries add up to %d points, the lots to %d less %d debt", m.id, sum, lots, acc.Debt)
	}
	v := s.current(m)
	if v.Balance != avail-acc.Debt || v.Pending != pending {
		s.fail("%s: view balance %d pending %d, the lots give %d-%d and %d", m.id, v.Balance, v.Pending, avail, acc.Debt, pending)
	}
	if v.LifetimeEarned != acc.TotalEarned || v.LifetimeRedeemed != acc.TotalRedeemed || v.Expired != acc.TotalExpired {
		s.fail("%s: view lifetime totals %d/%d/%d, account %d/%d/%d", m.id, v.LifetimeEarned, v.LifetimeRedeemed, v.Expired,
			acc.TotalEarned, acc.TotalRedeemed, acc.TotalExpired)
	}
	if i := s.prog.TierIndex(v.Tier); len(s.prog.Tiers) > 0 && i < 0 {
		s.fail("%s: tier %q is not one of the programme's", m.id, v.Tier)
	}
}
