package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/tenancy"
	"rapport.dev/services/profile/domain"
	"rapport.dev/services/profile/store"
)

// t0 is when every test starts; the fake clock only moves when told to.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// day is a time on the n-th day of May 2025, before t0.
func day(n int) time.Time { return time.Date(2025, 5, n, 10, 0, 0, 0, time.UTC) }

func ptr[T any](v T) *T { return &v }

// fixture is the store on a real bbolt file in t.TempDir().
type fixture struct {
	t   *testing.T
	db  *boltdb.DB
	log *feed.Log
	st  *store.Store
	clk *clock.Fake
	ctx context.Context
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := boltdb.OpenTemp(t, store.Options())
	clk := clock.NewFake(t0)
	log := feed.NewLog(db, clk)
	return &fixture{t: t, db: db, log: log, st: store.New(db, log), clk: clk, ctx: context.Background()}
}

// person is a customer as the domain service hands it to the store: valid,
// with the server-set fields filled in.
func (f *fixture) person(id string, mods ...func(*domain.Customer)) *domain.Customer {
	now := f.clk.Now()
	c := &domain.Customer{ID: id, Kind: domain.KindPerson, DisplayName: "Customer " + id, CreateTime: now, UpdateTime: now, Revision: 1}
	for _, m := range mods {
		m(c)
	}
	if err := c.Validate(); err != nil {
		f.t.Fatalf("fixture customer %s is invalid: %v", id, err)
	}
	return c
}

// create stores customers that must all be new.
func (f *fixture) create(tenant string, cs ...*domain.Customer) {
	f.t.Helper()
	rs, err := f.st.CreateCustomers(f.ctx, tenant, cs)
	if err != nil {
		f.t.Fatalf("CreateCustomers: %v", err)
	}
	for i, r := range rs {
		if r.Err != nil || !r.Created {
			f.t.Fatalf("CreateCustomers[%d] (%s): created=%v err=%v", i, cs[i].ID, r.Created, r.Err)
		}
	}
}

// stamp sets what the domain service sets before the store sees an event.
func (f *fixture) stamp(e *domain.Event) *domain.Event {
	if err := e.Validate(f.clk.Now()); err != nil {
		f.t.Fatalf("fixture event %s is invalid: %v", e.ID, err)
	}
	e.RecordTime = f.clk.Now()
	return e
}

func (f *fixture) recordAll(tenant string, evs ...*domain.Event) []domain.RecordResult {
	f.t.Helper()
	for _, e := range evs {
		f.stamp(e)
	}
	rs, err := f.st.RecordEvents(f.ctx, tenant, evs)
	if err != nil {
		f.t.Fatalf("RecordEvents: %v", err)
	}
	if len(rs) != len(evs) {
		f.t.Fatalf("RecordEvents returned %d results for %d events", len(rs), len(evs))
	}
	return rs
}

// record stores events that must all be new.
func (f *fixture) record(tenant string, evs ...*domain.Event) {
	f.t.Helper()
	for i, r := range f.recordAll(tenant, evs...) {
		if r.Err != nil || !r.Created {
			f.t.Fatalf("RecordEvents[%d] (%s): created=%v err=%v", i, evs[i].ID, r.Created, r.Err)
		}
	}
}

// recordOne stores one event and returns its result.
func (f *fixture) recordOne(tenant string, e *domain.Event) domain.RecordResult {
	f.t.Helper()
	return f.recordAll(tenant, e)[0]
}

func money(minor int64, cur string) domain.Money { return domain.Money{Minor: minor, Currency: cur} }

func purchase(id, customer, order string, m domain.Money, at time.Time) *domain.Event {
	return &domain.Event{ID: id, CustomerID: customer, OccurTime: at, Purchase: &domain.Purchase{OrderID: order, Amount: m}}
}

func refund(id, customer, order string, m domain.Money, at time.Time) *domain.Event {
	return &domain.Event{ID: id, CustomerID: customer, OccurTime: at, Refund: &domain.Refund{OrderID: order, Amount: m, Reason: "did not fit"}}
}

func complaint(id, customer, complaintID string, at time.Time) *domain.Event {
	return &domain.Event{ID: id, CustomerID: customer, OccurTime: at,
		Complaint: &domain.Complaint{ComplaintID: complaintID, Severity: 2, Status: 1, Description: "rude staff, call me at 138…"}}
}

func survey(id, customer string, csat, nps *int32, at time.Time) *domain.Event {
	return &domain.Event{ID: id, CustomerID: customer, OccurTime: at, Survey: &domain.Survey{CSAT: csat, NPS: nps, Text: "my name is …"}}
}

// feedEntries is every event in the feed, of all tenants.
func (f *fixture) feedEntries() []*feedv1.Event {
	f.t.Helper()
	evs, err := f.log.Read(tenancy.All, 0, 1<<20)
	if err != nil {
		f.t.Fatalf("feed: %v", err)
	}
	return evs
}

func (f *fixture) feedLen() int { return len(f.feedEntries()) }

// checkFeed asserts the feed holds exactly want ("tenant type key"), with
// sequences 1..N and no gaps.
func (f *fixture) checkFeed(want []string) {
	f.t.Helper()
	var got []string
	for i, ev := range f.feedEntries() {
		if ev.GetSequence() != uint64(i+1) {
			f.t.Errorf("feed entry %d has sequence %d, want %d: the sequence has a gap", i, ev.GetSequence(), i+1)
		}
		got = append(got, fmt.Sprintf("%s %s %s", ev.GetTenant(), ev.GetType(), ev.GetKey()))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		f.t.Errorf("feed (-want +got):\n%s", diff)
	}
	if last, err := f.log.Last(); err != nil || last != uint64(len(want)) {
		f.t.Errorf("feed Last = %d, %v; want %d", last, err, len(want))
	}
}

func (f *fixture) customer(tenant, id string) *domain.Customer {
	f.t.Helper()
	c, err := f.st.GetCustomer(f.ctx, tenant, id)
	if err != nil {
		f.t.Fatalf("GetCustomer(%s, %s): %v", tenant, id, err)
	}
	return c
}

func (f *fixture) stats(tenant, id string) *domain.Stats {
	f.t.Helper()
	s, err := f.st.Stats(f.ctx, tenant, id)
	if err != nil {
		f.t.Fatalf("Stats(%s, %s): %v", tenant, id, err)
	}
	return s
}

func (f *fixture) tenantStats(tenant string) *domain.TenantStats {
	f.t.Helper()
	s, err := f.st.TenantStats(f.ctx, tenant)
	if err != nil {
		f.t.Fatalf("TenantStats(%s): %v", tenant, err)
	}
	return s
}

// events lists a customer's whole timeline, one page.
func (f *fixture) events(tenant, id string) []*domain.Event {
	f.t.Helper()
	evs, next, err := f.st.ListEvents(f.ctx, tenant, id, domain.EventUnspecified, domain.Page{Size: 1000})
	if err != nil || next != "" {
		f.t.Fatalf("ListEvents(%s, %s): next=%q err=%v", tenant, id, next, err)
	}
	return evs
}

func eventIDs(evs []*domain.Event) []string {
	var ids []string
	for _, e := range evs {
		ids = append(ids, e.ID)
	}
	return ids
}

func customerIDs(cs []*domain.Customer) []string {
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	return ids
}

// invalidFields returns the field paths of a validation error, failing the
// test when err is not one.
func invalidFields(t *testing.T, err error) []string {
	t.Helper()
	var inv *fault.Invalid
	if !errors.As(err, &inv) || !errors.Is(err, fault.ErrInvalid) {
		t.Fatalf("error %v is not a validation error", err)
	}
	var out []string
	for _, v := range inv.Violations {
		out = append(out, v.Field)
	}
	return out
}

func wantFields(t *testing.T, err error, want ...string) {
	t.Helper()
	if diff := cmp.Diff(want, invalidFields(t, err)); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("err = %v, want %v", err, target)
	}
}
