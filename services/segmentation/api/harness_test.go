package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/grpcclient"
	"rapport.dev/platform/grpcserver"
	"rapport.dev/platform/tenancy"
	"rapport.dev/services/segmentation/api"
	"rapport.dev/services/segmentation/store"
)

// t0 is the server's clock; it does not move unless a test moves it.
var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// harness is the segmentation service's real gRPC server, with its
// interceptors, over bufconn on a temporary bbolt file. There is no profile
// follower: tests hand the store the profile feed events it would deliver.
type harness struct {
	client segmentationv1.SegmentationServiceClient
	conn   *grpc.ClientConn
	db     *boltdb.DB
	store  *store.Store
	clk    *clock.Fake
	seq    uint64
}

// start builds the server the way services/segmentation/segmentation.go does.
func start(tb testing.TB) *harness {
	tb.Helper()
	logger := slog.New(slog.DiscardHandler)
	db := boltdb.OpenTemp(tb, store.Options())
	clk := clock.NewFake(t0)
	feedLog := feed.NewLog(db, clk)
	st, err := store.New(db, feedLog, clk, logger)
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpcserver.New(grpcserver.Options{Logger: logger, CrossTenant: api.CrossTenantMethods})
	segmentationv1.RegisterSegmentationServiceServer(srv.GRPC, api.New(st, feedLog, logger))

	lis := bufconn.Listen(1 << 20)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	conn, err := grpcclient.Dial("passthrough:///bufnet", grpcclient.Options{Extra: []grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
	}})
	if err != nil {
		tb.Fatal(err)
	}
	// Cleanups run last-in first-out: the client closes, then the server
	// stops, then OpenTemp closes the file.
	tb.Cleanup(func() {
		srv.GRPC.Stop()
		if err := <-served; err != nil {
			tb.Errorf("serve: %v", err)
		}
	})
	tb.Cleanup(func() { conn.Close() })
	return &harness{client: segmentationv1.NewSegmentationServiceClient(conn), conn: conn, db: db, store: st, clk: clk}
}

// as is a context for tenant.
func as(tenant string) context.Context { return tenancy.WithTenant(context.Background(), tenant) }

var acme = as("acme")

// profileEvent is one event of the profile feed, as the follower delivers it.
type profileEvent struct {
	typ string
	msg proto.Message
}

// apply hands profile feed events of tenant to the store in one
// transaction, as the follower's batches do.
func (h *harness) apply(tb testing.TB, tenant string, evs ...profileEvent) {
	tb.Helper()
	err := h.db.Update(context.Background(), func(tx *bolt.Tx) error {
		for _, ev := range evs {
			a, err := anypb.New(ev.msg)
			if err != nil {
				return err
			}
			h.seq++
			fe := &feedv1.Event{Sequence: h.seq, Tenant: tenant, Type: ev.typ, Payload: a}
			if err := h.store.ApplyProfileEvent(context.Background(), tx, fe); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

func created(id string) profileEvent {
	return profileEvent{"customer.created", &profilev1.Customer{CustomerId: id, Kind: profilev1.CustomerKind_CUSTOMER_KIND_PERSON,
		DisplayName: "Customer " + id, CreateTime: timestamppb.New(t0.Add(-100 * day))}}
}

func bought(customer, order string, minor int64, at time.Time) profileEvent {
	return profileEvent{"event.recorded", &profilev1.Event{EventId: "p-" + order, CustomerId: customer, OccurTime: timestamppb.New(at),
		Kind: &profilev1.Event_Purchase{Purchase: &profilev1.Purchase{OrderId: order, Amount: &typev1.Money{AmountMinor: minor, Currency: "CNY"}}}}}
}

// customers creates n customers id-000… with one purchase each of
// 100·(i+1), so every one is ranked and all contribute.
func (h *harness) customers(tb testing.TB, tenant, prefix string, n int) []string {
	tb.Helper()
	var ids []string
	var evs []profileEvent
	for i := range n {
		id := fmt.Sprintf("%s-%04d", prefix, i)
		ids = append(ids, id)
		evs = append(evs, created(id), bought(id, id+"-o", int64(100*(i+1)), t0.Add(-time.Duration(i+1)*time.Hour)))
	}
	h.apply(tb, tenant, evs...)
	return ids
}

func dynamicSegment(id, rule string) *segmentationv1.Segment {
	return &segmentationv1.Segment{SegmentId: id, DisplayName: "Segment " + id, Kind: segmentationv1.SegmentKind_SEGMENT_KIND_DYNAMIC, Rule: rule}
}

func staticSegment(id string) *segmentationv1.Segment {
	return &segmentationv1.Segment{SegmentId: id, DisplayName: "Segment " + id, Kind: segmentationv1.SegmentKind_SEGMENT_KIND_STATIC}
}

func (h *harness) create(tb testing.TB, ctx context.Context, s *segmentationv1.Segment) *segmentationv1.Segment {
	tb.Helper()
	r, err := h.client.CreateSegment(ctx, &segmentationv1.CreateSegmentRequest{Segment: s})
	if err != nil || !r.GetCreated() {
		tb.Fatalf("CreateSegment(%s): created=%v err=%v", s.GetSegmentId(), r.GetCreated(), err)
	}
	return r.Segment
}

// violation is one field violation of a status error.
type violation struct{ field, description string }

func violations(err error) []violation {
	var out []violation
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, violation{v.GetField(), v.GetDescription()})
			}
		}
	}
	return out
}

// wantCode checks err's gRPC code and, when fields are given, exactly its
// field violations' paths.
func wantCode(tb testing.TB, err error, code codes.Code, fields ...string) {
	tb.Helper()
	if got := status.Code(err); got != code {
		tb.Fatalf("code = %v (%v), want %v", got, err, code)
	}
	if len(fields) == 0 {
		return
	}
	var got []string
	for _, v := range violations(err) {
		got = append(got, v.field)
	}
	if !slices.Equal(got, fields) {
		tb.Fatalf("violations = %v, want %v (%v)", got, fields, err)
	}
}

// position is how a rule error says where the problem is.
var position = regexp.MustCompile(`line \d+, column \d+`)

// memberIDs lists every member of a segment through ListSegmentMembers.
func (h *harness) memberIDs(tb testing.TB, ctx context.Context, seg string) []string {
	tb.Helper()
	r, err := h.client.ListSegmentMembers(ctx, &segmentationv1.ListSegmentMembersRequest{SegmentId: seg, PageSize: 10000})
	if err != nil {
		tb.Fatalf("ListSegmentMembers(%s): %v", seg, err)
	}
	ids := []string{}
	for _, m := range r.Members {
		ids = append(ids, m.CustomerId)
	}
	return ids
}
