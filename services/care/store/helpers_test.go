package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	carev1 "rapport.dev/gen/go/rapport/care/v1"
	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/webhook"
	"rapport.dev/services/care/domain"
	"rapport.dev/services/care/store"
)

// t0 is Monday 2 March 2026, 01:00 UTC (09:00 in Shanghai, 20:00 the day
// before in New York); every test's clock starts there.
var t0 = time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC)

const (
	day    = 24 * time.Hour
	tenant = "t1"
)

var ctx = context.Background()

var (
	shanghai = mustZone("Asia/Shanghai")
	newYork  = mustZone("America/New_York")
)

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// env is a store on a real bbolt file, its feed, a webhook outbox and a
// fake clock.
type env struct {
	t      testing.TB
	path   string
	db     *boltdb.DB
	feed   *feed.Log
	outbox *webhook.Outbox
	clk    *clock.Fake
	st     *store.Store
	seq    uint64 // upstream feed sequence for the events a test applies
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, path: filepath.Join(t.TempDir(), "care.db"), clk: clock.NewFake(t0)}
	e.open()
	return e
}

func (e *env) open() {
	e.t.Helper()
	opts := store.Options()
	opts.Logger = slog.New(slog.DiscardHandler)
	db, err := boltdb.Open(e.path, opts)
	if err != nil {
		e.t.Fatalf("open %s: %v", e.path, err)
	}
	e.t.Cleanup(func() { db.Close() })
	e.db = db
	e.feed = feed.NewLog(db, e.clk)
	e.outbox = webhook.New(db, webhook.Options{Clock: e.clk, Logger: slog.New(slog.DiscardHandler)})
	e.st = store.New(db, e.feed, e.clk, slog.New(slog.DiscardHandler),
		store.Messages{Outbox: e.outbox, Secret: func(string) []byte { return []byte("secret") }})
}

// reopen closes the database and opens a new Store on the same file, as a
// restarted process does.
func (e *env) reopen() {
	e.t.Helper()
	if err := e.db.Close(); err != nil {
		e.t.Fatalf("close: %v", err)
	}
	e.open()
}

// plan creates a plan with defaults for what the test leaves zero.
func (e *env) plan(p domain.Plan) *domain.Plan {
	e.t.Helper()
	if p.ID == "" {
		p.ID = "plan-1"
	}
	p.Enabled = true
	if p.Task == nil && p.Message == nil {
		p.Task = &domain.TaskAction{Title: "Call {name}"}
	}
	out, created, err := e.st.CreatePlan(ctx, tenant, &p)
	if err != nil || !created {
		e.t.Fatalf("create plan %s: created %t, %v", p.ID, created, err)
	}
	return out
}

var allCustomers = domain.Target{AllCustomers: true}

// apply runs a feed handler on one upstream event in its own transaction,
// as the follower does.
func (e *env) apply(handle func(context.Context, *bolt.Tx, *feedv1.Event) error, ev *feedv1.Event) {
	e.t.Helper()
	if err := e.db.Update(ctx, func(tx *bolt.Tx) error { return handle(ctx, tx, ev) }); err != nil {
		e.t.Fatalf("apply %s: %v", ev.Type, err)
	}
}

// event builds an upstream feed event with the next sequence.
func (e *env) event(typ, key string, payload proto.Message) *feedv1.Event {
	e.t.Helper()
	a, err := anypb.New(payload)
	if err != nil {
		e.t.Fatal(err)
	}
	e.seq++
	return &feedv1.Event{Sequence: e.seq, Tenant: tenant, Type: typ, Key: key, Time: timestamppb.New(e.clk.Now()), Payload: a}
}

// customer announces a customer through the profile feed.
func (e *env) customer(c *profilev1.Customer) {
	e.t.Helper()
	e.apply(e.st.ApplyProfileEvent, e.event("customer.created", c.CustomerId, c))
}

func (e *env) purchase(customer, id string, at time.Time, categories ...string) *feedv1.Event {
	e.t.Helper()
	pu := &profilev1.Purchase{OrderId: "o-" + id, Amount: &typev1.Money{AmountMinor: 1000, Currency: "CNY"}}
	for _, c := range categories {
		pu.Items = append(pu.Items, &profilev1.LineItem{Sku: c, Category: c, Quantity: 1})
	}
	ev := e.event("event.recorded", customer, &profilev1.Event{EventId: id, CustomerId: customer,
		OccurTime: timestamppb.New(at), RecordTime: timestamppb.New(at), Kind: &profilev1.Event_Purchase{Purchase: pu}})
	e.apply(e.st.ApplyProfileEvent, ev)
	return ev
}

func (e *env) tier(customer string, tier segmentationv1.Tier) {
	e.t.Helper()
	e.apply(e.st.ApplySegmentationEvent, e.event("scores.changed", customer,
		&segmentationv1.ScoresChange{CustomerId: customer, After: &segmentationv1.Scores{Tier: tier}}))
}

// fire runs FireDue at at and returns how many timers fired.
func (e *env) fire(at time.Time) int {
	e.t.Helper()
	e.clk.Set(at)
	n, _, err := e.st.FireDue(ctx, at)
	if err != nil {
		e.t.Fatalf("FireDue at %v: %v", at, err)
	}
	return n
}

// tasks lists every task of the tenant in due order.
func (e *env) tasks(states ...domain.TaskState) []*domain.Task {
	e.t.Helper()
	if len(states) == 0 {
		states = []domain.TaskState{domain.TaskScheduled, domain.TaskDue, domain.TaskDone, domain.TaskSkipped, domain.TaskOverdue, domain.TaskEscalated}
	}
	out, _, err := e.st.Queue(ctx, tenant, store.QueueQuery{States: states, PageSize: 500})
	if err != nil {
		e.t.Fatalf("queue: %v", err)
	}
	return out
}

// events returns the care feed's events of a type.
func (e *env) events(typ string) []*feedv1.Event {
	e.t.Helper()
	evs, err := e.feed.Read(tenant, 0, 10000)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*feedv1.Event
	for _, ev := range evs {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

func taskOf(t testing.TB, ev *feedv1.Event) *carev1.Task {
	t.Helper()
	task := &carev1.Task{}
	if err := ev.Payload.UnmarshalTo(task); err != nil {
		t.Fatal(err)
	}
	return task
}

// snapshot is every key and value of every bucket, to show that something
// changed nothing.
func (e *env) snapshot() string {
	e.t.Helper()
	var buf bytes.Buffer
	err := e.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			fmt.Fprintf(&buf, "[%s] seq=%d\n", name, b.Sequence())
			return b.ForEach(func(k, v []byte) error {
				fmt.Fprintf(&buf, "%q=%q\n", k, v)
				return nil
			})
		})
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return buf.String()
}

func wantField(t testing.TB, err error, field string) {
	t.Helper()
	var inv *fault.Invalid
	if !errors.As(err, &inv) {
		t.Fatalf("want *fault.Invalid naming %s, got %v", field, err)
	}
	for _, v := range inv.Violations {
		if v.Field == field {
			return
		}
	}
	t.Fatalf("want a violation of %s, got %v", field, err)
}

func local(loc *time.Location, y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, loc)
}
