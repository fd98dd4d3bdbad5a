// Package grpcserver builds the gRPC server every Rapport service runs:
// otelgrpc tracing, the standard health service, reflection (so grpcurl works
// without proto files), panic recovery, request logging with trace ids, and
// the tenancy check that puts the caller's tenant in the context.
package grpcserver

import (
	"context"
	"log/slog"
	"net"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"rapport.dev/platform/telemetry"
)

// Options configures New.
type Options struct {
	// Logger receives request logs; nil means slog.Default().
	Logger *slog.Logger
	// TracerProvider traces every RPC; nil means the global provider.
	TracerProvider trace.TracerProvider
	// CrossTenant lists full method names ("/pkg.Service/Method") that accept
	// the tenancy.All wildcard, for service-to-service feed following.
	CrossTenant []string
	// MaxRecvBytes limits an incoming message; 0 means 8 MiB.
	MaxRecvBytes int
}

// Server is a gRPC server with its health service.
type Server struct {
	GRPC   *grpc.Server
	Health *health.Server
	log    *slog.Logger
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
	cross := make(map[string]bool, len(opts.CrossTenant))
	for _, m := range opts.CrossTenant {
		cross[m] = true
	}
	ic := interceptors{log: log, crossTenant: cross}
	g := grpc.NewServer(
		grpc.StatsHandler(otelgrpc.NewServerHandler(otelOpts...)),
		// The first interceptor is the outermost: logging sees the status
		// that recovery produced, and a panic in the tenancy check is caught.
		grpc.ChainUnaryInterceptor(ic.unaryLog, ic.unaryRecover, ic.unaryTenant),
		grpc.ChainStreamInterceptor(ic.streamLog, ic.streamRecover, ic.streamTenant),
		grpc.MaxRecvMsgSize(maxRecv),
	)
	h := health.NewServer()
	healthpb.RegisterHealthServer(g, h)
	reflection.Register(g)
	return &Server{GRPC: g, Health: h, log: log}
}

// Serve marks every registered service SERVING and serves lis until Stop.
func (s *Server) Serve(lis net.Listener) error {
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
// remaining ones (long-lived feed streams) are cut.
func (s *Server) Stop(ctx context.Context) {
	s.NotServing()
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
}

// StopTimeout is Stop with a deadline of d from now.
func (s *Server) StopTimeout(d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	s.Stop(ctx)
}
