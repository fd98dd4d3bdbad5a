package grpcserver_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"rapport.dev/platform/grpcclient"
	"rapport.dev/platform/grpcserver"
	"rapport.dev/platform/tenancy"
)

// mirror is a service whose answers depend on the request, so that the same
// calls can be made over the network and in-process and compared.
const mirror = "rapport.test.v1.Mirror"

const (
	mEcho = "/" + mirror + "/Echo" // reports what the handler saw
	mFail = "/" + mirror + "/Fail" // fails as the request says
	mRich = "/" + mirror + "/Rich" // answers a nested message
	mHold = "/" + mirror + "/Hold" // blocks until released
)

// transportKeys are metadata only a network transport adds.
var transportKeys = []string{":authority", "content-type", "user-agent", "grpc-accept-encoding"}

// echo answers the tenant the interceptor put in the context and the
// metadata keys the handler received, sets a header and a trailer, and
// changes its request, which the caller must not see.
func echo(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	tenant, _ := tenancy.FromContext(ctx)
	md, _ := metadata.FromIncomingContext(ctx)
	var keys []string
	for k := range md {
		if !slices.Contains(transportKeys, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if err := grpc.SetHeader(ctx, metadata.Pairs("x-header", "h-"+in.GetValue())); err != nil {
		return nil, err
	}
	if err := grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t-"+in.GetValue())); err != nil {
		return nil, err
	}
	out := wrapperspb.String(in.GetValue() + "|" + tenant + "|" + strings.Join(keys, ","))
	in.Value = "changed by the handler"
	return out, nil
}

func fail(_ context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	switch in.GetValue() {
	case "field":
		st, _ := status.New(codes.InvalidArgument, "bad field").WithDetails(&errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "value", Description: "is wrong"}},
		})
		return nil, st.Err()
	case "plain":
		return nil, errors.New("plain error")
	case "wrapped":
		return nil, fmt.Errorf("wrapped: %w", status.Error(codes.NotFound, "not there"))
	case "canceled":
		return nil, context.Canceled
	case "deadline":
		return nil, context.DeadlineExceeded
	}
	return nil, status.Error(codes.Aborted, "aborted")
}

// rich answers a message with nested, repeated, optional and unknown fields.
func rich(_ context.Context, in *wrapperspb.StringValue) (*descriptorpb.FileDescriptorProto, error) {
	fd := &descriptorpb.FileDescriptorProto{
		Name:       proto.String(in.GetValue()),
		Dependency: []string{"a.proto", "b.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{
			Name:  proto.String("M"),
			Field: []*descriptorpb.FieldDescriptorProto{{Name: proto.String("f"), Number: proto.Int32(1)}},
		}},
		Options: &descriptorpb.FileOptions{GoPackage: proto.String("x/y")},
	}
	fd.ProtoReflect().SetUnknown(protowire.AppendString(protowire.AppendTag(nil, 999, protowire.BytesType), "unknown"))
	return fd, nil
}

func unaryOf[Out proto.Message](method string, fn func(context.Context, *wrapperspb.StringValue) (Out, error)) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		in := new(wrapperspb.StringValue)
		if err := dec(in); err != nil {
			return nil, err
		}
		h := func(ctx context.Context, req any) (any, error) { return fn(ctx, req.(*wrapperspb.StringValue)) }
		return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: method}, h)
	}
}

type held struct {
	entered, release, finished chan struct{}
}

func mirrorDesc(h *held) *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: mirror,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			{MethodName: "Echo", Handler: unaryOf(mEcho, echo)},
			{MethodName: "Fail", Handler: unaryOf(mFail, fail)},
			{MethodName: "Rich", Handler: unaryOf(mRich, rich)},
			{MethodName: "Hold", Handler: unaryOf(mHold, func(context.Context, *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
				h.entered <- struct{}{}
				<-h.release
				close(h.finished)
				return wrapperspb.String("released"), nil
			})},
		},
	}
}

// mirrorEnv serves the mirror service with a 1 KiB receive limit; network
// and local reach it over bufconn and in-process.
type mirrorEnv struct {
	srv            *grpcserver.Server
	network, local grpc.ClientConnInterface
	logs           *records
	held           *held
	stopped        chan error
}

func startMirror(t *testing.T) *mirrorEnv {
	t.Helper()
	e := &mirrorEnv{
		logs:    &records{},
		held:    &held{entered: make(chan struct{}, 1), release: make(chan struct{}), finished: make(chan struct{})},
		stopped: make(chan error, 1),
	}
	e.srv = grpcserver.New(grpcserver.Options{Logger: slog.New(e.logs), MaxRecvBytes: 1024})
	e.srv.RegisterService(mirrorDesc(e.held), struct{}{})
	lis := bufconn.Listen(1 << 20)
	go func() { e.stopped <- e.srv.Serve(lis) }()
	t.Cleanup(func() {
		e.srv.StopTimeout(time.Second)
		// A test that stops the server at once may do so before the
		// goroutine above got to Serve, which then reports just that.
		if err := <-e.stopped; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("Serve: %v", err)
		}
	})
	cc, err := grpcclient.Dial("passthrough:///bufnet", grpcclient.Options{
		Extra: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return lis.DialContext(ctx)
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	e.network, e.local = cc, grpcclient.Wrap(e.srv.InProcess(cc))
	return e
}

// outcome is everything a caller can observe of a unary call.
type outcome struct {
	reply            proto.Message
	err              *status.Status
	header, trailer  metadata.MD
	argsAfterTheCall string
}

func (o outcome) diff(other outcome) []string {
	var d []string
	if !proto.Equal(o.reply, other.reply) {
		d = append(d, "reply: "+protoString(o.reply)+" vs "+protoString(other.reply))
	}
	if !proto.Equal(o.err.Proto(), other.err.Proto()) {
		d = append(d, "status: "+o.err.String()+" vs "+other.err.String())
	}
	if !mdEqual(o.header, other.header) {
		d = append(d, "header: "+mdString(o.header)+" vs "+mdString(other.header))
	}
	if !mdEqual(o.trailer, other.trailer) {
		d = append(d, "trailer: "+mdString(o.trailer)+" vs "+mdString(other.trailer))
	}
	if o.argsAfterTheCall != other.argsAfterTheCall {
		d = append(d, "request after the call: "+o.argsAfterTheCall+" vs "+other.argsAfterTheCall)
	}
	return d
}

func protoString(m proto.Message) string {
	b, _ := proto.Marshal(m)
	return string(b)
}

func mdEqual(a, b metadata.MD) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func mdString(md metadata.MD) string {
	var kv []string
	for k, v := range md {
		kv = append(kv, k+"="+strings.Join(v, ","))
	}
	slices.Sort(kv)
	return "{" + strings.Join(kv, " ") + "}"
}

func invoke(ctx context.Context, cc grpc.ClientConnInterface, method, value string, reply proto.Message, opts ...grpc.CallOption) outcome {
	var o outcome
	args := wrapperspb.String(value)
	opts = append(opts, grpc.Header(&o.header), grpc.Trailer(&o.trailer))
	err := cc.Invoke(ctx, method, args, reply, opts...)
	o.reply, o.err, o.argsAfterTheCall = reply, status.Convert(err), args.GetValue()
	return o
}

// TestInProcessMatchesNetwork makes each call over the network and
// in-process: the reply, the status with its details, the header and
// trailer metadata, and the caller's request afterwards must be the same.
func TestInProcessMatchesNetwork(t *testing.T) {
	e := startMirror(t)
	acme := tenancy.WithTenant(context.Background(), "acme")
	canceled, cancel := context.WithCancel(acme)
	cancel()
	withMD := func(kv ...string) context.Context { return metadata.AppendToOutgoingContext(acme, kv...) }

	for _, tc := range []struct {
		name, method, value string
		ctx                 context.Context
		opts                []grpc.CallOption
		want                codes.Code
	}{
		{"echo", mEcho, "hello", acme, nil, codes.OK},
		{"metadata reaches the handler", mEcho, "m", withMD("x-custom", "v", "x-data-bin", "\x00\xff"), nil, codes.OK},
		{"reserved metadata is not sent", mEcho, "r", withMD("grpc-timeout", "1S", "content-type", "text/plain", "te", "x"), nil, codes.OK},
		{"no tenant", mEcho, "x", context.Background(), nil, codes.InvalidArgument},
		{"malformed tenant", mEcho, "x", metadata.AppendToOutgoingContext(context.Background(), tenancy.MetadataKey, "Not Valid"), nil, codes.InvalidArgument},
		{"wildcard tenant", mEcho, "x", tenancy.WithTenant(context.Background(), tenancy.All), nil, codes.InvalidArgument},
		{"metadata value not printable", mEcho, "x", withMD("x-custom", "王"), nil, codes.Internal},
		{"metadata key not allowed", mEcho, "x", metadata.NewOutgoingContext(acme, metadata.MD{"bad key": {"v"}}), nil, codes.Internal},
		{"request not valid UTF-8", mEcho, "\xff", acme, nil, codes.Internal},
		{"request over the server's limit", mEcho, strings.Repeat("x", 2000), acme, nil, codes.ResourceExhausted},
		{"response over the caller's limit", mEcho, strings.Repeat("x", 100), acme, []grpc.CallOption{grpc.MaxCallRecvMsgSize(50)}, codes.ResourceExhausted},
		{"canceled before the call", mEcho, "x", canceled, nil, codes.Canceled},
		{"field violation", mFail, "field", acme, nil, codes.InvalidArgument},
		{"plain error", mFail, "plain", acme, nil, codes.Unknown},
		{"wrapped status", mFail, "wrapped", acme, nil, codes.NotFound},
		{"context error", mFail, "canceled", acme, nil, codes.Canceled},
		{"deadline error", mFail, "deadline", acme, nil, codes.DeadlineExceeded},
		{"nested response", mRich, "rich.proto", acme, nil, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			newReply := func() proto.Message {
				if tc.method == mRich {
					return new(descriptorpb.FileDescriptorProto)
				}
				return new(wrapperspb.StringValue)
			}
			net := invoke(tc.ctx, e.network, tc.method, tc.value, newReply(), tc.opts...)
			local := invoke(tc.ctx, e.local, tc.method, tc.value, newReply(), tc.opts...)
			if net.err.Code() != tc.want {
				t.Fatalf("over the network: %v, want %v", net.err, tc.want)
			}
			if tc.name == "response over the caller's limit" {
				// Over the network the trailer may or may not have arrived
				// when the client gives up on the message.
				net.trailer, local.trailer = nil, nil
			}
			if d := local.diff(net); len(d) > 0 {
				t.Errorf("in-process differs from the network (in-process vs network):\n%s", strings.Join(d, "\n"))
			}
		})
	}
}

// TestInProcessRunsInterceptors checks that an in-process call is logged,
// and that a panic is recovered, as over the network.
func TestInProcessRunsInterceptors(t *testing.T) {
	e := startMirror(t)
	invoke(tenancy.WithTenant(context.Background(), "acme"), e.local, mFail, "field", new(wrapperspb.StringValue))
	if _, ok := e.logs.find("rpc", map[string]string{"method": mFail, "code": "InvalidArgument"}); !ok {
		t.Error("the in-process call was not logged")
	}
	o := invoke(context.Background(), e.local, mEcho, "x", new(wrapperspb.StringValue))
	if o.err.Code() != codes.InvalidArgument || len(o.err.Details()) != 1 {
		t.Errorf("call without a tenant: %v, want InvalidArgument with a field violation", o.err)
	}
}

// TestInProcessStop: once Stop has begun in-process calls are refused, and
// Stop waits for those in flight.
func TestInProcessStop(t *testing.T) {
	e := startMirror(t)
	acme := tenancy.WithTenant(context.Background(), "acme")
	done := make(chan outcome, 1)
	go func() { done <- invoke(acme, e.local, mHold, "x", new(wrapperspb.StringValue)) }()
	<-e.held.entered

	stopped := make(chan struct{})
	go func() {
		e.srv.StopTimeout(time.Minute)
		close(stopped)
	}()
	close(e.held.release)
	<-stopped
	select {
	case <-e.held.finished:
	default:
		t.Error("Stop returned before the in-process call in flight finished")
	}
	if o := <-done; o.err.Code() != codes.OK {
		t.Errorf("call in flight during Stop: %v", o.err)
	}
	if o := invoke(acme, e.local, mEcho, "x", new(wrapperspb.StringValue)); o.err.Code() != codes.Unavailable {
		t.Errorf("call after Stop: %v, want Unavailable", o.err)
	}
}
