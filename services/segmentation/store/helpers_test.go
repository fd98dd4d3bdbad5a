package store_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/tenancy"
	"rapport.dev/services/segmentation/store"
)

// t0 is the store's clock; it moves only when a test moves it.
var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

var ctx = context.Background()

// Segment kinds as the store keeps them (the API's enum numbers).
const (
	static  = int32(segmentationv1.SegmentKind_SEGMENT_KIND_STATIC)
	dynamic = int32(segmentationv1.SegmentKind_SEGMENT_KIND_DYNAMIC)
)

// env is a store on a real bbolt file with its own feed, and a hand-driven
// profile feed: tests build the profile events the follower would deliver
// and apply them in a transaction, as the follower does.
type env struct {
	t     *testing.T
	db    *boltdb.DB
	feed  *feed.Log
	clk   *clock.Fake
	st    *store.Store
	seq   uint64 // the last profile feed sequence applied
	after uint64 // the last segmentation feed sequence drained
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db := boltdb.OpenTemp(t, store.Options())
	clk := clock.NewFake(t0)
	log := feed.NewLog(db, clk)
	st, err := store.New(db, log, clk, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, db: db, feed: log, clk: clk, st: st}
}

// apply delivers one profile feed event to the store, in its own write
// transaction.
func (e *env) apply(tenant, typ, key string, payload proto.Message) {
	e.t.Helper()
	if err := e.tryApply(tenant, typ, key, payload); err != nil {
		e.t.Fatalf("apply %s %s: %v", typ, key, err)
	}
}

func (e *env) tryApply(tenant, typ, key string, payload proto.Message) error {
	a, err := anypb.New(payload)
	if err != nil {
		return err
	}
	e.seq++
	ev := &feedv1.Event{Sequence: e.seq, Tenant: tenant, Type: typ, Key: key, Time: timestamppb.New(e.clk.Now()), Payload: a}
	return e.db.Update(ctx, func(tx *bolt.Tx) error { return e.st.ApplyProfileEvent(ctx, tx, ev) })
}

func person(id string) *profilev1.Customer {
	return &profilev1.Customer{CustomerId: id, Kind: profilev1.CustomerKind_CUSTOMER_KIND_PERSON, DisplayName: "Customer " + id,
		CreateTime: timestamppb.New(t0.Add(-100 * day))}
}

// customers creates customers as the profile feed announces them.
func (e *env) customers(tenant string, cs ...*profilev1.Customer) {
	e.t.Helper()
	for _, c := range cs {
		e.apply(tenant, "customer.created", c.CustomerId, c)
	}
}

func cny(minor int64) *typev1.Money { return &typev1.Money{AmountMinor: minor, Currency: "CNY"} }

func (e *env) purchase(tenant, customer, order string, minor int64, at time.Time) {
	e.t.Helper()
	e.record(tenant, &profilev1.Event{EventId: "p-" + order, CustomerId: customer, OccurTime: timestamppb.New(at),
		Kind: &profilev1.Event_Purchase{Purchase: &profilev1.Purchase{OrderId: order, Amount: cny(minor)}}})
}

func (e *env) refund(tenant, customer, order string, minor int64, at time.Time) {
	e.t.Helper()
	e.record(tenant, &profilev1.Event{EventId: fmt.Sprintf("r-%s-%d", order, e.seq), CustomerId: customer, OccurTime: timestamppb.New(at),
		Kind: &profilev1.Event_Refund{Refund: &profilev1.Refund{OrderId: order, Amount: cny(minor)}}})
}

func (e *env) record(tenant string, ev *profilev1.Event) {
	e.t.Helper()
	e.apply(tenant, "event.recorded", ev.CustomerId, ev)
}

// change is one event of the segmentation feed.
type change struct {
	tenant, typ string
	member      *segmentationv1.MembershipChange
	scores      *segmentationv1.ScoresChange
}

func (c change) String() string {
	if c.member != nil {
		return fmt.Sprintf("%s %s %s/%s %q", c.tenant, c.typ, c.member.SegmentId, c.member.CustomerId, c.member.Reason)
	}
	return fmt.Sprintf("%s %s %s", c.tenant, c.typ, c.scores.GetCustomerId())
}

// drain returns the segmentation feed events (of every tenant) written
// since the last drain.
func (e *env) drain() []change {
	e.t.Helper()
	var out []change
	for {
		evs, err := e.feed.Read(tenancy.All, e.after, 1000)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(evs) == 0 {
			return out
		}
		for _, ev := range evs {
			if ev.Sequence != e.after+1 {
				e.t.Fatalf("feed sequence %d after %d", ev.Sequence, e.after)
			}
			e.after = ev.Sequence
			c := change{tenant: ev.Tenant, typ: ev.Type}
			switch ev.Type {
			case store.TypeSegmentEntered, store.TypeSegmentLeft:
				c.member = &segmentationv1.MembershipChange{}
				if err := ev.Payload.UnmarshalTo(c.member); err != nil {
					e.t.Fatal(err)
				}
				if c.member.Entered != (ev.Type == store.TypeSegmentEntered) || ev.Key != c.member.CustomerId {
					e.t.Fatalf("feed event %s does not agree with its payload %v", ev.Type, c.member)
				}
			case store.TypeScoresChanged:
				c.scores = &segmentationv1.ScoresChange{}
				if err := ev.Payload.UnmarshalTo(c.scores); err != nil {
					e.t.Fatal(err)
				}
			default:
				e.t.Fatalf("unexpected feed event type %q", ev.Type)
			}
			out = append(out, c)
		}
	}
}

// wantChanges drains the feed and compares it with want, each written as
// "tenant type segment/customer reason", in feed order.
func (e *env) wantChanges(want ...string) {
	e.t.Helper()
	got := e.drain()
	var gotS []string
	for _, c := range got {
		gotS = append(gotS, c.String())
	}
	if !slices.Equal(gotS, want) {
		e.t.Fatalf("feed events:\n got  %q\n want %q", gotS, want)
	}
}

func entered(tenant, seg, customer, reason string) string {
	return fmt.Sprintf("%s %s %s/%s %q", tenant, store.TypeSegmentEntered, seg, customer, reason)
}

func left(tenant, seg, customer, reason string) string {
	return fmt.Sprintf("%s %s %s/%s %q", tenant, store.TypeSegmentLeft, seg, customer, reason)
}

// members lists a segment's member ids.
func (e *env) members(tenant, seg string) []string {
	e.t.Helper()
	ms, next, err := e.st.Members(ctx, tenant, seg, "", 10000)
	if err != nil {
		e.t.Fatalf("members of %s: %v", seg, err)
	}
	if next != "" {
		e.t.Fatalf("members of %s: unexpected next page", seg)
	}
	ids := []string{}
	for _, m := range ms {
		ids = append(ids, m.CustomerID)
	}
	return ids
}

func (e *env) wantMembers(tenant, seg string, want ...string) {
	e.t.Helper()
	if want == nil {
		want = []string{}
	}
	got := e.members(tenant, seg)
	if !slices.Equal(got, want) {
		e.t.Fatalf("%s members of %s = %v, want %v", tenant, seg, got, want)
	}
	s, err := e.st.GetSegment(ctx, tenant, seg)
	if err != nil {
		e.t.Fatal(err)
	}
	if s.Size != int64(len(want)) {
		e.t.Fatalf("%s segment %s size = %d, want %d", tenant, seg, s.Size, len(want))
	}
}

func (e *env) create(tenant string, in store.SegmentInput) *store.Segment {
	e.t.Helper()
	if in.Name == "" {
		in.Name = in.ID
	}
	s, created, err := e.st.CreateSegment(ctx, tenant, in)
	if err != nil || !created {
		e.t.Fatalf("create segment %s: created=%v err=%v", in.ID, created, err)
	}
	return s
}

func (e *env) scores(tenant, customer string) *store.CustomerScores {
	e.t.Helper()
	cs, err := e.st.CustomerScores(ctx, tenant, customer)
	if err != nil {
		e.t.Fatalf("scores of %s: %v", customer, err)
	}
	return cs
}

// wantErr checks that err matches target and, for an invalid argument, that
// it names fields.
func wantErr(t *testing.T, err, target error, fields ...string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
	if len(fields) == 0 {
		return
	}
	var inv *fault.Invalid
	if !errors.As(err, &inv) {
		t.Fatalf("err = %v, want field violations %v", err, fields)
	}
	var got []string
	for _, v := range inv.Violations {
		got = append(got, v.Field)
	}
	if !slices.Equal(got, fields) {
		t.Fatalf("violations %v, want %v", got, fields)
	}
}
