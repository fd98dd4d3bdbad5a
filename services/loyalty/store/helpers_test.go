package store_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/tenancy"
	"rapport.dev/services/loyalty/domain"
	"rapport.dev/services/loyalty/store"
)

// t0 is where every test's clock starts; it moves only when a test moves it.
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

const (
	day    = 24 * time.Hour
	tenant = "t1"
)

var ctx = context.Background()

// env is a store on a real bbolt file, its feed and a fake clock.
type env struct {
	t    testing.TB
	db   *boltdb.DB
	opts boltdb.Options
	feed *feed.Log
	clk  *clock.Fake
	st   *store.Store
}

func newEnv(t testing.TB) *env { return newEnvOpts(t, store.Options()) }

func newEnvOpts(t testing.TB, opts boltdb.Options) *env {
	t.Helper()
	opts.Logger = slog.New(slog.DiscardHandler)
	e := &env{t: t, db: boltdb.OpenTemp(t, opts), opts: opts, clk: clock.NewFake(t0)}
	e.feed = feed.NewLog(e.db, e.clk)
	e.st = store.New(e.db, e.feed, e.clk, slog.New(slog.DiscardHandler))
	return e
}

// reopen closes the database and opens a new Store on the same file, as a
// restarted process does.
func (e *env) reopen() {
	e.t.Helper()
	path := e.db.Path()
	if err := e.db.Close(); err != nil {
		e.t.Fatalf("close: %v", err)
	}
	e.openAt(path)
}

// openAt opens a new Store on the file at path.
func (e *env) openAt(path string) {
	e.t.Helper()
	db, err := boltdb.Open(path, e.opts)
	if err != nil {
		e.t.Fatalf("reopen %s: %v", path, err)
	}
	e.t.Cleanup(func() { db.Close() })
	e.db = db
	e.feed = feed.NewLog(db, e.clk)
	e.st = store.New(db, e.feed, e.clk, slog.New(slog.DiscardHandler))
}

// program creates a programme with defaults for the fields a test leaves zero.
func (e *env) program(p domain.Program) *domain.Program {
	e.t.Helper()
	if p.ID == "" {
		p.ID = "club"
	}
	if p.Name == "" {
		p.Name = "Club"
	}
	if p.Currency == "" {
		p.Currency = "EUR"
	}
	if p.PointsPerUnit == 0 {
		p.PointsPerUnit = 1
	}
	if err := p.Validate(); err != nil {
		e.t.Fatalf("programme %s: %v", p.ID, err)
	}
	out, created, err := e.st.CreateProgram(ctx, tenant, &p)
	if err != nil || !created {
		e.t.Fatalf("create programme %s: created %t, %v", p.ID, created, err)
	}
	return out
}

func (e *env) enroll(program, customer, tz string, birthMonth int32) *store.View {
	e.t.Helper()
	v, created, err := e.st.Enroll(ctx, tenant, program, store.Enrollment{Customer: customer, TimeZone: tz, BirthMonth: birthMonth})
	if err != nil || !created {
		e.t.Fatalf("enroll %s: created %t, %v", customer, created, err)
	}
	return v
}

// record records op and fails the test on an error.
func (e *env) record(program, customer string, op store.Op) *store.Result {
	e.t.Helper()
	r, err := e.st.Record(ctx, tenant, program, customer, op)
	if err != nil {
		e.t.Fatalf("record %s %q for %s: %v", op.Kind, op.Key, customer, err)
	}
	return r
}

// member reads the member view at the clock's time.
func (e *env) member(program, customer string) *store.View {
	e.t.Helper()
	v, err := e.st.Member(ctx, tenant, program, customer)
	if err != nil {
		e.t.Fatalf("member %s: %v", customer, err)
	}
	return v
}

// fire runs the member timers due at the clock's time.
func (e *env) fire() int {
	e.t.Helper()
	n, _, err := e.st.FireDue(ctx, e.clk.Now())
	if err != nil {
		e.t.Fatalf("fire due: %v", err)
	}
	return n
}

// entries reads a member's whole ledger through Entries, pages of size,
// and returns it oldest first.
func (e *env) entries(program, customer string, size int) []*domain.Entry {
	e.t.Helper()
	var all []*domain.Entry
	token := ""
	for range 100000 {
		page, next, err := e.st.Entries(ctx, tenant, program, customer, token, size)
		if err != nil {
			e.t.Fatalf("entries of %s: %v", customer, err)
		}
		if len(page) > size || (next != "" && len(page) != size) {
			e.t.Fatalf("entries of %s: a page of %d for size %d, next %q", customer, len(page), size, next)
		}
		all = append(all, page...)
		if next == "" {
			slices.Reverse(all)
			return all
		}
		token = next
	}
	e.t.Fatalf("entries of %s: the token never ends", customer)
	return nil
}

func (e *env) account(program, customer string) domain.Account {
	e.t.Helper()
	var m *store.Member
	err := e.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket([]byte("members")).Get(boltdb.Key(tenant, program, customer))
		if raw == nil {
			e.t.Fatalf("no member record for %s", customer)
		}
		var err error
		m, err = store.DecodeMember(raw)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return m.Account
}

// events returns the feed events of the tenant after sequence after.
func (e *env) events(after uint64) []*feedv1.Event {
	e.t.Helper()
	evs, err := e.feed.Read(tenancy.All, after, 1<<20)
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func (e *env) lastEvent() uint64 {
	e.t.Helper()
	n, err := e.feed.Last()
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// reconcile expects the programme's ledgers to replay to the stored accounts.
func (e *env) reconcile(program string) *store.Reconciliation {
	e.t.Helper()
	r, err := e.st.Reconcile(ctx, tenant, program)
	if err != nil {
		e.t.Fatalf("reconcile %s: %v", program, err)
	}
	if len(r.Differences) != 0 {
		e.t.Fatalf("reconcile %s: %d differences: %+v", program, len(r.Differences), r.Differences)
	}
	return r
}

// purchase is an earn by the programme's rules that enrols on first purchase.
func purchase(key, order string, minor int64) store.Op {
	return store.Op{Kind: domain.KindEarn, Key: key, AutoEnroll: true,
		Purchase: &store.Purchase{Order: order, Amount: minor, Currency: "EUR"}}
}

func redeem(key string, pts int64) store.Op {
	return store.Op{Kind: domain.KindRedeem, Key: key, Points: pts}
}

func refund(key, order string, refunded int64) store.Op {
	return store.Op{Kind: domain.KindReverse, Key: key, Order: order, Refunded: refunded}
}

func adjust(key string, pts int64) store.Op {
	return store.Op{Kind: domain.KindAdjust, Key: key, Points: pts, Reason: "goodwill", Actor: "li.na"}
}
