// Package grpcserver builds the gRPC server every Rapport service runs:
// otelgrpc tracing and metrics, the standard health service, reflection (so grpcurl works
// without proto files), panic recovery, request logging with trace ids, and
// the tenancy check that puts the caller's tenant in the context.
package grpcserver

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/stats"

	auditv1 "rapport.dev/gen/go/rapport/audit/v1"
	"rapport.dev/platform/audit"
	"rapport.dev/platform/auth"
	"rapport.dev/platform/telemetry"
)

// Options configures New.
type Options struct {
	// Logger receives request logs; nil means slog.Default().
	Logger *slog.Logger
	// TracerProvider traces every RPC; nil means the global provider.
	TracerProvider trace.TracerProvider
	// MeterProvider measures every RPC (rpc.server.call.duration: rate,
	// latency and status code); nil means the global provider.
	MeterProvider metric.MeterProvider
	// Component names the service in the RPC metrics' rapport.component
	// attribute.
	Component string
	// CrossTenant lists full method names ("/pkg.Service/Method") that accept
	// the tenancy.All wildcard, for service-to-service feed following.
	CrossTenant []string
	// MaxRecvBytes limits an incoming message; 0 means 8 MiB.
	MaxRecvBytes int
	// Auth, when set, authenticates and authorizes every call (API keys and
	// service tokens, platform/auth) and takes the tenant from the
	// credential. Without it the server trusts the tenant metadata: for
	// tests and for servers reachable only by trusted code.
	Auth *auth.Verifier
	// Audit, when set, is the service's bbolt file, whose audit log the
	// server serves (rapport.audit.v1.AuditService).
	Audit audit.Viewer
}

// Server is a gRPC server with its health service.
type Server struct {
	GRPC   *grpc.Server
	Health *health.Server
	log    *slog.Logger

	// What in-process calls (InProcess) share with network ones: the
	// stats handler, the unary interceptor chain and the receive limit.
	stats   stats.Handler
	unary   grpc.UnaryServerInterceptor
	maxRecv int
	// methods holds the unary methods registered with RegisterService.
	mu      sync.RWMutex
	methods map[string]localMethod
	calls   calls
	// addr is the address Serve listens on, the local address of
	// in-process calls.
	addr atomic.Pointer[net.Addr]
}

// New builds a server. Register services on s.GRPC, then call Serve.
func New(opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	maxRecv := opts.MaxRecvBytes
	if maxRecv == 0 {
		maxRecv = 8 << 20
	}
	otelOpts := []otelgrpc.Option{otelgrpc.WithPropagators(telemetry.Propagator)}
	if opts.TracerProvider != nil {
		otelOpts = append(otelOpts, otelgrpc.WithTracerProvider(opts.TracerProvider))
	}
	if opts.MeterProvider != nil {
		otelOpts = append(otelOpts, otelgrpc.WithMeterProvider(opts.MeterProvider))
	}
	if opts.Component != "" {
		otelOpts = append(otelOpts, otelgrpc.WithMetricAttributes(telemetry.ComponentKey.String(opts.Component)))
	}
	cross := make(map[string]bool, len(opts.CrossTenant))
	for _, m := range opts.CrossTenant {
		cross[m] = true
	}
	ic := interceptors{log: log, crossTenant: cross}
	if opts.Auth != nil {
		v := *opts.Auth
		v.CrossTenant = cross
		ic.auth = &v
	}
	sh := otelgrpc.NewServerHandler(otelOpts...)
	// The first interceptor is the outermost: logging sees the status that
	// recovery produced, and a panic in the tenancy check is caught.
	unary := chainUnary(ic.unaryLog, ic.unaryRecover, ic.unaryTenant)
	g := grpc.NewServer(
		grpc.StatsHandler(sh),
		grpc.UnaryInterceptor(unary),
		grpc.ChainStreamInterceptor(ic.streamLog, ic.streamRecover, ic.streamTenant),
		grpc.MaxRecvMsgSize(maxRecv),
	)
	h := health.NewServer()
	healthpb.RegisterHealthServer(g, h)
	reflection.Register(g)
	if opts.Audit != nil {
		auditv1.RegisterAuditServiceServer(g, &audit.Server{DB: opts.Audit})
	}
	return &Server{GRPC: g, Health: h, log: log, stats: sh, unary: unary, maxRecv: maxRecv}
}

// chainUnary runs ics in order, the first outermost, as
// grpc.ChainUnaryInterceptor does. Network and in-process calls share the
// one chain it returns.
func chainUnary(ics ...grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		for i := len(ics) - 1; i > 0; i-- {
			ic, next := ics[i], handler
			handler = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, next) }
		}
		return ics[0](ctx, req, info, handler)
	}
}

// localAddr is the listen address once Serve has been called.
func (s *Server) localAddr() net.Addr {
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return nil
}

// Serve marks every registered service SERVING and serves lis until Stop.
func (s *Server) Serve(lis net.Listener) error {
	addr := lis.Addr()
	s.addr.Store(&addr)
	s.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for name := range s.GRPC.GetServiceInfo() {
		s.Health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	return s.GRPC.Serve(lis)
}

// NotServing reports NOT_SERVING on the health service, the first step of a
// graceful shutdown, so load balancers stop sending new work.
func (s *Server) NotServing() { s.Health.Shutdown() }

// Stop stops gracefully: in-flight RPCs finish until ctx's deadline, then the
// remaining ones (long-lived feed streams) are cut. In-process calls
// (InProcess) are refused from the start; those in flight are waited for
// until the deadline too, but cannot be cut: they run in their callers'
// goroutines.
func (s *Server) Stop(ctx context.Context) {
	s.NotServing()
	local := s.calls.stop()
	done := make(chan struct{})
	go func() {
		s.GRPC.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.GRPC.Stop()
		<-done
	}
	select {
	case <-local:
	case <-ctx.Done():
	}
}

// StopTimeout is Stop with a deadline of d from now.
func (s *Server) StopTimeout(d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	s.Stop(ctx)
}
