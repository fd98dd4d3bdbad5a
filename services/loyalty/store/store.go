package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	loyaltyv1 "rapport.dev/gen/go/rapport/loyalty/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/feed"
	"rapport.dev/services/loyalty/convert"
	"rapport.dev/services/loyalty/domain"
)

// Feed event types of the loyalty service.
const (
	TypeMemberEnrolled = "member.enrolled"
	TypePointsChanged  = "points.changed"
	TypeTierChanged    = "tier.changed"
)

// ExpiringSoonWindow is how far ahead the member view counts expiring points.
const ExpiringSoonWindow = 30 * 24 * time.Hour

// Store is loyalty's storage.
type Store struct {
	db    *boltdb.DB
	feed  *feed.Log
	clock clock.Clock
	log   *slog.Logger
	// timerWake is signalled when a timer earlier than any before may exist.
	timerWake chan struct{}
	// metrics is nil until Instrument.
	metrics *metrics
}

// New returns a store over an open loyalty.db and its feed.
func New(db *boltdb.DB, log *feed.Log, clk clock.Clock, logger *slog.Logger) *Store {
	return &Store{db: db, feed: log, clock: clk, log: logger, timerWake: make(chan struct{}, 1)}
}

// DB exposes the database for the feed followers.
func (s *Store) DB() *boltdb.DB { return s.db }

// TimerWake is signalled after a commit that may have scheduled an earlier timer.
func (s *Store) TimerWake() <-chan struct{} { return s.timerWake }

func (s *Store) wakeTimers() {
	select {
	case s.timerWake <- struct{}{}:
	default:
	}
}

// member is a stored member.
type member struct {
	Customer   string             `json:"customer"`
	Enrolled   time.Time          `json:"enrolled"`
	TimeZone   string             `json:"tz,omitempty"`
	BirthMonth int32              `json:"birth_month,omitempty"`
	Tier       domain.TierState   `json:"tier"`
	Qualifiers []domain.Qualifier `json:"qual,omitempty"`
	Account    domain.Account     `json:"account"`
}

func (m *member) location() *time.Location {
	if m.TimeZone == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(m.TimeZone)
	if err != nil {
		return time.UTC // validated on enrolment; a zone database change must not stop the ledger
	}
	return loc
}

// tx bundles one transaction's work on one programme of one tenant.
type tx struct {
	*bolt.Tx
	tenant, program string
	// scratch, when set, caches decoded programmes for the whole group
	// commit: every earn reads its programme, and decoding it was the
	// largest cost of an earn.
	scratch *boltdb.Scratch
}

// programKey caches a decoded programme under its stored bytes, so a
// programme updated earlier in the same transaction is not served stale.
type programKey string

func (t tx) b(name []byte) *bolt.Bucket { return t.Bucket(name) }

func (t tx) loadProgram() (*domain.Program, error) {
	raw := t.b(bucketPrograms).Get(boltdb.Key(t.tenant, t.program))
	if raw == nil {
		return nil, fmt.Errorf("program %q: %w", t.program, fault.ErrNotFound)
	}
	if t.scratch != nil {
		if p, ok := t.scratch.Get(programKey(raw)); ok {
			return p.(*domain.Program), nil
		}
	}
	p, err := boltdb.GetJSON[domain.Program](raw)
	if err == nil && t.scratch != nil {
		t.scratch.Set(programKey(raw), p)
	}
	return p, err
}

func (t tx) memberKey(customer string) []byte { return boltdb.Key(t.tenant, t.program, customer) }

func (t tx) loadMember(customer string) (*member, error) {
	raw := t.b(bucketMembers).Get(t.memberKey(customer))
	if raw == nil {
		return nil, fmt.Errorf("member %q of program %q: %w", customer, t.program, fault.ErrNotFound)
	}
	return decodeMember(raw)
}

func (t tx) putMember(m *member) error {
	return t.b(bucketMembers).Put(t.memberKey(m.Customer), encodeMember(m))
}

func entryKey(tenant, program, customer string, seq uint64) []byte {
	return boltdb.Key(tenant, program, customer, boltdb.U64(seq))
}

func (t tx) entry(customer string, seq uint64) (*domain.Entry, error) {
	raw := t.b(bucketEntries).Get(entryKey(t.tenant, t.program, customer, seq))
	if raw == nil {
		return nil, fmt.Errorf("store: entry %d of %q missing", seq, customer)
	}
	return boltdb.GetJSON[domain.Entry](raw)
}

// Enrollment is a member's enrolment details.
type Enrollment struct {
	Customer   string
	TimeZone   string
	BirthMonth int32
}

// Enroll enrols a customer; enrolling again returns the member unchanged.
func (s *Store) Enroll(ctx context.Context, tenant, program string, in Enrollment) (*View, bool, error) {
	now := s.clock.Now().UTC()
	var out *View
	created := false
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant, program: program}
		p, err := t.loadProgram()
		if err != nil {
			return err
		}
		m, err := t.loadMember(in.Customer)
		switch {
		case err == nil:
			created = false
		case errors.Is(err, fault.ErrNotFound):
			if m, err = s.enroll(ctx, t, in, now); err != nil {
				return err
			}
			// A new member is in the entry tier from the start.
			if err := s.evaluate(ctx, t, p, m, now); err != nil {
				return err
			}
			created = true
		default:
			return err
		}
		out = view(p, m, now)
		return nil
	})
	return out, created, err
}

func (s *Store) enroll(ctx context.Context, t tx, in Enrollment, now time.Time) (*member, error) {
	m := &member{Customer: in.Customer, Enrolled: now, TimeZone: in.TimeZone, BirthMonth: in.BirthMonth}
	if err := t.putMember(m); err != nil {
		return nil, err
	}
	return m, s.announce(ctx, t, m)
}

// announce publishes a new member.
func (s *Store) announce(ctx context.Context, t tx, m *member) error {
	_, err := s.feed.Append(ctx, t.Tx, t.tenant, TypeMemberEnrolled, m.Customer, &loyaltyv1.Member{ProgramId: t.program,
		CustomerId: m.Customer, EnrollTime: convert.Timestamp(m.Enrolled), TimeZone: m.TimeZone, BirthMonth: m.BirthMonth})
	return err
}

// Op is a change of a member's points.
type Op struct {
	Kind domain.Kind
	// Key is the idempotency key.
	Key string
	// Time is when it happened; zero means now.
	Time time.Time
	// Points: given as is by an earn without a purchase, spent by a
	// redeem, the signed change of an adjust.
	Points int64
	// Purchase makes an earn compute its points by the programme's rules.
	Purchase *Purchase
	// Order and Refunded are a reverse's purchase and its refunded total;
	// RefundDelta, when set instead, is this refund alone (the profile
	// feed's refunds), added to what the order had refunded before.
	Order       string
	Refunded    int64
	RefundDelta int64
	Reason      string
	Actor       string
	// AutoEnroll enrols the customer on this earn when the programme
	// enrols on first purchase (the profile feed's purchases).
	AutoEnroll bool
	// Bonus marks points given by a rule (referral, segment campaign): they
	// are not a purchase and carry no lot terms of a purchase.
	Bonus bool
}

// Purchase is a purchase that earns points.
type Purchase struct {
	Order    string
	Amount   int64
	Currency string
	Lines    []domain.Line
}

// fingerprint identifies an operation's request, so that a key reused with
// another request is refused instead of answered with the first entry.
func (o *Op) fingerprint() [32]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%d|%d|%d|%q|%d|%d|%q|%q|%t|%t", o.Kind, o.Time.UnixNano(), o.Points, o.Order, o.Refunded, o.RefundDelta, o.Reason, o.Actor, o.AutoEnroll, o.Bonus)
	if p := o.Purchase; p != nil {
		fmt.Fprintf(h, "|%q|%d|%q", p.Order, p.Amount, p.Currency)
		for _, l := range p.Lines {
			fmt.Fprintf(h, "|%q:%d", l.Category, l.Amount)
		}
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Result is an operation's outcome.
type Result struct {
	Entry *domain.Entry
	View  *View
	// Replayed is true when the key had been used before with the same
	// request: Entry is the first call's, and nothing changed.
	Replayed bool
}

// Record applies an operation to a member's ledger, in one transaction
// with its idempotency key, the account, timers and feed events. A key
// used before with the same request returns the first entry; with another
// request it fails with fault.ErrAlreadyExists. Insufficient points fail
// with fault.ErrFailedPrecondition; nothing changes on any error.
func (s *Store) Record(ctx context.Context, tenant, program, customer string, op Op) (*Result, error) {
	var res *Result
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		var err error
		res, err = s.RecordTx(ctx, btx, tenant, program, customer, op)
		return err
	})
	return res, err
}

// RecordTx is Record in the caller's transaction (a feed follower's, whose
// cursor commits with it).
func (s *Store) RecordTx(ctx context.Context, btx *bolt.Tx, tenant, program, customer string, op Op) (*Result, error) {
	now := s.clock.Now().UTC()
	fp := op.fingerprint()
	var res *Result
	err := func() error {
		t := tx{Tx: btx, tenant: tenant, program: program}
		t.scratch, _ = s.db.ScratchOf(btx)
		p, err := t.loadProgram()
		if err != nil {
			return err
		}
		kk := boltdb.Key(tenant, program, customer, op.Key)
		if raw := t.b(bucketKeys).Get(kk); raw != nil {
			if len(raw) != 40 || !bytes.Equal(raw[8:], fp[:]) {
				return fmt.Errorf("idempotency key %q was used for another request: %w", op.Key, fault.ErrAlreadyExists)
			}
			m, err := t.loadMember(customer)
			if err != nil {
				return err
			}
			e, err := t.entry(customer, binary.BigEndian.Uint64(raw[:8]))
			if err != nil {
				return err
			}
			res = &Result{Entry: e, View: view(p, m, now), Replayed: true}
			return nil
		}
		// Nothing is written until the operation is known to apply, so a
		// feed follower can skip a refused one in its own transaction.
		m, err := t.loadMember(customer)
		enrolled := false
		if errors.Is(err, fault.ErrNotFound) && op.AutoEnroll && p.Enrollment != domain.EnrollExplicit {
			info := t.customer(customer)
			m, err, enrolled = &member{Customer: customer, Enrolled: now, TimeZone: info.TimeZone, BirthMonth: info.BirthMonth}, nil, true
		}
		if err != nil {
			return err
		}
		at := op.Time
		if at.IsZero() {
			at = now
		}
		expired, err := expireDue(m, now)
		if err != nil {
			return err
		}
		e, err := entryFor(p, m, &op, at, now)
		if err != nil {
			return err
		}
		e.Seq = m.Account.Seq + 1
		if err := m.Account.Apply(e); err != nil {
			if errors.Is(err, domain.ErrInsufficient) {
				return fmt.Errorf("%w: %w", err, fault.ErrFailedPrecondition)
			}
			return fault.InvalidField(fieldOf(op.Kind), "%v", err)
		}
		if enrolled {
			if err := s.announce(ctx, t, m); err != nil {
				return err
			}
		}
		if err := s.writeExpiries(ctx, t, m, expired); err != nil {
			return err
		}
		if err := s.append(ctx, t, m, e); err != nil {
			return err
		}
		val := make([]byte, 0, 40)
		val = append(append(val, boltdb.U64(e.Seq)...), fp[:]...)
		if err := t.b(bucketKeys).Put(kk, val); err != nil {
			return err
		}
		if err := s.evaluate(ctx, t, p, m, now); err != nil {
			return err
		}
		res = &Result{Entry: e, View: view(p, m, now)}
		return nil
	}()
	return res, err
}

func fieldOf(k domain.Kind) string {
	switch k {
	case domain.KindReverse:
		return "order_id"
	case domain.KindEarn:
		return "purchase.order_id"
	}
	return "points"
}

// entryFor builds the entry an operation asks for: the points of a
// purchase by the programme's rules, the lot terms in the member's zone.
func entryFor(p *domain.Program, m *member, op *Op, at, now time.Time) (*domain.Entry, error) {
	e := &domain.Entry{Key: op.Key, Kind: op.Kind, Time: at, Reason: op.Reason, Actor: op.Actor}
	loc := m.location()
	switch op.Kind {
	case domain.KindEarn:
		if pu := op.Purchase; pu != nil {
			if pu.Currency != p.Currency {
				return nil, fault.InvalidField("purchase.amount.currency", "the programme counts %s, not %q", p.Currency, pu.Currency)
			}
			current, _ := currentTier(p, m, now)
			var tier *domain.Tier
			if i := p.TierIndex(current.Tier); i >= 0 {
				tier = &p.Tiers[i]
			}
			first := len(m.Account.Earned) == 0
			birthday := m.BirthMonth != 0 && int32(at.In(loc).Month()) == m.BirthMonth
			e.Requested = p.PurchasePoints(pu.Amount, pu.Lines, tier, first, birthday)
			e.Order, e.Amount = pu.Order, pu.Amount
			e.AvailableAt, e.Expires = p.LotTerms(at, loc, true)
		} else {
			e.Requested = op.Points
			_, e.Expires = p.LotTerms(at, loc, false)
		}
	case domain.KindAdjust:
		e.Requested = op.Points
		if op.Points > 0 {
			_, e.Expires = p.LotTerms(at, loc, false)
		}
	case domain.KindRedeem:
		e.Requested = op.Points
	case domain.KindReverse:
		e.Order, e.Refunded, e.AllowNegative = op.Order, op.Refunded, p.AllowNegative
		if op.RefundDelta != 0 {
			var before int64
			if er := m.Account.EarnedBy(op.Order); er != nil {
				before = er.Refunded
			}
			e.Refunded = before + op.RefundDelta
		}
	default:
		return nil, fmt.Errorf("store: unknown entry kind %d", op.Kind)
	}
	return e, nil
}

// append stores an applied entry, counts it toward tiers and publishes it.
func (s *Store) append(ctx context.Context, t tx, m *member, e *domain.Entry) error {
	if err := boltdb.PutJSON(t.b(bucketEntries), entryKey(t.tenant, t.program, m.Customer, e.Seq), e); err != nil {
		return err
	}
	if q, ok := domain.QualifierOf(e); ok {
		m.Qualifiers = append(m.Qualifiers, q)
	}
	_, err := s.feed.Append(ctx, t.Tx, t.tenant, TypePointsChanged, m.Customer, convert.EntryToProto(t.program, m.Customer, e))
	return err
}

// expireDue applies the member's expiries due at now to the account in
// memory, each at its instant, and returns their entries to write.
func expireDue(m *member, now time.Time) ([]domain.Entry, error) {
	due := m.Account.DueExpiries(now)
	for i := range due {
		due[i].Seq = m.Account.Seq + 1
		if err := m.Account.Apply(&due[i]); err != nil {
			return nil, fmt.Errorf("store: expiry of %q: %w", m.Customer, err)
		}
	}
	return due, nil
}

// writeExpiries stores applied expiry entries with their keys.
func (s *Store) writeExpiries(ctx context.Context, t tx, m *member, es []domain.Entry) error {
	for i := range es {
		if err := s.append(ctx, t, m, &es[i]); err != nil {
			return err
		}
		if err := t.b(bucketKeys).Put(boltdb.Key(t.tenant, t.program, m.Customer, es[i].Key), boltdb.U64(es[i].Seq)); err != nil {
			return err
		}
	}
	return nil
}

// evaluate re-evaluates the member's tier at now, stores the member and
// schedules its next timer: the next expiry, grace end or window rollover.
func (s *Store) evaluate(ctx context.Context, t tx, p *domain.Program, m *member, now time.Time) error {
	loc := m.location()
	q, rollover, kept := p.Qualifying(m.Qualifiers, now, loc)
	m.Qualifiers = kept
	next, reason := p.EvaluateTier(m.Tier, q, now.In(loc))
	next.GraceUntil = utc(next.GraceUntil)
	if next.Tier != m.Tier.Tier {
		change := &loyaltyv1.TierChange{ProgramId: t.program, CustomerId: m.Customer, Before: m.Tier.Tier, After: next.Tier,
			Qualifying: q, Time: convert.Timestamp(now), Reason: reason}
		if _, err := s.feed.Append(ctx, t.Tx, t.tenant, TypeTierChanged, m.Customer, change); err != nil {
			return err
		}
	}
	m.Tier = next
	if err := t.putMember(m); err != nil {
		return err
	}
	due := earliest(m.Account.NextExpiry(), m.Tier.GraceUntil, rollover)
	changed, err := memberTimers.Schedule(t.Tx, t.memberKey(m.Customer), due)
	if changed && !due.IsZero() {
		s.wakeTimers()
	}
	return err
}

func earliest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if !t.IsZero() && (out.IsZero() || t.Before(out)) {
			out = t
		}
	}
	return out
}

// fireBatch bounds the members one timer transaction settles.
const fireBatch = 256

// FireDue settles every member whose timer is due at now — expiries at
// their instants, then the tier at now — and reschedules them, in the
// transaction that acts on them, so each fires exactly once across
// restarts and overdue ones catch up in order. It returns how many fired
// and when the next is due.
func (s *Store) FireDue(ctx context.Context, now time.Time) (int, time.Time, error) {
	total := 0
	for {
		var next time.Time
		fired := 0
		var dues []time.Time
		err := s.db.Update(ctx, func(btx *bolt.Tx) error {
			dues = dues[:0]
			owners, n, err := memberTimers.Due(btx, now, fireBatch)
			if err != nil {
				return err
			}
			next, fired = n, len(owners)
			programs := map[string]*domain.Program{}
			for _, o := range owners {
				parts := bytes.SplitN(o, []byte{boltdb.Sep}, 3)
				if len(parts) != 3 {
					return fmt.Errorf("store: malformed timer owner %q", o)
				}
				t := tx{Tx: btx, tenant: string(parts[0]), program: string(parts[1])}
				pk := string(parts[0]) + "\x00" + string(parts[1])
				p := programs[pk]
				if p == nil {
					if p, err = t.loadProgram(); err != nil {
						return err
					}
					programs[pk] = p
				}
				m, err := t.loadMember(string(parts[2]))
				if err != nil {
					return err
				}
				dues = append(dues, memberTimers.When(btx, o))
				if _, err := memberTimers.Schedule(btx, o, time.Time{}); err != nil {
					return err
				}
				expired, err := expireDue(m, now)
				if err != nil {
					return err
				}
				if err := s.writeExpiries(ctx, t, m, expired); err != nil {
					return err
				}
				if err := s.evaluate(ctx, t, p, m, now); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, time.Time{}, err
		}
		s.metrics.timersFired(ctx, dues, now)
		total += fired
		if fired < fireBatch {
			return total, next, nil
		}
	}
}

// View is the member view.
type View struct {
	Program                                   *domain.Program
	Customer                                  string
	Enrolled                                  time.Time
	TimeZone                                  string
	BirthMonth                                int32
	Balance, Pending, ExpiringSoon            int64
	NextExpiry                                time.Time
	Tier, NextTier                            string
	Qualifying, ToNext                        int64
	GraceUntil                                time.Time
	ValueAtStake                              int64
	LifetimeEarned, LifetimeRedeemed, Expired int64
}

// currentTier is the member's tier at now and their qualifying value: the
// stored tier re-evaluated, so that a grace period or a window that ended
// since the last timer counts even before the timer loop catches up.
func currentTier(p *domain.Program, m *member, now time.Time) (domain.TierState, int64) {
	loc := m.location()
	q, _, _ := p.Qualifying(slices.Clone(m.Qualifiers), now, loc)
	st, _ := p.EvaluateTier(m.Tier, q, now.In(loc))
	st.GraceUntil = utc(st.GraceUntil)
	return st, q
}

func view(p *domain.Program, m *member, now time.Time) *View {
	a := &m.Account
	tier, q := currentTier(p, m, now)
	v := &View{Program: p, Customer: m.Customer, Enrolled: m.Enrolled, TimeZone: m.TimeZone, BirthMonth: m.BirthMonth,
		Balance: a.Available(now), Pending: a.Pending(now), ExpiringSoon: a.ExpiringBy(now, now.Add(ExpiringSoonWindow)),
		Tier: tier.Tier, GraceUntil: tier.GraceUntil, Qualifying: q,
		LifetimeEarned: a.TotalEarned, LifetimeRedeemed: a.TotalRedeemed, Expired: a.TotalExpired}
	for i := range a.Lots {
		if l := &a.Lots[i]; !l.Expired(now) && !l.Expires.IsZero() && (v.NextExpiry.IsZero() || l.Expires.Before(v.NextExpiry)) {
			v.NextExpiry = l.Expires
		}
	}
	if i := p.TierIndex(tier.Tier); i >= 0 {
		v.ValueAtStake += p.Tiers[i].BenefitValue
		if i+1 < len(p.Tiers) {
			v.NextTier = p.Tiers[i+1].ID
			v.ToNext = max(0, p.Tiers[i+1].Threshold-v.Qualifying)
		}
	}
	v.ValueAtStake += max(0, v.Balance+v.Pending) * p.PointValue
	return v
}

// Reconciliation is the outcome of Reconcile.
type Reconciliation struct {
	Members, Entries int64
	Differences      []Difference
}

// Difference is a member whose stored account differs from their ledger.
type Difference struct {
	Customer, Detail string
}

// Reconcile replays every member's ledger of a programme, recomputing each
// entry's effect, and compares the outcome with the stored account; it
// also checks every idempotency key names an existing entry.
func (s *Store) Reconcile(ctx context.Context, tenant, program string) (out *Reconciliation, err error) {
	defer func() { s.metrics.reconciled(ctx, tenant, program, out, err) }()
	out = &Reconciliation{}
	err = s.db.View(func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant, program: program}
		if _, err := t.loadProgram(); err != nil {
			return err
		}
		prefix := boltdb.Prefix(tenant, program)
		mc := btx.Bucket(bucketMembers).Cursor()
		ec := btx.Bucket(bucketEntries).Cursor()
		for k, v := mc.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = mc.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			m, err := decodeMember(v)
			if err != nil {
				return err
			}
			out.Members++
			var entries []domain.Entry
			ep := boltdb.Prefix(tenant, program, m.Customer)
			for ek, ev := ec.Seek(ep); ek != nil && bytes.HasPrefix(ek, ep); ek, ev = ec.Next() {
				e, err := boltdb.GetJSON[domain.Entry](ev)
				if err != nil {
					return err
				}
				entries = append(entries, *e)
			}
			out.Entries += int64(len(entries))
			replayed, err := domain.Replay(entries)
			switch {
			case err != nil:
				out.Differences = append(out.Differences, Difference{m.Customer, err.Error()})
			case !replayed.Equal(&m.Account):
				out.Differences = append(out.Differences, Difference{m.Customer,
					fmt.Sprintf("stored: %s; the ledger gives: %s", summary(&m.Account), summary(replayed))})
			}
		}
		kp := boltdb.Prefix(tenant, program)
		kc := btx.Bucket(bucketKeys).Cursor()
		for k, v := kc.Seek(kp); k != nil && bytes.HasPrefix(k, kp); k, v = kc.Next() {
			parts := bytes.SplitN(k[len(kp):], []byte{boltdb.Sep}, 2)
			if len(v) < 8 || len(parts) != 2 {
				return fmt.Errorf("store: malformed idempotency record %q", k)
			}
			seq := binary.BigEndian.Uint64(v[:8])
			if btx.Bucket(bucketEntries).Get(entryKey(tenant, program, string(parts[0]), seq)) == nil {
				out.Differences = append(out.Differences, Difference{string(parts[0]),
					fmt.Sprintf("idempotency key %q names entry %d, which does not exist", parts[1], seq)})
			}
		}
		return nil
	})
	return out, err
}

// summary describes an account for a reconciliation difference.
func summary(a *domain.Account) string {
	var pts int64
	for _, l := range a.Lots {
		pts += l.Points
	}
	return fmt.Sprintf("%d points in %d lots, debt %d, %d entries", pts, len(a.Lots), a.Debt, a.Seq)
}

// utc converts a time to UTC, keeping the zero time zero.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}
