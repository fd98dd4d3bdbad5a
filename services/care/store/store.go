package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/webhook"
	"rapport.dev/services/care/domain"
)

// Feed event types of the care service.
const (
	TypeTaskScheduled = "task.scheduled"
	TypeTaskDue       = "task.due"
	TypeTaskCompleted = "task.completed"
	TypeTaskSkipped   = "task.skipped"
	TypeTaskEscalated = "task.escalated"
	TypeMessageSent   = "message.sent"
)

// DefaultMaxTouchesPerWeek is the contact-pressure cap of a customer who
// has not set one.
const DefaultMaxTouchesPerWeek = 2

// MessageEventType is the X-Rapport-Event of care's automatic messages.
const MessageEventType = "care.message"

// Messages is how care sends automatic messages: the webhook outbox in
// care.db and the tenant's signing secret. A store without an outbox
// refuses to fire message plans (the timer stays, and fires once one is
// configured).
type Messages struct {
	Outbox *webhook.Outbox
	// Secret returns the tenant's webhook signing secret.
	Secret func(tenant string) []byte
}

// Store is care's storage and scheduler.
type Store struct {
	db    *boltdb.DB
	feed  *feed.Log
	clock clock.Clock
	log   *slog.Logger
	msgs  Messages
	// timerWake is signalled after a commit that may have scheduled an
	// earlier timer.
	timerWake chan struct{}
	zones     sync.Map // time zone name -> *time.Location
	// metrics is nil until Instrument.
	metrics *metrics
}

// New returns a store over an open care.db and its feed.
func New(db *boltdb.DB, log *feed.Log, clk clock.Clock, logger *slog.Logger, msgs Messages) *Store {
	if logger == nil {
		logger = slog.Default()
	}
	return &Store{db: db, feed: log, clock: clk, log: logger, msgs: msgs, timerWake: make(chan struct{}, 1)}
}

// DB exposes the database for the feed followers.
func (s *Store) DB() *boltdb.DB { return s.db }

// TimerWake is signalled after a commit that may have scheduled an earlier timer.
func (s *Store) TimerWake() <-chan struct{} { return s.timerWake }

func (s *Store) wakeTimers(btx *bolt.Tx) {
	btx.OnCommit(func() {
		select {
		case s.timerWake <- struct{}{}:
		default:
		}
	})
}

// location loads a zone once. An unknown zone reads as UTC: zones are
// validated where they enter (the profile service), and a zone database
// that lost one must not stop the scheduler.
func (s *Store) location(name string) *time.Location {
	if name == "" {
		return time.UTC
	}
	if l, ok := s.zones.Load(name); ok {
		return l.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		s.log.Warn("unknown time zone, planning in UTC", "time_zone", name, "error", err)
		loc = time.UTC
	}
	s.zones.Store(name, loc)
	return loc
}

// zoneFor is the zone a plan plans in for c: the customer's, else the
// plan's default, else UTC.
func (s *Store) zoneFor(p *domain.Plan, c *customer) *time.Location {
	if c.TimeZone == "" && p != nil {
		return s.location(p.DefaultTimeZone)
	}
	return s.location(c.TimeZone)
}

// customer is what care knows of a customer.
type customer struct {
	ID       string           `json:"id"`
	TimeZone string           `json:"tz,omitempty"`
	Owner    string           `json:"owner,omitempty"`
	Name     string           `json:"name,omitempty"`
	Birthday *domain.Birthday `json:"birthday,omitempty"`
	Lunar    *lunarBirthday   `json:"lunar,omitempty"`
	// Tier is the value-pyramid tier ("platinum"), "" when unscored.
	Tier         string   `json:"tier,omitempty"`
	Segments     []string `json:"segments,omitempty"`
	LoyaltyTiers []string `json:"loyalty_tiers,omitempty"`
	// Activity is "active", "dormant", "lost" or "".
	Activity    string    `json:"activity,omitempty"`
	LastContact time.Time `json:"last_contact,omitzero"`
	Categories  []string  `json:"categories,omitempty"`
	// Gone is an erased or merged-away customer: no plan targets them.
	Gone bool `json:"gone,omitempty"`
	// ProfileDNC and ProfileOptOut are the profile's consent; Consent is
	// what SetConsent stored. Both apply.
	ProfileDNC    bool            `json:"profile_dnc,omitempty"`
	ProfileOptOut []string        `json:"profile_opt_out,omitempty"`
	Consent       Consent         `json:"consent"`
	Pressure      domain.Pressure `json:"pressure"`
}

type lunarBirthday struct {
	Month int  `json:"month"`
	Day   int  `json:"day"`
	Leap  bool `json:"leap,omitempty"`
}

// consent is the consent every touch is checked against.
func (c *customer) consent() domain.Consent {
	out := domain.Consent{DoNotContact: c.ProfileDNC || c.Consent.DoNotContact}
	for _, ch := range slices.Concat(c.ProfileOptOut, c.Consent.OptedOutChannels) {
		if out.Channels == nil {
			out.Channels = map[string]bool{}
		}
		out.Channels[ch] = false
	}
	if q := c.Consent.QuietHours; q != nil {
		out.QuietHours = domain.QuietHours{Start: q.Start.Hour*60 + q.Start.Minute, End: q.End.Hour*60 + q.End.Minute}
	}
	return out
}

func (c *customer) touchCap() int {
	if c.Consent.MaxTouchesPerWeek > 0 {
		return c.Consent.MaxTouchesPerWeek
	}
	return DefaultMaxTouchesPerWeek
}

// schedule is a plan's pending work for one customer.
type schedule struct {
	// Anchor is when the customer became a target: a revisit series
	// starts there, and a silence is counted from it.
	Anchor time.Time `json:"anchor"`
	// Last is the planned instant of the last recurring occurrence fired
	// or dropped.
	Last time.Time `json:"last,omitzero"`
	// Pending are the occurrences not yet fired, soonest first.
	Pending []occurrence `json:"pending,omitempty"`
	// Recommended is set once a recommendation was planned: it is told once.
	Recommended bool `json:"recommended,omitempty"`
}

// occurrence is one planned firing of a plan for a customer.
type occurrence struct {
	// Key names the occurrence; the task and message ids derive from it.
	// Recurring occurrences are "r:<planned unix seconds>", the others
	// name their upstream event.
	Key     string    `json:"key"`
	Planned time.Time `json:"planned"`
	// At is when it fires: Planned, or later when deferred.
	At  time.Time `json:"at"`
	SLA time.Time `json:"sla,omitzero"`
}

func (o occurrence) recurring() bool { return strings.HasPrefix(o.Key, "r:") }

func recurringKey(planned time.Time) string { return "r:" + strconv.FormatInt(planned.Unix(), 10) }

func (sc *schedule) sort() {
	slices.SortStableFunc(sc.Pending, func(a, b occurrence) int { return a.At.Compare(b.At) })
}

// add adds an occurrence unless one with its key is pending.
func (sc *schedule) add(o occurrence) bool {
	for _, p := range sc.Pending {
		if p.Key == o.Key {
			return false
		}
	}
	sc.Pending = append(sc.Pending, o)
	sc.sort()
	return true
}

func (sc *schedule) next() time.Time {
	if len(sc.Pending) == 0 {
		return time.Time{}
	}
	return sc.Pending[0].At
}

// tx is one transaction's view of one tenant.
type tx struct {
	*bolt.Tx
	tenant string
}

func (t tx) b(name []byte) *bolt.Bucket { return t.Bucket(name) }

func (t tx) plan(id string) (*domain.Plan, error) {
	raw := t.b(bucketPlans).Get(boltdb.Key(t.tenant, id))
	if raw == nil {
		return nil, fmt.Errorf("plan %q: %w", id, fault.ErrNotFound)
	}
	return boltdb.GetJSON[domain.Plan](raw)
}

func (t tx) plans() ([]*domain.Plan, error) {
	var out []*domain.Plan
	prefix := boltdb.Prefix(t.tenant)
	c := t.b(bucketPlans).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		p, err := boltdb.GetJSON[domain.Plan](v)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// customer returns what care knows of id; found is false for a customer
// no feed has mentioned yet (the zero record, with its id).
func (t tx) customer(id string) (*customer, bool, error) {
	raw := t.b(bucketCustomers).Get(boltdb.Key(t.tenant, id))
	if raw == nil {
		return &customer{ID: id}, false, nil
	}
	c, err := boltdb.GetJSON[customer](raw)
	return c, err == nil, err
}

func (t tx) putCustomer(c *customer) error {
	return boltdb.PutJSON(t.b(bucketCustomers), boltdb.Key(t.tenant, c.ID), c)
}

// customerIDs lists the tenant's known customers.
func (t tx) customerIDs() []string {
	var out []string
	prefix := boltdb.Prefix(t.tenant)
	c := t.b(bucketCustomers).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		out = append(out, string(k[len(prefix):]))
	}
	return out
}

func (t tx) scheduleKey(plan, cust string) []byte { return boltdb.Key(t.tenant, plan, cust) }

func (t tx) schedule(plan, cust string) (*schedule, error) {
	raw := t.b(bucketSchedules).Get(t.scheduleKey(plan, cust))
	if raw == nil {
		return nil, nil
	}
	return boltdb.GetJSON[schedule](raw)
}

// putSchedule stores a schedule and sets its timer to its soonest
// occurrence; nil removes both.
func (s *Store) putSchedule(t tx, plan, cust string, sc *schedule) error {
	key := t.scheduleKey(plan, cust)
	var due time.Time
	if sc == nil {
		if err := t.b(bucketSchedules).Delete(key); err != nil {
			return err
		}
	} else {
		if err := boltdb.PutJSON(t.b(bucketSchedules), key, sc); err != nil {
			return err
		}
		due = sc.next()
	}
	changed, err := planTimers.Schedule(t.Tx, key, due)
	if changed && !due.IsZero() {
		s.wakeTimers(t.Tx)
	}
	return err
}

func (t tx) manager(owner string) string {
	if owner == "" {
		return ""
	}
	return string(t.b(bucketManagers).Get(boltdb.Key(t.tenant, owner)))
}

// targets reports whether p is for c now.
func targets(p *domain.Plan, c *customer) bool {
	if !p.Enabled || c.Gone {
		return false
	}
	tg := p.Target
	if len(tg.Tiers) > 0 && !slices.Contains(tg.Tiers, c.Tier) {
		return false
	}
	if len(tg.SegmentIDs) > 0 && !slices.ContainsFunc(tg.SegmentIDs, func(s string) bool { return slices.Contains(c.Segments, s) }) {
		return false
	}
	if len(tg.LoyaltyTiers) > 0 && !slices.ContainsFunc(tg.LoyaltyTiers, func(s string) bool { return slices.Contains(c.LoyaltyTiers, s) }) {
		return false
	}
	return tg.AllCustomers || len(tg.Tiers) > 0 || len(tg.SegmentIDs) > 0 || len(tg.LoyaltyTiers) > 0
}

// nextRecurring is the first planned instant strictly after `after` of a
// recurring plan for c, zero when there is none (no birthday known, a
// series that ended, a tier without a rhythm).
func (s *Store) nextRecurring(p *domain.Plan, c *customer, anchor, last, after time.Time) time.Time {
	loc := s.zoneFor(p, c)
	h, m := p.At.Hour, p.At.Minute
	switch p.Trigger() {
	case domain.TriggerRevisit:
		if r := p.RecurrenceFor(c.Tier); r != nil {
			return r.Next(anchor, after, loc, h, m)
		}
	case domain.TriggerBirthday:
		if c.Lunar != nil && (p.Birthday.PreferLunar || c.Birthday == nil) {
			return domain.NextLunarBirthday(c.Lunar.Month, c.Lunar.Day, c.Lunar.Leap, after, loc, h, m)
		}
		if c.Birthday != nil {
			return domain.NextBirthday(*c.Birthday, after, loc, h, m)
		}
	case domain.TriggerHolidays:
		var out time.Time
		for _, f := range p.Holidays.Festivals {
			out = earliest(out, domain.NextHoliday(f, after, loc, h, m))
		}
		for _, d := range p.Holidays.FixedDates {
			out = earliest(out, domain.NextHoliday(domain.FixedDate{Month: d.Month, Day: d.Day}, after, loc, h, m))
		}
		return out
	case domain.TriggerNotContacted:
		base := latest(c.LastContact, anchor, last).In(loc)
		day := domain.CivilDate{Year: base.Year(), Month: base.Month(), Day: base.Day() + p.NotContacted.Days}
		at := domain.LocalAt(day, h, m, loc)
		for i := 0; !at.After(after) && i < 3700; i++ {
			// Still silent after a fire that was caught up late: next local day.
			l := after.In(loc)
			day = domain.CivilDate{Year: l.Year(), Month: l.Month(), Day: l.Day() + i}
			at = domain.LocalAt(day, h, m, loc)
		}
		return at
	}
	return time.Time{}
}

// reconcile brings the schedule of plan p for customer c in line with
// who c is now: a customer who stops being a target loses the schedule
// and its timer; one who is a target gets the next recurring occurrence
// planned. Occurrences already due are kept, to fire.
func (s *Store) reconcile(t tx, p *domain.Plan, c *customer, now time.Time) error {
	sc, err := t.schedule(p.ID, c.ID)
	if err != nil {
		return err
	}
	if !targets(p, c) {
		if sc == nil {
			return nil
		}
		return s.putSchedule(t, p.ID, c.ID, nil)
	}
	if sc == nil {
		sc = &schedule{Anchor: now}
	}
	if p.Recurring() {
		i := slices.IndexFunc(sc.Pending, occurrence.recurring)
		if i < 0 || sc.Pending[i].At.After(now) {
			next := s.nextRecurring(p, c, sc.Anchor, sc.Last, latest(now, sc.Last))
			switch {
			case i >= 0 && sc.Pending[i].Planned.Equal(next):
				// unchanged (and possibly deferred): keep
			case i >= 0:
				sc.Pending = slices.Delete(sc.Pending, i, i+1)
				fallthrough
			default:
				if !next.IsZero() {
					sc.add(occurrence{Key: recurringKey(next), Planned: next.UTC(), At: next.UTC()})
				}
			}
		}
	}
	if !p.Recurring() && len(sc.Pending) == 0 && !sc.Recommended {
		// An event-driven plan keeps a schedule only while work is pending.
		if t.b(bucketSchedules).Get(t.scheduleKey(p.ID, c.ID)) != nil {
			return s.putSchedule(t, p.ID, c.ID, nil)
		}
		return nil
	}
	return s.putSchedule(t, p.ID, c.ID, sc)
}

// reconcileCustomer reconciles every plan of the tenant for c.
func (s *Store) reconcileCustomer(t tx, c *customer, now time.Time) error {
	plans, err := t.plans()
	if err != nil {
		return err
	}
	for _, p := range plans {
		if err := s.reconcile(t, p, c, now); err != nil {
			return err
		}
	}
	return nil
}

// reconcilePlan reconciles p for every known customer of the tenant.
func (s *Store) reconcilePlan(t tx, p *domain.Plan, now time.Time) error {
	for _, id := range t.customerIDs() {
		c, _, err := t.customer(id)
		if err != nil {
			return err
		}
		if err := s.reconcile(t, p, c, now); err != nil {
			return err
		}
	}
	return nil
}

// occurrenceID is the deterministic id of what an occurrence makes, so
// that nothing it makes can exist twice.
func occurrenceID(prefix, plan, cust, key string) string {
	sum := sha256.Sum256([]byte(plan + "\x00" + cust + "\x00" + key))
	return prefix + hex.EncodeToString(sum[:16])
}

// TaskID is the id of the task plan makes for customer at occurrence.
func TaskID(plan, customer, occurrence string) string {
	return occurrenceID("task-", plan, customer, occurrence)
}

func messageID(plan, cust, key string) string { return occurrenceID("care-msg-", plan, cust, key) }

// fireBatch bounds the timers one transaction fires.
const fireBatch = 256

// FireDue fires every timer due at now, the earliest first across plans and
// tasks: a plan occurrence makes its task or message (or is deferred or
// dropped by consent and contact pressure), a task falls due or escalates.
// The transaction that acts on a timer also reschedules or removes it, so
// each fires exactly once across restarts, and timers overdue after
// downtime catch up in due order. It returns how many fired and when the
// next is due (zero if none).
func (s *Store) FireDue(ctx context.Context, now time.Time) (int, time.Time, error) {
	now = now.UTC()
	total := 0
	for {
		var next time.Time
		fired := 0
		var firedTimers []firedTimer
		err := s.db.Update(ctx, func(btx *bolt.Tx) error {
			fired, firedTimers = 0, firedTimers[:0]
			for fired < fireBatch {
				po, pAt, pNext, err := firstDue(btx, planTimers, now)
				if err != nil {
					return err
				}
				to, tAt, tNext, err := firstDue(btx, taskTimers, now)
				if err != nil {
					return err
				}
				switch {
				case po == nil && to == nil:
					next = earliest(pNext, tNext)
					return nil
				case po != nil && (to == nil || !tAt.Before(pAt)):
					firedTimers = append(firedTimers, firedTimer{plan: true, due: pAt})
					// A timer may rightly stay where it was: the schedule's
					// next occurrence can be due at the same instant (two
					// purchases on one day). Progress is the occurrence
					// that fired leaving the head of the schedule.
					head, err := planHead(btx, po)
					if err != nil {
						return err
					}
					if err := s.firePlan(ctx, btx, po, now); err != nil {
						return err
					}
					if w := planTimers.When(btx, po); !w.IsZero() && !w.After(now) && w.Equal(pAt) {
						if after, err := planHead(btx, po); err != nil || after == head {
							return fmt.Errorf("store: plan timer %q did not move from %v (%v)", po, w, err)
						}
					}
				default:
					firedTimers = append(firedTimers, firedTimer{due: tAt})
					if err := s.fireTask(ctx, btx, to, now); err != nil {
						return err
					}
					if w := taskTimers.When(btx, to); !w.IsZero() && !w.After(now) && w.Equal(tAt) {
						return fmt.Errorf("store: task timer %q did not move from %v", to, w)
					}
				}
				fired++
			}
			return nil
		})
		if err != nil {
			return total, time.Time{}, err
		}
		s.metrics.timersFired(ctx, firedTimers, now)
		total += fired
		if fired < fireBatch {
			return total, next, nil
		}
	}
}

// firstDue returns the set's earliest timer due at now and its time, or
// nil and the next timer's time.
func firstDue(btx *bolt.Tx, set interface {
	Due(*bolt.Tx, time.Time, int) ([][]byte, time.Time, error)
	When(*bolt.Tx, []byte) time.Time
}, now time.Time) ([]byte, time.Time, time.Time, error) {
	owners, next, err := set.Due(btx, now, 1)
	if err != nil || len(owners) == 0 {
		return nil, time.Time{}, next, err
	}
	return owners[0], set.When(btx, owners[0]), time.Time{}, nil
}

// planHead returns the key and instant of the first pending occurrence of
// the schedule a plan timer belongs to, "" when there is none.
func planHead(btx *bolt.Tx, owner []byte) (string, error) {
	parts := bytes.SplitN(owner, []byte{boltdb.Sep}, 3)
	if len(parts) != 3 {
		return "", fmt.Errorf("store: malformed plan timer owner %q", owner)
	}
	sc, err := tx{Tx: btx, tenant: string(parts[0])}.schedule(string(parts[1]), string(parts[2]))
	if err != nil || sc == nil || len(sc.Pending) == 0 {
		return "", err
	}
	return sc.Pending[0].Key + "@" + sc.Pending[0].At.Format(time.RFC3339Nano), nil
}

// firePlan fires the earliest occurrence of a plan's schedule for a customer.
func (s *Store) firePlan(ctx context.Context, btx *bolt.Tx, owner []byte, now time.Time) error {
	parts := bytes.SplitN(owner, []byte{boltdb.Sep}, 3)
	if len(parts) != 3 {
		return fmt.Errorf("store: malformed plan timer owner %q", owner)
	}
	t := tx{Tx: btx, tenant: string(parts[0])}
	planID, custID := string(parts[1]), string(parts[2])
	sc, err := t.schedule(planID, custID)
	if err != nil {
		return err
	}
	p, err := t.plan(planID)
	if errors.Is(err, fault.ErrNotFound) {
		return s.putSchedule(t, planID, custID, nil)
	}
	if err != nil {
		return err
	}
	c, _, err := t.customer(custID)
	if err != nil {
		return err
	}
	if sc == nil || len(sc.Pending) == 0 || !targets(p, c) {
		return s.putSchedule(t, planID, custID, nil)
	}
	occ := sc.Pending[0]
	if occ.At.After(now) {
		return s.putSchedule(t, planID, custID, sc) // the timer was stale
	}
	deferTo, err := s.act(ctx, t, p, c, occ, now)
	if err != nil {
		return err
	}
	if !deferTo.IsZero() {
		sc.Pending[0].At = deferTo.UTC()
		sc.sort()
	} else {
		sc.Pending = sc.Pending[1:]
		if occ.recurring() {
			sc.Last = occ.Planned
			// Occurrences missed during downtime are coalesced: one
			// revisit after an outage, not one per missed fortnight.
			if next := s.nextRecurring(p, c, sc.Anchor, sc.Last, latest(occ.Planned, now)); !next.IsZero() {
				sc.add(occurrence{Key: recurringKey(next), Planned: next.UTC(), At: next.UTC()})
			}
		}
	}
	if err := t.putCustomer(c); err != nil {
		return err
	}
	return s.putSchedule(t, planID, custID, sc)
}

// act makes an occurrence's task or message, changing c's pressure. It
// returns a later time when the occurrence must wait (the weekly cap,
// quiet hours); zero when it is done with, made or dropped.
func (s *Store) act(ctx context.Context, t tx, p *domain.Plan, c *customer, occ occurrence, now time.Time) (time.Time, error) {
	loc := s.zoneFor(p, c)
	cons := c.consent()
	channel := ""
	if p.Message != nil {
		channel = p.Message.Channel
	}
	if d := cons.Check(channel); !d.Admitted() {
		s.log.InfoContext(ctx, "care occurrence dropped", "tenant", t.tenant, "plan", p.ID, "customer", c.ID, "occurrence", occ.Key, "reason", d.Reason)
		return time.Time{}, nil
	}
	touch := domain.Touch{PlanID: p.ID, Kind: p.Trigger(), Channel: channel, DedupKey: p.DedupKey()}
	if p.Task != nil {
		due := domain.NextWorkingTime(occ.At, loc, p.Hours())
		if due.IsZero() {
			due = occ.At
		}
		at := latest(now, due)
		// A complaint's follow-up answers the customer: it is never capped.
		if p.Trigger() != domain.TriggerComplaint {
			switch d := c.Pressure.Admit(touch, at, c.touchCap()); d.Outcome {
			case domain.OutcomeDeferred:
				return domain.NextWorkingTime(d.Until, loc, p.Hours()), nil
			case domain.OutcomeDuplicate:
				s.log.InfoContext(ctx, "care occurrence dropped", "tenant", t.tenant, "plan", p.ID, "customer", c.ID, "occurrence", occ.Key, "reason", d.Reason)
				return time.Time{}, nil
			}
		}
		touch.At = at
		c.Pressure.Record(touch)
		return time.Time{}, s.makeTask(ctx, t, p, c, occ, due.UTC(), now)
	}
	if q := domain.OutOfQuietHours(now, loc, cons.QuietHours); q.After(now) {
		return q, nil
	}
	switch d := c.Pressure.Admit(touch, now, c.touchCap()); d.Outcome {
	case domain.OutcomeDeferred:
		return latest(d.Until, domain.OutOfQuietHours(d.Until, loc, cons.QuietHours)), nil
	case domain.OutcomeDuplicate:
		return time.Time{}, nil
	}
	touch.At = now
	c.Pressure.Record(touch)
	return time.Time{}, s.sendMessage(ctx, t, p, c, occ, now)
}

// makeTask creates the occurrence's task, due at due.
func (s *Store) makeTask(ctx context.Context, t tx, p *domain.Plan, c *customer, occ occurrence, due, now time.Time) error {
	id := TaskID(p.ID, c.ID, occ.Key)
	if t.b(bucketTasks).Get(boltdb.Key(t.tenant, id)) != nil {
		return nil // made before: an occurrence makes one task
	}
	loc := s.zoneFor(p, c)
	task := &domain.Task{ID: id, PlanID: p.ID, CustomerID: c.ID, Owner: c.Owner,
		Title: expand(p.Task.Title, c), Note: p.Task.Note, Trigger: p.Trigger(), Occurrence: occ.Key,
		State: domain.TaskScheduled, Due: due, LocalDue: localDue(due, loc), SLA: occ.SLA, Created: now}
	if err := s.putTask(t, nil, task); err != nil {
		return err
	}
	if err := s.publishTask(ctx, t, TypeTaskScheduled, task); err != nil {
		return err
	}
	if !due.After(now) {
		task.State = domain.TaskDue
		if err := s.putTask(t, nil, task); err != nil {
			return err
		}
		if err := s.publishTask(ctx, t, TypeTaskDue, task); err != nil {
			return err
		}
	}
	return s.scheduleTask(t, task)
}

func expand(template string, c *customer) string {
	name := c.Name
	if name == "" {
		name = c.ID
	}
	return strings.ReplaceAll(template, "{name}", name)
}

func localDue(due time.Time, loc *time.Location) string {
	return due.In(loc).Format("2006-01-02 15:04") + " " + loc.String()
}

// messageBody is the JSON an automatic message's webhook receives.
type messageBody struct {
	DeliveryID string    `json:"delivery_id"`
	Tenant     string    `json:"tenant"`
	PlanID     string    `json:"plan_id"`
	CustomerID string    `json:"customer_id"`
	Channel    string    `json:"channel"`
	Text       string    `json:"text"`
	Occurrence string    `json:"occurrence"`
	Planned    time.Time `json:"planned"`
}

// sendMessage hands the occurrence's message to the webhook outbox in this
// transaction.
func (s *Store) sendMessage(ctx context.Context, t tx, p *domain.Plan, c *customer, occ occurrence, now time.Time) error {
	if s.msgs.Outbox == nil || s.msgs.Secret == nil {
		// Failing here would fail every timer of the batch, again and again;
		// the occurrence is dropped instead, loudly (the service also warns
		// at start-up that message plans cannot send).
		s.log.WarnContext(ctx, "message not sent: no webhook outbox or signing secret configured",
			"tenant", t.tenant, "plan", p.ID, "customer", c.ID, "occurrence", occ.Key)
		return nil
	}
	id := messageID(p.ID, c.ID, occ.Key)
	body := messageBody{DeliveryID: id, Tenant: t.tenant, PlanID: p.ID, CustomerID: c.ID, Channel: p.Message.Channel,
		Text: expand(p.Message.Template, c), Occurrence: occ.Key, Planned: occ.Planned}
	raw, err := jsonMarshal(body)
	if err != nil {
		return err
	}
	msg := webhook.Message{ID: id, Tenant: t.tenant, URL: p.Message.WebhookURL, Secret: s.msgs.Secret(t.tenant),
		EventType: MessageEventType, Body: raw, CreatedAt: now}
	if err := s.msgs.Outbox.Enqueue(t.Tx, msg); err != nil {
		return err
	}
	return s.publishDelivery(ctx, t, id, p.ID, c.ID, now)
}

// putTask stores a task and keeps its owner queue entries and its
// customer's entry; old is the task as stored before (nil when new or
// unchanged in owner and due).
//
// An escalated task is in its manager's queue too, so the manager sees
// what was escalated to them.
func (s *Store) putTask(t tx, old, task *domain.Task) error {
	q := t.b(bucketQueue)
	if old != nil {
		for _, o := range queueOwners(old) {
			if err := q.Delete(queueKey(t.tenant, o, old.Due, old.ID)); err != nil {
				return err
			}
		}
	}
	for _, o := range queueOwners(task) {
		if err := q.Put(queueKey(t.tenant, o, task.Due, task.ID), nil); err != nil {
			return err
		}
	}
	// A task keeps its customer, so its entry is written once and stays.
	if err := t.b(bucketCustTasks).Put(customerTaskKey(t.tenant, task.CustomerID, task.ID), nil); err != nil {
		return err
	}
	return boltdb.PutJSON(t.b(bucketTasks), boltdb.Key(t.tenant, task.ID), task)
}

// queueOwners are the queues a task is in: its owner's and, once
// escalated, its manager's.
func queueOwners(task *domain.Task) []string {
	if task.EscalatedTo != "" && task.EscalatedTo != task.Owner {
		return []string{task.Owner, task.EscalatedTo}
	}
	return []string{task.Owner}
}

func queueKey(tenant, owner string, due time.Time, id string) []byte {
	return boltdb.Key(tenant, owner, boltdb.U64(uint64(due.UnixNano())), id)
}

func (t tx) task(id string) (*domain.Task, error) {
	raw := t.b(bucketTasks).Get(boltdb.Key(t.tenant, id))
	if raw == nil {
		return nil, fmt.Errorf("task %q: %w", id, fault.ErrNotFound)
	}
	return boltdb.GetJSON[domain.Task](raw)
}

// scheduleTask sets a task's timer to its next transition: a scheduled
// task falling due, an open one passing its SLA.
func (s *Store) scheduleTask(t tx, task *domain.Task) error {
	var due time.Time
	switch task.State {
	case domain.TaskScheduled:
		due = earliest(task.Due, task.SLA)
	case domain.TaskDue:
		due = task.SLA
	}
	changed, err := taskTimers.Schedule(t.Tx, boltdb.Key(t.tenant, task.ID), due)
	if changed && !due.IsZero() {
		s.wakeTimers(t.Tx)
	}
	return err
}

// fireTask moves a task along when its timer is due: a scheduled task
// falls due (and stays due until done); past its SLA an unfinished task
// escalates to the owner's manager, or is overdue when no manager is known.
func (s *Store) fireTask(ctx context.Context, btx *bolt.Tx, owner []byte, now time.Time) error {
	parts := bytes.SplitN(owner, []byte{boltdb.Sep}, 2)
	if len(parts) != 2 {
		return fmt.Errorf("store: malformed task timer owner %q", owner)
	}
	t := tx{Tx: btx, tenant: string(parts[0])}
	task, err := t.task(string(parts[1]))
	if errors.Is(err, fault.ErrNotFound) {
		_, err = taskTimers.Schedule(btx, owner, time.Time{})
		return err
	}
	if err != nil {
		return err
	}
	if task.State == domain.TaskScheduled && !task.Due.After(now) {
		task.State = domain.TaskDue
		if err := s.publishTask(ctx, t, TypeTaskDue, task); err != nil {
			return err
		}
	}
	if (task.State == domain.TaskScheduled || task.State == domain.TaskDue) && !task.SLA.IsZero() && !task.SLA.After(now) {
		if m := t.manager(task.Owner); m != "" {
			task.State, task.EscalatedTo = domain.TaskEscalated, m
			if err := s.publishTask(ctx, t, TypeTaskEscalated, task); err != nil {
				return err
			}
		} else {
			task.State = domain.TaskOverdue
		}
	}
	if err := s.putTask(t, nil, task); err != nil {
		return err
	}
	return s.scheduleTask(t, task)
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

func latest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if t.After(out) {
			out = t
		}
	}
	return out
}
