package api_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	carev1 "rapport.dev/gen/go/rapport/care/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/grpcclient"
	"rapport.dev/platform/grpcserver"
	"rapport.dev/platform/tenancy"
	"rapport.dev/platform/webhook"
	"rapport.dev/services/care/api"
	"rapport.dev/services/care/store"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// start serves the care API as services/care/care.go builds it: the real
// gRPC server with its interceptors over bufconn, on a temporary bbolt file.
func start(tb testing.TB) carev1.CareServiceClient { return startHarness(tb).client }

// harness is the care API server and the parts behind it a test seeds
// through: the store (its feed reactions and timers), the fake clock and
// the webhook outbox, whose receiver answers every message 400.
type harness struct {
	conn   *grpc.ClientConn
	client carev1.CareServiceClient
	db     *boltdb.DB
	st     *store.Store
	clk    *clock.Fake
	outbox *webhook.Outbox
	// attempts receives each webhook attempt the outbox records.
	attempts chan webhook.Attempt
}

// rejecting is a webhook receiver that refuses every message.
type rejecting struct{}

func (rejecting) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusBadRequest, Body: io.NopCloser(strings.NewReader("rejected")),
		Header: http.Header{}, Request: r}, nil
}

func startHarness(tb testing.TB) *harness {
	tb.Helper()
	logger := slog.New(slog.DiscardHandler)
	db := boltdb.OpenTemp(tb, store.Options())
	clk := clock.NewFake(t0)
	feedLog := feed.NewLog(db, clk)
	attempts := make(chan webhook.Attempt, 64)
	outbox := webhook.New(db, webhook.Options{Clock: clk, Logger: logger, Client: &http.Client{Transport: rejecting{}},
		Recorded: func(a webhook.Attempt) { attempts <- a }})
	st := store.New(db, feedLog, clk, logger, store.Messages{Outbox: outbox, Secret: func(string) []byte { return []byte("s") }})
	srv := grpcserver.New(grpcserver.Options{Logger: logger, CrossTenant: api.CrossTenantMethods})
	carev1.RegisterCareServiceServer(srv, api.New(st, feedLog, outbox, logger))
	lis := bufconn.Listen(1 << 20)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	conn, err := grpcclient.Dial("passthrough:///bufnet", grpcclient.Options{Extra: []grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
	}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		srv.GRPC.Stop()
		if err := <-served; err != nil {
			tb.Errorf("serve: %v", err)
		}
	})
	tb.Cleanup(func() { conn.Close() })
	return &harness{conn: conn, client: carev1.NewCareServiceClient(conn), db: db, st: st, clk: clk, outbox: outbox, attempts: attempts}
}

var acme = tenancy.WithTenant(context.Background(), "acme")

// wantCode checks err's gRPC code and exactly its field violations' paths.
func wantCode(tb testing.TB, err error, code codes.Code, fields ...string) {
	tb.Helper()
	if got := status.Code(err); got != code {
		tb.Fatalf("code = %v (%v), want %v", got, err, code)
	}
	var got []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				got = append(got, v.GetField())
			}
		}
	}
	if !slices.Equal(got, fields) {
		tb.Fatalf("violations = %v, want %v (%v)", got, fields, err)
	}
}

func revisitPlan(id, rule string) *carev1.Plan {
	return &carev1.Plan{PlanId: id, Enabled: true, Target: &carev1.Target{Tiers: []string{"platinum"}},
		Trigger: &carev1.Plan_Revisit{Revisit: &carev1.Revisit{ByTier: []*carev1.TierRecurrence{{Tier: "platinum", Recurrence: rule}}}},
		Action:  &carev1.Plan_Task{Task: &carev1.TaskAction{Title: "Visit {name}"}}, At: &carev1.LocalTime{Hour: 10}}
}

func TestPlanLifecycle(t *testing.T) {
	c := start(t)
	created, err := c.CreatePlan(acme, &carev1.CreatePlanRequest{Plan: revisitPlan("vip", "FREQ=WEEKLY;INTERVAL=2")})
	if err != nil || !created.Created || created.Plan.Etag == "" {
		t.Fatalf("CreatePlan: %v %v", created, err)
	}
	again, err := c.CreatePlan(acme, &carev1.CreatePlanRequest{Plan: revisitPlan("vip", "FREQ=WEEKLY;INTERVAL=2")})
	if err != nil || again.Created || again.Plan.Etag != created.Plan.Etag {
		t.Fatalf("CreatePlan retry: %v %v", again, err)
	}
	_, err = c.CreatePlan(acme, &carev1.CreatePlanRequest{Plan: revisitPlan("vip", "FREQ=MONTHLY")})
	wantCode(t, err, codes.AlreadyExists)

	upd := revisitPlan("vip", "FREQ=MONTHLY")
	_, err = c.UpdatePlan(acme, &carev1.UpdatePlanRequest{Plan: upd})
	wantCode(t, err, codes.InvalidArgument, "plan.etag")
	upd.Etag = "stale"
	_, err = c.UpdatePlan(acme, &carev1.UpdatePlanRequest{Plan: upd})
	wantCode(t, err, codes.Aborted)
	upd.Etag = created.Plan.Etag
	updated, err := c.UpdatePlan(acme, &carev1.UpdatePlanRequest{Plan: upd})
	if err != nil || updated.Plan.Etag == created.Plan.Etag || updated.Plan.GetRevisit().GetByTier()[0].GetRecurrence() != "FREQ=MONTHLY" {
		t.Fatalf("UpdatePlan: %v %v", updated, err)
	}
	got, err := c.GetPlan(acme, &carev1.GetPlanRequest{PlanId: "vip"})
	if err != nil || got.Plan.Etag != updated.Plan.Etag || got.Plan.At.GetHour() != 10 {
		t.Fatalf("GetPlan: %v %v", got, err)
	}
	list, err := c.ListPlans(acme, &carev1.ListPlansRequest{})
	if err != nil || len(list.Plans) != 1 {
		t.Fatalf("ListPlans: %v %v", list, err)
	}
	// Another tenant sees none of it.
	_, err = c.GetPlan(tenancy.WithTenant(context.Background(), "other"), &carev1.GetPlanRequest{PlanId: "vip"})
	wantCode(t, err, codes.NotFound)
}

func TestBadInput(t *testing.T) {
	c := start(t)
	noTarget := revisitPlan("p", "FREQ=WEEKLY")
	noTarget.Target = nil
	badZone := revisitPlan("p", "FREQ=WEEKLY")
	badZone.DefaultTimeZone = "Mars/Olympus_Mons"
	for _, tc := range []struct {
		name   string
		call   func() error
		fields []string
	}{
		{"invalid recurrence", func() error {
			_, err := c.CreatePlan(acme, &carev1.CreatePlanRequest{Plan: revisitPlan("p", "FREQ=FORTNIGHTLY")})
			return err
		}, []string{"plan.revisit.by_tier[0].recurrence"}},
		{"unknown time zone", func() error {
			_, err := c.CreatePlan(acme, &carev1.CreatePlanRequest{Plan: badZone})
			return err
		}, []string{"plan.default_time_zone"}},
		{"no target", func() error {
			_, err := c.CreatePlan(acme, &carev1.CreatePlanRequest{Plan: noTarget})
			return err
		}, []string{"plan.target"}},
		{"no plan", func() error {
			_, err := c.CreatePlan(acme, &carev1.CreatePlanRequest{})
			return err
		}, []string{"plan"}},
		{"preview count", func() error {
			_, err := c.PreviewPlan(acme, &carev1.PreviewPlanRequest{PlanId: "p", CustomerId: "c-1", Count: 51})
			return err
		}, []string{"count"}},
		{"quiet hours", func() error {
			_, err := c.SetConsent(acme, &carev1.SetConsentRequest{Consent: &carev1.Consent{CustomerId: "c-1",
				QuietHours: &carev1.QuietHours{Start: &carev1.LocalTime{Hour: 25}, End: &carev1.LocalTime{Hour: 7}}}})
			return err
		}, []string{"consent.quiet_hours.start.hour"}},
		{"complete without outcome", func() error {
			_, err := c.CompleteTask(acme, &carev1.CompleteTaskRequest{TaskId: "t-1", Csat: 9})
			return err
		}, []string{"csat", "outcome"}},
		{"skip without reason", func() error {
			_, err := c.SkipTask(acme, &carev1.SkipTaskRequest{TaskId: "t-1"})
			return err
		}, []string{"reason"}},
		{"task states", func() error {
			_, err := c.ListTasks(acme, &carev1.ListTasksRequest{States: []carev1.TaskState{99}, PageSize: 501, CustomerId: "c 1"})
			return err
		}, []string{"customer_id", "page_size", "states[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.call(), codes.InvalidArgument, tc.fields...) })
	}
	// No tenant, no call.
	_, err := c.ListPlans(context.Background(), &carev1.ListPlansRequest{})
	if status.Code(err) != codes.InvalidArgument && status.Code(err) != codes.Unauthenticated {
		t.Fatalf("ListPlans without a tenant: %v", err)
	}
}

func TestConsentAndQueues(t *testing.T) {
	c := start(t)
	def, err := c.GetConsent(acme, &carev1.GetConsentRequest{CustomerId: "c-1"})
	if err != nil || def.Consent.CustomerId != "c-1" || def.Consent.DoNotContact {
		t.Fatalf("GetConsent default: %v %v", def, err)
	}
	set, err := c.SetConsent(acme, &carev1.SetConsentRequest{Consent: &carev1.Consent{CustomerId: "c-1", OptedOutChannels: []string{"sms"},
		QuietHours: &carev1.QuietHours{Start: &carev1.LocalTime{Hour: 21}, End: &carev1.LocalTime{Hour: 8}}}})
	if err != nil || set.Consent.UpdateTime == nil {
		t.Fatalf("SetConsent: %v %v", set, err)
	}
	got, err := c.GetConsent(acme, &carev1.GetConsentRequest{CustomerId: "c-1"})
	if err != nil || got.Consent.QuietHours.GetStart().GetHour() != 21 || !slices.Equal(got.Consent.OptedOutChannels, []string{"sms"}) {
		t.Fatalf("GetConsent: %v %v", got, err)
	}
	tasks, err := c.ListTasks(acme, &carev1.ListTasksRequest{Owner: "li"})
	if err != nil || len(tasks.Tasks) != 0 {
		t.Fatalf("ListTasks: %v %v", tasks, err)
	}
	_, err = c.GetTask(acme, &carev1.GetTaskRequest{TaskId: "nope"})
	wantCode(t, err, codes.NotFound)
	dl, err := c.ListDeadLetters(acme, &carev1.ListDeadLettersRequest{})
	if err != nil || len(dl.Deliveries) != 0 {
		t.Fatalf("ListDeadLetters: %v %v", dl, err)
	}
	_, err = c.ReplayDeadLetter(acme, &carev1.ReplayDeadLetterRequest{DeliveryId: "nope"})
	wantCode(t, err, codes.NotFound)
}
