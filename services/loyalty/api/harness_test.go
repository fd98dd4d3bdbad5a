package api_test

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	loyaltyv1 "rapport.dev/gen/go/rapport/loyalty/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/grpcclient"
	"rapport.dev/platform/grpcserver"
	"rapport.dev/platform/tenancy"
	"rapport.dev/services/loyalty/api"
	"rapport.dev/services/loyalty/store"
)

// t0 is the server's clock; it does not move unless a test moves it.
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// harness is the loyalty service's real gRPC server, with its
// interceptors, over bufconn on a temporary bbolt file and a fake clock.
type harness struct {
	conn   *grpc.ClientConn
	client loyaltyv1.LoyaltyServiceClient
	db     *boltdb.DB
	clk    *clock.Fake
}

// start builds the server the way services/loyalty/loyalty.go does;
// configure changes the API server before it is registered.
func start(tb testing.TB, configure ...func(*api.Server)) *harness {
	tb.Helper()
	logger := slog.New(slog.DiscardHandler)
	db := boltdb.OpenTemp(tb, store.Options())
	clk := clock.NewFake(t0)
	feedLog := feed.NewLog(db, clk)
	st := store.New(db, feedLog, clk, logger)
	a := api.New(st, feedLog, logger)
	for _, f := range configure {
		f(a)
	}
	srv := grpcserver.New(grpcserver.Options{Logger: logger, CrossTenant: api.CrossTenantMethods})
	loyaltyv1.RegisterLoyaltyServiceServer(srv.GRPC, a)
	conn := serve(tb, srv)
	return &harness{conn: conn, client: loyaltyv1.NewLoyaltyServiceClient(conn), db: db, clk: clk}
}

// serve serves srv over bufconn and returns a client connection to it,
// dialled as the services dial each other.
func serve(tb testing.TB, srv *grpcserver.Server) *grpc.ClientConn {
	tb.Helper()
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
	return conn
}

// as is a context for tenant.
func as(tenant string) context.Context { return tenancy.WithTenant(context.Background(), tenant) }

var acme = as("acme")

// program creates the programme "club" of tenant ctx.
func (h *harness) program(tb testing.TB, ctx context.Context) {
	tb.Helper()
	_, err := h.client.CreateProgram(ctx, &loyaltyv1.CreateProgramRequest{Program: &loyaltyv1.Program{
		ProgramId: "club", DisplayName: "Club", Currency: "EUR", PointsPerUnit: 1}})
	if err != nil {
		tb.Fatalf("CreateProgram: %v", err)
	}
}

// member enrols a customer in "club" and gives them points.
func (h *harness) member(tb testing.TB, ctx context.Context, customer string, points int64) {
	tb.Helper()
	if _, err := h.client.EnrollMember(ctx, &loyaltyv1.EnrollMemberRequest{ProgramId: "club", CustomerId: customer}); err != nil {
		tb.Fatalf("EnrollMember(%s): %v", customer, err)
	}
	if points == 0 {
		return
	}
	_, err := h.client.Earn(ctx, &loyaltyv1.EarnRequest{ProgramId: "club", CustomerId: customer, IdempotencyKey: "seed", Points: points})
	if err != nil {
		tb.Fatalf("Earn(%s): %v", customer, err)
	}
}

func (h *harness) balance(tb testing.TB, ctx context.Context, customer string) int64 {
	tb.Helper()
	r, err := h.client.GetMember(ctx, &loyaltyv1.GetMemberRequest{ProgramId: "club", CustomerId: customer})
	if err != nil {
		tb.Fatalf("GetMember(%s): %v", customer, err)
	}
	return r.Member.Balance
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
