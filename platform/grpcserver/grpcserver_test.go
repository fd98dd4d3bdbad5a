package grpcserver_test

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"rapport.dev/platform/grpcclient"
	"rapport.dev/platform/grpcserver"
	"rapport.dev/platform/tenancy"
)

// probe is a service written out by hand with grpc's generic machinery, so
// the interceptors can be tested without generated code.
const probe = "rapport.test.v1.Probe"

const (
	mTenant      = "/" + probe + "/Tenant"
	mFeedTenant  = "/" + probe + "/FeedTenant" // registered as cross-tenant
	mPanic       = "/" + probe + "/Panic"
	mWatchTenant = "/" + probe + "/WatchTenant"
	mPanicStream = "/" + probe + "/PanicStream"
	mBlock       = "/" + probe + "/Block"
)

func tenantOf(ctx context.Context) (*wrapperspb.StringValue, error) {
	id, err := tenancy.FromContext(ctx)
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, "handler ran without a tenant")
	}
	return wrapperspb.String(id), nil
}

// unary builds a method handler that decodes a StringValue and runs fn
// through the server's interceptors.
func unary(method string, fn func(ctx context.Context) (*wrapperspb.StringValue, error)) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		in := new(wrapperspb.StringValue)
		if err := dec(in); err != nil {
			return nil, err
		}
		h := func(ctx context.Context, _ any) (any, error) { return fn(ctx) }
		if interceptor == nil {
			return h(ctx, in)
		}
		return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: method}, h)
	}
}

func probeDesc(blocked chan<- struct{}) *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: probe,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			{MethodName: "Tenant", Handler: unary(mTenant, tenantOf)},
			{MethodName: "FeedTenant", Handler: unary(mFeedTenant, tenantOf)},
			{MethodName: "Panic", Handler: unary(mPanic, func(context.Context) (*wrapperspb.StringValue, error) {
				panic("bug in handler")
			})},
		},
		Streams: []grpc.StreamDesc{
			{StreamName: "WatchTenant", ServerStreams: true, Handler: func(_ any, ss grpc.ServerStream) error {
				if err := ss.RecvMsg(new(wrapperspb.StringValue)); err != nil {
					return err
				}
				out, err := tenantOf(ss.Context())
				if err != nil {
					return err
				}
				return ss.SendMsg(out)
			}},
			{StreamName: "PanicStream", ServerStreams: true, Handler: func(any, grpc.ServerStream) error {
				panic("bug in stream")
			}},
			{StreamName: "Block", ServerStreams: true, Handler: func(_ any, ss grpc.ServerStream) error {
				blocked <- struct{}{}
				<-ss.Context().Done()
				return ss.Context().Err()
			}},
		},
	}
}

// records is a slog handler that keeps what is logged.
type records struct {
	mu   sync.Mutex
	list []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, rec.Clone())
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

// find returns the first record with msg whose attributes include want.
func (r *records) find(msg string, want map[string]string) (slog.Record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.list {
		if rec.Message != msg {
			continue
		}
		match := 0
		rec.Attrs(func(a slog.Attr) bool {
			if v, ok := want[a.Key]; ok && a.Value.String() == v {
				match++
			}
			return true
		})
		if match == len(want) {
			return rec, true
		}
	}
	return slog.Record{}, false
}

type env struct {
	srv *grpcserver.Server
	// cc is the network connection, or the in-process one with the
	// network connection for streams.
	cc      grpc.ClientConnInterface
	conn    *grpc.ClientConn
	logs    *records
	spans   *tracetest.SpanRecorder // server side
	client  trace.TracerProvider
	cspans  *tracetest.SpanRecorder // client side
	metrics *sdkmetric.ManualReader // server and client side
	blocked chan struct{}
	stopped chan error
	served  sync.Once
}

// transports are the two ways a client reaches the server: over the
// network, and in-process (Server.InProcess) with the network for streams.
// Every test runs over both: the answers must not differ.
var transports = []string{"network", "in-process"}

// forEachTransport runs fn for each transport, with a started server.
func forEachTransport(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { fn(t, start(t, tr == "in-process")) })
	}
}

// start runs the real server, with its interceptors, over bufconn and dials
// it with grpcclient; with inProcess, unary calls go in-process.
func start(t *testing.T, inProcess bool) *env {
	t.Helper()
	e := &env{
		logs:    &records{},
		spans:   tracetest.NewSpanRecorder(),
		cspans:  tracetest.NewSpanRecorder(),
		metrics: sdkmetric.NewManualReader(),
		blocked: make(chan struct{}, 1),
		stopped: make(chan error, 1),
	}
	e.client = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(e.cspans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(e.metrics))
	e.srv = grpcserver.New(grpcserver.Options{
		Logger:         slog.New(e.logs),
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(e.spans)),
		MeterProvider:  mp,
		Component:      "probe",
		CrossTenant:    []string{mFeedTenant},
	})
	e.srv.RegisterService(probeDesc(e.blocked), struct{}{})

	lis := bufconn.Listen(1 << 20)
	go func() { e.stopped <- e.srv.Serve(lis) }()
	t.Cleanup(func() {
		e.srv.StopTimeout(time.Second)
		e.waitServed(t)
	})

	cc, err := grpcclient.Dial("passthrough:///bufnet", grpcclient.Options{
		TracerProvider: e.client,
		MeterProvider:  mp,
		Component:      "caller",
		Extra: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return lis.DialContext(ctx)
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	e.conn, e.cc = cc, cc
	// Serving before the test starts, so that a Stop in the test stops a
	// running server whichever transport the calls take.
	if _, err := healthpb.NewHealthClient(cc).Check(t.Context(), &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	if inProcess {
		e.cc = grpcclient.Wrap(e.srv.InProcess(cc))
	}
	return e
}

// waitServed waits for Serve to return after a stop.
func (e *env) waitServed(t *testing.T) {
	t.Helper()
	e.served.Do(func() {
		select {
		case err := <-e.stopped:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Stop")
		}
	})
}

func (e *env) call(ctx context.Context, method string) (string, error) {
	out := new(wrapperspb.StringValue)
	err := e.cc.Invoke(ctx, method, wrapperspb.String("in"), out)
	return out.GetValue(), err
}

func (e *env) stream(ctx context.Context, method string) (string, error) {
	cs, err := e.cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method)
	if err != nil {
		return "", err
	}
	if err := cs.SendMsg(wrapperspb.String("in")); err != nil {
		return "", err
	}
	if err := cs.CloseSend(); err != nil {
		return "", err
	}
	out := new(wrapperspb.StringValue)
	err = cs.RecvMsg(out)
	return out.GetValue(), err
}

func TestTenantReachesHandler(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env) {
		ctx := tenancy.WithTenant(context.Background(), "acme")

		for _, tc := range []struct {
			name string
			call func(context.Context, string) (string, error)
			m    string
		}{
			{"unary", e.call, mTenant},
			{"stream", e.stream, mWatchTenant},
			{"cross-tenant method with one tenant", e.call, mFeedTenant},
		} {
			got, err := tc.call(ctx, tc.m)
			if err != nil || got != "acme" {
				t.Errorf("%s: handler saw tenant %q, %v; want acme", tc.name, got, err)
			}
		}
	})
}

func TestTenantRefused(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env) {
		bg := context.Background()
		withMD := func(v string) context.Context {
			return metadata.AppendToOutgoingContext(bg, tenancy.MetadataKey, v)
		}

		for _, tc := range []struct {
			name string
			ctx  context.Context
			call func(context.Context, string) (string, error)
			m    string
		}{
			{"missing", bg, e.call, mTenant},
			{"missing on a stream", bg, e.stream, mWatchTenant},
			{"empty", withMD(""), e.call, mTenant},
			{"upper case", tenancy.WithTenant(bg, "Acme"), e.call, mTenant},
			{"space", withMD("acme corp"), e.call, mTenant},
			{"leading dash", withMD("-acme"), e.call, mTenant},
			{"64 characters", withMD(strings.Repeat("a", 64)), e.call, mTenant},
			{"wildcard on a single-tenant method", tenancy.WithTenant(bg, tenancy.All), e.call, mTenant},
			{"wildcard on a single-tenant stream", tenancy.WithTenant(bg, tenancy.All), e.stream, mWatchTenant},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := tc.call(tc.ctx, tc.m)
				st := status.Convert(err)
				if st.Code() != codes.InvalidArgument {
					t.Fatalf("code = %v (%v), want InvalidArgument", st.Code(), err)
				}
				var fields []string
				for _, d := range st.Details() {
					if br, ok := d.(*errdetails.BadRequest); ok {
						for _, fv := range br.FieldViolations {
							fields = append(fields, fv.Field)
							if fv.Description == "" {
								t.Error("field violation without a description")
							}
						}
					}
				}
				if !slices.Equal(fields, []string{tenancy.MetadataKey}) {
					t.Errorf("field violations = %v, want [%s]", fields, tenancy.MetadataKey)
				}
			})
		}
	})
}

func TestCrossTenantWildcard(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env) {
		got, err := e.call(tenancy.WithTenant(context.Background(), tenancy.All), mFeedTenant)
		if err != nil || got != tenancy.All {
			t.Fatalf("cross-tenant method saw %q, %v; want %q", got, err, tenancy.All)
		}
		// The longest valid id is accepted everywhere.
		long := strings.Repeat("a", 63)
		if got, err := e.call(tenancy.WithTenant(context.Background(), long), mTenant); err != nil || got != long {
			t.Errorf("63-character tenant: %q, %v", got, err)
		}
	})
}

func TestPanicBecomesInternalAndServerKeepsServing(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env) {
		ctx := tenancy.WithTenant(context.Background(), "acme")

		for _, tc := range []struct {
			call func(context.Context, string) (string, error)
			m    string
		}{{e.call, mPanic}, {e.stream, mPanicStream}} {
			_, err := tc.call(ctx, tc.m)
			st := status.Convert(err)
			if st.Code() != codes.Internal || st.Message() != "internal error" {
				t.Errorf("%s: status = %v %q, want Internal %q", tc.m, st.Code(), st.Message(), "internal error")
			}
			if _, ok := e.logs.find("panic in handler", map[string]string{"method": tc.m}); !ok {
				t.Errorf("%s: panic not logged", tc.m)
			}
			// Logging is outside recovery, so it records the status recovery made.
			// It names the call's tenant too, which the tenant interceptor
			// inside it settled on.
			rec, ok := e.logs.find("rpc", map[string]string{"method": tc.m, "code": "Internal", "tenant": "acme"})
			if !ok || rec.Level != slog.LevelError {
				t.Errorf("%s: no error-level rpc log with code Internal and tenant acme (found %v)", tc.m, ok)
			}
		}
		if got, err := e.call(ctx, mTenant); err != nil || got != "acme" {
			t.Errorf("call after the panics: %q, %v", got, err)
		}
	})
}

func TestHealthAndReflectionNeedNoTenant(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		health := healthpb.NewHealthClient(e.cc)

		for _, svc := range []string{"", probe} {
			resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("Check(%q) = %v, %v; want SERVING", svc, resp.GetStatus(), err)
			}
		}

		rs, err := reflectionpb.NewServerReflectionClient(e.cc).ServerReflectionInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := rs.Send(&reflectionpb.ServerReflectionRequest{
			MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
		}); err != nil {
			t.Fatal(err)
		}
		resp, err := rs.Recv()
		if err != nil {
			t.Fatalf("reflection: %v", err)
		}
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		if !slices.Contains(names, probe) || !slices.Contains(names, "grpc.health.v1.Health") {
			t.Errorf("reflection lists %v", names)
		}
		rs.CloseSend()

		e.srv.NotServing()
		resp2, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: probe})
		if err != nil || resp2.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("Check after NotServing = %v, %v; want NOT_SERVING", resp2.GetStatus(), err)
		}
	})
}

func TestTraceJoinsClientAndServer(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env) {
		ctx := tenancy.WithTenant(context.Background(), "acme")
		ctx, parent := e.client.Tracer("test").Start(ctx, "caller")
		if _, err := e.call(ctx, mTenant); err != nil {
			t.Fatal(err)
		}
		parent.End()
		want := parent.SpanContext().TraceID()
		// The server span ends after the response is sent; GracefulStop waits
		// for the call to finish completely.
		e.srv.StopTimeout(5 * time.Second)
		e.waitServed(t)

		var found bool
		for _, s := range e.spans.Ended() {
			if s.SpanKind() == trace.SpanKindServer && strings.HasSuffix(s.Name(), "Probe/Tenant") {
				found = true
				if s.SpanContext().TraceID() != want || !s.Parent().IsRemote() {
					t.Errorf("server span in trace %s (remote parent %v), want the caller's %s", s.SpanContext().TraceID(), s.Parent().IsRemote(), want)
				}
			}
		}
		if !found {
			t.Error("no server span for the call")
		}
	})
}

// TestStopCutsStreamsAtDeadline: GracefulStop waits for in-flight calls; a
// long-lived stream is cut when the deadline passes.
func TestStopCutsStreamsAtDeadline(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env) {
		ctx := tenancy.WithTenant(context.Background(), "acme")
		cs, err := e.cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, mBlock)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-e.blocked:
		case <-time.After(5 * time.Second):
			t.Fatal("stream did not reach the handler")
		}

		expired, cancel := context.WithCancel(context.Background())
		cancel()
		e.srv.Stop(expired)
		e.waitServed(t)

		if err := cs.RecvMsg(new(wrapperspb.StringValue)); status.Code(err) != codes.Unavailable {
			t.Errorf("stream after Stop: err = %v, want Unavailable: cut by the server", err)
		}
	})
}

// TestRPCMetrics: every call, over either transport, is counted and timed
// in rpc.server.call.duration with its method, its status code and the
// component, so a dashboard has rates, latencies and errors per RPC.
func TestRPCMetrics(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env) {
		ctx := tenancy.WithTenant(context.Background(), "acme")
		for range 3 {
			if _, err := e.call(ctx, mTenant); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.call(context.Background(), mTenant); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("call without a tenant: %v", err)
		}
		// The server records a call when it ends, after the response is
		// sent: stopping gracefully waits for that.
		e.srv.StopTimeout(5 * time.Second)
		e.waitServed(t)

		server := rpcCounts(t, e.metrics, "rpc.server.call.duration")
		for code, want := range map[string]uint64{"OK": 3, "INVALID_ARGUMENT": 1} {
			if got := server["probe "+mTenant[1:]+" "+code]; got != want {
				t.Errorf("server: %d %s calls of %s, want %d (all: %v)", got, code, mTenant, want, server)
			}
		}
		// The client side is measured on network calls (an in-process
		// call has no client stats handler).
		client := rpcCounts(t, e.metrics, "rpc.client.call.duration")
		if got := client["caller "+mTenant[1:]+" OK"]; got < 3 && e.cc == grpc.ClientConnInterface(e.conn) {
			t.Errorf("client: %d OK calls of %s, want 3 (all: %v)", got, mTenant, client)
		}
	})
}

// rpcCounts reads the histogram named name and returns its call counts by
// "component method status".
func rpcCounts(t *testing.T, r *sdkmetric.ManualReader, name string) map[string]uint64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				get := func(k string) string { v, _ := dp.Attributes.Value(attribute.Key(k)); return v.Emit() }
				out[get("rapport.component")+" "+get("rpc.method")+" "+get("rpc.response.status_code")] += dp.Count
			}
		}
	}
	return out
}
