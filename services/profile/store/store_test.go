package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/feed"
	"rapport.dev/services/profile/domain"
	"rapport.dev/services/profile/store"
)

func TestCreateCustomersIsIdempotent(t *testing.T) {
	f := newFixture(t)
	c1 := f.person("c1", func(c *domain.Customer) { c.Phone = "13800000000"; c.Tags = []string{"vip"} })
	f.create("acme", c1)
	stored := f.customer("acme", "c1")
	if diff := cmp.Diff(c1, stored); diff != "" {
		t.Errorf("stored customer (-created +stored):\n%s", diff)
	}

	// A retry later carries new server-set times; the content is the same.
	f.clk.Advance(time.Hour)
	rs, err := f.st.CreateCustomers(f.ctx, "acme", []*domain.Customer{
		f.person("c1", func(c *domain.Customer) { c.Phone = "13800000000"; c.Tags = []string{"vip"} }),
		f.person("c1", func(c *domain.Customer) { c.Phone = "13900000000" }),
		f.person("c2"),
		f.person("c2"), // the same id twice in one batch, same content
		f.person("c3"),
		f.person("c3", func(c *domain.Customer) { c.DisplayName = "other" }),
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := rs[0]; r.Err != nil || r.Created || !r.Customer.CreateTime.Equal(t0) {
		t.Errorf("retry with the same content: created=%v err=%v create_time=%v; want the original (created false, %v)", r.Created, r.Err, r.Customer.CreateTime, t0)
	}
	wantErr(t, rs[1].Err, fault.ErrAlreadyExists)
	if rs[1].Created {
		t.Error("a conflicting create reports created")
	}
	if !rs[2].Created || rs[2].Err != nil || rs[3].Created || rs[3].Err != nil {
		t.Errorf("same id twice in a batch: %+v, %+v; want created then returned", rs[2], rs[3])
	}
	if !rs[4].Created || rs[4].Err != nil {
		t.Errorf("c3: %+v", rs[4])
	}
	wantErr(t, rs[5].Err, fault.ErrAlreadyExists)
	if got := f.customer("acme", "c1"); got.Phone != "13800000000" || got.Revision != 1 {
		t.Errorf("a conflicting create changed the stored customer: %+v", got)
	}
	if got := f.customer("acme", "c3"); got.DisplayName != "Customer c3" {
		t.Errorf("c3 display name = %q", got.DisplayName)
	}
	f.checkFeed([]string{"acme customer.created c1", "acme customer.created c2", "acme customer.created c3"})
	if got := f.tenantStats("acme").Customers; got != 3 {
		t.Errorf("tenant customers = %d, want 3", got)
	}
}

func TestRecordEventIsIdempotent(t *testing.T) {
	f := newFixture(t)
	f.create("acme", f.person("c1"))
	f.record("acme", purchase("e1", "c1", "o1", money(10_000, "CNY"), day(1)))
	first, err := f.st.GetEvent(f.ctx, "acme", "e1")
	if err != nil {
		t.Fatal(err)
	}
	if !first.RecordTime.Equal(t0) {
		t.Fatalf("record time = %v, want %v", first.RecordTime, t0)
	}
	feedBefore := f.feedLen()

	f.clk.Advance(time.Hour)
	r := f.recordOne("acme", purchase("e1", "c1", "o1", money(10_000, "CNY"), day(1).In(time.FixedZone("CST", 8*3600))))
	if r.Err != nil || r.Created {
		t.Fatalf("retry: created=%v err=%v; want the stored event", r.Created, r.Err)
	}
	if diff := cmp.Diff(first, r.Event); diff != "" {
		t.Errorf("retry returned (-stored +returned):\n%s", diff)
	}
	if got := f.feedLen(); got != feedBefore {
		t.Errorf("a retry added %d feed events", got-feedBefore)
	}

	r = f.recordOne("acme", purchase("e1", "c1", "o1", money(10_001, "CNY"), day(1)))
	wantErr(t, r.Err, fault.ErrAlreadyExists)
	// A new event id for an order already recorded is a second purchase of
	// the same order: refused, or refunds would be ambiguous.
	r = f.recordOne("acme", purchase("e2", "c1", "o1", money(10_000, "CNY"), day(1)))
	wantErr(t, r.Err, fault.ErrAlreadyExists)

	// A retried refund is not refunded twice.
	f.record("acme", refund("r1", "c1", "o1", money(4_000, "CNY"), day(2)))
	r = f.recordOne("acme", refund("r1", "c1", "o1", money(4_000, "CNY"), day(2)))
	if r.Err != nil || r.Created {
		t.Fatalf("refund retry: created=%v err=%v", r.Created, r.Err)
	}
	f.record("acme", refund("r2", "c1", "o1", money(6_000, "CNY"), day(2))) // exactly what is left

	s := f.stats("acme", "c1")
	if s.Purchases != 1 || s.Refunds != 2 || s.Totals["CNY"].Refunded != 10_000 {
		t.Errorf("stats after retries: %+v %+v", s, s.Totals["CNY"])
	}
	f.checkFeed([]string{"acme customer.created c1", "acme event.recorded c1", "acme event.recorded c1", "acme event.recorded c1"})
}

func TestRefundRules(t *testing.T) {
	f := newFixture(t)
	f.create("acme", f.person("c1"), f.person("c2"))
	f.record("acme",
		purchase("p1", "c1", "o1", money(10_000, "CNY"), day(1)),
		purchase("p2", "c1", "o2", money(500, "USD"), day(1)),
	)

	r := f.recordOne("acme", refund("r0", "c1", "nope", money(1, "CNY"), day(2)))
	wantFields(t, r.Err, "refund.order_id")
	r = f.recordOne("acme", refund("r0", "c2", "o1", money(1, "CNY"), day(2))) // another customer's order
	wantFields(t, r.Err, "refund.order_id")
	r = f.recordOne("acme", refund("r0", "c1", "o1", money(10_001, "CNY"), day(2)))
	wantFields(t, r.Err, "refund.amount.amount_minor")
	r = f.recordOne("acme", refund("r0", "c1", "o2", money(100, "CNY"), day(2)))
	wantFields(t, r.Err, "refund.amount.currency")

	f.record("acme", refund("r1", "c1", "o1", money(6_000, "CNY"), day(2)))
	f.record("acme", refund("r2", "c1", "o1", money(4_000, "CNY"), day(3)))
	r = f.recordOne("acme", refund("r3", "c1", "o1", money(1, "CNY"), day(4)))
	wantFields(t, r.Err, "refund.amount.amount_minor")

	// A purchase and its refund in one batch; a failed item in between
	// leaves the others and adds nothing.
	before := f.feedLen()
	rs := f.recordAll("acme",
		purchase("p3", "c2", "o3", money(300, "CNY"), day(5)),
		refund("r4", "c2", "o3", money(301, "CNY"), day(6)),
		refund("r5", "c2", "o3", money(300, "CNY"), day(6)),
	)
	if rs[0].Err != nil || rs[1].Err == nil || rs[2].Err != nil {
		t.Errorf("batch results: %v, %v, %v; want ok, over-refund, ok", rs[0].Err, rs[1].Err, rs[2].Err)
	}
	if got := f.feedLen() - before; got != 2 {
		t.Errorf("batch with one failed item added %d feed events, want 2", got)
	}
	if _, err := f.st.GetEvent(f.ctx, "acme", "r4"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("the rejected refund was stored: %v", err)
	}
	if got := f.stats("acme", "c1").Totals["CNY"]; *got != (domain.Totals{Purchased: 10_000, Refunded: 10_000}) {
		t.Errorf("c1 CNY totals = %+v", *got)
	}
}

func TestRecordEventNeedsCustomer(t *testing.T) {
	f := newFixture(t)
	r := f.recordOne("acme", purchase("e1", "ghost", "o1", money(1, "CNY"), day(1)))
	wantErr(t, r.Err, fault.ErrNotFound)
	if got := f.feedLen(); got != 0 {
		t.Errorf("feed has %d events", got)
	}
}

// TestFeedHasOneEventPerAcknowledgedWrite runs every kind of write, failing
// ones included, and checks the feed holds exactly one event per
// acknowledged change, numbered 1..N.
func TestFeedHasOneEventPerAcknowledgedWrite(t *testing.T) {
	f := newFixture(t)
	var want []string
	add := func(s ...string) { want = append(want, s...) }

	f.create("acme", f.person("a", func(c *domain.Customer) { c.Phone = "12345678" }), f.person("b"))
	add("acme customer.created a", "acme customer.created b")
	f.create("other", f.person("a"))
	add("other customer.created a")
	// Idempotent and conflicting creates add nothing.
	if _, err := f.st.CreateCustomers(f.ctx, "acme", []*domain.Customer{f.person("b"), f.person("a")}); err != nil {
		t.Fatal(err)
	}

	rs := f.recordAll("acme",
		purchase("e1", "a", "o1", money(100, "CNY"), day(1)),
		purchase("e2", "ghost", "o2", money(100, "CNY"), day(1)), // unknown customer
		refund("e3", "a", "o1", money(101, "CNY"), day(2)),       // too much
		survey("e4", "b", ptr[int32](5), nil, day(3)),
		purchase("e1", "a", "o1", money(100, "CNY"), day(1)), // retry inside the batch
	)
	for i, wantOK := range []bool{true, false, false, true, true} {
		if (rs[i].Err == nil) != wantOK {
			t.Errorf("item %d: err = %v", i, rs[i].Err)
		}
	}
	add("acme event.recorded a", "acme event.recorded b")

	if _, err := f.st.UpdateCustomer(f.ctx, "acme", "b", func(c *domain.Customer) error { c.Owner = "li"; return nil }); err != nil {
		t.Fatal(err)
	}
	add("acme customer.updated b")
	// A failed update, and an update of a missing customer, add nothing.
	if _, err := f.st.UpdateCustomer(f.ctx, "acme", "b", func(*domain.Customer) error { return fault.ErrConflict }); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("failing update: %v", err)
	}
	if _, err := f.st.UpdateCustomer(f.ctx, "acme", "ghost", func(*domain.Customer) error { return nil }); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("update of a missing customer: %v", err)
	}

	if _, _, err := f.st.Merge(f.ctx, "acme", "a", "b", f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	add("acme customer.merged b", "acme customer.updated a")
	if _, _, err := f.st.Merge(f.ctx, "acme", "a", "b", f.clk.Now()); err != nil { // retry: no-op
		t.Fatal(err)
	}
	if _, err := f.st.Erase(f.ctx, "acme", "a", f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	add("acme customer.erased a")
	if _, err := f.st.Erase(f.ctx, "acme", "ghost", f.clk.Now()); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("erase of a missing customer: %v", err)
	}
	f.checkFeed(want)

	// The payloads are the API's messages, decodable by a follower.
	for _, ev := range f.feedEntries() {
		msg, err := ev.GetPayload().UnmarshalNew()
		if err != nil {
			t.Fatalf("feed %d payload: %v", ev.GetSequence(), err)
		}
		switch p := msg.(type) {
		case *profilev1.Customer:
			if p.GetCustomerId() != ev.GetKey() {
				t.Errorf("feed %d: customer %q under key %q", ev.GetSequence(), p.GetCustomerId(), ev.GetKey())
			}
		case *profilev1.Event:
			if p.GetCustomerId() != ev.GetKey() || ev.GetType() != store.TypeEventRecorded {
				t.Errorf("feed %d: event of %q under key %q, type %s", ev.GetSequence(), p.GetCustomerId(), ev.GetKey(), ev.GetType())
			}
		default:
			t.Errorf("feed %d: payload %T", ev.GetSequence(), msg)
		}
		if !ev.GetTime().AsTime().Equal(t0) {
			t.Errorf("feed %d time = %v, want the clock's %v", ev.GetSequence(), ev.GetTime().AsTime(), t0)
		}
	}
}

func TestTenantIsolation(t *testing.T) {
	f := newFixture(t)
	// "acme" is a prefix of "acme-cn": keys must not bleed between them.
	const a, b = "acme", "acme-cn"
	f.create(a, f.person("c1", func(c *domain.Customer) { c.DisplayName = "A's"; c.Phone = "555-0100" }), f.person("c2", func(c *domain.Customer) { c.Phone = "5550100" }))
	f.create(b, f.person("c1", func(c *domain.Customer) { c.DisplayName = "B's" }))
	f.record(a, purchase("e1", "c1", "o1", money(100, "CNY"), day(1)))
	f.record(b, purchase("e1", "c1", "o1", money(999, "USD"), day(2)))

	if got := f.customer(a, "c1").DisplayName; got != "A's" {
		t.Errorf("%s c1 = %q", a, got)
	}
	if got := f.customer(b, "c1").DisplayName; got != "B's" {
		t.Errorf("%s c1 = %q", b, got)
	}
	if _, err := f.st.GetCustomer(f.ctx, b, "c2"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("%s sees %s's c2: %v", b, a, err)
	}
	for tenant, want := range map[string]domain.Money{a: money(100, "CNY"), b: money(999, "USD")} {
		e, err := f.st.GetEvent(f.ctx, tenant, "e1")
		if err != nil || e.Purchase.Amount != want {
			t.Errorf("%s e1 = %+v, %v; want amount %v", tenant, e, err, want)
		}
		if got := f.tenantStats(tenant).Purchases; got != 1 {
			t.Errorf("%s purchases = %d", tenant, got)
		}
	}
	// A refund in b cannot reach a's order.
	wantFields(t, f.recordOne(b, refund("r1", "c1", "o1", money(100, "CNY"), day(3))).Err, "refund.amount.currency")
	if got := f.tenantStats(a).Customers; got != 2 {
		t.Errorf("%s customers = %d, want 2", a, got)
	}
	if got := f.tenantStats(b).Customers; got != 1 {
		t.Errorf("%s customers = %d, want 1", b, got)
	}
	if got := f.tenantStats("nobody"); got.Customers != 0 || len(got.Totals) != 0 {
		t.Errorf("unknown tenant has stats %+v", got)
	}

	// Duplicates stay within the tenant.
	gs, _, err := f.st.Duplicates(f.ctx, a, "", domain.Page{Size: 10})
	if err != nil || len(gs) != 1 || !cmp.Equal(gs[0].CustomerIDs, []string{"c1", "c2"}) {
		t.Errorf("%s duplicates = %+v, %v", a, gs, err)
	}
	if gs, _, err := f.st.Duplicates(f.ctx, b, "", domain.Page{Size: 10}); err != nil || len(gs) != 0 {
		t.Errorf("%s duplicates = %+v, %v", b, gs, err)
	}

	// Listings and their tokens are the tenant's.
	cs, next, err := f.st.ListCustomers(f.ctx, a, domain.Filter{}, domain.Page{Size: 1})
	if err != nil || next == "" || !cmp.Equal(customerIDs(cs), []string{"c1"}) {
		t.Fatalf("%s page 1: %v next=%q err=%v", a, customerIDs(cs), next, err)
	}
	if _, _, err := f.st.ListCustomers(f.ctx, b, domain.Filter{}, domain.Page{Size: 1, Token: next}); err == nil {
		t.Errorf("%s accepted %s's page token", b, a)
	} else {
		wantFields(t, err, "page_token")
	}
	cs, _, err = f.st.ListCustomers(f.ctx, b, domain.Filter{}, domain.Page{Size: 10})
	if err != nil || len(cs) != 1 || cs[0].DisplayName != "B's" {
		t.Errorf("%s customers = %+v, %v", b, cs, err)
	}

	f.record(a, purchase("e2", "c1", "o2", money(1, "CNY"), day(2)))
	_, evNext, err := f.st.ListEvents(f.ctx, a, "c1", 0, domain.Page{Size: 1})
	if err != nil || evNext == "" {
		t.Fatalf("%s events page 1: next=%q err=%v", a, evNext, err)
	}
	_, _, err = f.st.ListEvents(f.ctx, b, "c1", 0, domain.Page{Size: 1, Token: evNext})
	wantFields(t, err, "page_token")
}

func TestListCustomersPagination(t *testing.T) {
	f := newFixture(t)
	var all, vip, vipStage3 []string
	for i := range 12 {
		id := fmt.Sprintf("c%02d", i)
		c := f.person(id, func(c *domain.Customer) {
			if i%2 == 0 {
				c.Tags = []string{"vip"}
			}
			if i%3 == 0 {
				c.Stage = 3
			}
			c.Region.Province = "浙江"
		})
		f.create("acme", c)
		all = append(all, id)
		if i%2 == 0 {
			vip = append(vip, id)
			if i%3 == 0 {
				vipStage3 = append(vipStage3, id)
			}
		}
	}
	f.create("acme-cn", f.person("c99")) // a neighbouring tenant, after acme's keys

	collect := func(fl domain.Filter, size int) (ids []string, pages int) {
		t.Helper()
		token := ""
		for {
			cs, next, err := f.st.ListCustomers(f.ctx, "acme", fl, domain.Page{Size: size, Token: token})
			if err != nil {
				t.Fatalf("ListCustomers: %v", err)
			}
			if len(cs) > size {
				t.Fatalf("page of %d, size %d", len(cs), size)
			}
			ids = append(ids, customerIDs(cs)...)
			pages++
			if next == "" {
				return ids, pages
			}
			if pages > 20 {
				t.Fatal("pagination does not end")
			}
			token = next
		}
	}
	for _, tc := range []struct {
		name  string
		f     domain.Filter
		size  int
		want  []string
		pages int
	}{
		{"all in pages of 5", domain.Filter{}, 5, all, 3},
		{"all in one page", domain.Filter{}, 100, all, 1},
		{"exactly one full page", domain.Filter{}, 12, all, 1},
		{"tag, pages of 2", domain.Filter{Tag: "vip"}, 2, vip, 0},
		{"tag and stage", domain.Filter{Tag: "vip", Stage: 3}, 1, vipStage3, 0},
		{"province", domain.Filter{Province: "浙江"}, 7, all, 2},
		{"no match", domain.Filter{Owner: "nobody"}, 3, nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids, pages := collect(tc.f, tc.size)
			if diff := cmp.Diff(tc.want, ids); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			if tc.pages != 0 && pages != tc.pages {
				t.Errorf("pages = %d, want %d", pages, tc.pages)
			}
		})
	}
	for _, bad := range []string{"%%%", "YWJj"} { // not base64; base64 of a key outside the tenant
		_, _, err := f.st.ListCustomers(f.ctx, "acme", domain.Filter{}, domain.Page{Size: 5, Token: bad})
		wantFields(t, err, "page_token")
	}
}

func TestListEventsOrderAndPaging(t *testing.T) {
	f := newFixture(t)
	f.create("acme", f.person("c1"), f.person("c2"))
	// Recorded out of order; listed by occur_time, ties in recording order.
	f.record("acme",
		purchase("p5", "c1", "o5", money(5, "CNY"), day(5)),
		purchase("p1", "c1", "o1", money(1, "CNY"), day(1)),
		survey("s2", "c1", ptr[int32](4), nil, day(2)),
		complaint("k4", "c1", "k-1", day(4)),
		purchase("p3", "c1", "o3", money(3, "CNY"), day(3)),
		survey("s6a", "c1", nil, ptr[int32](8), day(6)),
		survey("s6b", "c1", nil, ptr[int32](9), day(6)),
		purchase("q1", "c2", "o1", money(1, "CNY"), day(1)),
	)
	// Before 1970 sorts before after 1970.
	f.record("acme", purchase("p0", "c1", "o0", money(1, "CNY"), time.Date(1965, 1, 1, 0, 0, 0, 0, time.UTC)))

	list := func(kind domain.EventKind, size int) []string {
		t.Helper()
		var ids []string
		token := ""
		for range 20 {
			evs, next, err := f.st.ListEvents(f.ctx, "acme", "c1", kind, domain.Page{Size: size, Token: token})
			if err != nil {
				t.Fatalf("ListEvents: %v", err)
			}
			if len(evs) > size {
				t.Fatalf("page of %d, size %d", len(evs), size)
			}
			for _, e := range evs {
				if e.CustomerID != "c1" {
					t.Errorf("event %s of %s in c1's timeline", e.ID, e.CustomerID)
				}
			}
			ids = append(ids, eventIDs(evs)...)
			if next == "" {
				return ids
			}
			token = next
		}
		t.Fatal("pagination does not end")
		return nil
	}
	all := []string{"p0", "p1", "s2", "p3", "k4", "p5", "s6a", "s6b"}
	for _, size := range []int{1, 2, 3, 8, 100} {
		if diff := cmp.Diff(all, list(0, size)); diff != "" {
			t.Errorf("size %d (-want +got):\n%s", size, diff)
		}
	}
	if diff := cmp.Diff([]string{"p0", "p1", "p3", "p5"}, list(domain.EventPurchase, 2)); diff != "" {
		t.Errorf("purchases (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"s2", "s6a", "s6b"}, list(domain.EventSurvey, 1)); diff != "" {
		t.Errorf("surveys (-want +got):\n%s", diff)
	}
	if got := list(domain.EventReferral, 5); len(got) != 0 {
		t.Errorf("referrals = %v", got)
	}

	_, next, err := f.st.ListEvents(f.ctx, "acme", "c1", 0, domain.Page{Size: 2})
	if err != nil || next == "" {
		t.Fatal(next, err)
	}
	_, _, err = f.st.ListEvents(f.ctx, "acme", "c2", 0, domain.Page{Size: 2, Token: next})
	wantFields(t, err, "page_token")
	_, _, err = f.st.ListEvents(f.ctx, "acme", "ghost", 0, domain.Page{Size: 2})
	wantErr(t, err, fault.ErrNotFound)
}

func TestDataSurvivesReopen(t *testing.T) {
	f := newFixture(t)
	f.create("acme", f.person("c1", func(c *domain.Customer) { c.Email = "a@example.com" }), f.person("c2", func(c *domain.Customer) { c.Email = "A@example.com" }))
	f.record("acme",
		purchase("e1", "c1", "o1", money(10_000, "CNY"), day(1)),
		survey("e2", "c1", ptr[int32](5), ptr[int32](10), day(2)),
	)
	f.record("acme", refund("e3", "c1", "o1", money(2_500, "CNY"), day(3)))
	customer := f.customer("acme", "c1")
	events := f.events("acme", "c1")
	stats := f.stats("acme", "c1")
	tstats := f.tenantStats("acme")
	feedBefore := f.feedEntries()
	path := f.db.Path()
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := boltdb.Open(path, store.Options())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := feed.NewLog(db, f.clk)
	g := &fixture{t: t, db: db, log: log, st: store.New(db, log), clk: f.clk, ctx: f.ctx}

	if diff := cmp.Diff(customer, g.customer("acme", "c1")); diff != "" {
		t.Errorf("customer after reopen (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(events, g.events("acme", "c1")); diff != "" {
		t.Errorf("timeline after reopen (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(stats, g.stats("acme", "c1")); diff != "" {
		t.Errorf("stats after reopen (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(tstats, g.tenantStats("acme")); diff != "" {
		t.Errorf("tenant stats after reopen (-before +after):\n%s", diff)
	}
	feedAfter := g.feedEntries()
	if len(feedAfter) != len(feedBefore) {
		t.Fatalf("feed has %d events after reopen, %d before", len(feedAfter), len(feedBefore))
	}
	for i := range feedBefore {
		if !proto.Equal(feedBefore[i], feedAfter[i]) {
			t.Errorf("feed event %d changed across reopen", i+1)
		}
	}
	if gs, _, err := g.st.Duplicates(g.ctx, "acme", "c2", domain.Page{}); err != nil || len(gs) != 1 {
		t.Errorf("duplicate index after reopen: %+v, %v", gs, err)
	}

	// Idempotency, refund state and sequences carry over.
	if r := g.recordOne("acme", purchase("e1", "c1", "o1", money(10_000, "CNY"), day(1))); r.Err != nil || r.Created {
		t.Errorf("retry after reopen: created=%v err=%v", r.Created, r.Err)
	}
	wantFields(t, g.recordOne("acme", refund("e4", "c1", "o1", money(7_501, "CNY"), day(4))).Err, "refund.amount.amount_minor")
	g.record("acme", refund("e5", "c1", "o1", money(7_500, "CNY"), day(4)))
	if last, _ := g.log.Last(); last != uint64(len(feedBefore)+1) {
		t.Errorf("feed Last = %d after one more write, want %d", last, len(feedBefore)+1)
	}
	if v, err := db.SchemaVersion(); err != nil || v != store.SchemaVersion {
		t.Errorf("schema version = %d, %v", v, err)
	}
}
