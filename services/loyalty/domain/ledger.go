// Package domain is the loyalty programme's core: the points ledger and
// its projection (lots, debt), the programme's earning and expiry rules,
// and the replay that reconciles the two. It is pure: no storage, no gRPC,
// no clock of its own.
//
// # The ledger
//
// Every change of a member's points is an Entry, appended with a sequence
// number and an idempotency key, and never changed afterwards. The member's
// Account — the lots with their remaining points, and the debt — is a
// projection of the entries: Replay rebuilds it from them alone, and must
// always find what the store holds.
//
//   - earn: a new lot of points, pending until its AvailableAt (the return
//     window) and expiring at Expires. Points earned while the member owes
//     points (debt) pay the debt first.
//   - redeem: takes points from available lots, soonest-expiring first (lots
//     that never expire last, older lots first among equals). Redeeming more
//     than the available balance fails and changes nothing.
//   - expire: takes what is left of a lot at its expiry instant; the ledger
//     applies due expiries, in expiry order, before any other entry.
//   - reverse: a refund takes back points its purchase earned, in proportion
//     to the refunded share of the purchase, cumulatively: the total reversed
//     for a purchase is floor(earned × refunded / amount), never more than it
//     earned. The points come from the purchase's own lot first, then from
//     the member's other lots soonest-expiring first; what is still missing
//     becomes debt when the programme allows a negative balance, and is
//     recorded as the entry's shortfall otherwise.
//   - adjust: a manual change with a reason and an actor: a positive one is
//     a lot like an earn; a negative one takes points like a redemption.
package domain

import (
	"cmp"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"time"
)

// Kind is the kind of a ledger entry; the numbers are those of
// rapport.loyalty.v1.EntryKind.
type Kind int32

// Entry kinds.
const (
	KindEarn    Kind = 1
	KindRedeem  Kind = 2
	KindExpire  Kind = 3
	KindReverse Kind = 4
	KindAdjust  Kind = 5
)

var kindNames = [...]string{"unspecified", "earn", "redeem", "expire", "reverse", "adjust"}

func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("Kind(%d)", int32(k))
	}
	return kindNames[k]
}

// Errors of ledger operations. Nothing changes when one is returned.
var (
	ErrInsufficient = errors.New("insufficient points")
	ErrInvalid      = errors.New("invalid ledger operation")
)

// Lot is points earned together: what is left of them, when they become
// available and when they expire (zero: never).
type Lot struct {
	// ID is the sequence of the entry that created the lot.
	ID          uint64    `json:"id"`
	Points      int64     `json:"pts"`
	Original    int64     `json:"orig"`
	Earned      time.Time `json:"earned"`
	AvailableAt time.Time `json:"avail,omitzero"`
	Expires     time.Time `json:"exp,omitzero"`
	// Order is the purchase that earned the lot, if any.
	Order string `json:"order,omitempty"`
}

// Pending reports whether the lot's points are not yet available at now.
func (l *Lot) Pending(now time.Time) bool { return now.Before(l.AvailableAt) }

// Expired reports whether the lot has expired at now.
func (l *Lot) Expired(now time.Time) bool { return !l.Expires.IsZero() && !now.Before(l.Expires) }

// Take is points taken from one lot.
type Take struct {
	Lot    uint64 `json:"lot"`
	Points int64  `json:"pts"`
}

// Entry is one ledger entry. The fields an operation was asked for (Kind,
// Key, Time, Requested, Order, Amount, Refunded, Reason, Actor, lot terms)
// are its input; Points, Takes, DebtPaid, Debt and Shortfall are what it
// did, and Replay recomputes them from the input.
type Entry struct {
	Seq  uint64    `json:"seq"`
	Key  string    `json:"key"`
	Kind Kind      `json:"kind"`
	Time time.Time `json:"time"`
	// Requested is the points asked for: earned, redeemed, adjusted (signed).
	// For a reverse it is what the purchase's earn entry earned.
	Requested int64 `json:"req"`
	// Points is the signed change of the balance.
	Points int64 `json:"pts"`
	// Order is the purchase an earn or reverse is about; Amount its amount
	// and, for a reverse, Refunded the purchase's refunded total so far
	// (both minor units) and Of the earn entry reversed.
	Order    string `json:"order,omitempty"`
	Amount   int64  `json:"amount,omitempty"`
	Refunded int64  `json:"refunded,omitempty"`
	Of       uint64 `json:"of,omitempty"`
	// AvailableAt and Expires are the terms of the lot an earn or a positive
	// adjust creates.
	AvailableAt time.Time `json:"avail,omitzero"`
	Expires     time.Time `json:"exp,omitzero"`
	// Takes are the lots a debit took points from.
	Takes []Take `json:"takes,omitempty"`
	// DebtPaid is the part of an earn that paid off debt; Debt the part of
	// a reverse booked as debt; Shortfall the part of a reverse that could
	// not be taken back.
	DebtPaid  int64 `json:"debt_paid,omitempty"`
	Debt      int64 `json:"debt,omitempty"`
	Shortfall int64 `json:"shortfall,omitempty"`
	// Refund is the money a reverse newly refunds (Refunded less what was
	// refunded before), for spend-based tiers.
	Refund int64 `json:"refund,omitempty"`
	// AllowNegative is the programme's policy when a reverse was recorded:
	// whether what the balance cannot cover becomes debt.
	AllowNegative bool `json:"neg,omitempty"`
	// Reason and Actor explain an adjust (and may annotate any entry).
	Reason string `json:"reason,omitempty"`
	Actor  string `json:"actor,omitempty"`
}

// Earned is what an earn entry earned and how much of it was reversed.
type Earned struct {
	Entry    uint64 `json:"entry"`
	Points   int64  `json:"pts"`
	Amount   int64  `json:"amount"`
	Reversed int64  `json:"rev"`
	Refunded int64  `json:"refunded"`
}

// EarnedBy returns what order earned and had reversed, nil if it earned nothing.
func (a *Account) EarnedBy(order string) *Earned { return a.Earned[order] }

// Account is a member's points: the projection of their ledger.
type Account struct {
	// Lots with points left, in spending order (see spendOrder).
	Lots []Lot `json:"lots,omitempty"`
	// Debt is points owed: a reversal the balance could not cover, on a
	// programme that allows a negative balance.
	Debt int64 `json:"debt,omitempty"`
	// Earned holds, per purchase order, what its earn entry earned and
	// what has been reversed of it.
	Earned map[string]*Earned `json:"earned,omitempty"`
	// Seq is the last entry applied.
	Seq uint64 `json:"seq"`
	// Lifetime totals, for the member view and tiers.
	TotalEarned   int64 `json:"total_earned,omitempty"`
	TotalRedeemed int64 `json:"total_redeemed,omitempty"`
	TotalExpired  int64 `json:"total_expired,omitempty"`
}

// spendOrder sorts lots for spending: soonest expiry first, lots that never
// expire last, then oldest first.
func spendOrder(a, b Lot) int {
	switch {
	case a.Expires.IsZero() != b.Expires.IsZero():
		if a.Expires.IsZero() {
			return 1
		}
		return -1
	case !a.Expires.Equal(b.Expires):
		return a.Expires.Compare(b.Expires)
	}
	return cmp.Compare(a.ID, b.ID)
}

// Available is the points that can be spent at now: lots neither pending
// nor expired, less the debt (it may be negative).
func (a *Account) Available(now time.Time) int64 {
	var n int64
	for i := range a.Lots {
		l := &a.Lots[i]
		if !l.Pending(now) && !l.Expired(now) {
			n += l.Points
		}
	}
	return n - a.Debt
}

// Pending is the points earned but not yet available at now.
func (a *Account) Pending(now time.Time) int64 {
	var n int64
	for i := range a.Lots {
		if l := &a.Lots[i]; l.Pending(now) && !l.Expired(now) {
			n += l.Points
		}
	}
	return n
}

// ExpiringBy is the available points that expire at or before t.
func (a *Account) ExpiringBy(now, t time.Time) int64 {
	var n int64
	for i := range a.Lots {
		l := &a.Lots[i]
		if !l.Expired(now) && !l.Expires.IsZero() && !l.Expires.After(t) {
			n += l.Points
		}
	}
	return n
}

// NextExpiry is the earliest expiry of a lot with points left, zero for none.
func (a *Account) NextExpiry() time.Time {
	var next time.Time
	for i := range a.Lots {
		if e := a.Lots[i].Expires; !e.IsZero() && (next.IsZero() || e.Before(next)) {
			next = e
		}
	}
	return next
}

// DueExpiries returns the expire entries due at or before now, in expiry
// order, without applying them; the caller gives each a sequence number and
// applies it with Apply. Their keys are "expire/<lot>" — a slash no client
// key may contain — so an expiry is recorded once however often it is
// computed, and never collides with a client's key.
func (a *Account) DueExpiries(now time.Time) []Entry {
	var out []Entry
	for i := range a.Lots {
		l := &a.Lots[i]
		if l.Expired(now) && l.Points > 0 {
			out = append(out, Entry{Key: fmt.Sprintf("expire/%d", l.ID), Kind: KindExpire, Time: l.Expires,
				Requested: l.Points, Of: l.ID})
		}
	}
	slices.SortStableFunc(out, func(x, y Entry) int { return x.Time.Compare(y.Time) })
	return out
}

// Apply computes an entry's effect from its input (Kind, Time, Requested,
// Order, Amount, Refunded, Of, AllowNegative, lot terms), fills in Points, Takes,
// DebtPaid, Debt and Shortfall, and applies it to the account. e.Seq must
// be the next sequence. On error nothing changes.
func (a *Account) Apply(e *Entry) error {
	if e.Seq <= a.Seq {
		return fmt.Errorf("%w: entry %d after %d", ErrInvalid, e.Seq, a.Seq)
	}
	e.Points, e.Takes, e.DebtPaid, e.Debt, e.Shortfall, e.Refund = 0, nil, 0, 0, 0, 0
	var err error
	switch e.Kind {
	case KindEarn:
		err = a.credit(e)
	case KindAdjust:
		if e.Requested > 0 {
			err = a.credit(e)
		} else {
			err = a.redeem(e, -e.Requested)
		}
	case KindRedeem:
		err = a.redeem(e, e.Requested)
	case KindExpire:
		err = a.expire(e)
	case KindReverse:
		err = a.reverse(e)
	default:
		err = fmt.Errorf("%w: unknown kind %d", ErrInvalid, e.Kind)
	}
	if err != nil {
		return err
	}
	a.Seq = e.Seq
	return nil
}

// credit adds a lot of e.Requested points (after paying debt).
func (a *Account) credit(e *Entry) error {
	if e.Requested < 0 || (e.Requested == 0 && e.Kind == KindAdjust) {
		return fmt.Errorf("%w: %s of %d points", ErrInvalid, e.Kind, e.Requested)
	}
	if !e.Expires.IsZero() && !e.Expires.After(e.Time) {
		return fmt.Errorf("%w: lot expires at %s, not after it is earned at %s", ErrInvalid, e.Expires, e.Time)
	}
	if e.Kind == KindEarn && e.Order != "" {
		if a.Earned[e.Order] != nil {
			return fmt.Errorf("%w: order %q already earned points", ErrInvalid, e.Order)
		}
		if a.Earned == nil {
			a.Earned = map[string]*Earned{}
		}
		a.Earned[e.Order] = &Earned{Entry: e.Seq, Points: e.Requested, Amount: e.Amount}
	}
	pts := e.Requested
	e.DebtPaid = min(a.Debt, pts)
	a.Debt -= e.DebtPaid
	pts -= e.DebtPaid
	e.Points = e.Requested
	a.TotalEarned += e.Requested
	if pts > 0 {
		a.insert(Lot{ID: e.Seq, Points: pts, Original: e.Requested, Earned: e.Time, AvailableAt: e.AvailableAt,
			Expires: e.Expires, Order: e.Order})
	}
	return nil
}

func (a *Account) insert(l Lot) {
	i, _ := slices.BinarySearchFunc(a.Lots, l, spendOrder)
	a.Lots = slices.Insert(a.Lots, i, l)
}

// take takes up to n points from the lots accepted by ok, in spending
// order, records the takes in e and drops emptied lots. It returns what it
// took.
func (a *Account) take(e *Entry, n int64, ok func(*Lot) bool) int64 {
	var got int64
	for i := range a.Lots {
		if got == n {
			break
		}
		l := &a.Lots[i]
		if l.Points == 0 || !ok(l) {
			continue
		}
		t := min(l.Points, n-got)
		l.Points -= t
		got += t
		e.Takes = append(e.Takes, Take{Lot: l.ID, Points: t})
	}
	a.Lots = slices.DeleteFunc(a.Lots, func(l Lot) bool { return l.Points == 0 })
	return got
}

// redeem takes n available points, or fails with ErrInsufficient.
func (a *Account) redeem(e *Entry, n int64) error {
	if n <= 0 {
		return fmt.Errorf("%w: %s of %d points", ErrInvalid, e.Kind, n)
	}
	if avail := a.Available(e.Time); avail < n {
		return fmt.Errorf("%w: %d available, %d asked", ErrInsufficient, max(avail, 0), n)
	}
	a.take(e, n, func(l *Lot) bool { return !l.Pending(e.Time) && !l.Expired(e.Time) })
	e.Points = -n
	if e.Kind == KindRedeem {
		a.TotalRedeemed += n
	}
	return nil
}

// expire takes what is left of lot e.Of at its expiry.
func (a *Account) expire(e *Entry) error {
	i := slices.IndexFunc(a.Lots, func(l Lot) bool { return l.ID == e.Of })
	if i < 0 {
		return fmt.Errorf("%w: no lot %d with points to expire", ErrInvalid, e.Of)
	}
	l := a.Lots[i]
	if !l.Expired(e.Time) || !l.Expires.Equal(e.Time) {
		return fmt.Errorf("%w: lot %d expires at %s, not %s", ErrInvalid, l.ID, l.Expires, e.Time)
	}
	e.Requested = l.Points
	got := a.take(e, l.Points, func(x *Lot) bool { return x.ID == l.ID })
	e.Points = -got
	a.TotalExpired += got
	return nil
}

// reverse takes back what a refund undoes of an earn: see the package
// documentation.
func (a *Account) reverse(e *Entry) error {
	er := a.Earned[e.Order]
	if er == nil {
		return fmt.Errorf("%w: order %q earned no points", ErrInvalid, e.Order)
	}
	if e.Refunded < er.Refunded || e.Refunded > er.Amount || er.Amount <= 0 {
		return fmt.Errorf("%w: refunded total %d of order %q (amount %d, %d refunded before)", ErrInvalid, e.Refunded, e.Order, er.Amount, er.Refunded)
	}
	e.Of, e.Requested, e.Amount = er.Entry, er.Points, er.Amount
	target := reversal(er.Points, e.Refunded, er.Amount)
	n := target - er.Reversed
	e.Refund = e.Refunded - er.Refunded
	er.Refunded = e.Refunded
	if n <= 0 {
		return nil
	}
	er.Reversed = target
	got := a.take(e, n, func(l *Lot) bool { return l.ID == er.Entry })
	got += a.take(e, n-got, func(l *Lot) bool { return !l.Expired(e.Time) })
	e.Points = -got
	missing := n - got
	if missing > 0 {
		if e.AllowNegative {
			e.Debt = missing
			a.Debt += missing
			e.Points -= missing
		} else {
			e.Shortfall = missing
		}
	}
	a.TotalEarned -= n
	return nil
}

// reversal is floor(points × refunded / amount) without overflow for any
// int64 points and amounts.
func reversal(points, refunded, amount int64) int64 {
	if refunded >= amount {
		return points
	}
	// points·refunded/amount = q·refunded + r·refunded/amount with
	// points = q·amount + r; r·refunded < amount² may still overflow for
	// huge amounts, so it is computed in 128 bits.
	q, r := points/amount, points%amount
	hi, lo := bits.Mul64(uint64(r), uint64(refunded))
	quo, _ := bits.Div64(hi, lo, uint64(amount)) // hi < amount: r, refunded < amount
	return q*refunded + int64(quo)
}

// Replay rebuilds an account from its entries alone, in sequence order,
// recomputing every entry's effect, and fails on the first entry whose
// recorded effect differs from the recomputed one or that cannot apply.
func Replay(entries []Entry) (*Account, error) {
	a := &Account{}
	for i := range entries {
		rec := &entries[i]
		e := *rec
		e.Takes = nil
		if err := a.Apply(&e); err != nil {
			return a, fmt.Errorf("entry %d (%s %q): %w", rec.Seq, rec.Kind, rec.Key, err)
		}
		if e.Points != rec.Points || e.Requested != rec.Requested || e.DebtPaid != rec.DebtPaid || e.Debt != rec.Debt ||
			e.Shortfall != rec.Shortfall || e.Of != rec.Of || e.Refund != rec.Refund || !slices.Equal(e.Takes, rec.Takes) {
			return a, fmt.Errorf("entry %d (%s %q): recorded %+v, recomputed %+v", rec.Seq, rec.Kind, rec.Key, *rec, e)
		}
	}
	return a, nil
}

// Equal reports whether two accounts hold the same points.
func (a *Account) Equal(b *Account) bool {
	if a.Seq != b.Seq || a.Debt != b.Debt || a.TotalEarned != b.TotalEarned || a.TotalRedeemed != b.TotalRedeemed ||
		a.TotalExpired != b.TotalExpired || len(a.Lots) != len(b.Lots) || len(a.Earned) != len(b.Earned) {
		return false
	}
	for i := range a.Lots {
		x, y := a.Lots[i], b.Lots[i]
		if x.ID != y.ID || x.Points != y.Points || x.Original != y.Original || !x.Earned.Equal(y.Earned) ||
			!x.AvailableAt.Equal(y.AvailableAt) || !x.Expires.Equal(y.Expires) || x.Order != y.Order {
			return false
		}
	}
	for k, v := range a.Earned {
		if w := b.Earned[k]; w == nil || *w != *v {
			return false
		}
	}
	return true
}

// Reversed is the points a reverse entry took back from its purchase's
// earnings (whether taken from lots, booked as debt or short).
func (e *Entry) Reversed() int64 {
	if e.Kind != KindReverse {
		return 0
	}
	return -e.Points + e.Shortfall
}
