package store

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/feed"
	"rapport.dev/services/segmentation/convert"
	"rapport.dev/services/segmentation/domain"
)

// Feed event types of the segmentation service.
const (
	TypeSegmentEntered = "segment.entered"
	TypeSegmentLeft    = "segment.left"
	TypeScoresChanged  = "scores.changed"
)

// Store is segmentation's storage.
type Store struct {
	db    *boltdb.DB
	feed  *feed.Log
	clock clock.Clock
	env   *domain.RuleEnv
	log   *slog.Logger

	mu sync.Mutex
	// compiled caches compiled rules by their source: compiling costs far
	// more than evaluating, and rules change rarely.
	compiled map[string]*domain.Rule
	// dirty marks tenants whose population changed since the last rescore.
	dirty map[string]bool
	// timerWake is signalled when a timer earlier than any before may exist.
	timerWake chan struct{}
	// fitWake is signalled when a value model fit is queued; fitSem lets
	// one fit run at a time.
	fitWake chan struct{}
	fitSem  chan struct{}
	// metrics is nil until Instrument.
	metrics *metrics

	// bulkMu lets one ReevaluateAll run at a time. popMu guards pops, the
	// tenants' populations (population.go); popCount is len(pops), read
	// without the lock on every write.
	bulkMu   sync.Mutex
	popMu    sync.Mutex
	pops     map[string]*population
	popCount atomic.Int32
	// beforeBulkWrite, set by tests, runs between ReevaluateAll's plan and
	// its write; an error fails the pass.
	beforeBulkWrite func([]rowChange) error
	// perCustomer, set by tests, makes every full re-evaluation run
	// customer by customer in one transaction: the reference the pass is
	// held to.
	perCustomer bool
}

// New returns a store over an open segmentation.db and its feed.
func New(db *boltdb.DB, log *feed.Log, clk clock.Clock, logger *slog.Logger) (*Store, error) {
	env, err := domain.NewRuleEnv()
	if err != nil {
		return nil, err
	}
	return &Store{db: db, feed: log, clock: clk, env: env, log: logger,
		compiled: map[string]*domain.Rule{}, dirty: map[string]bool{}, pops: map[string]*population{}, timerWake: make(chan struct{}, 1),
		fitWake: make(chan struct{}, 1), fitSem: make(chan struct{}, 1)}, nil
}

// DB exposes the database for the feed follower.
func (s *Store) DB() *boltdb.DB { return s.db }

// decode and put keep the store's call sites short; the encoding is boltdb's.
func decode[T any](raw []byte) (*T, error) { return boltdb.GetJSON[T](raw) }

func put(b *bolt.Bucket, key []byte, v any) error { return boltdb.PutJSON(b, key, v) }

// decodeState decodes a states record (domain.State's binary encoding).
func decodeState(raw []byte) (*domain.State, error) {
	st := &domain.State{}
	if err := st.UnmarshalBinary(raw); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return st, nil
}

// putState stores st in the states bucket b in its binary encoding.
func putState(b *bolt.Bucket, key []byte, st *domain.State) error {
	raw, err := st.MarshalBinary()
	if err != nil {
		return fmt.Errorf("store: encode state: %w", err)
	}
	return b.Put(key, raw)
}

// rule returns the compiled form of src.
func (s *Store) rule(src string) (*domain.Rule, error) {
	s.mu.Lock()
	r := s.compiled[src]
	s.mu.Unlock()
	if r != nil {
		return r, nil
	}
	r, err := s.env.Compile(src)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.compiled[src] = r
	s.mu.Unlock()
	return r, nil
}

func (s *Store) markDirty(tenant string) {
	s.mu.Lock()
	s.dirty[tenant] = true
	s.mu.Unlock()
}

// Dirty returns and clears the tenants needing a rescore.
func (s *Store) Dirty() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for t := range s.dirty {
		out = append(out, t)
	}
	clear(s.dirty)
	return out
}

// TimerWake is signalled after a commit that may have scheduled an earlier timer.
func (s *Store) TimerWake() <-chan struct{} { return s.timerWake }

func (s *Store) wakeTimers() {
	select {
	case s.timerWake <- struct{}{}:
	default:
	}
}

// segmentRecord is a stored segment.
type segmentRecord struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"desc,omitempty"`
	Kind        int32     `json:"kind"`
	Rule        string    `json:"rule,omitempty"`
	Size        int64     `json:"size"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
	Revision    uint64    `json:"rev"`
	// Pending is set, to the reason of its members' coming changes, while
	// a created or changed dynamic segment waits for the full
	// re-evaluation that computes its members (CreateSegment,
	// UpdateSegment); the pass's last transaction clears it.
	Pending string `json:"pending,omitempty"`
}

const (
	kindStatic  = int32(segmentationv1.SegmentKind_SEGMENT_KIND_STATIC)
	kindDynamic = int32(segmentationv1.SegmentKind_SEGMENT_KIND_DYNAMIC)
)

// membership is a stored membership.
type membership struct {
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
}

// historyEntry is one entering or leaving.
type historyEntry struct {
	Entered bool      `json:"in"`
	Time    time.Time `json:"t"`
	Reason  string    `json:"reason,omitempty"`
}

// tx bundles one transaction's buckets for one tenant.
type tx struct {
	*bolt.Tx
	tenant string
	// quiet keeps touch from marking: ReevaluateAll updates its population
	// itself.
	quiet bool
}

func (t tx) b(name []byte) *bolt.Bucket { return t.Bucket(name) }

func (t tx) state(customer string) (*domain.State, error) {
	raw := t.b(bucketStates).Get(boltdb.Key(t.tenant, customer))
	if raw == nil {
		return &domain.State{CustomerID: customer}, nil
	}
	return decodeState(raw)
}

func (t tx) profile(customer string) (*profilev1.Customer, error) {
	raw := t.b(bucketProfiles).Get(boltdb.Key(t.tenant, customer))
	if raw == nil {
		return nil, fmt.Errorf("customer %q: %w", customer, fault.ErrNotFound)
	}
	c := &profilev1.Customer{}
	if err := proto.Unmarshal(raw, c); err != nil {
		return nil, fmt.Errorf("store: decode profile %q: %w", customer, err)
	}
	return c, nil
}

func (t tx) score(customer string) (*domain.Score, error) {
	sc, err := decodeScore(t.b(bucketScores).Get(boltdb.Key(t.tenant, customer)))
	return &sc, err
}

func (t tx) settings() (domain.Settings, error) {
	raw := t.b(bucketSettings).Get([]byte(t.tenant))
	if raw == nil {
		return domain.Settings{}.WithDefaults(), nil
	}
	st, err := decode[domain.Settings](raw)
	if err != nil {
		return domain.Settings{}, err
	}
	return st.WithDefaults(), nil
}

func (t tx) segments() ([]segmentRecord, error) {
	var out []segmentRecord
	prefix := boltdb.Prefix(t.tenant)
	c := t.b(bucketSegments).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		r, err := decode[segmentRecord](v)
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, nil
}

func (t tx) segment(id string) (*segmentRecord, error) {
	raw := t.b(bucketSegments).Get(boltdb.Key(t.tenant, id))
	if raw == nil {
		return nil, fmt.Errorf("segment %q: %w", id, fault.ErrNotFound)
	}
	return decode[segmentRecord](raw)
}

func (t tx) member(segment, customer string) bool {
	return t.b(bucketMembers).Get(boltdb.Key(t.tenant, segment, customer)) != nil
}

// ruleInput is what a rule sees for one customer at now.
func (t tx) ruleInput(customer string, now time.Time) (domain.RuleInput, error) {
	prof, err := t.profile(customer)
	if err != nil {
		return domain.RuleInput{}, err
	}
	st, err := t.state(customer)
	if err != nil {
		return domain.RuleInput{}, err
	}
	settings, err := t.settings()
	if err != nil {
		return domain.RuleInput{}, err
	}
	sc, err := t.score(customer)
	if err != nil {
		return domain.RuleInput{}, err
	}
	return domain.RuleInput{
		Customer:     prof,
		Features:     convert.FeaturesToProto(st.Features(now, settings.Currency)),
		Scores:       convert.ScoreToProto(*sc),
		Now:          now,
		WindowChange: st.NextWindowChange(now),
		TenureChange: st.NextTenureChange(now),
		Window:       st.WindowPurchases(now, settings.Currency),
	}, nil
}

// setMembership records entering or leaving, its history, the segment's
// size and the feed event, all in t.
func (s *Store) setMembership(ctx context.Context, t tx, seg *segmentRecord, customer string, enter bool, now time.Time, reason string) error {
	ev, err := s.membershipEvent(ctx, t.tenant, seg.ID, customer, enter, now, reason)
	if err != nil {
		return err
	}
	if err := s.writeMembership(t, seg, customer, enter, encodeMembership(now, reason), ev); err != nil {
		return err
	}
	return t.putSize(seg, now)
}

// membershipEvent encodes the feed event of entering or leaving.
func (s *Store) membershipEvent(ctx context.Context, tenant, segment, customer string, enter bool, now time.Time, reason string) (feed.Prepared, error) {
	typ := TypeSegmentLeft
	if enter {
		typ = TypeSegmentEntered
	}
	return s.feed.Prepare(ctx, tenant, typ, customer, &segmentationv1.MembershipChange{
		SegmentId: segment, CustomerId: customer, Entered: enter, Time: timestamppb.New(now), Reason: reason,
	})
}

// writeMembership is setMembership with the records encoded and without the
// segment's size of the day, which a full re-evaluation writes once per
// segment and transaction.
func (s *Store) writeMembership(t tx, seg *segmentRecord, customer string, enter bool, enc encodedMembership, ev feed.Prepared) error {
	s.touch(t, customer)
	key := boltdb.Key(t.tenant, seg.ID, customer)
	hist := enc.left
	if enter {
		if err := t.b(bucketMembers).Put(key, enc.member); err != nil {
			return err
		}
		if err := t.b(bucketMemberOf).Put(boltdb.Key(t.tenant, customer, seg.ID), boltdb.U64(uint64(enc.since.UnixNano()))); err != nil {
			return err
		}
		seg.Size++
		hist = enc.entered
	} else {
		if err := t.b(bucketMembers).Delete(key); err != nil {
			return err
		}
		if err := t.b(bucketMemberOf).Delete(boltdb.Key(t.tenant, customer, seg.ID)); err != nil {
			return err
		}
		seg.Size--
	}
	b := t.b(bucketHistory)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	if err := b.Put(boltdb.Key(t.tenant, customer, seg.ID, boltdb.U64(seq)), hist); err != nil {
		return err
	}
	_, err = s.feed.AppendPrepared(t.Tx, ev)
	return err
}

// putSize records seg's size as its size on now's day.
func (t tx) putSize(seg *segmentRecord, now time.Time) error {
	return t.b(bucketSizes).Put(boltdb.Key(t.tenant, seg.ID, boltdb.U64(uint64(dayOf(now).Unix()))), boltdb.U64(uint64(seg.Size)))
}

func dayOf(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// reevaluate brings one customer's dynamic memberships up to date at now and
// schedules the customer's next timer. segs are the tenant's segments, with
// sizes updated in place; the caller writes changed ones back.
func (s *Store) reevaluate(ctx context.Context, t tx, segs []segmentRecord, customer string, now time.Time, reason string) error {
	if _, err := t.profile(customer); err != nil {
		return nil // not (or no longer) a customer: nothing to evaluate
	}
	start := time.Now()
	var in domain.RuleInput
	loaded := false
	var next time.Time
	for i := range segs {
		seg := &segs[i]
		if seg.Kind != kindDynamic {
			continue
		}
		if !loaded {
			var err error
			if in, err = t.ruleInput(customer, now); err != nil {
				return err
			}
			loaded = true
		}
		r, err := s.rule(seg.Rule)
		if err != nil {
			// Stored rules were checked when saved; a rule the current build
			// rejects holds for nobody rather than stalling the feed.
			s.log.ErrorContext(ctx, "stored rule does not compile", "tenant", t.tenant, "segment", seg.ID, "error", err)
			continue
		}
		held, err := r.Eval(in)
		if err != nil {
			s.log.DebugContext(ctx, "rule evaluation failed; not a member", "tenant", t.tenant, "segment", seg.ID, "customer", customer, "error", err)
		}
		if held != t.member(seg.ID, customer) {
			if err := s.setMembership(ctx, t, seg, customer, held, now, reason); err != nil {
				return err
			}
		}
		if nc := r.NextChange(in); !nc.IsZero() && (next.IsZero() || nc.Before(next)) {
			next = nc
		}
	}
	if loaded {
		s.metrics.evaluated(ctx, scopeCustomer, start)
	}
	return s.schedule(t, customer, next)
}

// schedule replaces the customer's timer by one at due (none when zero).
func (s *Store) schedule(t tx, customer string, due time.Time) error {
	of := t.b(bucketTimerOf)
	timers := t.b(bucketTimers)
	ofKey := boltdb.Key(t.tenant, customer)
	old := of.Get(ofKey)
	if (old == nil && due.IsZero()) || (old != nil && !due.IsZero() && bytes.Equal(old, boltdb.U64(uint64(due.UnixNano())))) {
		return nil // unchanged
	}
	s.touch(t, customer)
	if old != nil {
		if err := timers.Delete(timerKey(old, t.tenant, customer)); err != nil {
			return err
		}
		if err := of.Delete(ofKey); err != nil {
			return err
		}
	}
	if due.IsZero() {
		return nil
	}
	at := boltdb.U64(uint64(due.UnixNano()))
	if err := timers.Put(timerKey(at, t.tenant, customer), nil); err != nil {
		return err
	}
	s.wakeTimers()
	return of.Put(ofKey, at)
}

func timerKey(due []byte, tenant, customer string) []byte {
	return boltdb.Key(due, tenant, customer)
}

func (t tx) putSegments(segs []segmentRecord, before []int64) error {
	for i := range segs {
		if before != nil && segs[i].Size == before[i] {
			continue
		}
		if err := put(t.b(bucketSegments), boltdb.Key(t.tenant, segs[i].ID), &segs[i]); err != nil {
			return err
		}
	}
	return nil
}

func sizes(segs []segmentRecord) []int64 {
	out := make([]int64, len(segs))
	for i, s := range segs {
		out[i] = s.Size
	}
	return out
}
