package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	carev1 "rapport.dev/gen/go/rapport/care/v1"
	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	loyaltyv1 "rapport.dev/gen/go/rapport/loyalty/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/component"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/grpcclient"
	"rapport.dev/platform/grpcserver"
	"rapport.dev/platform/tenancy"
	"rapport.dev/services/care"
	"rapport.dev/services/loyalty"
	"rapport.dev/services/profile"
	"rapport.dev/services/segmentation"
)

// suite runs the real services in this process as rapport serve does, each
// on its own bbolt file and bufconn listener, following each other's
// feeds. A target "passthrough:///<name>" reaches the service or server
// listening as name.
type suite struct {
	t   testing.TB
	dir string
	log *slog.Logger
	// clock is every service's: t0 until a test moves it.
	clock *clock.Fake

	mu        sync.Mutex
	listeners map[string]*bufconn.Listener
	servers   map[string]*grpcserver.Server
	stops     map[string]func()
}

func newSuite(t testing.TB) *suite {
	return &suite{t: t, dir: t.TempDir(), clock: clock.NewFake(t0),
		log:       slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		listeners: map[string]*bufconn.Listener{}, servers: map[string]*grpcserver.Server{}, stops: map[string]func(){}}
}

// t0 is the suite's time: Monday 2 March 2026, 10:00 in Shanghai, in
// working hours, so a complaint's follow-up falls due at once.
var t0 = time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)

func target(name string) string { return "passthrough:///" + name }

// dialer connects to the listener named by the target.
func (s *suite) dialer() grpc.DialOption {
	return grpc.WithContextDialer(func(ctx context.Context, name string) (net.Conn, error) {
		s.mu.Lock()
		lis := s.listeners[name]
		s.mu.Unlock()
		if lis == nil {
			return nil, fmt.Errorf("nothing listens as %q", name)
		}
		return lis.DialContext(ctx)
	})
}

// serve runs a service (its Serve) as name until the test ends or stop.
func (s *suite) serve(name string, srv *grpcserver.Server, serve func(context.Context, net.Listener) error) {
	s.t.Helper()
	lis := bufconn.Listen(1 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, lis) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			s.t.Errorf("%s: Serve: %v", name, err)
		}
	})
	s.mu.Lock()
	s.listeners[name], s.servers[name], s.stops[name] = lis, srv, stop
	s.mu.Unlock()
	s.t.Cleanup(stop)
}

// stop stops the service named, gracefully, as SIGTERM does.
func (s *suite) stop(name string) {
	s.mu.Lock()
	stop := s.stops[name]
	s.mu.Unlock()
	stop()
}

func (s *suite) server(name string) *grpcserver.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.servers[name]
}

func (s *suite) deps() component.Deps {
	return component.Deps{Logger: s.log, Clock: s.clock}
}

func (s *suite) check(err error) {
	s.t.Helper()
	if err != nil {
		s.t.Fatal(err)
	}
}

// grace bounds a service's graceful stop: the feed followers' streams
// never end by themselves, and would hold it for the default 10 s.
const grace = 200 * time.Millisecond

// startProfile starts the profile service as "profile".
func (s *suite) startProfile() {
	s.t.Helper()
	svc, err := profile.New(profile.Config{DataDir: s.dir, GRPCAddr: "profile", ShutdownGrace: grace}, s.deps())
	s.check(err)
	s.serve("profile", svc.Server(), svc.Serve)
}

// startAll starts profile, segmentation, loyalty and care, each following
// the others as in production.
func (s *suite) startAll() {
	s.t.Helper()
	s.startProfile()
	extra := []grpc.DialOption{s.dialer()}
	seg, err := segmentation.New(segmentation.Config{DataDir: s.dir, GRPCAddr: "segmentation", ProfileTarget: target("profile"), ShutdownGrace: grace,
		DialExtra: extra}, s.deps())
	s.check(err)
	s.serve("segmentation", seg.Server(), seg.Serve)
	loy, err := loyalty.New(loyalty.Config{DataDir: s.dir, GRPCAddr: "loyalty", ProfileTarget: target("profile"), ShutdownGrace: grace,
		SegmentationTarget: target("segmentation"), DialExtra: extra}, s.deps())
	s.check(err)
	s.serve("loyalty", loy.Server(), loy.Serve)
	cs, err := care.New(care.Config{DataDir: s.dir, GRPCAddr: "care", ProfileTarget: target("profile"), ShutdownGrace: grace,
		SegmentationTarget: target("segmentation"), LoyaltyTarget: target("loyalty"), DialExtra: extra}, s.deps())
	s.check(err)
	s.serve("care", cs.Server(), cs.Serve)
}

// gateway serves a gateway in front of the suite; a backend opts leaves
// without a target is not configured.
func (s *suite) gateway(opts Options) *fixture {
	s.t.Helper()
	opts.ProfileTarget = target("profile")
	opts.DialExtra = append(opts.DialExtra, s.dialer())
	if opts.Logger == nil {
		opts.Logger = s.log
	}
	opts.Clock = s.clock
	gw, err := New(s.t.Context(), opts)
	s.check(err)
	s.t.Cleanup(func() {
		if err := gw.Close(); err != nil {
			s.t.Errorf("Close: %v", err)
		}
	})
	srv := httptest.NewServer(gw.Handler())
	s.t.Cleanup(srv.Close)
	return &fixture{gw: gw, srv: srv}
}

// allBackends configures every backend of the suite, called over transport.
func (s *suite) allBackends(transport string, opts Options) Options {
	opts.SegmentationTarget, opts.LoyaltyTarget, opts.CareTarget = target("segmentation"), target("loyalty"), target("care")
	if transport == "in-process" {
		opts.ProfileInProcess, opts.SegmentationInProcess = s.server("profile"), s.server("segmentation")
		opts.LoyaltyInProcess, opts.CareInProcess = s.server("loyalty"), s.server("care")
	}
	return opts
}

// follow returns the events of one tenant's feed of the service named,
// as they come; open subscribes with the service's generated client.
func (s *suite) follow(name, tenant string, open func(grpc.ClientConnInterface, context.Context) (feed.Stream, error)) <-chan *feedv1.Event {
	s.t.Helper()
	cc, err := grpcclient.Dial(target(name), grpcclient.Options{Extra: []grpc.DialOption{s.dialer()}})
	s.check(err)
	ctx, cancel := context.WithCancel(tenancy.WithTenant(context.Background(), tenant))
	s.t.Cleanup(func() { cancel(); cc.Close() })
	stream, err := open(cc, ctx)
	s.check(err)
	out := make(chan *feedv1.Event, 1000)
	go func() {
		defer close(out)
		for {
			ev, err := stream.Recv()
			if err != nil {
				return
			}
			out <- ev
		}
	}()
	return out
}

// await returns the first event on ch for which match holds.
func await(t testing.TB, what string, ch <-chan *feedv1.Event, match func(*feedv1.Event) bool) *feedv1.Event {
	t.Helper()
	timeout := time.After(30 * time.Second) // a failsafe, not a wait: events end the loop
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("the feed ended before %s", what)
			}
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s on the feed", what)
		}
	}
}

// rest sends a JSON request through the gateway as tenant acme and
// decodes the answer.
func (f *fixture) rest(t *testing.T, method, path string, body any, want int) map[string]any {
	t.Helper()
	rq := request{method: method, path: path}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rq.body = bytes.NewReader(b)
	}
	r := f.do(t, rq)
	if r.status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, r.body)
	}
	var out map[string]any
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatalf("%s %s: %s: %v", method, path, r.body, err)
	}
	return out
}

// view360 decodes a Customer 360 view, failing unless it is a 200.
func view360(t *testing.T, r response) (Customer360, map[string]any) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", r.status, r.body)
	}
	var v Customer360
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	var raw map[string]any
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	return v, raw
}

// missingParts is "part:CODE" for each missing part, in order.
func missingParts(v Customer360) []string {
	var out []string
	for _, m := range v.Missing {
		out = append(out, m.Part+":"+m.Code)
	}
	return out
}

// TestCustomer360 drives the real services through the gateway: a
// customer in a segment, a member of one of two loyalty programmes, with a
// complaint follow-up open in care, is seen whole in one call, over the
// network and in-process; an unknown customer, or another tenant's, is a
// 404; and with loyalty stopped the view is a 200 with loyalty missing.
func TestCustomer360(t *testing.T) {
	s := newSuite(t)
	s.startAll()
	gws := map[string]*fixture{}
	for _, tr := range transports {
		gws[tr] = s.gateway(s.allBackends(tr, Options{}))
	}
	api := gws["network"]
	segments := s.follow("segmentation", "acme", func(cc grpc.ClientConnInterface, ctx context.Context) (feed.Stream, error) {
		st, err := segmentationv1.NewSegmentationServiceClient(cc).FollowChanges(ctx, &segmentationv1.FollowChangesRequest{Wait: true})
		return feed.StreamOf(st), err
	})
	tasks := s.follow("care", "acme", func(cc grpc.ClientConnInterface, ctx context.Context) (feed.Stream, error) {
		st, err := carev1.NewCareServiceClient(cc).FollowChanges(ctx, &carev1.FollowChangesRequest{Wait: true})
		return feed.StreamOf(st), err
	})

	api.rest(t, "POST", "/v1/segments", map[string]any{"segmentId": "zj", "displayName": "Zhejiang",
		"kind": "SEGMENT_KIND_DYNAMIC", "rule": `customer.region.province == "浙江"`}, 200)
	api.rest(t, "POST", "/v1/care/plans", map[string]any{"planId": "complaints", "enabled": true,
		"target": map[string]any{"allCustomers": true}, "complaintFollowUp": map[string]any{"slaHours": 24},
		"task": map[string]any{"title": "Call {name} back about the complaint"}}, 200)
	for _, p := range []string{"club", "vip"} {
		api.rest(t, "POST", "/v1/loyalty/programs", map[string]any{"programId": p, "displayName": p + " programme", "pointsName": "积分",
			"currency": "CNY", "pointsPerUnit": 1, "enrollment": "ENROLLMENT_EXPLICIT",
			"pointValue": map[string]any{"amountMinor": "1", "currency": "CNY"},
			"tiers":      []any{map[string]any{"tierId": "member"}, map[string]any{"tierId": "gold", "threshold": "1000"}},
		}, 200)
	}
	api.rest(t, "POST", "/v1/customers", map[string]any{"customerId": "c-1", "kind": "CUSTOMER_KIND_PERSON", "displayName": "王小明",
		"timeZone": "Asia/Shanghai", "owner": "li", "region": map[string]any{"country": "CN", "province": "浙江", "city": "杭州"}}, 200)
	api.rest(t, "POST", "/v1/loyalty/programs/club/members", map[string]any{"customerId": "c-1", "timeZone": "Asia/Shanghai"}, 200)
	api.rest(t, "POST", "/v1/loyalty/programs/club/members/c-1:earn", map[string]any{"idempotencyKey": "welcome", "points": "120", "reason": "welcome"}, 200)
	api.rest(t, "POST", "/v1/customers/c-1/events", map[string]any{"eventId": "cmp-1", "occurTime": t0.Format(time.RFC3339),
		"complaint": map[string]any{"complaintId": "K-1", "severity": "COMPLAINT_SEVERITY_HIGH", "status": "COMPLAINT_STATUS_OPEN"}}, 200)
	// Segmentation and care learn of the customer through the profile feed.
	await(t, "c-1 entering zj", segments, func(ev *feedv1.Event) bool {
		var m segmentationv1.MembershipChange
		return ev.GetPayload().UnmarshalTo(&m) == nil && m.GetSegmentId() == "zj" && m.GetCustomerId() == "c-1" && m.GetEntered()
	})
	followUp := &carev1.Task{}
	await(t, "c-1's complaint follow-up", tasks, func(ev *feedv1.Event) bool {
		return ev.GetType() == "task.due" && ev.GetPayload().UnmarshalTo(followUp) == nil && followUp.GetCustomerId() == "c-1"
	})

	for _, tr := range transports {
		t.Run("all up/"+tr, func(t *testing.T) {
			v, raw := view360(t, gws[tr].do(t, request{method: http.MethodGet, path: "/v1/customers/c-1/360"}))
			if len(v.Missing) != 0 || v.CustomerID != "c-1" {
				t.Fatalf("missing %v, customerId %q: %v", v.Missing, v.CustomerID, raw)
			}
			if v.AsOf != "2026-03-02T02:00:00Z" {
				t.Errorf("asOf %q, want the gateway clock's 2026-03-02T02:00:00Z", v.AsOf)
			}
			want := map[string]any{
				"profile.displayName":                                "王小明",
				"profile.owner":                                      "li",
				"profile.region.province":                            "浙江",
				"indicators.complaintCount":                          1,
				"scores.customerId":                                  "c-1",
				"scores.segments.0.segmentId":                        "zj",
				"loyalty.programs.0.programId":                       "club",
				"loyalty.programs.0.enrolled":                        true,
				"loyalty.programs.0.pointsName":                      "积分",
				"loyalty.programs.0.member.balance":                  "120",
				"loyalty.programs.0.member.tierId":                   "member",
				"loyalty.programs.0.member.nextTierId":               "gold",
				"loyalty.programs.0.member.toNextTier":               "880",
				"loyalty.programs.0.member.valueAtStake.amountMinor": "120",
				"loyalty.programs.1.programId":                       "vip",
				"loyalty.programs.1.enrolled":                        false,
				"loyalty.programs.1.member":                          nil, // not enrolled
				"care.openTasks.0.taskId":                            followUp.GetTaskId(),
				"care.openTasks.0.state":                             "TASK_STATE_DUE",
				"care.openTasks.0.planId":                            "complaints",
				"care.openTasks.1":                                   nil,
			}
			for path, w := range want {
				if got := lookup(raw, path); fmt.Sprint(got) != fmt.Sprint(w) {
					t.Errorf("%s = %v, want %v", path, got, w)
				}
			}
			for _, part := range []string{"scores.features", "scores.scores"} {
				if lookup(raw, part) == nil {
					t.Errorf("%s is absent: %v", part, raw)
				}
			}
		})
	}
	t.Run("unknown customer", func(t *testing.T) {
		for _, tr := range transports {
			e := errorOf(t, gws[tr].do(t, request{method: http.MethodGet, path: "/v1/customers/nobody/360"}), http.StatusNotFound, codes.NotFound)
			if !strings.Contains(e.Message, "nobody") {
				t.Errorf("%s: message %q", tr, e.Message)
			}
		}
	})
	t.Run("another tenant's customer", func(t *testing.T) {
		errorOf(t, api.do(t, request{method: http.MethodGet, path: "/v1/customers/c-1/360", tenant: "globex"}), http.StatusNotFound, codes.NotFound)
	})
	t.Run("invalid id", func(t *testing.T) {
		e := errorOf(t, api.do(t, request{method: http.MethodGet, path: "/v1/customers/a%20b/360"}), http.StatusBadRequest, codes.InvalidArgument)
		if len(e.FieldViolations) != 1 || e.FieldViolations[0].Field != "customer_id" {
			t.Errorf("violations %+v, want one on customer_id", e.FieldViolations)
		}
	})
	t.Run("no tenant", func(t *testing.T) {
		errorOf(t, api.do(t, request{method: http.MethodGet, path: "/v1/customers/c-1/360", tenant: "-"}), http.StatusBadRequest, codes.InvalidArgument)
	})
	t.Run("other methods", func(t *testing.T) {
		errorOf(t, api.do(t, request{method: http.MethodPost, path: "/v1/customers/c-1/360"}), http.StatusMethodNotAllowed, codes.Unimplemented)
	})

	s.stop("loyalty")
	for _, tr := range transports {
		t.Run("loyalty down/"+tr, func(t *testing.T) {
			v, raw := view360(t, gws[tr].do(t, request{method: http.MethodGet, path: "/v1/customers/c-1/360"}))
			if got := missingParts(v); !slices.Equal(got, []string{"loyalty:UNAVAILABLE"}) {
				t.Fatalf("missing %v, want loyalty:UNAVAILABLE: %s", got, raw)
			}
			if string(v.Loyalty) != "null" && v.Loyalty != nil {
				t.Errorf("loyalty = %s, want null", v.Loyalty)
			}
			if _, ok := raw["loyalty"]; !ok {
				t.Error("loyalty is left out; want it there as null")
			}
			if v.Missing[0].Message == "" {
				t.Error("no message for the missing part")
			}
			if lookup(raw, "profile.displayName") != "王小明" || lookup(raw, "scores.segments.0.segmentId") != "zj" ||
				lookup(raw, "care.openTasks.0.taskId") != followUp.GetTaskId() || lookup(raw, "indicators") == nil {
				t.Errorf("the other parts: %v", raw)
			}
		})
	}
}

// lookup follows a dotted path of keys and array indexes in decoded JSON.
func lookup(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			var i int
			if _, err := fmt.Sscan(k, &i); err != nil || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// hang is a backend handler that blocks until the test ends, whatever its
// context says, and notes the deadline and metadata it was called with.
type hang struct {
	release <-chan struct{}
	entered chan struct{} // closed by the first call
	once    sync.Once

	mu       sync.Mutex
	deadline time.Time
	md       metadata.MD
}

func newHang(release <-chan struct{}) *hang {
	return &hang{release: release, entered: make(chan struct{})}
}

func (h *hang) block(ctx context.Context) error {
	h.mu.Lock()
	h.deadline, _ = ctx.Deadline()
	h.md, _ = metadata.FromIncomingContext(ctx)
	h.mu.Unlock()
	h.once.Do(func() { close(h.entered) })
	<-h.release
	return status.Error(codes.Internal, "released at the end of the test")
}

// called returns the deadline and metadata of the call, failing if there
// was none.
func (h *hang) called(t *testing.T, name string) (time.Time, metadata.MD) {
	t.Helper()
	select {
	case <-h.entered:
	default:
		t.Fatalf("%s was never called", name)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.deadline, h.md
}

type hangingSegmentation struct {
	segmentationv1.UnimplementedSegmentationServiceServer
	*hang
}

func (s hangingSegmentation) GetCustomerScores(ctx context.Context, _ *segmentationv1.GetCustomerScoresRequest) (*segmentationv1.GetCustomerScoresResponse, error) {
	return nil, s.block(ctx)
}

type hangingLoyalty struct {
	loyaltyv1.UnimplementedLoyaltyServiceServer
	*hang
}

func (s hangingLoyalty) ListPrograms(ctx context.Context, _ *loyaltyv1.ListProgramsRequest) (*loyaltyv1.ListProgramsResponse, error) {
	return nil, s.block(ctx)
}

type hangingCare struct {
	carev1.UnimplementedCareServiceServer
	*hang
}

func (s hangingCare) ListTasks(ctx context.Context, _ *carev1.ListTasksRequest) (*carev1.ListTasksResponse, error) {
	return nil, s.block(ctx)
}

// hanging is a real profile service with segmentation, loyalty and care
// backends that never answer, on one real gRPC server ("hang") with its
// interceptors, released when the test ends.
type hanging struct {
	*suite
	segmentation, loyalty, care *hang
}

func newHanging(t *testing.T) *hanging {
	s := newSuite(t)
	s.startProfile()
	release := make(chan struct{})
	h := &hanging{suite: s, segmentation: newHang(release), loyalty: newHang(release), care: newHang(release)}
	srv := grpcserver.New(grpcserver.Options{Logger: s.log})
	segmentationv1.RegisterSegmentationServiceServer(srv, hangingSegmentation{hang: h.segmentation})
	loyaltyv1.RegisterLoyaltyServiceServer(srv, hangingLoyalty{hang: h.loyalty})
	carev1.RegisterCareServiceServer(srv, hangingCare{hang: h.care})
	s.serve("hang", srv, func(ctx context.Context, lis net.Listener) error {
		served := make(chan error, 1)
		go func() { served <- srv.Serve(lis) }()
		<-ctx.Done()
		srv.StopTimeout(5 * time.Second)
		return <-served
	})
	t.Cleanup(func() { close(release) }) // before the server stops: cleanups run last in, first out
	return h
}

// gatewayOver serves a gateway with the hanging backends, called over
// transport.
func (h *hanging) gatewayOver(t *testing.T, transport string, opts Options) *fixture {
	opts.SegmentationTarget, opts.LoyaltyTarget, opts.CareTarget = target("hang"), target("hang"), target("hang")
	if transport == "in-process" {
		opts.ProfileInProcess = h.server("profile")
		opts.SegmentationInProcess, opts.LoyaltyInProcess, opts.CareInProcess = h.server("hang"), h.server("hang"), h.server("hang")
	}
	f := h.gateway(opts)
	f.rest(t, "POST", "/v1/customers", map[string]any{"customerId": "c-1", "kind": "CUSTOMER_KIND_PERSON", "displayName": "Ada"}, 200)
	return f
}

// TestCustomer360Deadline: backends that never answer are missing with
// DEADLINE_EXCEEDED, the view comes back while they still hang, and they
// were all called at once under one deadline: the deadlines they saw are
// the same instant, no later than the gateway's, not one after another.
func TestCustomer360Deadline(t *testing.T) {
	const timeout = time.Second
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			h := newHanging(t)
			f := h.gatewayOver(t, tr, Options{Customer360Timeout: timeout})
			start := time.Now()
			v, raw := view360(t, f.do(t, request{method: http.MethodGet, path: "/v1/customers/c-1/360"}))
			end := time.Now()
			// The backends are still blocked here: the view did not wait for them.
			want := []string{"scores:DEADLINE_EXCEEDED", "loyalty:DEADLINE_EXCEEDED", "care:DEADLINE_EXCEEDED"}
			if got := missingParts(v); !slices.Equal(got, want) {
				t.Fatalf("missing %v, want %v: %s", got, want, raw)
			}
			if lookup(raw, "profile.displayName") != "Ada" || lookup(raw, "indicators") == nil {
				t.Errorf("profile and indicators: %v", raw)
			}
			var deadlines []time.Time
			for name, b := range map[string]*hang{"segmentation": h.segmentation, "loyalty": h.loyalty, "care": h.care} {
				// The gateway's deadline: Customer360Timeout after it got the
				// request (a network call rounds it to the microsecond).
				d, _ := b.called(t, name)
				if d.Before(start.Add(timeout-time.Millisecond)) || d.After(end.Add(timeout)) {
					t.Errorf("%s's deadline is %v after the request was sent, want %v", name, d.Sub(start), timeout)
				}
				deadlines = append(deadlines, d)
			}
			slices.SortFunc(deadlines, time.Time.Compare)
			if spread := deadlines[len(deadlines)-1].Sub(deadlines[0]); spread > timeout/2 {
				t.Errorf("deadlines %v apart: the parts were not fetched under one deadline", spread)
			}
		})
	}
}

// TestCustomer360RequestDeadline: a request that asks for less time than
// Customer360Timeout (Grpc-Timeout) gets its own deadline, on every part.
func TestCustomer360RequestDeadline(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			h := newHanging(t)
			// Were the hour kept, the test would time out: the backends never answer.
			f := h.gatewayOver(t, tr, Options{Customer360Timeout: time.Hour})
			start := time.Now()
			v, raw := view360(t, f.do(t, request{method: http.MethodGet, path: "/v1/customers/c-1/360",
				header: http.Header{"Grpc-Timeout": {"300m"}}}))
			want := []string{"scores:DEADLINE_EXCEEDED", "loyalty:DEADLINE_EXCEEDED", "care:DEADLINE_EXCEEDED"}
			if got := missingParts(v); !slices.Equal(got, want) {
				t.Fatalf("missing %v, want %v: %s", got, want, raw)
			}
			for name, b := range map[string]*hang{"segmentation": h.segmentation, "loyalty": h.loyalty, "care": h.care} {
				if d, _ := b.called(t, name); d.After(start.Add(time.Minute)) {
					t.Errorf("%s's deadline is %v away, the gateway's hour, not the request's 300ms", name, d.Sub(start))
				}
			}
			errorOf(t, f.do(t, request{method: http.MethodGet, path: "/v1/customers/c-1/360", header: http.Header{"Grpc-Timeout": {"soon"}}}),
				http.StatusBadRequest, codes.InvalidArgument)
		})
	}
}

// TestCustomer360Forwards: every part's call carries the caller's tenant,
// Authorization and trace context, as the generated routes forward them.
func TestCustomer360Forwards(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	h := newHanging(t)
	f := h.gatewayOver(t, "network", Options{Customer360Timeout: 200 * time.Millisecond, TracerProvider: tp})

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req := httptest.NewRequest(http.MethodGet, "/v1/customers/c-1/360", nil)
	req.Header.Set(tenancy.HeaderName, "acme")
	req.Header.Set("Authorization", "Bearer rk_test")
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	rec := httptest.NewRecorder()
	// Served in-process so the request span has ended when ServeHTTP returns.
	f.gw.Handler().ServeHTTP(rec, req)
	view360(t, response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()})
	for name, b := range map[string]*hang{"segmentation": h.segmentation, "loyalty": h.loyalty, "care": h.care} {
		_, md := b.called(t, name)
		if got := md.Get(tenancy.MetadataKey); !slices.Equal(got, []string{"acme"}) {
			t.Errorf("%s: tenant %q", name, got)
		}
		if got := md.Get("authorization"); len(got) == 0 || got[0] != "Bearer rk_test" {
			t.Errorf("%s: authorization %q", name, got)
		}
		if got := md.Get("traceparent"); len(got) != 1 || !strings.Contains(got[0], traceID) {
			t.Errorf("%s: traceparent %q, want trace %s", name, got, traceID)
		}
	}
	var named bool
	for _, s := range sr.Ended() {
		if s.Name() == "HTTP GET "+customer360Route {
			named = true
			if s.SpanContext().TraceID().String() != traceID {
				t.Errorf("request span in trace %s, want %s", s.SpanContext().TraceID(), traceID)
			}
		}
	}
	if !named {
		t.Errorf("no span named HTTP GET %s", customer360Route)
	}
}

// TestCustomer360Unconfigured: a gateway without a backend marks its part
// missing with UNIMPLEMENTED; profile's errors are the view's, redacted as
// on the other routes.
func TestCustomer360Unconfigured(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			f := newFixtureOver(t, tr, Options{})
			v, raw := view360(t, f.do(t, request{method: http.MethodGet, path: "/v1/customers/c-1/360"}))
			// The test profile backend has no GetCustomerIndicators.
			want := []string{"indicators:UNIMPLEMENTED", "scores:UNIMPLEMENTED", "loyalty:UNIMPLEMENTED", "care:UNIMPLEMENTED"}
			if got := missingParts(v); !slices.Equal(got, want) {
				t.Fatalf("missing %v, want %v", got, want)
			}
			if lookup(raw, "profile.customerId") != "c-1" || v.Missing[3].Message != "this gateway has no care backend" {
				t.Errorf("view %s", raw)
			}
			for _, k := range []string{"indicators", "scores", "loyalty", "care"} {
				if v, ok := raw[k]; !ok || v != nil {
					t.Errorf("%s = %v, want null", k, v)
				}
			}
			errorOf(t, f.do(t, request{method: http.MethodGet, path: "/v1/customers/missing/360"}), http.StatusNotFound, codes.NotFound)
			errorOf(t, f.do(t, request{method: http.MethodGet, path: "/v1/customers/unauthenticated/360"}), http.StatusUnauthorized, codes.Unauthenticated)
			errorOf(t, f.do(t, request{method: http.MethodGet, path: "/v1/customers/forbidden/360"}), http.StatusForbidden, codes.PermissionDenied)
			e := errorOf(t, f.do(t, request{method: http.MethodGet, path: "/v1/customers/down/360"}), http.StatusServiceUnavailable, codes.Unavailable)
			if strings.Contains(e.Message, "10.1.2.3") {
				t.Errorf("message leaks the backend's network: %q", e.Message)
			}
		})
	}
}

// TestCustomer360OpenAPI: the served document advertises the route, and
// every schema it refers to is defined, the generated ones included.
func TestCustomer360OpenAPI(t *testing.T) {
	f := newFixture(t, Options{})
	r := f.do(t, request{method: http.MethodGet, path: "/openapi.json", tenant: "-"})
	var doc struct {
		Paths       map[string]map[string]any `json:"paths"`
		Definitions map[string]any            `json:"definitions"`
		Tags        []struct{ Name string }   `json:"tags"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Paths["/v1/customers/{customerId}/360"]["get"] == nil {
		t.Fatalf("no GET /v1/customers/{customerId}/360 among %d paths", len(doc.Paths))
	}
	if !slices.ContainsFunc(doc.Tags, func(tag struct{ Name string }) bool { return tag.Name == "Customer360" }) {
		t.Errorf("tags %v lack Customer360", doc.Tags)
	}
	var refs []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, v := range x {
				if s, ok := v.(string); ok && k == "$ref" {
					refs = append(refs, s)
				}
				walk(v)
			}
		case []any:
			for _, v := range x {
				walk(v)
			}
		}
	}
	var raw any
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	walk(raw)
	for _, ref := range refs {
		if name, ok := strings.CutPrefix(ref, "#/definitions/"); !ok || doc.Definitions[name] == nil {
			t.Errorf("$ref %q is not defined", ref)
		}
	}
	if !slices.Contains(refs, "#/definitions/gatewayCustomer360") || !slices.Contains(refs, "#/definitions/rapportLoyaltyV1Member") {
		t.Errorf("the Customer 360 schemas are not referred to: %d refs", len(refs))
	}
	if err := mergeDocument(map[string]any{"paths": map[string]any{"/v1/customers/{customerId}/360": map[string]any{}}},
		customer360Document); err == nil {
		t.Error("a fragment that redefines a generated path merged without error")
	}
}
