package api_test

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/timestamppb"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/grpcclient"
	"rapport.dev/platform/grpcserver"
	"rapport.dev/platform/tenancy"
	"rapport.dev/services/profile/api"
	"rapport.dev/services/profile/domain"
	"rapport.dev/services/profile/store"
)

// t0 is the server's clock; it does not move unless a test moves it.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// day is a timestamp on the n-th day of May 2025, before t0.
func day(n int) *timestamppb.Timestamp {
	return timestamppb.New(time.Date(2025, 5, n, 10, 0, 0, 0, time.UTC))
}

func ptr[T any](v T) *T { return &v }

// harness is the profile service's real gRPC server, with its interceptors,
// over bufconn on a temporary bbolt file, and a client for it.
type harness struct {
	client profilev1.ProfileServiceClient
	conn   *grpc.ClientConn
	clk    *clock.Fake
	feed   *feed.Log
}

// start builds the server the way services/profile/profile.go does.
func start(tb testing.TB) *harness {
	return startWith(tb, store.Options())
}

func startWith(tb testing.TB, opts boltdb.Options) *harness {
	tb.Helper()
	logger := slog.New(slog.DiscardHandler)
	db := boltdb.OpenTemp(tb, opts)
	clk := clock.NewFake(t0)
	feedLog := feed.NewLog(db, clk)
	svc := domain.NewService(store.New(db, feedLog), clk)
	srv := grpcserver.New(grpcserver.Options{Logger: logger, CrossTenant: api.CrossTenantMethods})
	profilev1.RegisterProfileServiceServer(srv.GRPC, api.New(svc, feedLog, logger))

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
	return &harness{client: profilev1.NewProfileServiceClient(conn), conn: conn, clk: clk, feed: feedLog}
}

// as is a context for tenant.
func as(tenant string) context.Context { return tenancy.WithTenant(context.Background(), tenant) }

var acme = as("acme")

// violations returns the BadRequest field paths of a status error.
func violations(err error) []string {
	var out []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, v.GetField())
			}
		}
	}
	return out
}

// wantCode checks err's gRPC code and, when fields are given, its field
// violations.
func wantCode(t *testing.T, err error, code codes.Code, fields ...string) {
	t.Helper()
	if got := status.Code(err); got != code {
		t.Fatalf("code = %v (%v), want %v", got, err, code)
	}
	if len(fields) == 0 {
		return
	}
	got := violations(err)
	if len(got) != len(fields) {
		t.Fatalf("violations = %v, want %v", got, fields)
	}
	for i := range fields {
		if got[i] != fields[i] {
			t.Fatalf("violations = %v, want %v", got, fields)
		}
	}
}

func cny(minor int64) *typev1.Money { return &typev1.Money{AmountMinor: minor, Currency: "CNY"} }

func person(id string) *profilev1.Customer {
	return &profilev1.Customer{CustomerId: id, Kind: profilev1.CustomerKind_CUSTOMER_KIND_PERSON, DisplayName: "Customer " + id}
}

func org(id string) *profilev1.Customer {
	return &profilev1.Customer{CustomerId: id, Kind: profilev1.CustomerKind_CUSTOMER_KIND_ORGANIZATION, DisplayName: "Org " + id,
		Organization: &profilev1.Organization{LegalName: "Org " + id + " Ltd"}}
}

func purchase(id, customer, order string, minor int64, at *timestamppb.Timestamp) *profilev1.Event {
	return &profilev1.Event{EventId: id, CustomerId: customer, OccurTime: at,
		Kind: &profilev1.Event_Purchase{Purchase: &profilev1.Purchase{OrderId: order, Amount: cny(minor)}}}
}

func refund(id, customer, order string, minor int64, at *timestamppb.Timestamp) *profilev1.Event {
	return &profilev1.Event{EventId: id, CustomerId: customer, OccurTime: at,
		Kind: &profilev1.Event_Refund{Refund: &profilev1.Refund{OrderId: order, Amount: cny(minor)}}}
}

func survey(id, customer string, csat, nps *int32, at *timestamppb.Timestamp) *profilev1.Event {
	return &profilev1.Event{EventId: id, CustomerId: customer, OccurTime: at,
		Kind: &profilev1.Event_Survey{Survey: &profilev1.SurveyResponse{Csat: csat, Nps: nps, Text: "fine"}}}
}

func (h *harness) create(t testing.TB, ctx context.Context, cs ...*profilev1.Customer) {
	t.Helper()
	for _, c := range cs {
		r, err := h.client.CreateCustomer(ctx, &profilev1.CreateCustomerRequest{Customer: c})
		if err != nil || !r.GetCreated() {
			t.Fatalf("CreateCustomer(%s): created=%v err=%v", c.GetCustomerId(), r.GetCreated(), err)
		}
	}
}

func (h *harness) record(t testing.TB, ctx context.Context, evs ...*profilev1.Event) {
	t.Helper()
	for _, e := range evs {
		r, err := h.client.RecordEvent(ctx, &profilev1.RecordEventRequest{Event: e})
		if err != nil || !r.GetCreated() {
			t.Fatalf("RecordEvent(%s): created=%v err=%v", e.GetEventId(), r.GetCreated(), err)
		}
	}
}
