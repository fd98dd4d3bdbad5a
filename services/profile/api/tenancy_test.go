package api_test

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/platform/tenancy"
)

const (
	tenantA = "tenant-a"
	tenantB = "tenant-b"
)

// seedTenants gives tenant-b a bit of everything and tenant-a a little of
// its own, so a leak shows as tenant-b's data where tenant-a's is expected.
func seedTenants(t *testing.T, h *harness) {
	t.Helper()
	b := as(tenantB)
	cust := person("b-cust")
	cust.Phone, cust.Email, cust.Tags = "138 0000 0000", "b@example.com", []string{"vip"}
	src := person("b-src")
	src.Phone = "13800000000"
	o := org("b-org")
	o.Organization.Contacts = []*profilev1.Contact{{ContactId: "b-contact", Name: "B's contact", Role: 1, Counterpart: "b-staff"}}
	h.create(t, b, cust, src, o)
	h.record(t, b,
		purchase("b-ev1", "b-cust", "b-order", 10_000, day(1)),
		survey("b-ev2", "b-cust", ptr[int32](5), ptr[int32](10), day(2)),
		purchase("b-ev3", "b-src", "b-order-2", 500, day(3)),
	)
	a := as(tenantA)
	h.create(t, a, person("a-cust"))
	h.record(t, a, purchase("a-ev1", "a-cust", "a-order", 1, day(1)))
}

// snapshotB reads everything tenant-b can see of its own data.
func snapshotB(t *testing.T, h *harness) []proto.Message {
	t.Helper()
	ctx := as(tenantB)
	var out []proto.Message
	must := func(m proto.Message, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("tenant-b snapshot: %v", err)
		}
		out = append(out, m)
	}
	for _, id := range []string{"b-cust", "b-src", "b-org"} {
		must(h.client.GetCustomer(ctx, &profilev1.GetCustomerRequest{CustomerId: id}))
		must(h.client.ListEvents(ctx, &profilev1.ListEventsRequest{CustomerId: id}))
		must(h.client.GetCustomerIndicators(ctx, &profilev1.GetCustomerIndicatorsRequest{CustomerId: id}))
	}
	must(h.client.GetEvent(ctx, &profilev1.GetEventRequest{EventId: "b-ev1"}))
	must(h.client.ListCustomers(ctx, &profilev1.ListCustomersRequest{}))
	must(h.client.ListDuplicates(ctx, &profilev1.ListDuplicatesRequest{}))
	must(h.client.GetTenantIndicators(ctx, &profilev1.GetTenantIndicatorsRequest{}))
	for _, e := range follow(t, h, tenantB, 0) {
		out = append(out, e)
	}
	return out
}

// onlyTenantA checks tenant-a lists its own customer only.
func onlyTenantA(t *testing.T, h *harness) {
	t.Helper()
	l, err := h.client.ListCustomers(as(tenantA), &profilev1.ListCustomersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range l.GetCustomers() {
		ids = append(ids, c.GetCustomerId())
	}
	if !cmp.Equal(ids, []string{"a-cust"}) {
		t.Errorf("tenant-a lists %v", ids)
	}
}

// crossTenantCalls has, for every RPC of ProfileService, a call made as
// tenant-a with tenant-b's ids. Each must answer NotFound, or with tenant-a's
// own data only. TestTenancyWalk fails when an RPC has no entry here.
var crossTenantCalls = map[string]func(t *testing.T, h *harness, ctx context.Context){
	"CreateCustomer": func(t *testing.T, h *harness, ctx context.Context) {
		c := person("b-cust")
		c.DisplayName = "tenant-a's own b-cust"
		r, err := h.client.CreateCustomer(ctx, &profilev1.CreateCustomerRequest{Customer: c})
		if err != nil || !r.GetCreated() || r.GetCustomer().GetDisplayName() != c.DisplayName || r.GetCustomer().GetPhone() != "" {
			t.Errorf("create with tenant-b's id: %v, %v; want a new customer of tenant-a", r, err)
		}
	},
	"BatchCreateCustomers": func(t *testing.T, h *harness, ctx context.Context) {
		r, err := h.client.BatchCreateCustomers(ctx, &profilev1.BatchCreateCustomersRequest{Customers: []*profilev1.Customer{person("b-cust"), person("b-src")}})
		if err != nil {
			t.Fatal(err)
		}
		for i, res := range r.GetResults() {
			if !res.GetCreated() || res.GetStatus().GetCode() != 0 || res.GetCustomer().GetPhone() != "" {
				t.Errorf("results[%d] = %v; want a new customer of tenant-a", i, res)
			}
		}
	},
	"GetCustomer": func(t *testing.T, h *harness, ctx context.Context) {
		_, err := h.client.GetCustomer(ctx, &profilev1.GetCustomerRequest{CustomerId: "b-cust"})
		wantCode(t, err, codes.NotFound)
	},
	"UpdateCustomer": func(t *testing.T, h *harness, ctx context.Context) {
		_, err := h.client.UpdateCustomer(ctx, &profilev1.UpdateCustomerRequest{
			Customer:   &profilev1.Customer{CustomerId: "b-cust", DisplayName: "hijacked", Etag: "r1"},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name"}},
		})
		wantCode(t, err, codes.NotFound)
	},
	"ListCustomers": func(t *testing.T, h *harness, ctx context.Context) {
		onlyTenantA(t, h)
		// tenant-b's page token does not open tenant-b's listing.
		l, err := h.client.ListCustomers(as(tenantB), &profilev1.ListCustomersRequest{PageSize: 1})
		if err != nil || l.GetNextPageToken() == "" {
			t.Fatalf("tenant-b page 1: %v, %v", l, err)
		}
		_, err = h.client.ListCustomers(ctx, &profilev1.ListCustomersRequest{PageSize: 1, PageToken: l.GetNextPageToken()})
		wantCode(t, err, codes.InvalidArgument, "page_token")
	},
	"EraseCustomer": func(t *testing.T, h *harness, ctx context.Context) {
		_, err := h.client.EraseCustomer(ctx, &profilev1.EraseCustomerRequest{CustomerId: "b-cust"})
		wantCode(t, err, codes.NotFound)
	},
	"ListDuplicates": func(t *testing.T, h *harness, ctx context.Context) {
		r, err := h.client.ListDuplicates(ctx, &profilev1.ListDuplicatesRequest{})
		if err != nil || len(r.GetGroups()) != 0 {
			t.Errorf("tenant-a duplicates = %v, %v", r, err)
		}
		_, err = h.client.ListDuplicates(ctx, &profilev1.ListDuplicatesRequest{CustomerId: "b-cust"})
		wantCode(t, err, codes.NotFound)
	},
	"MergeCustomers": func(t *testing.T, h *harness, ctx context.Context) {
		_, err := h.client.MergeCustomers(ctx, &profilev1.MergeCustomersRequest{TargetCustomerId: "b-cust", SourceCustomerId: "b-src"})
		wantCode(t, err, codes.NotFound)
		_, err = h.client.MergeCustomers(ctx, &profilev1.MergeCustomersRequest{TargetCustomerId: "a-cust", SourceCustomerId: "b-src"})
		wantCode(t, err, codes.NotFound)
	},
	"UpsertContact": func(t *testing.T, h *harness, ctx context.Context) {
		_, err := h.client.UpsertContact(ctx, &profilev1.UpsertContactRequest{CustomerId: "b-org", Contact: &profilev1.Contact{ContactId: "b-contact", Name: "hijacked"}})
		wantCode(t, err, codes.NotFound)
	},
	"DeleteContact": func(t *testing.T, h *harness, ctx context.Context) {
		_, err := h.client.DeleteContact(ctx, &profilev1.DeleteContactRequest{CustomerId: "b-org", ContactId: "b-contact"})
		wantCode(t, err, codes.NotFound)
	},
	"RecordEvent": func(t *testing.T, h *harness, ctx context.Context) {
		// The very event tenant-b recorded: not a duplicate of it here.
		_, err := h.client.RecordEvent(ctx, &profilev1.RecordEventRequest{Event: purchase("b-ev1", "b-cust", "b-order", 10_000, day(1))})
		wantCode(t, err, codes.NotFound)
		// tenant-b's order cannot be refunded from tenant-a.
		_, err = h.client.RecordEvent(ctx, &profilev1.RecordEventRequest{Event: refund("b-ref", "a-cust", "b-order", 1, day(2))})
		wantCode(t, err, codes.InvalidArgument, "event.refund.order_id")
		// tenant-b's event id is free in tenant-a.
		r, err := h.client.RecordEvent(ctx, &profilev1.RecordEventRequest{Event: survey("b-ev2", "a-cust", ptr[int32](1), nil, day(2))})
		if err != nil || !r.GetCreated() {
			t.Errorf("tenant-a recording under tenant-b's event id: %v, %v", r, err)
		}
	},
	"BatchRecordEvents": func(t *testing.T, h *harness, ctx context.Context) {
		r, err := h.client.BatchRecordEvents(ctx, &profilev1.BatchRecordEventsRequest{Events: []*profilev1.Event{
			purchase("b-ev1", "b-cust", "b-order", 10_000, day(1)),
			survey("b-ev2", "b-cust", ptr[int32](5), ptr[int32](10), day(2)),
		}})
		if err != nil {
			t.Fatal(err)
		}
		for i, res := range r.GetResults() {
			if codes.Code(res.GetStatus().GetCode()) != codes.NotFound || res.GetEvent() != nil {
				t.Errorf("results[%d] = %v, want NotFound", i, res)
			}
		}
	},
	"StreamRecordEvents": func(t *testing.T, h *harness, ctx context.Context) {
		s, err := h.client.StreamRecordEvents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&profilev1.StreamRecordEventsRequest{Events: []*profilev1.Event{purchase("b-ev1", "b-cust", "b-order", 10_000, day(1))}}); err != nil {
			t.Fatal(err)
		}
		sum, err := s.CloseAndRecv()
		if err != nil || sum.GetRejected() != 1 || sum.GetDuplicates() != 0 || len(sum.GetErrors()) != 1 ||
			codes.Code(sum.GetErrors()[0].GetStatus().GetCode()) != codes.NotFound {
			t.Errorf("stream summary = %v, %v; want one NotFound", sum, err)
		}
	},
	"GetEvent": func(t *testing.T, h *harness, ctx context.Context) {
		_, err := h.client.GetEvent(ctx, &profilev1.GetEventRequest{EventId: "b-ev1"})
		wantCode(t, err, codes.NotFound)
	},
	"ListEvents": func(t *testing.T, h *harness, ctx context.Context) {
		_, err := h.client.ListEvents(ctx, &profilev1.ListEventsRequest{CustomerId: "b-cust"})
		wantCode(t, err, codes.NotFound)
	},
	"GetCustomerIndicators": func(t *testing.T, h *harness, ctx context.Context) {
		_, err := h.client.GetCustomerIndicators(ctx, &profilev1.GetCustomerIndicatorsRequest{CustomerId: "b-cust"})
		wantCode(t, err, codes.NotFound)
	},
	"GetTenantIndicators": func(t *testing.T, h *harness, ctx context.Context) {
		r, err := h.client.GetTenantIndicators(ctx, &profilev1.GetTenantIndicatorsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		want := &profilev1.TenantIndicators{CustomerCount: 1, BuyerCount: 1, PurchaseCount: 1,
			Totals: []*profilev1.CurrencyTotals{{Currency: "CNY", PurchasedMinor: 1, NetMinor: 1}}}
		if diff := cmp.Diff(want, r.GetIndicators(), protocmp.Transform()); diff != "" {
			t.Errorf("tenant-a indicators (-want +got):\n%s", diff)
		}
	},
	"FollowChanges": func(t *testing.T, h *harness, ctx context.Context) {
		evs := follow(t, h, tenantA, 0)
		if len(evs) != 2 {
			t.Errorf("tenant-a's feed has %d events, want its own 2", len(evs))
		}
		for _, e := range evs {
			if e.GetTenant() != tenantA {
				t.Errorf("tenant-a's feed carries %v", e)
			}
		}
	},
}

// TestTenancyWalk calls every RPC of the service as tenant-a with tenant-b's
// ids, and checks tenant-b's data is neither returned nor changed.
func TestTenancyWalk(t *testing.T) {
	desc := profilev1.ProfileService_ServiceDesc
	var names []string
	for _, m := range desc.Methods {
		names = append(names, m.MethodName)
	}
	for _, s := range desc.Streams {
		names = append(names, s.StreamName)
	}
	known := map[string]bool{}
	for _, name := range names {
		known[name] = true
		call := crossTenantCalls[name]
		if call == nil {
			t.Errorf("RPC %s has no case in crossTenantCalls: add one", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			h := start(t)
			seedTenants(t, h)
			before := snapshotB(t, h)
			call(t, h, as(tenantA))
			if diff := cmp.Diff(before, snapshotB(t, h), protocmp.Transform()); diff != "" {
				t.Errorf("%s as tenant-a changed tenant-b's data (-before +after):\n%s", name, diff)
			}
		})
	}
	for name := range crossTenantCalls {
		if !known[name] {
			t.Errorf("crossTenantCalls has %s, which the service does not have", name)
		}
	}
}

// rawCall calls an RPC by its descriptor with an empty request, unary or
// streaming, and returns the error it ends with.
func rawCall(ctx context.Context, conn *grpc.ClientConn, sd protoreflect.ServiceDescriptor, md protoreflect.MethodDescriptor) error {
	full := fmt.Sprintf("/%s/%s", sd.FullName(), md.Name())
	newMsg := func(d protoreflect.MessageDescriptor) proto.Message {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(d.FullName())
		if err != nil {
			panic(err)
		}
		return mt.New().Interface()
	}
	in, out := newMsg(md.Input()), newMsg(md.Output())
	if !md.IsStreamingClient() && !md.IsStreamingServer() {
		return conn.Invoke(ctx, full, in, out)
	}
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: md.IsStreamingClient(), ServerStreams: md.IsStreamingServer()}, full)
	if err != nil {
		return err
	}
	if err := s.SendMsg(in); err != nil && err != io.EOF {
		return err
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	for {
		if err := s.RecvMsg(out); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// TestEveryRPCNeedsATenant walks the service descriptor: a call without a
// tenant, with a malformed one, or with the wildcard on anything but the
// feed is refused before it reaches the handler.
func TestEveryRPCNeedsATenant(t *testing.T) {
	h := start(t)
	sd := profilev1.File_rapport_profile_v1_profile_proto.Services().ByName("ProfileService")
	if sd == nil {
		t.Fatal("no ProfileService in the file descriptor")
	}
	if n := sd.Methods().Len(); n != len(profilev1.ProfileService_ServiceDesc.Methods)+len(profilev1.ProfileService_ServiceDesc.Streams) {
		t.Fatalf("descriptor has %d methods, ServiceDesc a different number", n)
	}
	for i := range sd.Methods().Len() {
		md := sd.Methods().Get(i)
		full := fmt.Sprintf("/%s/%s", sd.FullName(), md.Name())
		t.Run(string(md.Name()), func(t *testing.T) {
			// No tenant: the client adds none without one in the context.
			wantCode(t, rawCall(context.Background(), h.conn, sd, md), codes.InvalidArgument, tenancy.MetadataKey)

			bad := metadata.AppendToOutgoingContext(context.Background(), tenancy.MetadataKey, "Tenant B")
			wantCode(t, rawCall(bad, h.conn, sd, md), codes.InvalidArgument, tenancy.MetadataKey)

			err := rawCall(as(tenancy.All), h.conn, sd, md)
			if full == profilev1.ProfileService_FollowChanges_FullMethodName {
				if err != nil {
					t.Errorf("the feed refused the wildcard: %v", err)
				}
				return
			}
			wantCode(t, err, codes.InvalidArgument, tenancy.MetadataKey)
		})
	}
}
