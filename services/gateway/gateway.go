package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"

	accessv1 "rapport.dev/gen/go/rapport/access/v1"
	carev1 "rapport.dev/gen/go/rapport/care/v1"
	loyaltyv1 "rapport.dev/gen/go/rapport/loyalty/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	testingv1 "rapport.dev/gen/go/rapport/testing/v1"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/grpcclient"
	"rapport.dev/platform/grpcserver"
	"rapport.dev/platform/telemetry"
)

// componentName names the gateway in the metrics it records.
const componentName = "gateway"

var componentAttrs = []attribute.KeyValue{telemetry.ComponentKey.String(componentName)}

const (
	// DefaultMaxBodyBytes is the request body limit when Options leaves it zero.
	DefaultMaxBodyBytes = 1 << 20

	// shutdownGrace bounds the graceful HTTP shutdown; streams still open
	// after it (FollowChanges with wait) are cut.
	shutdownGrace = 10 * time.Second
)

// Options configures the gateway.
type Options struct {
	// Addr is the HTTP listen address, e.g. ":8080". Only Run uses it.
	Addr string
	// ProfileTarget is the gRPC target of the profile service
	// ("host:port", "passthrough:///bufnet").
	ProfileTarget string
	// SegmentationTarget is the gRPC target of the segmentation service;
	// empty means the gateway serves no segmentation routes.
	SegmentationTarget string
	// LoyaltyTarget is the loyalty service's; empty means no loyalty routes.
	LoyaltyTarget string
	// CareTarget is the care service's; empty means no care routes.
	CareTarget string
	// AccessTarget is the access service's; empty means no key management
	// routes (/v1/keys).
	AccessTarget string
	// RequireKeys makes every API request carry "Authorization: Bearer <api
	// key>", refused with 401 before any backend sees it when missing. The
	// backends authenticate the key, take the tenant from it and check its
	// scopes; a tenant header, optional then, must name the key's tenant.
	// Without it the tenant header is required and trusted (tests).
	RequireKeys bool
	// TestClock exposes the test clock of a suite started with a fake
	// clock (/v1/testing/clock), through the profile backend.
	TestClock bool
	// MaxBodyBytes limits request bodies; larger ones get 413.
	// Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// AllowedOrigins are the browser origins allowed by CORS, each
	// "scheme://host[:port]" or "*" for any. Empty means ["*"].
	AllowedOrigins []string
	// Logger receives errors and lifecycle messages; nil discards them.
	Logger *slog.Logger
	// TracerProvider traces HTTP requests and the backend calls they make;
	// nil means no tracing.
	TracerProvider trace.TracerProvider
	// MeterProvider measures HTTP requests (http.server.request.duration,
	// by route and status) and the backend calls, labelled
	// rapport.component=gateway; nil means no metrics.
	MeterProvider metric.MeterProvider
	// DialExtra are appended to every backend's dial options (bufconn
	// dialers in tests).
	DialExtra []grpc.DialOption
	// ProfileInProcess is the profile service's server when it runs in this
	// process (rapport serve --target=all). Unary calls then skip the
	// network: they run in the request's goroutine through the server's
	// stats handler and interceptors (grpcserver.Server.InProcess), with
	// the same results. Streams and /readyz still use ProfileTarget.
	ProfileInProcess *grpcserver.Server
	// SegmentationInProcess is the same for the segmentation service.
	SegmentationInProcess *grpcserver.Server
	// LoyaltyInProcess is the same for the loyalty service.
	LoyaltyInProcess *grpcserver.Server
	// CareInProcess is the same for the care service.
	CareInProcess *grpcserver.Server
	// AccessInProcess is the same for the access service.
	AccessInProcess *grpcserver.Server
	// Customer360Timeout bounds the backend calls of one Customer 360 view
	// (GET /v1/customers/{customer_id}/360); a request may ask for less
	// with a Grpc-Timeout header. Zero means DefaultCustomer360Timeout.
	Customer360Timeout time.Duration
	// Clock stamps the asOf of Customer 360 views; nil means the system
	// clock.
	Clock clock.Clock
}

// Validate checks the options and fills in defaults.
func (o *Options) Validate() error {
	if o.ProfileTarget == "" {
		return errors.New("gateway: ProfileTarget is required")
	}
	switch {
	case o.MaxBodyBytes < 0:
		return fmt.Errorf("gateway: MaxBodyBytes %d is negative", o.MaxBodyBytes)
	case o.MaxBodyBytes == 0:
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	switch {
	case o.Customer360Timeout < 0:
		return fmt.Errorf("gateway: Customer360Timeout %v is negative", o.Customer360Timeout)
	case o.Customer360Timeout == 0:
		o.Customer360Timeout = DefaultCustomer360Timeout
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if len(o.AllowedOrigins) == 0 {
		o.AllowedOrigins = []string{"*"}
	}
	for _, origin := range o.AllowedOrigins {
		if err := validateOrigin(origin); err != nil {
			return err
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.TracerProvider == nil {
		o.TracerProvider = noop.NewTracerProvider()
	}
	if o.MeterProvider == nil {
		o.MeterProvider = metricnoop.NewMeterProvider()
	}
	return nil
}

// validateOrigin accepts "*" or a bare origin as browsers send it in the
// Origin header, which is compared byte for byte.
func validateOrigin(origin string) error {
	if origin == "*" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("gateway: allowed origin %q: want \"*\" or scheme://host[:port]", origin)
	}
	return nil
}

// backend is one gRPC service behind the gateway. Adding a service means a
// target in Options and one row in backendsOf.
type backend struct {
	// name labels the backend in /readyz and in logs.
	name   string
	target string
	// health is the grpc.health.v1 service /readyz asks about; "" asks
	// about the backend's server as a whole.
	health string
	// inProcess is the backend's server when it runs in this process.
	inProcess *grpcserver.Server
	register  func(context.Context, *runtime.ServeMux, grpc.ClientConnInterface) error
	conn      *grpc.ClientConn
}

func backendsOf(o Options) []*backend {
	profile := func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
		var err error
		if o.TestClock { // first, so that the profile routes are tried before it
			err = testingv1.RegisterClockServiceHandlerClient(ctx, mux, testingv1.NewClockServiceClient(cc))
		}
		return errors.Join(err, profilev1.RegisterProfileServiceHandlerClient(ctx, mux, profilev1.NewProfileServiceClient(cc)))
	}
	bs := []*backend{{name: "profile", target: o.ProfileTarget, inProcess: o.ProfileInProcess, register: profile}}
	if o.SegmentationTarget != "" {
		bs = append(bs, &backend{name: "segmentation", target: o.SegmentationTarget, inProcess: o.SegmentationInProcess,
			register: func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
				return segmentationv1.RegisterSegmentationServiceHandlerClient(ctx, mux, segmentationv1.NewSegmentationServiceClient(cc))
			}})
	}
	if o.LoyaltyTarget != "" {
		bs = append(bs, &backend{name: "loyalty", target: o.LoyaltyTarget, inProcess: o.LoyaltyInProcess,
			register: func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
				return loyaltyv1.RegisterLoyaltyServiceHandlerClient(ctx, mux, loyaltyv1.NewLoyaltyServiceClient(cc))
			}})
	}
	if o.CareTarget != "" {
		bs = append(bs, &backend{name: "care", target: o.CareTarget, inProcess: o.CareInProcess,
			register: func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
				return carev1.RegisterCareServiceHandlerClient(ctx, mux, carev1.NewCareServiceClient(cc))
			}})
	}
	if o.AccessTarget != "" {
		bs = append(bs, &backend{name: "access", target: o.AccessTarget, inProcess: o.AccessInProcess,
			register: func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
				return accessv1.RegisterAccessServiceHandlerClient(ctx, mux, accessv1.NewAccessServiceClient(cc))
			}})
	}
	return bs
}

// client is what the backend's routes call: the connection, or the
// backend's server in-process with the connection for what cannot be.
func (b *backend) client() grpc.ClientConnInterface {
	if b.inProcess == nil {
		return b.conn
	}
	return grpcclient.Wrap(b.inProcess.InProcess(b.conn))
}

// Gateway serves the REST API of every backend, their OpenAPI document and
// the gateway's health endpoints.
type Gateway struct {
	opts     Options
	backends []*backend
	// mux routes the API; the Customer 360 view annotates its calls with
	// it, as the generated routes do.
	mux *runtime.ServeMux
	// clients are what the routes call, by backend name.
	clients map[string]grpc.ClientConnInterface
	handler http.Handler
	// document is the OpenAPI document of the routes served.
	document  []byte
	closeOnce sync.Once
	closeErr  error
}

// New dials the backends and builds the HTTP handler. Connections are lazy,
// so New succeeds while backends are still starting; /readyz tells when
// they are up. Close releases the connections.
func New(ctx context.Context, opts Options) (*Gateway, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	g := &Gateway{opts: opts, clients: map[string]grpc.ClientConnInterface{}}
	mux := runtime.NewServeMux(g.muxOptions()...)
	g.mux = mux
	for _, b := range backendsOf(opts) {
		conn, err := grpcclient.Dial(b.target, grpcclient.Options{
			TracerProvider: opts.TracerProvider,
			MeterProvider:  opts.MeterProvider,
			Component:      componentName,
			Extra:          opts.DialExtra,
		})
		if err != nil {
			return nil, errors.Join(fmt.Errorf("gateway: %s: %w", b.name, err), g.Close())
		}
		b.conn = conn
		g.backends = append(g.backends, b)
		g.clients[b.name] = b.client()
	}
	// runtime.ServeMux tries a method's patterns newest first, one by one,
	// and every pattern that does not match costs a few allocations. So the
	// gateway's own routes go in first and the backends after them in
	// reverse, the profile service last: its reads (GetCustomer above all,
	// declared last in profile.proto for this reason) are the hottest
	// routes and are tried before any other.
	for route, h := range map[string]runtime.HandlerFunc{customer360Route: g.customer360, auditRoute: g.auditLog} {
		if err := mux.HandlePath(http.MethodGet, route, h); err != nil {
			return nil, errors.Join(fmt.Errorf("gateway: route %s: %w", route, err), g.Close())
		}
	}
	for _, b := range slices.Backward(g.backends) {
		if err := b.register(ctx, mux, g.clients[b.name]); err != nil {
			return nil, errors.Join(fmt.Errorf("gateway: register %s: %w", b.name, err), g.Close())
		}
	}
	served := map[string]bool{"ProfileService": true, "ClockService": opts.TestClock, "Customer360": true}
	for _, b := range g.backends {
		served[map[string]string{"segmentation": "SegmentationService", "loyalty": "LoyaltyService", "care": "CareService", "access": "AccessService"}[b.name]] = true
	}
	doc, err := servedDocument(served)
	if err != nil {
		return nil, errors.Join(err, g.Close())
	}
	g.document = doc
	g.handler = g.routes(mux)
	return g, nil
}

func (g *Gateway) muxOptions() []runtime.ServeMuxOption {
	return []runtime.ServeMuxOption{
		runtime.WithMarshalerOption(runtime.MIMEWildcard, newBodyMarshaler()),
		runtime.WithIncomingHeaderMatcher(matchIncomingHeader),
		runtime.WithOutgoingHeaderMatcher(matchOutgoingHeader),
		runtime.WithErrorHandler(g.handleError),
		runtime.WithRoutingErrorHandler(g.handleRoutingError),
		runtime.WithMetadata(nameSpan),
		// A form-encoded POST is a CORS "simple request" a browser sends
		// without preflight; neither it nor a method override may turn into
		// another verb.
		runtime.WithDisableHTTPMethodOverride(),
		runtime.WithDisablePathLengthFallback(),
	}
}

// routes puts the gateway's own endpoints next to the API and wraps
// everything in the middleware, outermost first: tracing, panic recovery,
// CORS; then, for the API only, the body limit and the tenant check.
//
// It routes with a switch rather than an http.ServeMux because otelhttp
// renames the span after a ServeMux pattern, which would undo nameSpan.
func (g *Gateway) routes(api http.Handler) http.Handler {
	if g.opts.RequireKeys {
		api = requireKey(checkTenant(api, false))
	} else {
		api = checkTenant(api, true)
	}
	api = g.limitBody(api)
	router := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch path := r.URL.Path; {
		case path == "/healthz":
			g.healthz(w, r)
		case path == "/readyz":
			g.readyz(w, r)
		case path == "/openapi.json":
			g.openAPI(w, r)
		default:
			api.ServeHTTP(w, r)
		}
	})
	return otelhttp.NewHandler(g.recoverPanic(g.cors(router)), "gateway",
		otelhttp.WithTracerProvider(g.opts.TracerProvider),
		otelhttp.WithMeterProvider(g.opts.MeterProvider),
		otelhttp.WithMetricAttributesFn(func(*http.Request) []attribute.KeyValue { return componentAttrs }),
		otelhttp.WithPropagators(telemetry.Propagator),
		otelhttp.WithSpanNameFormatter(initialSpanName),
	)
}

// Handler returns the gateway's HTTP handler.
func (g *Gateway) Handler() http.Handler { return g.handler }

// Serve serves HTTP on lis until ctx is done, then shuts down gracefully:
// it stops accepting, lets in-flight requests finish for up to 10 seconds
// and cuts what is left. It does not close the backend connections.
func (g *Gateway) Serve(ctx context.Context, lis net.Listener) error {
	srv := &http.Server{
		Handler:           g.handler,
		ReadHeaderTimeout: 10 * time.Second,
		// No WriteTimeout: FollowChanges streams for as long as the client
		// follows.
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(g.opts.Logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	g.opts.Logger.InfoContext(ctx, "gateway: serving", "addr", lis.Addr().String())

	select {
	case err := <-errc:
		return fmt.Errorf("gateway: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("gateway: shutdown: %w", err), srv.Close())
	}
	<-errc // http.ErrServerClosed once Shutdown or Close has run
	g.opts.Logger.InfoContext(ctx, "gateway: stopped")
	return err
}

// Close closes the backend connections. It is safe to call more than once.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() {
		var errs []error
		for _, b := range g.backends {
			if err := b.conn.Close(); err != nil {
				errs = append(errs, fmt.Errorf("gateway: close %s: %w", b.name, err))
			}
		}
		g.closeErr = errors.Join(errs...)
	})
	return g.closeErr
}

// Run builds the gateway, serves it on opts.Addr until ctx is done, shuts
// the HTTP server down gracefully and then closes the backend connections.
func Run(ctx context.Context, opts Options) (err error) {
	if opts.Addr == "" {
		return errors.New("gateway: Addr is required")
	}
	g, err := New(ctx, opts)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, g.Close()) }()
	lis, err := new(net.ListenConfig).Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return fmt.Errorf("gateway: listen: %w", err)
	}
	return g.Serve(ctx, lis)
}
