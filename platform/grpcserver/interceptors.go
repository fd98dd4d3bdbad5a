package grpcserver

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"rapport.dev/platform/auth"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/tenancy"
)

type interceptors struct {
	log         *slog.Logger
	crossTenant map[string]bool
	auth        *auth.Verifier
}

// tenantContext authorizes the call with the server's verifier, or, on a
// server without one, reads x-rapport-tenant from the incoming metadata.
// Exempt methods (auth.Exempt) need neither: infrastructure, not tenant data
// (the test clock is only registered when a suite runs on a fake clock).
func (ic interceptors) tenantContext(ctx context.Context, method string) (context.Context, error) {
	if ic.auth != nil {
		return ic.auth.Authorize(ctx, method)
	}
	if auth.Exempt(method) {
		return ctx, nil
	}
	var id string
	// ValueFromIncomingContext, unlike FromIncomingContext, does not copy
	// all the metadata.
	if v := metadata.ValueFromIncomingContext(ctx, tenancy.MetadataKey); len(v) > 0 {
		id = v[0]
	}
	if id == tenancy.All && ic.crossTenant[method] {
		return tenancy.WithTenant(ctx, id), nil
	}
	if err := tenancy.Validate(id); err != nil {
		return nil, Status(ctx, fault.InvalidField(tenancy.MetadataKey, "%v", err), nil)
	}
	return tenancy.WithTenant(ctx, id), nil
}

func (ic interceptors) unaryTenant(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	tctx, err := ic.tenantContext(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	noteTenant(ctx, tctx)
	return handler(tctx, req)
}

// callTenant carries the tenant the tenant interceptor settled on out to the
// log interceptor, which runs outside it, so the call's log line names it.
type callTenant struct{ tenant string }

type callTenantKey struct{}

// noteTenant records the tenant of tctx in the holder ctx carries.
func noteTenant(ctx, tctx context.Context) {
	if h, ok := ctx.Value(callTenantKey{}).(*callTenant); ok {
		h.tenant, _ = tenancy.FromContext(tctx)
	}
}

func (ic interceptors) streamTenant(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := ic.tenantContext(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	noteTenant(ss.Context(), ctx)
	return handler(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

func (ic interceptors) panicked(ctx context.Context, method string, p any) error {
	ic.log.ErrorContext(ctx, "panic in handler", "method", method, "panic", p, "stack", string(debug.Stack()))
	return status.Error(codes.Internal, "internal error")
}

func (ic interceptors) unaryRecover(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, ic.panicked(ctx, info.FullMethod, p)
		}
	}()
	return handler(ctx, req)
}

func (ic interceptors) streamRecover(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = ic.panicked(ss.Context(), info.FullMethod, p)
		}
	}()
	return handler(srv, ss)
}

func (ic interceptors) logCall(ctx context.Context, method string, start time.Time, err error) {
	code := status.Code(err)
	level := slog.LevelDebug
	switch code {
	case codes.OK, codes.Canceled:
	case codes.Internal, codes.Unknown, codes.DataLoss:
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	if !ic.log.Enabled(ctx, level) {
		return
	}
	attrs := []any{"method", method, "code", code.String(), "duration", time.Since(start)}
	if _, err := tenancy.FromContext(ctx); err != nil { // else telemetry's logger adds it
		if h, ok := ctx.Value(callTenantKey{}).(*callTenant); ok && h.tenant != "" {
			attrs = append(attrs, "tenant", h.tenant)
		}
	}
	if err != nil {
		attrs = append(attrs, "error", status.Convert(err).Message())
	}
	ic.log.Log(ctx, level, "rpc", attrs...)
}

func (ic interceptors) unaryLog(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	ctx = context.WithValue(ctx, callTenantKey{}, &callTenant{})
	resp, err := handler(ctx, req)
	ic.logCall(ctx, info.FullMethod, start, err)
	return resp, err
}

func (ic interceptors) streamLog(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	ctx := context.WithValue(ss.Context(), callTenantKey{}, &callTenant{})
	err := handler(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
	ic.logCall(ctx, info.FullMethod, start, err)
	return err
}
