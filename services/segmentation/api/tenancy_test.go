package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	"rapport.dev/platform/tenancy"
)

const (
	tenantA = "tenant-a"
	tenantB = "tenant-b"
)

// seedTenants gives tenant-b a bit of everything — customers, scores,
// settings, dynamic and static segments with members and history — and
// tenant-a a little of its own, so a leak shows as tenant-b's data where
// tenant-a's is expected.
func seedTenants(t *testing.T, h *harness) {
	t.Helper()
	h.apply(t, tenantB, created("b-cust"), created("b-two"),
		bought("b-cust", "b-o1", 90_000, t0.Add(-2*day)), bought("b-two", "b-o2", 10, t0.Add(-day)))
	b := as(tenantB)
	if _, err := h.client.UpdateSettings(b, &segmentationv1.UpdateSettingsRequest{Settings: &segmentationv1.Settings{PlatinumShare: 0.3}}); err != nil {
		t.Fatal(err)
	}
	h.create(t, b, dynamicSegment("b-seg", `features.monetary >= 50000`))
	h.create(t, b, staticSegment("b-static"))
	if _, err := h.client.AddSegmentMembers(b, &segmentationv1.AddSegmentMembersRequest{SegmentId: "b-static", CustomerIds: []string{"b-cust", "b-two"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Rescore(context.Background(), tenantB); err != nil {
		t.Fatal(err)
	}
	// Two customers are too few for a value model: the fit is stored, failed.
	if r, err := h.client.FitValueModel(b, &segmentationv1.FitValueModelRequest{FitId: "b-fit", Wait: true}); err != nil ||
		r.Fit.State != segmentationv1.FitState_FIT_STATE_FAILED {
		t.Fatalf("tenant-b fit: %v, %v", r, err)
	}

	h.apply(t, tenantA, created("a-cust"), bought("a-cust", "a-o1", 7, t0.Add(-day)))
	h.create(t, as(tenantA), staticSegment("a-static"))
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
	for _, c := range []string{"b-cust", "b-two"} {
		must(h.client.GetCustomerScores(ctx, &segmentationv1.GetCustomerScoresRequest{CustomerId: c}))
	}
	for _, s := range []string{"b-seg", "b-static"} {
		must(h.client.GetSegment(ctx, &segmentationv1.GetSegmentRequest{SegmentId: s}))
		must(h.client.ListSegmentMembers(ctx, &segmentationv1.ListSegmentMembersRequest{SegmentId: s}))
		must(h.client.GetSegmentSizes(ctx, &segmentationv1.GetSegmentSizesRequest{SegmentId: s}))
		must(h.client.ExplainMembership(ctx, &segmentationv1.ExplainMembershipRequest{SegmentId: s, CustomerId: "b-cust"}))
	}
	must(h.client.ListSegments(ctx, &segmentationv1.ListSegmentsRequest{}))
	must(h.client.PreviewSegment(ctx, &segmentationv1.PreviewSegmentRequest{Rule: "true"}))
	must(h.client.GetSettings(ctx, &segmentationv1.GetSettingsRequest{}))
	must(h.client.GetPyramidReport(ctx, &segmentationv1.GetPyramidReportRequest{}))
	must(h.client.GetQuadrantReport(ctx, &segmentationv1.GetQuadrantReportRequest{}))
	must(h.client.GetRfmReport(ctx, &segmentationv1.GetRfmReportRequest{}))
	must(h.client.GetValueModelFit(ctx, &segmentationv1.GetValueModelFitRequest{FitId: "b-fit"}))
	must(h.client.ListValueModelFits(ctx, &segmentationv1.ListValueModelFitsRequest{}))
	for _, e := range follow(t, h, tenantB) {
		out = append(out, e)
	}
	return out
}

// follow reads tenant's whole change feed.
func follow(t *testing.T, h *harness, tenant string) []*feedv1.Event {
	t.Helper()
	s, err := h.client.FollowChanges(as(tenant), &segmentationv1.FollowChangesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*feedv1.Event
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m.Event)
	}
}

// crossTenantCalls has, for every RPC of SegmentationService, calls made as
// tenant-a with tenant-b's ids. Each must answer NotFound, or with tenant-a's
// own data only. TestTenancyWalk fails when an RPC has no entry here.
var crossTenantCalls = map[string]func(t *testing.T, h *harness, ctx context.Context){
	"GetCustomerScores": func(t *testing.T, h *harness, ctx context.Context) {
		_, err := h.client.GetCustomerScores(ctx, &segmentationv1.GetCustomerScoresRequest{CustomerId: "b-cust"})
		wantCode(t, err, codes.NotFound)
	},
	"CreateSegment": func(t *testing.T, h *harness, ctx context.Context) {
		// tenant-b's id is free in tenant-a, and the new segment counts
		// tenant-a's customers only.
		r, err := h.client.CreateSegment(ctx, &segmentationv1.CreateSegmentRequest{Segment: dynamicSegment("b-seg", "true")})
		if err != nil || !r.Created || r.Segment.Size != 1 {
			t.Fatalf("create with tenant-b's id: %v, %v; want a new segment of tenant-a with its one customer", r, err)
		}
		if got := h.memberIDs(t, ctx, "b-seg"); !slices.Equal(got, []string{"a-cust"}) {
			t.Errorf("tenant-a's b-seg holds %v", got)
		}
	},
	"GetSegment": func(t *testing.T, h *harness, ctx context.Context) {
		_, err := h.client.GetSegment(ctx, &segmentationv1.GetSegmentRequest{SegmentId: "b-seg"})
		wantCode(t, err, codes.NotFound)
	},
	"ListSegments": func(t *testing.T, h *harness, ctx context.Context) {
		r, err := h.client.ListSegments(ctx, &segmentationv1.ListSegmentsRequest{})
		if err != nil || len(r.Segments) != 1 || r.Segments[0].SegmentId != "a-static" {
			t.Errorf("tenant-a lists %v, %v", r, err)
		}
		// tenant-b's page token opens tenant-a's listing only.
		pb, err := h.client.ListSegments(as(tenantB), &segmentationv1.ListSegmentsRequest{PageSize: 1})
		if err != nil || pb.NextPageToken == "" {
			t.Fatalf("tenant-b page 1: %v, %v", pb, err)
		}
		r, err = h.client.ListSegments(ctx, &segmentationv1.ListSegmentsRequest{PageSize: 1, PageToken: pb.NextPageToken})
		if err != nil || len(r.Segments) > 1 || (len(r.Segments) == 1 && r.Segments[0].SegmentId != "a-static") {
			t.Errorf("tenant-a with tenant-b's token: %v, %v", r, err)
		}
	},
	"UpdateSegment": func(t *testing.T, h *harness, ctx context.Context) {
		_, err := h.client.UpdateSegment(ctx, &segmentationv1.UpdateSegmentRequest{
			Segment:    &segmentationv1.Segment{SegmentId: "b-seg", Rule: "true", Etag: "r1"},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"rule"}},
		})
		wantCode(t, err, codes.NotFound)
	},
	"DeleteSegment": func(t *testing.T, h *harness, ctx context.Context) {
		for _, s := range []string{"b-seg", "b-static"} {
			_, err := h.client.DeleteSegment(ctx, &segmentationv1.DeleteSegmentRequest{SegmentId: s})
			wantCode(t, err, codes.NotFound)
		}
	},
	"PreviewSegment": func(t *testing.T, h *harness, ctx context.Context) {
		r, err := h.client.PreviewSegment(ctx, &segmentationv1.PreviewSegmentRequest{Rule: "true"})
		if err != nil || r.Count != 1 || r.Evaluated != 1 || !slices.Equal(r.Sample, []string{"a-cust"}) {
			t.Errorf("tenant-a preview: %v, %v", r, err)
		}
	},
	"AddSegmentMembers": func(t *testing.T, h *harness, ctx context.Context) {
		_, err := h.client.AddSegmentMembers(ctx, &segmentationv1.AddSegmentMembersRequest{SegmentId: "b-static", CustomerIds: []string{"a-cust"}})
		wantCode(t, err, codes.NotFound)
		// tenant-b's customer is unknown to tenant-a's own list.
		_, err = h.client.AddSegmentMembers(ctx, &segmentationv1.AddSegmentMembersRequest{SegmentId: "a-static", CustomerIds: []string{"b-cust"}})
		wantCode(t, err, codes.InvalidArgument, "customer_ids[0]")
	},
	"RemoveSegmentMembers": func(t *testing.T, h *harness, ctx context.Context) {
		_, err := h.client.RemoveSegmentMembers(ctx, &segmentationv1.RemoveSegmentMembersRequest{SegmentId: "b-static", CustomerIds: []string{"b-cust"}})
		wantCode(t, err, codes.NotFound)
		r, err := h.client.RemoveSegmentMembers(ctx, &segmentationv1.RemoveSegmentMembersRequest{SegmentId: "a-static", CustomerIds: []string{"b-cust"}})
		if err != nil || r.Removed != 0 {
			t.Errorf("removing tenant-b's customer from tenant-a's list: %v, %v", r, err)
		}
	},
	"ListSegmentMembers": func(t *testing.T, h *harness, ctx context.Context) {
		_, err := h.client.ListSegmentMembers(ctx, &segmentationv1.ListSegmentMembersRequest{SegmentId: "b-static"})
		wantCode(t, err, codes.NotFound)
	},
	"ExportSegmentMembers": func(t *testing.T, h *harness, ctx context.Context) {
		s, err := h.client.ExportSegmentMembers(ctx, &segmentationv1.ExportSegmentMembersRequest{SegmentId: "b-static"})
		if err == nil {
			var m *segmentationv1.ExportSegmentMembersResponse
			m, err = s.Recv()
			if err == nil {
				t.Fatalf("tenant-a exported %v", m)
			}
		}
		wantCode(t, err, codes.NotFound)
	},
	"ExplainMembership": func(t *testing.T, h *harness, ctx context.Context) {
		_, err := h.client.ExplainMembership(ctx, &segmentationv1.ExplainMembershipRequest{SegmentId: "b-seg", CustomerId: "b-cust"})
		wantCode(t, err, codes.NotFound)
		_, err = h.client.ExplainMembership(ctx, &segmentationv1.ExplainMembershipRequest{SegmentId: "a-static", CustomerId: "b-cust"})
		wantCode(t, err, codes.NotFound)
	},
	"ReevaluateSegment": func(t *testing.T, h *harness, ctx context.Context) {
		_, err := h.client.ReevaluateSegment(ctx, &segmentationv1.ReevaluateSegmentRequest{SegmentId: "b-seg"})
		wantCode(t, err, codes.NotFound)
	},
	"GetSegmentSizes": func(t *testing.T, h *harness, ctx context.Context) {
		_, err := h.client.GetSegmentSizes(ctx, &segmentationv1.GetSegmentSizesRequest{SegmentId: "b-seg"})
		wantCode(t, err, codes.NotFound)
	},
	"GetPyramidReport": func(t *testing.T, h *harness, ctx context.Context) {
		r, err := h.client.GetPyramidReport(ctx, &segmentationv1.GetPyramidReportRequest{})
		if err != nil || r.Customers != 1 || r.TotalContribution != 7 {
			t.Errorf("tenant-a pyramid: %v, %v", r, err)
		}
	},
	"GetQuadrantReport": func(t *testing.T, h *harness, ctx context.Context) {
		r, err := h.client.GetQuadrantReport(ctx, &segmentationv1.GetQuadrantReportRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var n, c int64
		for _, q := range r.Quadrants {
			n += q.Customers
			c += q.Contribution
		}
		if n != 1 || c != 7 || r.ValueThreshold != 7 {
			t.Errorf("tenant-a quadrants: %v", r)
		}
	},
	"GetRfmReport": func(t *testing.T, h *harness, ctx context.Context) {
		r, err := h.client.GetRfmReport(ctx, &segmentationv1.GetRfmReportRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var n, m int64
		for _, c := range r.Cells {
			n += c.Customers
			m += c.Monetary
		}
		if n != 1 || m != 7 {
			t.Errorf("tenant-a rfm: %d customers, monetary %d", n, m)
		}
	},
	"GetSettings": func(t *testing.T, h *harness, ctx context.Context) {
		r, err := h.client.GetSettings(ctx, &segmentationv1.GetSettingsRequest{})
		if err != nil || r.Settings.PlatinumShare != 0.01 || r.Settings.Currency != "CNY" {
			t.Errorf("tenant-a settings: %v, %v", r, err)
		}
	},
	"UpdateSettings": func(t *testing.T, h *harness, ctx context.Context) {
		r, err := h.client.UpdateSettings(ctx, &segmentationv1.UpdateSettingsRequest{Settings: &segmentationv1.Settings{PlatinumShare: 0.05, Currency: "USD"}})
		if err != nil || r.Settings.PlatinumShare != 0.05 {
			t.Errorf("tenant-a settings update: %v, %v", r, err)
		}
	},
	"FitValueModel": func(t *testing.T, h *harness, ctx context.Context) {
		// tenant-b's fit id is free in tenant-a, and the fit sees tenant-a's one customer.
		r, err := h.client.FitValueModel(ctx, &segmentationv1.FitValueModelRequest{FitId: "b-fit", Wait: true})
		if err != nil || r.Fit.State != segmentationv1.FitState_FIT_STATE_FAILED || !strings.Contains(r.Fit.Error, "1 customers") {
			t.Errorf("fit with tenant-b's id: %v, %v; want tenant-a's own fit, failed on its 1 customer", r, err)
		}
	},
	"GetValueModelFit": func(t *testing.T, h *harness, ctx context.Context) {
		for _, id := range []string{"b-fit", "current"} {
			_, err := h.client.GetValueModelFit(ctx, &segmentationv1.GetValueModelFitRequest{FitId: id})
			wantCode(t, err, codes.NotFound)
		}
	},
	"ListValueModelFits": func(t *testing.T, h *harness, ctx context.Context) {
		r, err := h.client.ListValueModelFits(ctx, &segmentationv1.ListValueModelFitsRequest{})
		if err != nil || len(r.Fits) != 0 {
			t.Errorf("tenant-a fits: %v, %v", r, err)
		}
	},
	"FollowChanges": func(t *testing.T, h *harness, ctx context.Context) {
		evs := follow(t, h, tenantA)
		for _, e := range evs {
			if e.Tenant != tenantA {
				t.Errorf("tenant-a's feed carries %v", e)
			}
		}
		// tenant-a's only event so far is its customer entering nothing:
		// the feed is empty, while tenant-b's is not.
		if len(evs) != 0 || len(follow(t, h, tenantB)) == 0 {
			t.Errorf("tenant-a's feed has %d events", len(evs))
		}
	},
}

// TestTenancyWalk calls every RPC of the service as tenant-a with tenant-b's
// ids, and checks tenant-b's data is neither returned nor changed.
func TestTenancyWalk(t *testing.T) {
	desc := segmentationv1.SegmentationService_ServiceDesc
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
			after := snapshotB(t, h)
			if len(before) != len(after) {
				t.Fatalf("%s as tenant-a changed tenant-b's data: %d messages before, %d after", name, len(before), len(after))
			}
			for i := range before {
				if !proto.Equal(before[i], after[i]) {
					t.Errorf("%s as tenant-a changed tenant-b's data:\nbefore %v\nafter  %v", name, before[i], after[i])
				}
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
	sd := segmentationv1.File_rapport_segmentation_v1_segmentation_proto.Services().ByName("SegmentationService")
	if sd == nil {
		t.Fatal("no SegmentationService in the file descriptor")
	}
	desc := segmentationv1.SegmentationService_ServiceDesc
	if n := sd.Methods().Len(); n != len(desc.Methods)+len(desc.Streams) {
		t.Fatalf("descriptor has %d methods, ServiceDesc a different number", n)
	}
	for i := range sd.Methods().Len() {
		md := sd.Methods().Get(i)
		full := fmt.Sprintf("/%s/%s", sd.FullName(), md.Name())
		t.Run(string(md.Name()), func(t *testing.T) {
			wantCode(t, rawCall(context.Background(), h.conn, sd, md), codes.InvalidArgument, tenancy.MetadataKey)
			bad := metadata.AppendToOutgoingContext(context.Background(), tenancy.MetadataKey, "Tenant B")
			wantCode(t, rawCall(bad, h.conn, sd, md), codes.InvalidArgument, tenancy.MetadataKey)
			err := rawCall(as(tenancy.All), h.conn, sd, md)
			if full == segmentationv1.SegmentationService_FollowChanges_FullMethodName {
				if err != nil {
					t.Errorf("the feed refused the wildcard: %v", err)
				}
				return
			}
			wantCode(t, err, codes.InvalidArgument, tenancy.MetadataKey)
		})
	}
}
