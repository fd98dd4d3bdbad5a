package api_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
)

func TestCreateCustomer(t *testing.T) {
	h := start(t)
	ctx := acme

	_, err := h.client.CreateCustomer(ctx, &profilev1.CreateCustomerRequest{})
	wantCode(t, err, codes.InvalidArgument, "customer")

	for _, tc := range []struct {
		name   string
		mutate func(*profilev1.Customer)
		fields []string
	}{
		{"phone", func(c *profilev1.Customer) { c.Phone = "call me" }, []string{"customer.phone"}},
		{"email", func(c *profilev1.Customer) { c.Email = "nobody" }, []string{"customer.email"}},
		{"30 February", func(c *profilev1.Customer) {
			c.Person = &profilev1.Person{Birthday: &typev1.Date{Year: 1990, Month: 2, Day: 30}}
		}, []string{"customer.person.birthday.day"}},
		{"time zone", func(c *profilev1.Customer) { c.TimeZone = "Mars/Olympus" }, []string{"customer.time_zone"}},
		{"unknown stage", func(c *profilev1.Customer) { c.Stage = 99 }, []string{"customer.stage"}},
		{"no id", func(c *profilev1.Customer) { c.CustomerId = "" }, []string{"customer.customer_id"}},
		{"no kind", func(c *profilev1.Customer) { c.Kind = 0 }, []string{"customer.kind"}},
		{"several, in field order", func(c *profilev1.Customer) { c.Stage, c.Phone = 99, "x" }, []string{"customer.phone", "customer.stage"}},
		{"contact of an organization", func(c *profilev1.Customer) {
			c.Kind = profilev1.CustomerKind_CUSTOMER_KIND_ORGANIZATION
			c.Organization = &profilev1.Organization{Contacts: []*profilev1.Contact{{ContactId: "x", Name: "X"}, {ContactId: "y"}}}
		}, []string{"customer.organization.contacts[1].name"}},
		// Times a Timestamp can carry but JSON and the API cannot: refused, not a 500.
		{"acquire time in year 20000", func(c *profilev1.Customer) {
			c.Acquisition = &profilev1.Acquisition{AcquireTime: &timestamppb.Timestamp{Seconds: 568971820800}}
		}, []string{"customer.acquisition.acquire_time"}},
		{"consent time before year 1", func(c *profilev1.Customer) {
			c.Consents = []*profilev1.Consent{{Channel: 1, UpdateTime: &timestamppb.Timestamp{Seconds: -62135596801}}}
		}, []string{"customer.consents[0].update_time"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := person("bad")
			tc.mutate(c)
			_, err := h.client.CreateCustomer(ctx, &profilev1.CreateCustomerRequest{Customer: c})
			wantCode(t, err, codes.InvalidArgument, tc.fields...)
		})
	}

	c := person("c1")
	c.Phone = "+86 138 0000 0000"
	c.CreateTime = timestamppb.New(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)) // output-only: ignored
	c.Etag, c.MergedInto = "r9", "nobody"
	r, err := h.client.CreateCustomer(ctx, &profilev1.CreateCustomerRequest{Customer: c})
	if err != nil || !r.GetCreated() {
		t.Fatalf("create: %v, %v", r, err)
	}
	got := r.GetCustomer()
	if got.GetEtag() != "r1" || !got.GetCreateTime().AsTime().Equal(t0) || got.GetMergedInto() != "" {
		t.Errorf("created = %v", got)
	}

	h.clk.Advance(time.Hour)
	again, err := h.client.CreateCustomer(ctx, &profilev1.CreateCustomerRequest{Customer: c})
	if err != nil || again.GetCreated() {
		t.Fatalf("retry: %v, %v", again, err)
	}
	if diff := cmp.Diff(got, again.GetCustomer(), protocmp.Transform()); diff != "" {
		t.Errorf("retry returned (-first +retry):\n%s", diff)
	}
	c.DisplayName = "someone else"
	_, err = h.client.CreateCustomer(ctx, &profilev1.CreateCustomerRequest{Customer: c})
	wantCode(t, err, codes.AlreadyExists)

	g, err := h.client.GetCustomer(ctx, &profilev1.GetCustomerRequest{CustomerId: "c1"})
	if err != nil || !proto.Equal(g.GetCustomer(), got) {
		t.Errorf("GetCustomer = %v, %v", g, err)
	}
	_, err = h.client.GetCustomer(ctx, &profilev1.GetCustomerRequest{CustomerId: "nope"})
	wantCode(t, err, codes.NotFound)
	_, err = h.client.GetCustomer(ctx, &profilev1.GetCustomerRequest{})
	wantCode(t, err, codes.InvalidArgument, "customer_id")
}

func TestBatchCreateCustomers(t *testing.T) {
	h := start(t)
	bad := person("c2")
	bad.Phone = "x"
	r, err := h.client.BatchCreateCustomers(acme, &profilev1.BatchCreateCustomersRequest{Customers: []*profilev1.Customer{person("c1"), bad, person("c1")}})
	if err != nil {
		t.Fatal(err)
	}
	res := r.GetResults()
	if len(res) != 3 {
		t.Fatalf("%d results", len(res))
	}
	if !res[0].GetCreated() || res[0].GetStatus().GetCode() != 0 || res[0].GetCustomer().GetCustomerId() != "c1" {
		t.Errorf("results[0] = %v", res[0])
	}
	wantCode(t, status.FromProto(res[1].GetStatus()).Err(), codes.InvalidArgument, "customers[1].phone")
	if res[1].GetCustomer() != nil {
		t.Errorf("a rejected item returned a customer")
	}
	if res[2].GetCreated() || res[2].GetStatus().GetCode() != 0 {
		t.Errorf("results[2] = %v, want the first c1 returned", res[2])
	}

	_, err = h.client.BatchCreateCustomers(acme, &profilev1.BatchCreateCustomersRequest{Customers: make([]*profilev1.Customer, 1001)})
	wantCode(t, err, codes.InvalidArgument, "customers")
}

func TestRecordEvent(t *testing.T) {
	h := start(t)
	ctx := acme
	h.create(t, ctx, person("c1"), person("c2"))

	_, err := h.client.RecordEvent(ctx, &profilev1.RecordEventRequest{})
	wantCode(t, err, codes.InvalidArgument, "event")

	for _, tc := range []struct {
		name   string
		e      *profilev1.Event
		code   codes.Code
		fields []string
	}{
		{"negative amount", purchase("e", "c1", "o1", -100, day(1)), codes.InvalidArgument, []string{"event.purchase.amount.amount_minor"}},
		// A free order is a purchase (amount 0), but one without a currency is not.
		{"no amount", &profilev1.Event{EventId: "e", CustomerId: "c1", OccurTime: day(1), Kind: &profilev1.Event_Purchase{Purchase: &profilev1.Purchase{OrderId: "o"}}},
			codes.InvalidArgument, []string{"event.purchase.amount.currency"}},
		{"bad currency", &profilev1.Event{EventId: "e", CustomerId: "c1", OccurTime: day(1), Kind: &profilev1.Event_Purchase{Purchase: &profilev1.Purchase{OrderId: "o", Amount: &typev1.Money{AmountMinor: 1, Currency: "yuan"}}}},
			codes.InvalidArgument, []string{"event.purchase.amount.currency"}},
		{"no kind", &profilev1.Event{EventId: "e", CustomerId: "c1", OccurTime: day(1)}, codes.InvalidArgument, []string{"event.kind"}},
		{"no occur time", purchase("e", "c1", "o1", 1, nil), codes.InvalidArgument, []string{"event.occur_time"}},
		{"far future", purchase("e", "c1", "o1", 1, timestamppb.New(t0.Add(48*time.Hour))), codes.InvalidArgument, []string{"event.occur_time"}},
		{"CSAT 9", survey("e", "c1", ptr[int32](9), nil, day(1)), codes.InvalidArgument, []string{"event.survey.csat"}},
		{"unknown customer", purchase("e", "ghost", "o1", 1, day(1)), codes.NotFound, nil},
		{"refund of no order", refund("e", "c1", "o-none", 1, day(1)), codes.InvalidArgument, []string{"event.refund.order_id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.client.RecordEvent(ctx, &profilev1.RecordEventRequest{Event: tc.e})
			wantCode(t, err, tc.code, tc.fields...)
		})
	}

	r, err := h.client.RecordEvent(ctx, &profilev1.RecordEventRequest{Event: purchase("e1", "c1", "o1", 10_000, day(1))})
	if err != nil || !r.GetCreated() || !r.GetEvent().GetRecordTime().AsTime().Equal(t0) {
		t.Fatalf("record: %v, %v", r, err)
	}
	h.clk.Advance(time.Hour)
	again, err := h.client.RecordEvent(ctx, &profilev1.RecordEventRequest{Event: purchase("e1", "c1", "o1", 10_000, day(1))})
	if err != nil || again.GetCreated() {
		t.Fatalf("retry: %v, %v", again, err)
	}
	if diff := cmp.Diff(r.GetEvent(), again.GetEvent(), protocmp.Transform()); diff != "" {
		t.Errorf("retry returned (-first +retry):\n%s", diff)
	}
	_, err = h.client.RecordEvent(ctx, &profilev1.RecordEventRequest{Event: purchase("e1", "c1", "o1", 10_001, day(1))})
	wantCode(t, err, codes.AlreadyExists)

	_, err = h.client.RecordEvent(ctx, &profilev1.RecordEventRequest{Event: refund("r1", "c1", "o1", 10_001, day(2))})
	wantCode(t, err, codes.InvalidArgument, "event.refund.amount.amount_minor")
	h.record(t, ctx, refund("r1", "c1", "o1", 10_000, day(2)))

	ge, err := h.client.GetEvent(ctx, &profilev1.GetEventRequest{EventId: "e1"})
	if err != nil || !proto.Equal(ge.GetEvent(), r.GetEvent()) {
		t.Errorf("GetEvent = %v, %v", ge, err)
	}
	_, err = h.client.GetEvent(ctx, &profilev1.GetEventRequest{EventId: "nope"})
	wantCode(t, err, codes.NotFound)

	if _, err := h.client.MergeCustomers(ctx, &profilev1.MergeCustomersRequest{TargetCustomerId: "c2", SourceCustomerId: "c1"}); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.RecordEvent(ctx, &profilev1.RecordEventRequest{Event: purchase("e9", "c1", "o9", 1, day(3))})
	wantCode(t, err, codes.FailedPrecondition)
	// The retry of e1, sent to the customer it was recorded on, still finds it.
	again, err = h.client.RecordEvent(ctx, &profilev1.RecordEventRequest{Event: purchase("e1", "c1", "o1", 10_000, day(1))})
	if err != nil || again.GetCreated() || again.GetEvent().GetCustomerId() != "c2" {
		t.Errorf("retry after merge: %v, %v", again, err)
	}
}

func TestBatchRecordEvents(t *testing.T) {
	h := start(t)
	h.create(t, acme, person("c1"))
	badCurrency := purchase("e3", "c1", "o3", 1, day(1))
	badCurrency.GetPurchase().Amount.Currency = "cny"
	r, err := h.client.BatchRecordEvents(acme, &profilev1.BatchRecordEventsRequest{Events: []*profilev1.Event{
		purchase("e1", "c1", "o1", 100, day(1)),
		refund("e2", "c1", "o1", 40, day(2)),
		badCurrency,
		purchase("e4", "ghost", "o4", 1, day(1)),
		purchase("e1", "c1", "o1", 100, day(1)),
		refund("e6", "c1", "o1", 61, day(3)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	res := r.GetResults()
	if len(res) != 6 {
		t.Fatalf("%d results", len(res))
	}
	for i, want := range []struct {
		code    codes.Code
		created bool
		fields  []string
	}{
		{codes.OK, true, nil},
		{codes.OK, true, nil},
		{codes.InvalidArgument, false, []string{"events[2].purchase.amount.currency"}},
		{codes.NotFound, false, nil},
		{codes.OK, false, nil},
		{codes.InvalidArgument, false, []string{"events[5].refund.amount.amount_minor"}},
	} {
		st := status.FromProto(res[i].GetStatus())
		if st.Code() != want.code || res[i].GetCreated() != want.created {
			t.Errorf("results[%d]: code %v created %v, want %v %v (%v)", i, st.Code(), res[i].GetCreated(), want.code, want.created, st.Message())
		}
		if got := violations(st.Err()); !cmp.Equal(got, want.fields) {
			t.Errorf("results[%d] violations = %v, want %v", i, got, want.fields)
		}
		if (res[i].GetEvent() != nil) != (want.code == codes.OK) {
			t.Errorf("results[%d] event = %v", i, res[i].GetEvent())
		}
	}

	_, err = h.client.BatchRecordEvents(acme, &profilev1.BatchRecordEventsRequest{Events: make([]*profilev1.Event, 1001)})
	wantCode(t, err, codes.InvalidArgument, "events")
}

func TestUpdateCustomer(t *testing.T) {
	h := start(t)
	ctx := acme
	c := person("c1")
	c.Phone = "13800000000"
	c.Owner = "li"
	c.Tags = []string{"a", "b"}
	c.Region = &profilev1.Region{Country: "CN", Province: "浙江", City: "杭州"}
	h.create(t, ctx, c)
	update := func(c *profilev1.Customer, paths ...string) (*profilev1.Customer, error) {
		var mask *fieldmaskpb.FieldMask
		if paths != nil {
			mask = &fieldmaskpb.FieldMask{Paths: paths}
		}
		r, err := h.client.UpdateCustomer(ctx, &profilev1.UpdateCustomerRequest{Customer: c, UpdateMask: mask})
		return r.GetCustomer(), err
	}
	get := func() *profilev1.Customer {
		r, err := h.client.GetCustomer(ctx, &profilev1.GetCustomerRequest{CustomerId: "c1"})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetCustomer()
	}

	// Only the named field changes, whatever else the request carries.
	got, err := update(&profilev1.Customer{CustomerId: "c1", DisplayName: "New name", Phone: "999999"}, "display_name")
	if err != nil {
		t.Fatal(err)
	}
	want := get()
	if got.GetDisplayName() != "New name" || got.GetPhone() != "13800000000" || got.GetOwner() != "li" || got.GetEtag() != "r2" {
		t.Errorf("after display_name update: %v", got)
	}
	if !proto.Equal(got, want) {
		t.Errorf("returned %v, stored %v", got, want)
	}

	for _, tc := range []struct {
		name  string
		paths []string
	}{
		{"unknown field", []string{"nope"}},
		{"unknown nested field", []string{"region.street"}},
		{"path through a scalar", []string{"phone.digits"}},
		{"identity", []string{"customer_id"}},
		{"kind", []string{"kind"}},
		{"etag", []string{"etag"}},
		{"server-set", []string{"create_time"}},
		{"contacts have their own RPCs", []string{"organization.contacts"}},
		{"a parent of contacts", []string{"organization"}},
		{"one bad among good", []string{"display_name", "merged_into"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := update(&profilev1.Customer{CustomerId: "c1", DisplayName: "x"}, tc.paths...)
			wantCode(t, err, codes.InvalidArgument, "update_mask")
		})
	}
	if diff := cmp.Diff(want, get(), protocmp.Transform()); diff != "" {
		t.Errorf("refused updates changed the customer:\n%s", diff)
	}

	_, err = update(&profilev1.Customer{CustomerId: "c1", Etag: "r1", Owner: "wang"}, "owner")
	wantCode(t, err, codes.Aborted)
	got, err = update(&profilev1.Customer{CustomerId: "c1", Etag: "r2", Owner: "wang"}, "owner")
	if err != nil || got.GetOwner() != "wang" || got.GetEtag() != "r3" {
		t.Fatalf("update with current etag: %v, %v", got, err)
	}

	// An empty mask updates the populated fields only.
	got, err = update(&profilev1.Customer{CustomerId: "c1", DisplayName: "Third", Tags: []string{"c"}, Stage: profilev1.LifecycleStage_LIFECYCLE_STAGE_LOYAL})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetDisplayName() != "Third" || !cmp.Equal(got.GetTags(), []string{"c"}) || got.GetStage() != profilev1.LifecycleStage_LIFECYCLE_STAGE_LOYAL ||
		got.GetPhone() != "13800000000" || got.GetOwner() != "wang" || got.GetRegion().GetCity() != "杭州" {
		t.Errorf("after empty-mask update: %v", got)
	}
	_, err = update(&profilev1.Customer{CustomerId: "c1", Etag: got.GetEtag()})
	wantCode(t, err, codes.InvalidArgument, "update_mask")

	// A nested path changes the leaf only.
	got, err = update(&profilev1.Customer{CustomerId: "c1", Region: &profilev1.Region{City: "上海", Country: "XX"}}, "region.city")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&profilev1.Region{Country: "CN", Province: "浙江", City: "上海"}, got.GetRegion(), protocmp.Transform()); diff != "" {
		t.Errorf("region after region.city (-want +got):\n%s", diff)
	}
	// A nested path whose parent the request leaves unset clears the leaf.
	got, err = update(&profilev1.Customer{CustomerId: "c1"}, "region.city", "person.birthday")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&profilev1.Region{Country: "CN", Province: "浙江"}, got.GetRegion(), protocmp.Transform()); diff != "" {
		t.Errorf("region after clearing region.city (-want +got):\n%s", diff)
	}
	// A whole message replaces it; unset clears it.
	got, err = update(&profilev1.Customer{CustomerId: "c1"}, "region", "tags")
	if err != nil || got.GetRegion() != nil || got.GetTags() != nil {
		t.Errorf("after clearing region and tags: %v, %v", got, err)
	}

	// The result is validated with the request's field paths.
	_, err = update(&profilev1.Customer{CustomerId: "c1", Person: &profilev1.Person{Birthday: &typev1.Date{Month: 2, Day: 30}}}, "person.birthday")
	wantCode(t, err, codes.InvalidArgument, "customer.person.birthday.day")
	_, err = update(&profilev1.Customer{CustomerId: "c1"}, "display_name")
	wantCode(t, err, codes.InvalidArgument, "customer.display_name")

	_, err = update(&profilev1.Customer{CustomerId: "ghost", DisplayName: "x"}, "display_name")
	wantCode(t, err, codes.NotFound)
	_, err = h.client.UpdateCustomer(ctx, &profilev1.UpdateCustomerRequest{})
	wantCode(t, err, codes.InvalidArgument, "customer")
	_, err = update(&profilev1.Customer{DisplayName: "x"}, "display_name")
	wantCode(t, err, codes.InvalidArgument, "customer.customer_id")

	h.create(t, ctx, person("c2"))
	if _, err := h.client.MergeCustomers(ctx, &profilev1.MergeCustomersRequest{TargetCustomerId: "c2", SourceCustomerId: "c1"}); err != nil {
		t.Fatal(err)
	}
	_, err = update(&profilev1.Customer{CustomerId: "c1", DisplayName: "x"}, "display_name")
	wantCode(t, err, codes.FailedPrecondition)
}

func TestContacts(t *testing.T) {
	h := start(t)
	ctx := acme
	h.create(t, ctx, org("o1"), person("p1"))
	roles := func(c *profilev1.Customer) []profilev1.DecisionRole { return c.GetOrganization().GetUncoveredRoles() }
	const (
		dm = profilev1.DecisionRole_DECISION_ROLE_DECISION_MAKER
		te = profilev1.DecisionRole_DECISION_ROLE_TECHNICAL_EVALUATOR
		pu = profilev1.DecisionRole_DECISION_ROLE_PURCHASER
		us = profilev1.DecisionRole_DECISION_ROLE_USER
		in = profilev1.DecisionRole_DECISION_ROLE_INFLUENCER
	)
	g, err := h.client.GetCustomer(ctx, &profilev1.GetCustomerRequest{CustomerId: "o1"})
	if err != nil || !cmp.Equal(roles(g.GetCustomer()), []profilev1.DecisionRole{dm, te, pu, us, in}) {
		t.Fatalf("new organization uncovered roles = %v, %v", roles(g.GetCustomer()), err)
	}

	upsert := func(ct *profilev1.Contact) (*profilev1.Customer, error) {
		r, err := h.client.UpsertContact(ctx, &profilev1.UpsertContactRequest{CustomerId: "o1", Contact: ct})
		return r.GetCustomer(), err
	}
	c, err := upsert(&profilev1.Contact{ContactId: "ct-1", Name: "Zhang", Role: dm, Counterpart: "li"})
	if err != nil || !cmp.Equal(roles(c), []profilev1.DecisionRole{te, pu, us, in}) {
		t.Fatalf("after the decision maker: %v, %v", roles(c), err)
	}
	c, err = upsert(&profilev1.Contact{ContactId: "ct-2", Name: "Wang", Role: te}) // no counterpart: still a gap
	if err != nil || !cmp.Equal(roles(c), []profilev1.DecisionRole{te, pu, us, in}) {
		t.Fatalf("after an uncovered evaluator: %v, %v", roles(c), err)
	}
	c, err = upsert(&profilev1.Contact{ContactId: "ct-2", Name: "Wang", Role: te, Counterpart: "han"})
	if err != nil || !cmp.Equal(roles(c), []profilev1.DecisionRole{pu, us, in}) || len(c.GetOrganization().GetContacts()) != 2 {
		t.Fatalf("after replacing the evaluator: %v, %v", c.GetOrganization(), err)
	}

	// An update with an empty mask leaves the contacts alone.
	up, err := h.client.UpdateCustomer(ctx, &profilev1.UpdateCustomerRequest{Customer: &profilev1.Customer{CustomerId: "o1",
		Organization: &profilev1.Organization{LegalName: "Renamed Ltd", Contacts: []*profilev1.Contact{{ContactId: "zz", Name: "Z"}}}}})
	if err != nil || up.GetCustomer().GetOrganization().GetLegalName() != "Renamed Ltd" || len(up.GetCustomer().GetOrganization().GetContacts()) != 2 {
		t.Fatalf("update of an organization: %v, %v", up.GetCustomer().GetOrganization(), err)
	}

	d, err := h.client.DeleteContact(ctx, &profilev1.DeleteContactRequest{CustomerId: "o1", ContactId: "ct-2"})
	if err != nil || !cmp.Equal(roles(d.GetCustomer()), []profilev1.DecisionRole{te, pu, us, in}) || len(d.GetCustomer().GetOrganization().GetContacts()) != 1 {
		t.Fatalf("after deleting the evaluator: %v, %v", d.GetCustomer().GetOrganization(), err)
	}
	_, err = h.client.DeleteContact(ctx, &profilev1.DeleteContactRequest{CustomerId: "o1", ContactId: "ct-2"})
	wantCode(t, err, codes.NotFound)
	_, err = h.client.DeleteContact(ctx, &profilev1.DeleteContactRequest{CustomerId: "o1"})
	wantCode(t, err, codes.InvalidArgument, "contact_id")
	_, err = h.client.DeleteContact(ctx, &profilev1.DeleteContactRequest{CustomerId: "ghost", ContactId: "ct-1"})
	wantCode(t, err, codes.NotFound)

	_, err = h.client.UpsertContact(ctx, &profilev1.UpsertContactRequest{CustomerId: "o1"})
	wantCode(t, err, codes.InvalidArgument, "contact")
	_, err = upsert(&profilev1.Contact{ContactId: "ct-3"})
	wantCode(t, err, codes.InvalidArgument, "contact.name")
	_, err = upsert(&profilev1.Contact{ContactId: "ct-3", Name: "X", Email: "bad"})
	wantCode(t, err, codes.InvalidArgument, "contact.email")
	_, err = h.client.UpsertContact(ctx, &profilev1.UpsertContactRequest{CustomerId: "p1", Contact: &profilev1.Contact{ContactId: "ct-1", Name: "X"}})
	wantCode(t, err, codes.InvalidArgument, "customer_id")
	_, err = h.client.UpsertContact(ctx, &profilev1.UpsertContactRequest{CustomerId: "ghost", Contact: &profilev1.Contact{ContactId: "ct-1", Name: "X"}})
	wantCode(t, err, codes.NotFound)
}

func TestStreamRecordEvents(t *testing.T) {
	h := start(t)
	h.create(t, acme, person("c1"))
	send := func() *profilev1.StreamRecordEventsResponse {
		t.Helper()
		s, err := h.client.StreamRecordEvents(acme)
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range [][]*profilev1.Event{
			{purchase("e1", "c1", "o1", 100, day(1)), survey("e2", "c1", ptr[int32](4), nil, day(2))},
			{purchase("e3", "c1", "o3", -1, day(3)), purchase("e1", "c1", "o1", 100, day(1))},
			{refund("e4", "c1", "o1", 100, day(4))},
		} {
			if err := s.Send(&profilev1.StreamRecordEventsRequest{Events: msg}); err != nil {
				t.Fatal(err)
			}
		}
		sum, err := s.CloseAndRecv()
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	sum := send()
	if sum.GetCreated() != 3 || sum.GetDuplicates() != 1 || sum.GetRejected() != 1 {
		t.Errorf("summary = %v, want 3 created, 1 duplicate, 1 rejected", sum)
	}
	if len(sum.GetErrors()) != 1 || sum.GetErrors()[0].GetEventId() != "e3" {
		t.Fatalf("errors = %v", sum.GetErrors())
	}
	wantCode(t, status.FromProto(sum.GetErrors()[0].GetStatus()).Err(), codes.InvalidArgument, "events[0].purchase.amount.amount_minor")

	last, _ := h.feed.Last()
	sum = send() // the whole stream retried
	if sum.GetCreated() != 0 || sum.GetDuplicates() != 4 || sum.GetRejected() != 1 {
		t.Errorf("retried summary = %v, want 0 created, 4 duplicates, 1 rejected", sum)
	}
	if now, _ := h.feed.Last(); now != last {
		t.Errorf("the retried stream added %d feed events", now-last)
	}
	ind, err := h.client.GetCustomerIndicators(acme, &profilev1.GetCustomerIndicatorsRequest{CustomerId: "c1"})
	if err != nil || ind.GetIndicators().GetPurchaseCount() != 1 || ind.GetIndicators().GetTotals()[0].GetNetMinor() != 0 {
		t.Errorf("indicators = %v, %v", ind, err)
	}

	// An empty stream is a summary of nothing.
	s, err := h.client.StreamRecordEvents(acme)
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := s.CloseAndRecv(); err != nil || sum.GetCreated()+sum.GetDuplicates()+sum.GetRejected() != 0 {
		t.Errorf("empty stream: %v, %v", sum, err)
	}
}

// follow reads a FollowChanges stream that ends by itself.
func follow(t *testing.T, h *harness, tenant string, after uint64) []*feedv1.Event {
	t.Helper()
	s, err := h.client.FollowChanges(as(tenant), &profilev1.FollowChangesRequest{AfterSequence: after})
	if err != nil {
		t.Fatal(err)
	}
	var out []*feedv1.Event
	for {
		r, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("FollowChanges(%s): %v", tenant, err)
		}
		out = append(out, r.GetEvent())
	}
}

func summary(evs []*feedv1.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.GetTenant()+" "+e.GetType()+" "+e.GetKey())
	}
	return out
}

func TestFollowChanges(t *testing.T) {
	h := start(t)
	beta := as("beta")
	h.create(t, acme, person("c1"))                                     // 1
	h.create(t, beta, person("c1"))                                     // 2
	h.record(t, acme, purchase("e1", "c1", "o1", 100, day(1)))          // 3
	h.record(t, beta, purchase("e1", "c1", "o1", 200, day(1)))          // 4
	h.record(t, beta, survey("e2", "c1", ptr[int32](5), nil, day(2)))   // 5
	h.create(t, as("acme-cn"), person("c1"))                            // 6: a tenant id with acme as prefix
	h.record(t, as("acme-cn"), purchase("e1", "c1", "o1", 300, day(1))) // 7

	wantAcme := []string{"acme customer.created c1", "acme event.recorded c1"}
	if diff := cmp.Diff(wantAcme, summary(follow(t, h, "acme", 0))); diff != "" {
		t.Errorf("acme's feed (-want +got):\n%s", diff)
	}
	all := follow(t, h, "*", 0)
	if len(all) != 7 {
		t.Fatalf("the wildcard sees %d events, want 7", len(all))
	}
	for i, e := range all {
		if e.GetSequence() != uint64(i+1) {
			t.Errorf("event %d has sequence %d", i, e.GetSequence())
		}
	}
	if got := summary(all)[1]; got != "beta customer.created c1" {
		t.Errorf("all[1] = %q", got)
	}
	if got := follow(t, h, "*", 5); len(got) != 2 || got[0].GetSequence() != 6 {
		t.Errorf("after 5: %v", summary(got))
	}
	if got := follow(t, h, "beta", 4); len(got) != 1 || got[0].GetSequence() != 5 {
		t.Errorf("beta after 4: %v", summary(got))
	}
	if got := follow(t, h, "nobody", 0); len(got) != 0 {
		t.Errorf("a tenant without data sees %v", summary(got))
	}
	// The payload is the API's message.
	var ev profilev1.Event
	if err := all[3].GetPayload().UnmarshalTo(&ev); err != nil || ev.GetPurchase().GetAmount().GetAmountMinor() != 200 {
		t.Errorf("payload of event 4: %v, %v", &ev, err)
	}

	// wait=true: the stream delivers what is committed after it started,
	// and only the caller's tenant's.
	ctx, cancel := context.WithCancel(acme)
	defer cancel()
	s, err := h.client.FollowChanges(ctx, &profilev1.FollowChangesRequest{AfterSequence: 2, Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.Recv() // the stream is running once it has sent the backlog
	if err != nil || first.GetEvent().GetSequence() != 3 {
		t.Fatalf("first = %v, %v", first, err)
	}
	h.record(t, beta, purchase("e3", "c1", "o3", 1, day(3)))           // 8, not acme's
	h.record(t, acme, survey("e2", "c1", nil, ptr[int32](10), day(4))) // 9
	next, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := next.GetEvent(); got.GetSequence() != 9 || got.GetTenant() != "acme" || got.GetType() != "event.recorded" {
		t.Errorf("event after the stream started = %v", got)
	}
	cancel()
	if _, err := s.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("after cancel: %v", err)
	}
}

func TestListingsAndIndicators(t *testing.T) {
	h := start(t)
	ctx := acme
	a, b := person("a"), person("b")
	a.Email, b.Email = "x@example.com", "X@example.com"
	a.Tags = []string{"vip"}
	h.create(t, ctx, a, b, person("c"))
	h.record(t, ctx,
		purchase("1", "a", "o1", 1_000, day(1)),
		purchase("2", "a", "o2", 3_000, day(2)),
		survey("3", "a", ptr[int32](4), ptr[int32](9), day(3)),
		purchase("4", "b", "o4", 500, day(4)),
	)

	l, err := h.client.ListCustomers(ctx, &profilev1.ListCustomersRequest{PageSize: 2})
	if err != nil || len(l.GetCustomers()) != 2 || l.GetNextPageToken() == "" {
		t.Fatalf("page 1: %v, %v", l, err)
	}
	l, err = h.client.ListCustomers(ctx, &profilev1.ListCustomersRequest{PageSize: 2, PageToken: l.GetNextPageToken()})
	if err != nil || len(l.GetCustomers()) != 1 || l.GetCustomers()[0].GetCustomerId() != "c" || l.GetNextPageToken() != "" {
		t.Errorf("page 2: %v, %v", l, err)
	}
	l, err = h.client.ListCustomers(ctx, &profilev1.ListCustomersRequest{Tag: "vip"})
	if err != nil || len(l.GetCustomers()) != 1 {
		t.Errorf("vip: %v, %v", l, err)
	}
	_, err = h.client.ListCustomers(ctx, &profilev1.ListCustomersRequest{PageSize: 1001})
	wantCode(t, err, codes.InvalidArgument, "page_size")
	_, err = h.client.ListCustomers(ctx, &profilev1.ListCustomersRequest{PageSize: -1})
	wantCode(t, err, codes.InvalidArgument, "page_size")
	_, err = h.client.ListCustomers(ctx, &profilev1.ListCustomersRequest{PageToken: "garbage"})
	wantCode(t, err, codes.InvalidArgument, "page_token")

	ev, err := h.client.ListEvents(ctx, &profilev1.ListEventsRequest{CustomerId: "a", Kind: profilev1.EventKind_EVENT_KIND_PURCHASE})
	if err != nil || len(ev.GetEvents()) != 2 || ev.GetEvents()[0].GetEventId() != "1" {
		t.Errorf("a's purchases: %v, %v", ev, err)
	}
	_, err = h.client.ListEvents(ctx, &profilev1.ListEventsRequest{CustomerId: "a", Kind: 99})
	wantCode(t, err, codes.InvalidArgument, "kind")
	_, err = h.client.ListEvents(ctx, &profilev1.ListEventsRequest{})
	wantCode(t, err, codes.InvalidArgument, "customer_id")
	_, err = h.client.ListEvents(ctx, &profilev1.ListEventsRequest{CustomerId: "ghost"})
	wantCode(t, err, codes.NotFound)

	ci, err := h.client.GetCustomerIndicators(ctx, &profilev1.GetCustomerIndicatorsRequest{CustomerId: "a"})
	if err != nil {
		t.Fatal(err)
	}
	wantCI := &profilev1.CustomerIndicators{
		CustomerId: "a", PurchaseCount: 2, RepeatBuyer: true, CsatCount: 1, AverageCsat: 4, NpsCount: 1, LastNps: 9,
		Totals:            []*profilev1.CurrencyTotals{{Currency: "CNY", PurchasedMinor: 4_000, NetMinor: 4_000}},
		FirstPurchaseTime: day(1), LastPurchaseTime: day(2),
	}
	if diff := cmp.Diff(wantCI, ci.GetIndicators(), protocmp.Transform()); diff != "" {
		t.Errorf("a's indicators (-want +got):\n%s", diff)
	}
	ci, err = h.client.GetCustomerIndicators(ctx, &profilev1.GetCustomerIndicatorsRequest{CustomerId: "c"})
	if err != nil || ci.GetIndicators().GetLastNps() != -1 {
		t.Errorf("c's indicators: %v, %v", ci, err)
	}
	_, err = h.client.GetCustomerIndicators(ctx, &profilev1.GetCustomerIndicatorsRequest{CustomerId: "ghost"})
	wantCode(t, err, codes.NotFound)

	ti, err := h.client.GetTenantIndicators(ctx, &profilev1.GetTenantIndicatorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	wantTI := &profilev1.TenantIndicators{
		CustomerCount: 3, BuyerCount: 2, RepeatBuyerCount: 1, RepurchaseRate: 0.5, PurchaseCount: 3,
		AverageCsat: 4, CsatCount: 1, Nps: 100, Promoters: 1,
		Totals: []*profilev1.CurrencyTotals{{Currency: "CNY", PurchasedMinor: 4_500, NetMinor: 4_500}},
	}
	if diff := cmp.Diff(wantTI, ti.GetIndicators(), protocmp.Transform()); diff != "" {
		t.Errorf("tenant indicators (-want +got):\n%s", diff)
	}

	d, err := h.client.ListDuplicates(ctx, &profilev1.ListDuplicatesRequest{})
	if err != nil || len(d.GetGroups()) != 1 || !cmp.Equal(d.GetGroups()[0].GetCustomerIds(), []string{"a", "b"}) {
		t.Fatalf("duplicates: %v, %v", d, err)
	}
	m, err := h.client.MergeCustomers(ctx, &profilev1.MergeCustomersRequest{TargetCustomerId: "a", SourceCustomerId: "b"})
	if err != nil || m.GetMovedEvents() != 1 || m.GetCustomer().GetCustomerId() != "a" {
		t.Fatalf("merge: %v, %v", m, err)
	}
	_, err = h.client.MergeCustomers(ctx, &profilev1.MergeCustomersRequest{TargetCustomerId: "a", SourceCustomerId: "a"})
	wantCode(t, err, codes.InvalidArgument, "source_customer_id")
	_, err = h.client.MergeCustomers(ctx, &profilev1.MergeCustomersRequest{SourceCustomerId: "a"})
	wantCode(t, err, codes.InvalidArgument, "target_customer_id")
	d, err = h.client.ListDuplicates(ctx, &profilev1.ListDuplicatesRequest{CustomerId: "a"})
	if err != nil || len(d.GetGroups()) != 0 {
		t.Errorf("duplicates after merge: %v, %v", d, err)
	}

	e, err := h.client.EraseCustomer(ctx, &profilev1.EraseCustomerRequest{CustomerId: "a"})
	if err != nil || !e.GetCustomer().GetErased() || e.GetCustomer().GetEmail() != "" {
		t.Fatalf("erase: %v, %v", e, err)
	}
	ti2, err := h.client.GetTenantIndicators(ctx, &profilev1.GetTenantIndicatorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	wantTI.CustomerCount = 2 // merged; erasure changes no indicator
	wantTI.BuyerCount = 1
	wantTI.RepurchaseRate = 1
	if diff := cmp.Diff(wantTI, ti2.GetIndicators(), protocmp.Transform()); diff != "" {
		t.Errorf("tenant indicators after merge and erasure (-want +got):\n%s", diff)
	}
	_, err = h.client.EraseCustomer(ctx, &profilev1.EraseCustomerRequest{CustomerId: "ghost"})
	wantCode(t, err, codes.NotFound)
}
