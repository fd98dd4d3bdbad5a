package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/platform/grpcserver"
	"rapport.dev/platform/telemetry"
	"rapport.dev/platform/telemetry/metricstest"
	"rapport.dev/platform/tenancy"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// profileBackend is a tiny ProfileService: GetCustomer answers by id, the
// create and record calls echo what they get, and every call notes the
// metadata it arrived with.
type profileBackend struct {
	profilev1.UnimplementedProfileServiceServer

	mu      sync.Mutex
	calls   int
	tenants []string    // x-rapport-tenant values of the last call
	md      metadata.MD // incoming metadata of the last call
	traceID string      // trace id the last call was served in
	// tenant is the tenant the server's interceptor put in the context of
	// the last call.
	tenant string
	// network is the peer's network of the last call, "inprocess" for an
	// in-process call.
	network string
}

func (b *profileBackend) note(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	b.tenants = md.Get(tenancy.MetadataKey)
	b.md = md
	b.traceID = trace.SpanContextFromContext(ctx).TraceID().String()
	b.tenant, _ = tenancy.FromContext(ctx)
	if p, ok := peer.FromContext(ctx); ok {
		b.network = p.Addr.Network()
	}
}

func (b *profileBackend) last() (tenant, network string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tenant, b.network
}

// FollowChanges streams two changes of the caller's tenant and ends.
func (b *profileBackend) FollowChanges(req *profilev1.FollowChangesRequest, stream grpc.ServerStreamingServer[profilev1.FollowChangesResponse]) error {
	b.note(stream.Context())
	tenant, _ := tenancy.FromContext(stream.Context())
	for seq := req.GetAfterSequence() + 1; seq <= req.GetAfterSequence()+2; seq++ {
		if err := stream.Send(&profilev1.FollowChangesResponse{Event: &feedv1.Event{
			Sequence: seq, Tenant: tenant, Type: "customer.created", Key: fmt.Sprintf("c-%d", seq),
		}}); err != nil {
			return err
		}
	}
	return nil
}

func (b *profileBackend) snapshot() (calls int, tenants []string, traceID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls, b.tenants, b.traceID
}

func badRequest(msg, field, description string) error {
	st, err := status.New(codes.InvalidArgument, msg).WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: description}},
	})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func (b *profileBackend) GetCustomer(ctx context.Context, req *profilev1.GetCustomerRequest) (*profilev1.GetCustomerResponse, error) {
	b.note(ctx)
	switch id := req.GetCustomerId(); id {
	case "invalid":
		return nil, badRequest("invalid customer_id", "customer_id", "must be 1 to 128 of A-Z a-z 0-9 . _ : -")
	case "missing":
		return nil, status.Errorf(codes.NotFound, "customer %q not found", id)
	case "down":
		return nil, status.Error(codes.Unavailable, "dial tcp 10.1.2.3:9000: connect: connection refused")
	case "unauthenticated":
		return nil, status.Error(codes.Unauthenticated, "no API key")
	case "forbidden":
		return nil, status.Error(codes.PermissionDenied, "the key lacks customers:read")
	default:
		return &profilev1.GetCustomerResponse{Customer: &profilev1.Customer{
			CustomerId:  id,
			Kind:        profilev1.CustomerKind_CUSTOMER_KIND_PERSON,
			DisplayName: "Ada Lovelace",
		}}, nil
	}
}

func (b *profileBackend) CreateCustomer(ctx context.Context, req *profilev1.CreateCustomerRequest) (*profilev1.CreateCustomerResponse, error) {
	b.note(ctx)
	return &profilev1.CreateCustomerResponse{Customer: req.GetCustomer(), Created: true}, nil
}

func (b *profileBackend) RecordEvent(ctx context.Context, req *profilev1.RecordEventRequest) (*profilev1.RecordEventResponse, error) {
	b.note(ctx)
	if req.GetEvent().GetKind() == nil {
		return nil, badRequest("event has no kind", "event.kind", "exactly one kind is required")
	}
	return &profilev1.RecordEventResponse{Event: req.GetEvent(), Created: true}, nil
}

// fixture is the gateway in front of a real gRPC server (grpcserver, with
// its interceptors) over bufconn.
type fixture struct {
	backend *profileBackend
	server  *grpcserver.Server
	health  *health.Server
	lis     *bufconn.Listener
	gw      *Gateway
	srv     *httptest.Server
}

// newFixture starts a backend and a gateway configured by opts, whose
// target, dialer and logger it fills in; the gateway calls the backend
// over the network.
func newFixture(t testing.TB, opts Options) *fixture {
	t.Helper()
	f := newBackend(t)
	f.gw, f.srv = f.gateway(t, opts)
	return f
}

// transports are the two ways the gateway calls its backend: over the
// network, and in-process (Options.ProfileInProcess). Tests that run over
// both expect the same answers.
var transports = []string{"network", "in-process"}

// newFixtureOver is newFixture with the backend called over transport.
func newFixtureOver(t testing.TB, transport string, opts Options) *fixture {
	t.Helper()
	f := newBackend(t)
	if transport == "in-process" {
		opts.ProfileInProcess = f.server
	}
	f.gw, f.srv = f.gateway(t, opts)
	return f
}

// newBackend starts the backend's server.
func newBackend(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{backend: &profileBackend{}, lis: bufconn.Listen(1 << 20)}
	f.server = grpcserver.New(grpcserver.Options{Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	f.health = f.server.Health
	profilev1.RegisterProfileServiceServer(f.server, f.backend)
	served := make(chan error, 1)
	go func() { served <- f.server.Serve(f.lis) }()
	t.Cleanup(func() {
		f.server.StopTimeout(5 * time.Second)
		if err := <-served; err != nil {
			t.Errorf("backend Serve: %v", err)
		}
	})
	return f
}

// gateway builds a gateway in front of the backend and serves it.
func (f *fixture) gateway(t testing.TB, opts Options) (*Gateway, *httptest.Server) {
	t.Helper()
	opts.ProfileTarget = "passthrough:///bufnet"
	opts.DialExtra = append(opts.DialExtra, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return f.lis.DialContext(ctx)
	}))
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	gw, err := New(t.Context(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := gw.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	return gw, srv
}

// request is one HTTP call; a tenant of "-" sends no tenant header.
type request struct {
	method, path string
	tenant       string
	body         io.Reader
	header       http.Header
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (f *fixture) do(t *testing.T, rq request) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), rq.method, f.srv.URL+rq.path, rq.body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range rq.header {
		req.Header[k] = vs
	}
	switch rq.tenant {
	case "-":
	case "":
		req.Header.Set(tenancy.HeaderName, "acme")
	default:
		req.Header.Set(tenancy.HeaderName, rq.tenant)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// errorOf decodes an error response, failing unless it has the gateway's
// error shape and the wanted statuses.
func errorOf(t *testing.T, r response, httpStatus int, code codes.Code) ErrorDetail {
	t.Helper()
	if r.status != httpStatus {
		t.Fatalf("HTTP status = %d, want %d; body %s", r.status, httpStatus, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body ErrorBody
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("error body %s: %v", r.body, err)
	}
	if body.Error.Code != int32(code) {
		t.Errorf("code = %d, want %d (%v); body %s", body.Error.Code, code, code, r.body)
	}
	if body.Error.Status == "" || body.Error.Message == "" {
		t.Errorf("status or message empty: %s", r.body)
	}
	return body.Error
}

// TestForwardedHeaders: the backend gets the tenant and Authorization
// headers as metadata, and none of the other HTTP headers; the client gets
// none of the gRPC transport's.
func TestForwardedHeaders(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			f := newFixtureOver(t, tr, Options{})
			r := f.do(t, request{method: http.MethodGet, path: "/v1/customers/c-1", header: http.Header{
				"Authorization": {"Bearer rk_test"}, "Grpc-Metadata-X-Custom": {"v"},
				"User-Agent": {"probe/1"}, "Cookie": {"session=secret"}, "Accept": {"application/json"},
			}})
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			for k := range r.header {
				if strings.HasPrefix(k, "Grpc-Metadata-") {
					t.Errorf("response header %s: %q", k, r.header[k])
				}
			}
			f.backend.mu.Lock()
			md := f.backend.md
			f.backend.mu.Unlock()
			for k, want := range map[string]string{tenancy.MetadataKey: "acme", "authorization": "Bearer rk_test"} {
				if got := md.Get(k); !slices.Equal(got, []string{want}) {
					t.Errorf("metadata %s = %q, want [%q]", k, got, want)
				}
			}
			for k, v := range md {
				if strings.HasPrefix(k, "grpcgateway-") || k == "x-custom" || slices.Contains(v, "session=secret") {
					t.Errorf("metadata %s = %q forwarded", k, v)
				}
			}
		})
	}
}

func TestTenantReachesBackend(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			f := newFixtureOver(t, tr, Options{})
			r := f.do(t, request{
				method: http.MethodGet, path: "/v1/customers/c-1",
				// Only the validated header may name the tenant.
				header: http.Header{"Grpc-Metadata-X-Rapport-Tenant": {"other"}},
			})
			if r.status != http.StatusOK {
				t.Fatalf("status = %d; body %s", r.status, r.body)
			}
			var got struct {
				Customer map[string]any `json:"customer"`
			}
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatal(err)
			}
			// camelCase names, enums as strings, unset fields left out.
			want := map[string]any{"customerId": "c-1", "kind": "CUSTOMER_KIND_PERSON", "displayName": "Ada Lovelace"}
			if len(got.Customer) != len(want) {
				t.Errorf("customer = %v, want %v", got.Customer, want)
			}
			for k, v := range want {
				if got.Customer[k] != v {
					t.Errorf("customer[%q] = %v, want %v", k, got.Customer[k], v)
				}
			}
			if _, tenants, _ := f.backend.snapshot(); len(tenants) != 1 || tenants[0] != "acme" {
				t.Errorf("backend saw tenants %q, want [acme]", tenants)
			}
			// Only the server's tenancy interceptor puts the tenant in the
			// handler's context, whichever the transport.
			tenant, network := f.backend.last()
			if tenant != "acme" {
				t.Errorf("handler's context has tenant %q, want acme", tenant)
			}
			if inProcess := network == "inprocess"; inProcess != (tr == "in-process") {
				t.Errorf("call arrived over %q, want %s", network, tr)
			}
		})
	}
}

func TestTenantRefused(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			f := newFixtureOver(t, tr, Options{})
			for _, tc := range []struct {
				name   string
				header http.Header
			}{
				{"missing", nil},
				{"empty", http.Header{"X-Rapport-Tenant": {""}}},
				{"wildcard", http.Header{"X-Rapport-Tenant": {"*"}}},
				{"upper case", http.Header{"X-Rapport-Tenant": {"Acme"}}},
				{"too long", http.Header{"X-Rapport-Tenant": {strings.Repeat("a", 64)}}},
				{"twice", http.Header{"X-Rapport-Tenant": {"acme", "other"}}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := f.do(t, request{method: http.MethodGet, path: "/v1/customers/c-1", tenant: "-", header: tc.header})
					e := errorOf(t, r, http.StatusBadRequest, codes.InvalidArgument)
					if len(e.FieldViolations) != 1 || e.FieldViolations[0].Field != tenancy.HeaderName {
						t.Errorf("field violations = %+v, want one on %s", e.FieldViolations, tenancy.HeaderName)
					}
					if !strings.Contains(e.Message, tenancy.HeaderName) {
						t.Errorf("message %q does not name %s", e.Message, tenancy.HeaderName)
					}
				})
			}
			if calls, _, _ := f.backend.snapshot(); calls != 0 {
				t.Errorf("backend called %d times, want 0", calls)
			}
		})
	}
}

func TestBackendErrors(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			f := newFixtureOver(t, tr, Options{})
			t.Run("field violations", func(t *testing.T) {
				e := errorOf(t, f.do(t, request{method: http.MethodGet, path: "/v1/customers/invalid"}),
					http.StatusBadRequest, codes.InvalidArgument)
				want := FieldViolation{Field: "customer_id", Description: "must be 1 to 128 of A-Z a-z 0-9 . _ : -"}
				if e.Status != "INVALID_ARGUMENT" || len(e.FieldViolations) != 1 || e.FieldViolations[0] != want {
					t.Errorf("error = %+v, want INVALID_ARGUMENT with %+v", e, want)
				}
			})
			t.Run("not found", func(t *testing.T) {
				e := errorOf(t, f.do(t, request{method: http.MethodGet, path: "/v1/customers/missing"}),
					http.StatusNotFound, codes.NotFound)
				if e.Status != "NOT_FOUND" || e.Message != `customer "missing" not found` {
					t.Errorf("error = %+v", e)
				}
			})
			t.Run("unavailable is redacted", func(t *testing.T) {
				e := errorOf(t, f.do(t, request{method: http.MethodGet, path: "/v1/customers/down"}),
					http.StatusServiceUnavailable, codes.Unavailable)
				if strings.Contains(e.Message, "10.1.2.3") {
					t.Errorf("message leaks the backend's network: %q", e.Message)
				}
			})
		})
	}
}

func TestBadBody(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			f := newFixtureOver(t, tr, Options{})
			for _, tc := range []struct {
				name, path, body string
				want             []string // in the message
			}{
				{"unknown field", "/v1/customers/c-1/events", `{"eventId":"e-1","nope":1}`, []string{"request body", "unknown field", `"nope"`}},
				{"unknown enum", "/v1/customers", `{"customerId":"c-2","kind":"CUSTOMER_KIND_ROBOT"}`, []string{"request body", "CUSTOMER_KIND_ROBOT"}},
				{"malformed", "/v1/customers", `{"customerId":`, []string{"request body"}},
				{"wrong type", "/v1/customers", `{"customerId":42}`, []string{"request body", "customerId"}},
				{"not an object", "/v1/customers/c-1/events", `[1,2]`, []string{"request body"}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					e := errorOf(t, f.do(t, request{method: http.MethodPost, path: tc.path, body: strings.NewReader(tc.body)}),
						http.StatusBadRequest, codes.InvalidArgument)
					for _, w := range tc.want {
						if !strings.Contains(e.Message, w) {
							t.Errorf("message %q does not contain %q", e.Message, w)
						}
					}
				})
			}
			if calls, _, _ := f.backend.snapshot(); calls != 0 {
				t.Errorf("backend called %d times, want 0", calls)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			const limit = 1024
			f := newFixtureOver(t, tr, Options{MaxBodyBytes: limit})
			event := func(padding int) string {
				return `{"eventId":"e-1","contactLog":{"notes":"` + strings.Repeat("n", padding) + `"}}`
			}
			atLimit := event(limit - len(event(0)))
			// chunked hides the length, so the client sends the body chunked.
			chunked := func(s string) io.Reader { return io.MultiReader(strings.NewReader(s)) }

			for _, tc := range []struct {
				name string
				body io.Reader
			}{
				{"content length", strings.NewReader(event(4 * limit))},
				{"chunked", chunked(event(4 * limit))},
				// A complete JSON value followed by padding decodes fine; the
				// overrun shows only when the rest of the body is drained.
				{"chunked trailing padding", chunked(event(0) + strings.Repeat(" ", 4*limit))},
			} {
				t.Run(tc.name, func(t *testing.T) {
					e := errorOf(t, f.do(t, request{method: http.MethodPost, path: "/v1/customers/c-1/events", body: tc.body}),
						http.StatusRequestEntityTooLarge, codes.ResourceExhausted)
					if e.Message != "request body exceeds 1024 bytes" {
						t.Errorf("message = %q", e.Message)
					}
				})
			}
			if calls, _, _ := f.backend.snapshot(); calls != 0 {
				t.Errorf("backend called %d times for oversized bodies, want 0", calls)
			}

			for _, body := range []io.Reader{strings.NewReader(atLimit), chunked(atLimit)} {
				r := f.do(t, request{method: http.MethodPost, path: "/v1/customers/c-1/events", body: body})
				if r.status != http.StatusOK {
					t.Errorf("body of exactly %d bytes: status = %d; body %s", len(atLimit), r.status, r.body)
				}
			}
		})
	}
}

func TestCORS(t *testing.T) {
	preflight := func(origin string) http.Header {
		return http.Header{
			"Origin":                         {origin},
			"Access-Control-Request-Method":  {"POST"},
			"Access-Control-Request-Headers": {"content-type, x-rapport-tenant"},
		}
	}
	t.Run("any origin", func(t *testing.T) {
		f := newFixture(t, Options{})
		r := f.do(t, request{method: http.MethodOptions, path: "/v1/customers", tenant: "-", header: preflight("https://app.example")})
		if r.status != http.StatusNoContent {
			t.Fatalf("status = %d; body %s", r.status, r.body)
		}
		for k, want := range map[string]string{
			"Access-Control-Allow-Origin":  "*",
			"Access-Control-Allow-Methods": corsAllowMethods,
			"Access-Control-Allow-Headers": corsAllowHeaders,
			"Access-Control-Max-Age":       corsMaxAge,
		} {
			if got := r.header.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
		for _, h := range []string{"Content-Type", "X-Rapport-Tenant", "traceparent", "Authorization"} {
			if !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), h) {
				t.Errorf("allowed headers lack %s", h)
			}
		}
		// Retries are made safe by the ids in the request bodies (event_id,
		// idempotency_key); a header the gateway ignores is not offered.
		if strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Idempotency-Key") {
			t.Error("allowed headers offer Idempotency-Key, which nothing reads")
		}
		r = f.do(t, request{method: http.MethodGet, path: "/v1/customers/c-1", header: http.Header{"Origin": {"https://app.example"}}})
		if got := r.header.Get("Access-Control-Allow-Origin"); r.status != http.StatusOK || got != "*" {
			t.Errorf("GET: status %d, Allow-Origin %q", r.status, got)
		}
	})
	t.Run("listed origins", func(t *testing.T) {
		f := newFixture(t, Options{AllowedOrigins: []string{"https://console.example"}})
		r := f.do(t, request{method: http.MethodOptions, path: "/v1/customers", tenant: "-", header: preflight("https://console.example")})
		if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != "https://console.example" {
			t.Errorf("allowed preflight: status %d, headers %v", r.status, r.header)
		}
		if !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Origin") {
			t.Errorf("Vary = %q, want Origin", r.header.Values("Vary"))
		}
		r = f.do(t, request{method: http.MethodOptions, path: "/v1/customers", tenant: "-", header: preflight("https://evil.example")})
		errorOf(t, r, http.StatusForbidden, codes.PermissionDenied)
		if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("disallowed origin got Allow-Origin %q", got)
		}
		// An error response is readable by an allowed origin too.
		r = f.do(t, request{method: http.MethodGet, path: "/v1/customers/c-1", tenant: "-", header: http.Header{"Origin": {"https://console.example"}}})
		if r.status != http.StatusBadRequest || r.header.Get("Access-Control-Allow-Origin") != "https://console.example" {
			t.Errorf("error response: status %d, Allow-Origin %q", r.status, r.header.Get("Access-Control-Allow-Origin"))
		}
	})
}

func TestRouting(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			f := newFixtureOver(t, tr, Options{})
			errorOf(t, f.do(t, request{method: http.MethodGet, path: "/v1/nothing"}), http.StatusNotFound, codes.NotFound)
			errorOf(t, f.do(t, request{method: http.MethodDelete, path: "/v1/customers"}), http.StatusMethodNotAllowed, codes.Unimplemented)
			errorOf(t, f.do(t, request{method: http.MethodPost, path: "/healthz", tenant: "-"}), http.StatusMethodNotAllowed, codes.Unimplemented)
			// A form POST may not fall back to the GET route.
			r := f.do(t, request{
				method: http.MethodPost, path: "/v1/customers/c-1", body: strings.NewReader("x=1"),
				header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			})
			errorOf(t, r, http.StatusMethodNotAllowed, codes.Unimplemented)
		})
	}
}

func TestHealthz(t *testing.T) {
	f := newFixture(t, Options{})
	f.health.SetServingStatus("", grpc_health_v1.HealthCheckResponse_NOT_SERVING)
	r := f.do(t, request{method: http.MethodGet, path: "/healthz", tenant: "-"})
	if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != `{"status":"ok"}` {
		t.Errorf("status %d, body %s", r.status, r.body)
	}
}

func TestReadyz(t *testing.T) {
	f := newFixture(t, Options{})
	ready := func(wantStatus int, want Readiness) {
		t.Helper()
		r := f.do(t, request{method: http.MethodGet, path: "/readyz", tenant: "-"})
		var got Readiness
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatalf("body %s: %v", r.body, err)
		}
		if r.status != wantStatus || got.Status != want.Status || got.Backends["profile"] != want.Backends["profile"] ||
			got.Connections["profile"] != want.Connections["profile"] {
			t.Errorf("readyz = %d %+v, want %d %+v", r.status, got, wantStatus, want)
		}
	}
	ready(http.StatusOK, Readiness{
		Status:      "ready",
		Backends:    map[string]string{"profile": "SERVING"},
		Connections: map[string]string{"profile": "READY"},
	})
	f.health.SetServingStatus("", grpc_health_v1.HealthCheckResponse_NOT_SERVING)
	ready(http.StatusServiceUnavailable, Readiness{
		Status:      "not ready",
		Backends:    map[string]string{"profile": "NOT_SERVING"},
		Connections: map[string]string{"profile": "READY"},
	})
}

func TestOpenAPI(t *testing.T) {
	f := newFixture(t, Options{})
	r := f.do(t, request{method: http.MethodGet, path: "/openapi.json", tenant: "-"})
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q", r.status, r.header.Get("Content-Type"))
	}
	var doc struct {
		Swagger string         `json:"swagger"`
		Paths   map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Swagger != "2.0" || doc.Paths["/v1/customers/{customerId}"] == nil && doc.Paths["/v1/customers/{customer_id}"] == nil {
		t.Errorf("swagger %q, %d paths", doc.Swagger, len(doc.Paths))
	}
	// Only the routes this gateway serves: no segmentation or loyalty
	// backend here, and care is not built.
	for p := range doc.Paths {
		for _, prefix := range []string{"/v1/care", "/v1/loyalty", "/v1/segments", "/v1/testing"} {
			if strings.HasPrefix(p, prefix) {
				t.Errorf("the document advertises %s, which this gateway does not serve", p)
			}
		}
	}
}

// TestTrace checks that the request span is named after the route and that
// the backend call continues the caller's trace.
func TestTrace(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { testTrace(t, tr) })
	}
}

func testTrace(t *testing.T, transport string) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	f := newFixtureOver(t, transport, Options{TracerProvider: tp})

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req := httptest.NewRequest(http.MethodGet, "/v1/customers/c-1", nil)
	req.Header.Set(tenancy.HeaderName, "acme")
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	rec := httptest.NewRecorder()
	// Served in-process so the span has ended when ServeHTTP returns.
	f.gw.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d; body %s", rec.Code, rec.Body)
	}
	var names []string
	for _, s := range sr.Ended() {
		names = append(names, s.Name())
		if s.Name() == "HTTP GET /v1/customers/{customer_id}" && s.SpanContext().TraceID().String() != traceID {
			t.Errorf("span in trace %s, want %s", s.SpanContext().TraceID(), traceID)
		}
	}
	if !strings.Contains(strings.Join(names, "|"), "HTTP GET /v1/customers/{customer_id}") {
		t.Errorf("spans %q lack HTTP GET /v1/customers/{customer_id}", names)
	}
	if _, _, got := f.backend.snapshot(); got != traceID {
		t.Errorf("backend served the call in trace %s, want %s", got, traceID)
	}
}

// TestErrorGolden pins the JSON error shape clients parse. Run with -update
// to rewrite testdata/*.golden.
func TestErrorGolden(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			f := newFixtureOver(t, tr, Options{MaxBodyBytes: 64})
			for _, tc := range []struct {
				name   string
				rq     request
				status int
			}{
				{"invalid_argument", request{method: http.MethodGet, path: "/v1/customers/invalid"}, http.StatusBadRequest},
				{"not_found", request{method: http.MethodGet, path: "/v1/customers/missing"}, http.StatusNotFound},
				{"tenant_wildcard", request{method: http.MethodGet, path: "/v1/customers/c-1", tenant: "*"}, http.StatusBadRequest},
				{"tenant_missing", request{method: http.MethodGet, path: "/v1/customers/c-1", tenant: "-"}, http.StatusBadRequest},
				{"body_too_large", request{method: http.MethodPost, path: "/v1/customers", body: strings.NewReader(strings.Repeat(" ", 65))}, http.StatusRequestEntityTooLarge},
				{"route_not_found", request{method: http.MethodGet, path: "/v1/nothing"}, http.StatusNotFound},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := f.do(t, tc.rq)
					if r.status != tc.status {
						t.Errorf("status = %d, want %d", r.status, tc.status)
					}
					var got bytes.Buffer
					if err := json.Indent(&got, r.body, "", "  "); err != nil {
						t.Fatalf("body %s: %v", r.body, err)
					}
					path := filepath.Join("testdata", tc.name+".golden")
					if *update {
						if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
							t.Fatal(err)
						}
					}
					want, err := os.ReadFile(path)
					if err != nil {
						t.Fatalf("%v (run with -update to create it)", err)
					}
					if !bytes.Equal(got.Bytes(), want) {
						t.Errorf("body differs from %s:\n got: %s\nwant: %s", path, got.Bytes(), want)
					}
				})
			}
		})
	}
}

func TestServe(t *testing.T) {
	f := newFixture(t, Options{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.gw.Serve(ctx, lis) }()

	resp, err := http.Get("http://" + lis.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz status = %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v, want nil after a graceful shutdown", err)
	}
}

func TestOptions(t *testing.T) {
	o := Options{ProfileTarget: "localhost:9000"}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.MaxBodyBytes != 1<<20 || len(o.AllowedOrigins) != 1 || o.AllowedOrigins[0] != "*" || o.Logger == nil || o.TracerProvider == nil ||
		o.Customer360Timeout != DefaultCustomer360Timeout || o.Clock == nil {
		t.Errorf("defaults not filled: %+v", o)
	}
	for name, o := range map[string]Options{
		"no target":      {},
		"negative limit": {ProfileTarget: "x:1", MaxBodyBytes: -1},
		"negative 360":   {ProfileTarget: "x:1", Customer360Timeout: -time.Second},
		"origin path":    {ProfileTarget: "x:1", AllowedOrigins: []string{"https://a.example/app"}},
		"origin scheme":  {ProfileTarget: "x:1", AllowedOrigins: []string{"a.example"}},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%s: Validate = nil, want an error", name)
		}
	}
	if err := Run(t.Context(), Options{ProfileTarget: "x:1"}); err == nil {
		t.Error("Run without Addr = nil, want an error")
	}
	if _, err := New(t.Context(), Options{}); err == nil {
		t.Error("New without a target = nil, want an error")
	}
}

// FuzzGatewayDecode posts arbitrary bodies as events: whatever the bytes,
// the answer is JSON and never a server error.
func FuzzGatewayDecode(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `null`, `[]`, `"x"`, `{"eventId":"e-1","purchase":{}}`,
		`{"purchase":{"amount":{"amountMinor":"12","currency":"CNY"}}}`,
		`{"occurTime":"yesterday"}`, `{"purchase":{},"refund":{}}`, `{"nope":1}`,
		`{"survey":{"csat":1e100}}`, `{"complaint":{"severity":"LOUD"}}`, "{\"source\":\"\xff\"}",
		`{"eventId":"e-1"}{"eventId":"e-2"}`, strings.Repeat("[", 20000),
	} {
		f.Add([]byte(seed))
	}
	fx := newFixture(f, Options{Logger: slog.New(slog.DiscardHandler)})
	h := fx.gw.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/customers/c-1/events", bytes.NewReader(body))
		req.Header.Set(tenancy.HeaderName, "acme")
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("status %d for body %q: response is not JSON: %q", rec.Code, body, rec.Body)
		}
	})
}

// TestStreamsInProcess: with the backend in-process, a streaming route
// (FollowChanges) still works; it goes over the network, through the
// server's interceptors.
func TestStreamsInProcess(t *testing.T) {
	f := newFixtureOver(t, "in-process", Options{})
	r := f.do(t, request{method: http.MethodGet, path: "/v1/changes?afterSequence=4&wait=false"})
	if r.status != http.StatusOK {
		t.Fatalf("status = %d; body %s", r.status, r.body)
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	var seqs []string
	for dec.More() {
		var line struct {
			Result struct {
				Event struct {
					Sequence string `json:"sequence"`
					Tenant   string `json:"tenant"`
				} `json:"event"`
			} `json:"result"`
		}
		if err := dec.Decode(&line); err != nil {
			t.Fatalf("body %s: %v", r.body, err)
		}
		if line.Result.Event.Tenant != "acme" {
			t.Errorf("event of tenant %q, want acme", line.Result.Event.Tenant)
		}
		seqs = append(seqs, line.Result.Event.Sequence)
	}
	if strings.Join(seqs, ",") != "5,6" {
		t.Errorf("sequences %v, want [5 6]; body %s", seqs, r.body)
	}
	if tenant, network := f.backend.last(); tenant != "acme" || network == "inprocess" {
		t.Errorf("stream: tenant %q over %q, want acme over the network", tenant, network)
	}
	// A stream refused by the server's tenancy check: the gateway refuses it first.
	errorOf(t, f.do(t, request{method: http.MethodGet, path: "/v1/changes?wait=false", tenant: "-"}),
		http.StatusBadRequest, codes.InvalidArgument)
}

// TestInProcessMatchesNetwork sends the same requests to two gateways in
// front of the same backend, one calling it over the network and one
// in-process: status, headers and body must be the same.
func TestInProcessMatchesNetwork(t *testing.T) {
	f := newBackend(t)
	_, network := f.gateway(t, Options{MaxBodyBytes: 256})
	_, local := f.gateway(t, Options{MaxBodyBytes: 256, ProfileInProcess: f.server})
	h := func(kv ...string) http.Header {
		hd := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			hd.Add(kv[i], kv[i+1])
		}
		return hd
	}
	for _, rq := range []request{
		{method: http.MethodGet, path: "/v1/customers/c-1"},
		{method: http.MethodGet, path: "/v1/customers/c-1", tenant: "-"},
		{method: http.MethodGet, path: "/v1/customers/c-1", tenant: "*"},
		{method: http.MethodGet, path: "/v1/customers/c-1", tenant: "Not Valid"},
		{method: http.MethodGet, path: "/v1/customers/c-1", header: h("X-Rapport-Tenant", "acme", "X-Rapport-Tenant", "other")},
		{method: http.MethodGet, path: "/v1/customers/invalid"},
		{method: http.MethodGet, path: "/v1/customers/missing"},
		{method: http.MethodGet, path: "/v1/customers/down"},
		{method: http.MethodGet, path: "/v1/customers/%ff"},
		{method: http.MethodGet, path: "/v1/customers/c-1", header: h("Grpc-Metadata-X-Custom", "v", "Authorization", "Bearer x")},
		{method: http.MethodGet, path: "/v1/customers/c-1", header: h("User-Agent", "客户端")},
		{method: http.MethodGet, path: "/v1/customers/c-1", header: h("Grpc-Metadata-Grpc-Timeout", "1S", "Grpc-Metadata-Content-Type", "text/plain")},
		{method: http.MethodGet, path: "/v1/customers/c-1", header: h("Origin", "https://app.example")},
		{method: http.MethodGet, path: "/v1/customers/c-1", header: h("Te", "trailers")},
		{method: http.MethodPost, path: "/v1/customers", body: strings.NewReader(`{"customerId":"c-2","kind":"CUSTOMER_KIND_PERSON","displayName":"王小明"}`)},
		{method: http.MethodPost, path: "/v1/customers", body: strings.NewReader(`{"customerId":"c-2","nope":1}`)},
		{method: http.MethodPost, path: "/v1/customers", body: strings.NewReader(strings.Repeat(" ", 300))},
		{method: http.MethodPost, path: "/v1/customers/c-1/events", body: strings.NewReader(`{"eventId":"e-1"}`)},
		{method: http.MethodPost, path: "/v1/customers/c-1/events", body: strings.NewReader(`{"eventId":"e-1","contactLog":{"notes":"hi"}}`)},
		{method: http.MethodDelete, path: "/v1/customers"},
		{method: http.MethodGet, path: "/v1/nothing"},
		{method: http.MethodGet, path: "/v1/changes?wait=false"},
		{method: http.MethodGet, path: "/v1/changes?wait=maybe"},
		{method: http.MethodGet, path: "/v1/indicators"},
	} {
		name := rq.method + " " + rq.path
		t.Run(name, func(t *testing.T) {
			var body []byte
			if rq.body != nil {
				var err error
				if body, err = io.ReadAll(rq.body); err != nil {
					t.Fatal(err)
				}
			}
			send := func(srv *httptest.Server) response {
				c := rq
				if body != nil {
					c.body = bytes.NewReader(body)
				}
				return (&fixture{srv: srv}).do(t, c)
			}
			want, got := send(network), send(local)
			if got.status != want.status || !bytes.Equal(got.body, want.body) {
				t.Errorf("in-process: %d %s\nnetwork:    %d %s", got.status, got.body, want.status, want.body)
			}
			got.header.Del("Date")
			want.header.Del("Date")
			if fmt.Sprint(got.header) != fmt.Sprint(want.header) {
				t.Errorf("headers in-process: %v\nnetwork:            %v", got.header, want.header)
			}
		})
	}
}

// TestMetrics checks that requests are counted and timed by route and
// status, labelled with the gateway, over both transports.
func TestMetrics(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			m := metricstest.New(t)
			f := newFixtureOver(t, tr, Options{MeterProvider: m.Provider})
			for range 2 {
				if r := f.do(t, request{method: "GET", path: "/v1/customers/c-1"}); r.status != 200 {
					t.Fatalf("status %d: %s", r.status, r.body)
				}
			}
			if r := f.do(t, request{method: "GET", path: "/v1/customers/c-1", tenant: "-"}); r.status != 400 {
				t.Fatalf("without a tenant: status %d: %s", r.status, r.body)
			}
			gw := telemetry.ComponentKey.String("gateway")
			route := attribute.String("http.route", "/v1/customers/{customer_id}")
			if n, _ := m.Histogram(t, "http.server.request.duration", gw, route, attribute.Int("http.response.status_code", 200)); n != 2 {
				t.Errorf("%d requests measured as 200 on the route, want 2", n)
			}
			if n, _ := m.Histogram(t, "http.server.request.duration", gw, attribute.Int("http.response.status_code", 400)); n != 1 {
				t.Errorf("%d requests measured as 400, want 1", n)
			}
			// Over the network the backend calls are measured on the client side.
			if n, _ := m.Histogram(t, "rpc.client.call.duration", gw); tr == "network" && n < 2 {
				t.Errorf("%d backend calls measured, want 2 or more", n)
			}
		})
	}
}
