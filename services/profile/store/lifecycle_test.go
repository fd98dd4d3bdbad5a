package store_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"rapport.dev/platform/fault"
	"rapport.dev/services/profile/domain"
)

func TestDuplicates(t *testing.T) {
	f := newFixture(t)
	phone := func(p string) func(*domain.Customer) { return func(c *domain.Customer) { c.Phone = p } }
	email := func(e string) func(*domain.Customer) { return func(c *domain.Customer) { c.Email = e } }
	f.create("acme",
		f.person("c1", phone("+86 138-0000-0000")),
		f.person("c2", phone("8613800000000")),
		f.person("c3", email("Wang@Example.com")),
		f.person("c4", email("wang@example.com"), phone("555 0101")),
		f.person("c5", phone("99999")),
		f.person("c6", email("solo@example.com")),
		f.person("c7", phone("(86) 138 0000 0000")),
		f.person("c8", phone("555-0101")),
		// Match keys that extend another's: "phone:99999" is a prefix of
		// "phone:999990", so paging must not skip across them.
		f.person("c9", phone("999990")),
		f.person("c10", phone("999-990")),
	)
	f.create("acme", &domain.Customer{ID: "org", Kind: domain.KindOrganization, DisplayName: "Org", CreateTime: t0, UpdateTime: t0, Revision: 1,
		Organization: &domain.Organization{Contacts: []domain.Contact{{ID: "x", Name: "X", Email: "WANG@example.com"}}}})

	all := []domain.DuplicateGroup{
		{Match: "email:wang@example.com", CustomerIDs: []string{"c3", "c4", "org"}},
		{Match: "phone:5550101", CustomerIDs: []string{"c4", "c8"}},
		{Match: "phone:8613800000000", CustomerIDs: []string{"c1", "c2", "c7"}},
		{Match: "phone:999990", CustomerIDs: []string{"c10", "c9"}},
	}
	gs, next, err := f.st.Duplicates(f.ctx, "acme", "", domain.Page{Size: 100})
	if err != nil || next != "" {
		t.Fatalf("Duplicates: next=%q err=%v", next, err)
	}
	if diff := cmp.Diff(all, gs); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}

	for _, size := range []int{1, 2, 3} {
		var got []domain.DuplicateGroup
		token := ""
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatal("pagination does not end")
			}
			gs, next, err := f.st.Duplicates(f.ctx, "acme", "", domain.Page{Size: size, Token: token})
			if err != nil {
				t.Fatalf("size %d: %v", size, err)
			}
			if len(gs) > size {
				t.Fatalf("size %d: page of %d", size, len(gs))
			}
			got = append(got, gs...)
			if next == "" {
				break
			}
			token = next
		}
		if diff := cmp.Diff(all, got); diff != "" {
			t.Errorf("size %d, all pages (-want +got):\n%s", size, diff)
		}
	}

	for id, want := range map[string][]domain.DuplicateGroup{
		"c2": {all[2]},
		"c4": {all[0], all[1]},
		"c5": nil,
	} {
		gs, _, err := f.st.Duplicates(f.ctx, "acme", id, domain.Page{Size: 10})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, gs); diff != "" {
			t.Errorf("duplicates of %s (-want +got):\n%s", id, diff)
		}
	}
	_, _, err = f.st.Duplicates(f.ctx, "acme", "ghost", domain.Page{Size: 10})
	wantErr(t, err, fault.ErrNotFound)
	_, _, err = f.st.Duplicates(f.ctx, "acme", "", domain.Page{Size: 10, Token: "bm9wZQ"})
	wantFields(t, err, "page_token")

	// An update moves the customer in the index.
	if _, err := f.st.UpdateCustomer(f.ctx, "acme", "c2", func(c *domain.Customer) error { c.Phone = "99999"; return nil }); err != nil {
		t.Fatal(err)
	}
	gs, _, _ = f.st.Duplicates(f.ctx, "acme", "c2", domain.Page{Size: 10})
	if diff := cmp.Diff([]domain.DuplicateGroup{{Match: "phone:99999", CustomerIDs: []string{"c2", "c5"}}}, gs); diff != "" {
		t.Errorf("after update (-want +got):\n%s", diff)
	}
}

func TestMerge(t *testing.T) {
	f := newFixture(t)
	f.create("acme",
		f.person("tgt", func(c *domain.Customer) { c.Phone = "111 111" }),
		f.person("src", func(c *domain.Customer) {
			c.Email = "src@example.com"
			c.Phone = "222 222"
			c.Acquisition.Channel = domain.ChannelReferral
		}),
		f.person("other"),
	)
	f.record("acme",
		purchase("t1", "tgt", "o-t", money(5_000, "CNY"), day(2)),
		survey("t2", "tgt", nil, ptr[int32](9), day(3)),
		&domain.Event{ID: "s1", CustomerID: "src", OccurTime: day(1), Purchase: &domain.Purchase{OrderID: "o-s", Amount: money(8_000, "CNY"), Discount: money(800, "CNY")}},
		complaint("s2", "src", "k1", day(4)),
		survey("s3", "src", ptr[int32](2), ptr[int32](3), day(5)),
		purchase("x1", "other", "o-x", money(1, "USD"), day(1)),
	)
	wantStats := *f.stats("acme", "tgt")
	wantStats.Merge(f.stats("acme", "src"))
	before := f.tenantStats("acme")
	wantTimeline := []string{"s1", "t1", "t2", "s2", "s3"}

	f.clk.Advance(1)
	merged, moved, err := f.st.Merge(f.ctx, "acme", "tgt", "src", f.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if moved != 3 {
		t.Errorf("moved = %d, want 3", moved)
	}
	if merged.ID != "tgt" || merged.Phone != "111 111" || merged.Email != "src@example.com" || merged.Revision != 2 || !merged.Referred() {
		t.Errorf("merged target = %+v", merged)
	}
	if diff := cmp.Diff(merged, f.customer("acme", "tgt")); diff != "" {
		t.Errorf("returned and stored target differ:\n%s", diff)
	}
	src := f.customer("acme", "src")
	if src.MergedInto != "tgt" || src.Revision != 2 {
		t.Errorf("source = %+v, want merged_into tgt", src)
	}

	// The timeline moved; every event id still resolves, now to the target.
	evs := f.events("acme", "tgt")
	if diff := cmp.Diff(wantTimeline, eventIDs(evs)); diff != "" {
		t.Errorf("target timeline (-want +got):\n%s", diff)
	}
	for _, id := range wantTimeline {
		e, err := f.st.GetEvent(f.ctx, "acme", id)
		if err != nil || e.CustomerID != "tgt" {
			t.Errorf("GetEvent(%s) = %+v, %v; want it on tgt", id, e, err)
		}
	}
	if got := f.events("acme", "src"); len(got) != 0 {
		t.Errorf("source still has events %v", eventIDs(got))
	}

	// Stats merged; tenant totals unchanged, one customer fewer.
	if diff := cmp.Diff(&wantStats, f.stats("acme", "tgt")); diff != "" {
		t.Errorf("target stats (-want +got):\n%s", diff)
	}
	after := f.tenantStats("acme")
	want := *before
	want.Customers--
	want.Buyers--       // two buyers became one
	want.RepeatBuyers++ // who bought twice
	if diff := cmp.Diff(&want, after); diff != "" {
		t.Errorf("tenant stats (-want +got):\n%s", diff)
	}

	// Orders moved with their purchases: the source's order refunds on the target.
	f.record("acme", refund("r1", "tgt", "o-s", money(8_000, "CNY"), day(6)))
	wantFields(t, f.recordOne("acme", refund("r2", "tgt", "o-s", money(1, "CNY"), day(6))).Err, "refund.amount.amount_minor")
	// The source takes no more events.
	wantErr(t, f.recordOne("acme", purchase("s9", "src", "o-new", money(1, "CNY"), day(6))).Err, fault.ErrFailedPrecondition)

	// The source is out of listings and of the duplicate index; its contact
	// data now finds the target.
	cs, _, err := f.st.ListCustomers(f.ctx, "acme", domain.Filter{}, domain.Page{Size: 10})
	if err != nil || !cmp.Equal(customerIDs(cs), []string{"other", "tgt"}) {
		t.Errorf("customers after merge = %v, %v", customerIDs(cs), err)
	}
	f.create("acme", f.person("dup", func(c *domain.Customer) { c.Email = "SRC@example.com" }))
	gs, _, err := f.st.Duplicates(f.ctx, "acme", "dup", domain.Page{Size: 10})
	if diff := cmp.Diff([]domain.DuplicateGroup{{Match: "email:src@example.com", CustomerIDs: []string{"dup", "tgt"}}}, gs); diff != "" || err != nil {
		t.Errorf("duplicates of the source's email (-want +got): %v\n%s", err, diff)
	}

	// A retried merge is a no-op.
	feedLen := f.feedLen()
	tstats := f.tenantStats("acme")
	again, moved, err := f.st.Merge(f.ctx, "acme", "tgt", "src", f.clk.Now())
	if err != nil || moved != 0 || again.Revision != merged.Revision {
		t.Errorf("merge retry: moved=%d rev=%d err=%v", moved, again.Revision, err)
	}
	if got := f.feedLen(); got != feedLen {
		t.Errorf("merge retry added %d feed events", got-feedLen)
	}
	if diff := cmp.Diff(tstats, f.tenantStats("acme")); diff != "" {
		t.Errorf("merge retry changed tenant stats:\n%s", diff)
	}

	// Merging the source elsewhere, or into itself, or into a merged record, is refused.
	_, _, err = f.st.Merge(f.ctx, "acme", "other", "src", f.clk.Now())
	wantFields(t, err, "source_customer_id")
	_, _, err = f.st.Merge(f.ctx, "acme", "src", "other", f.clk.Now())
	wantFields(t, err, "target_customer_id")
	_, _, err = f.st.Merge(f.ctx, "acme", "tgt", "ghost", f.clk.Now())
	wantErr(t, err, fault.ErrNotFound)
}

func TestMergeRefusesClashingOrders(t *testing.T) {
	f := newFixture(t)
	f.create("acme", f.person("a"), f.person("b"), &domain.Customer{ID: "org", Kind: domain.KindOrganization, DisplayName: "Org", CreateTime: t0, UpdateTime: t0, Revision: 1})
	f.record("acme",
		purchase("a1", "a", "o-same", money(100, "CNY"), day(1)),
		purchase("b1", "b", "o-same", money(200, "CNY"), day(2)),
	)
	feedLen := f.feedLen()
	tstats := f.tenantStats("acme")
	_, _, err := f.st.Merge(f.ctx, "acme", "a", "b", f.clk.Now())
	wantErr(t, err, fault.ErrFailedPrecondition)
	_, _, err = f.st.Merge(f.ctx, "acme", "a", "org", f.clk.Now())
	wantFields(t, err, "source_customer_id")

	if b := f.customer("acme", "b"); b.MergedInto != "" || b.Revision != 1 {
		t.Errorf("refused merge changed the source: %+v", b)
	}
	if got := eventIDs(f.events("acme", "b")); !cmp.Equal(got, []string{"b1"}) {
		t.Errorf("refused merge moved events: %v", got)
	}
	if got := f.feedLen(); got != feedLen {
		t.Errorf("refused merge added %d feed events", got-feedLen)
	}
	if diff := cmp.Diff(tstats, f.tenantStats("acme")); diff != "" {
		t.Errorf("refused merge changed tenant stats:\n%s", diff)
	}
}

func TestErase(t *testing.T) {
	f := newFixture(t)
	f.create("acme",
		f.person("c1", func(c *domain.Customer) {
			c.DisplayName = "王小明"
			c.Person = &domain.Person{GivenName: "小明", FamilyName: "王", Birthday: domain.Date{Year: 1990, Month: 2, Day: 3}, IncomeBand: 2}
			c.Phone, c.Email = "138 0000 0000", "xm@example.com"
			c.Region = domain.Region{Country: "CN", Province: "浙江", City: "杭州"}
			c.Attributes = map[string]string{"id_card": "3301…"}
			c.Stage = 4
		}),
		f.person("c2", func(c *domain.Customer) { c.Phone = "13800000000" }),
	)
	f.record("acme",
		&domain.Event{ID: "e1", CustomerID: "c1", OccurTime: day(1), Purchase: &domain.Purchase{OrderID: "o1", Amount: money(9_900, "CNY"),
			Discount: money(900, "CNY"), Items: []domain.LineItem{{SKU: "s", Name: "tea", Quantity: 1}}}},
		refund("e2", "c1", "o1", money(1_000, "CNY"), day(2)),
		complaint("e3", "c1", "k1", day(3)),
		survey("e4", "c1", ptr[int32](4), ptr[int32](9), day(4)),
	)
	if gs, _, _ := f.st.Duplicates(f.ctx, "acme", "c2", domain.Page{Size: 10}); len(gs) != 1 {
		t.Fatalf("before erasure: duplicates of c2 = %+v", gs)
	}
	eventsBefore := f.events("acme", "c1")
	stats := f.stats("acme", "c1")
	tstats := f.tenantStats("acme")

	erased, err := f.st.Erase(f.ctx, "acme", "c1", f.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(erased, f.customer("acme", "c1")); diff != "" {
		t.Errorf("returned and stored differ:\n%s", diff)
	}
	want := &domain.Customer{
		ID: "c1", Kind: domain.KindPerson, DisplayName: domain.Erased,
		Person:     &domain.Person{IncomeBand: 2},
		Region:     domain.Region{Country: "CN", Province: "浙江"},
		Stage:      4,
		CreateTime: t0, UpdateTime: t0, Revision: 2, Erased: true,
	}
	if diff := cmp.Diff(want, erased); diff != "" {
		t.Errorf("erased customer (-want +got):\n%s", diff)
	}

	// Texts are scrubbed; amounts, ids and times stay.
	for _, e := range eventsBefore {
		e.ScrubText()
	}
	if diff := cmp.Diff(eventsBefore, f.events("acme", "c1")); diff != "" {
		t.Errorf("timeline after erasure (-want +got):\n%s", diff)
	}
	for _, e := range f.events("acme", "c1") {
		if e.Complaint != nil && e.Complaint.Description != "" || e.Survey != nil && e.Survey.Text != "" || e.Refund != nil && e.Refund.Reason != "" {
			t.Errorf("event %s still holds text: %+v", e.ID, e)
		}
	}
	if diff := cmp.Diff(stats, f.stats("acme", "c1")); diff != "" {
		t.Errorf("erasure changed the customer's indicators:\n%s", diff)
	}
	if diff := cmp.Diff(tstats, f.tenantStats("acme")); diff != "" {
		t.Errorf("erasure changed the tenant's indicators:\n%s", diff)
	}
	if gs, _, _ := f.st.Duplicates(f.ctx, "acme", "c2", domain.Page{Size: 10}); len(gs) != 0 {
		t.Errorf("the erased phone still matches: %+v", gs)
	}
	if gs, _, _ := f.st.Duplicates(f.ctx, "acme", "", domain.Page{Size: 10}); len(gs) != 0 {
		t.Errorf("the erased phone still matches: %+v", gs)
	}
	// The money stays consistent: what is left of the order can still be refunded, no more.
	wantFields(t, f.recordOne("acme", refund("e5", "c1", "o1", money(8_901, "CNY"), day(5))).Err, "refund.amount.amount_minor")
	f.record("acme", refund("e6", "c1", "o1", money(8_900, "CNY"), day(5)))
	entries := f.feedEntries()
	if got := entries[len(entries)-2].GetType(); got != "customer.erased" {
		t.Errorf("feed event of the erasure = %q", got)
	}
}

// TestTenantIndicatorsByHand records a mix of events over several customers
// and compares the tenant's indicators with numbers worked out by hand.
func TestTenantIndicatorsByHand(t *testing.T) {
	f := newFixture(t)
	f.create("acme",
		f.person("a", func(c *domain.Customer) { c.Acquisition.Channel = domain.ChannelReferral }),
		f.person("b", func(c *domain.Customer) { c.Acquisition.ReferredBy = "a" }),
		f.person("c"),
		f.person("d"),
	)
	f.create("other", f.person("a"))
	f.record("other", purchase("x", "a", "o", money(1_000_000, "CNY"), day(1)))
	f.record("acme",
		&domain.Event{ID: "1", CustomerID: "a", OccurTime: day(1), Purchase: &domain.Purchase{OrderID: "o1", Amount: money(10_000, "CNY"), Discount: money(1_000, "CNY")}},
		purchase("2", "a", "o2", money(5_000, "CNY"), day(2)),
		purchase("3", "b", "o3", money(2_000, "USD"), day(3)),
		refund("4", "b", "o3", money(500, "USD"), day(4)),
		complaint("5", "a", "k1", day(5)),
		complaint("6", "a", "k1", day(6)), // a status change of the same complaint
		complaint("7", "c", "k2", day(7)),
		survey("8", "a", ptr[int32](5), ptr[int32](10), day(8)),
		survey("9", "b", ptr[int32](3), ptr[int32](8), day(9)),
		survey("10", "c", nil, ptr[int32](2), day(10)),
	)
	f.record("acme", refund("11", "a", "o2", money(5_000, "CNY"), day(11)))
	// An update that does not touch the counters leaves them alone; one
	// that makes d referred counts d.
	if _, err := f.st.UpdateCustomer(f.ctx, "acme", "a", func(c *domain.Customer) error { c.Owner = "li"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.UpdateCustomer(f.ctx, "acme", "d", func(c *domain.Customer) error { c.Acquisition.Channel = domain.ChannelReferral; return nil }); err != nil {
		t.Fatal(err)
	}

	want := domain.TenantIndicators{
		Customers:      4,
		Buyers:         2, // a and b
		RepeatBuyers:   1, // a
		RepurchaseRate: 0.5,
		Purchases:      3,
		Complaints:     2, // k1 and k2
		ComplaintRate:  2.0 / 3.0,
		AverageCSAT:    4, // (5+3)/2
		CSATCount:      2,
		NPS:            0, // one promoter (10), one passive (8), one detractor (2)
		Promoters:      1,
		Passives:       1,
		Detractors:     1,
		Totals: []domain.CurrencyTotals{
			{Currency: "CNY", Purchased: 15_000, Refunded: 5_000, Net: 10_000, Discount: 1_000},
			{Currency: "USD", Purchased: 2_000, Refunded: 500, Net: 1_500},
		},
		DiscountedPurchaseShare: 1.0 / 3.0,
		ReferredCustomers:       3, // a by channel, b by referred_by, d after its update
	}
	if diff := cmp.Diff(want, f.tenantStats("acme").Indicators()); diff != "" {
		t.Errorf("tenant indicators (-want +got):\n%s", diff)
	}

	// The counters equal the sum of the customers' own stats.
	var sum domain.TenantStats
	for _, id := range []string{"a", "b", "c", "d"} {
		sum.Add(f.customer("acme", id), f.stats("acme", id), 1)
	}
	if diff := cmp.Diff(want, sum.Indicators()); diff != "" {
		t.Errorf("sum of customers' stats (-want +got):\n%s", diff)
	}
	// Indicators of a customer in the store are those of its timeline.
	a := f.stats("acme", "a").Indicators("a")
	if a.Purchases != 2 || !a.RepeatBuyer || a.Complaints != 1 || a.LastNPS != 10 || a.Totals[0].Net != 10_000 {
		t.Errorf("a's indicators = %+v", a)
	}
	if _, err := f.st.Stats(f.ctx, "acme", "ghost"); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("stats of a missing customer: %v", err)
	}
}

// TestRecordRetryAfterMergeAndErase: a client that did not see the answer to
// a record call retries it, possibly after the customer was merged away or
// erased. The retry must be acknowledged as the event already stored, not
// refused as a different record, and must not count twice.
func TestRecordRetryAfterMergeAndErase(t *testing.T) {
	f := newFixture(t)
	f.create("acme", f.person("tgt"), f.person("mid"), f.person("src"), f.person("gone"))
	f.record("acme",
		purchase("p1", "src", "o1", money(100, "CNY"), day(1)),
		complaint("k1", "src", "k-1", day(2)),
		complaint("k2", "gone", "k-2", day(2)),
	)
	if _, _, err := f.st.Merge(f.ctx, "acme", "mid", "src", f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.st.Merge(f.ctx, "acme", "tgt", "mid", f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Erase(f.ctx, "acme", "gone", f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	stats := f.tenantStats("acme")
	feedLen := f.feedLen()

	for _, e := range []*domain.Event{
		purchase("p1", "src", "o1", money(100, "CNY"), day(1)), // now on tgt, through mid
		complaint("k1", "src", "k-1", day(2)),
		complaint("k2", "gone", "k-2", day(2)), // its description was scrubbed
	} {
		r := f.recordOne("acme", e)
		if r.Err != nil || r.Created {
			t.Errorf("retry of %s: created=%v err=%v; want the stored event", e.ID, r.Created, r.Err)
			continue
		}
		stored, err := f.st.GetEvent(f.ctx, "acme", e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(stored, r.Event); diff != "" {
			t.Errorf("retry of %s returned (-stored +returned):\n%s", e.ID, diff)
		}
	}
	// Changed content is still a conflict.
	wantErr(t, f.recordOne("acme", purchase("p1", "src", "o1", money(101, "CNY"), day(1))).Err, fault.ErrAlreadyExists)
	wantErr(t, f.recordOne("acme", purchase("p1", "other", "o1", money(100, "CNY"), day(1))).Err, fault.ErrAlreadyExists)
	c := complaint("k2", "gone", "k-2", day(2))
	c.Complaint.Severity = 4
	wantErr(t, f.recordOne("acme", c).Err, fault.ErrAlreadyExists)
	// A text that differs is a conflict while the customer is not erased.
	c = complaint("k1", "src", "k-1", day(2))
	c.Complaint.Description = "something else"
	wantErr(t, f.recordOne("acme", c).Err, fault.ErrAlreadyExists)

	if diff := cmp.Diff(stats, f.tenantStats("acme")); diff != "" {
		t.Errorf("retries changed the counters:\n%s", diff)
	}
	if got := f.feedLen(); got != feedLen {
		t.Errorf("retries added %d feed events", got-feedLen)
	}
}
