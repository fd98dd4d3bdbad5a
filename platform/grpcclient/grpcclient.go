// Package grpcclient dials Rapport services: plaintext on the local network
// (authentication arrives with the operations work), traced with otelgrpc,
// and carrying the caller's tenant as x-rapport-tenant metadata.
package grpcclient

import (
	"context"
	"fmt"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"rapport.dev/platform/telemetry"
	"rapport.dev/platform/tenancy"
)

// Options configures Dial.
type Options struct {
	// TracerProvider traces the client calls; nil means the global provider.
	TracerProvider trace.TracerProvider
	// MeterProvider measures the client calls (rpc.client.call.duration);
	// nil means the global provider.
	MeterProvider metric.MeterProvider
	// Component names the calling component in the RPC metrics'
	// rapport.component attribute.
	Component string
	// Extra are appended to the dial options (bufconn dialers in tests).
	Extra []grpc.DialOption
	// Credentials, when set, go with every call (a service token, or a
	// command's API key).
	Credentials credentials.PerRPCCredentials
}

// maxRecvBytes limits the responses a client accepts.
const maxRecvBytes = 64 << 20

// Dial creates a client connection to target ("host:port", "passthrough:///bufnet").
// The connection is lazy: it connects on first use and reconnects by itself.
func Dial(target string, opts Options) (*grpc.ClientConn, error) {
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
	dial := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelOpts...)),
		grpc.WithChainUnaryInterceptor(unaryTenant),
		grpc.WithChainStreamInterceptor(streamTenant),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvBytes)),
	}
	if opts.Credentials != nil {
		dial = append(dial, grpc.WithPerRPCCredentials(opts.Credentials))
	}
	dial = append(dial, opts.Extra...)
	cc, err := grpc.NewClient(target, dial...)
	if err != nil {
		return nil, fmt.Errorf("grpcclient: dial %s: %w", target, err)
	}
	return cc, nil
}

// Wrap gives a connection that Dial did not make, such as a server's
// in-process connection (grpcserver.Server.InProcess), the client side of
// Dial's: the caller's tenant as metadata and the response size limit.
func Wrap(cc grpc.ClientConnInterface) grpc.ClientConnInterface { return wrapped{cc} }

type wrapped struct{ cc grpc.ClientConnInterface }

func (w wrapped) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	opts = append([]grpc.CallOption{grpc.MaxCallRecvMsgSize(maxRecvBytes)}, opts...)
	return w.cc.Invoke(outgoing(ctx), method, args, reply, opts...)
}

func (w wrapped) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	opts = append([]grpc.CallOption{grpc.MaxCallRecvMsgSize(maxRecvBytes)}, opts...)
	return w.cc.NewStream(outgoing(ctx), desc, method, opts...)
}

// outgoing adds the context's tenant to the outgoing metadata unless the
// caller already set one.
func outgoing(ctx context.Context) context.Context {
	t, err := tenancy.FromContext(ctx)
	if err != nil {
		return ctx
	}
	if md, ok := metadata.FromOutgoingContext(ctx); ok && len(md.Get(tenancy.MetadataKey)) > 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, tenancy.MetadataKey, t)
}

func unaryTenant(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(outgoing(ctx), method, req, reply, cc, opts...)
}

func streamTenant(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return streamer(outgoing(ctx), desc, cc, method, opts...)
}
