package grpcclient_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"rapport.dev/platform/grpcclient"
	"rapport.dev/platform/tenancy"
)

// echo is a bare gRPC service (no Rapport interceptors) that answers with the
// x-rapport-tenant values it received, joined by commas, so the test sees
// exactly what the client sent.
const (
	echo       = "rapport.test.v1.Echo"
	mUnary     = "/" + echo + "/Tenant"
	mStreaming = "/" + echo + "/WatchTenant"
)

func received(ctx context.Context) *wrapperspb.StringValue {
	md, _ := metadata.FromIncomingContext(ctx)
	return wrapperspb.String(strings.Join(md.Get(tenancy.MetadataKey), ","))
}

var echoDesc = grpc.ServiceDesc{
	ServiceName: echo,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Tenant",
		Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			if err := dec(new(wrapperspb.StringValue)); err != nil {
				return nil, err
			}
			return received(ctx), nil
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "WatchTenant",
		ServerStreams: true,
		Handler: func(_ any, ss grpc.ServerStream) error {
			return ss.SendMsg(received(ss.Context()))
		},
	}},
}

func dial(t *testing.T) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	srv.RegisterService(&echoDesc, struct{}{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	cc, err := grpcclient.Dial("passthrough:///bufnet", grpcclient.Options{Extra: []grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func TestTenantPropagation(t *testing.T) {
	cc := dial(t)
	bg := context.Background()

	unary := func(ctx context.Context) (string, error) {
		out := new(wrapperspb.StringValue)
		err := cc.Invoke(ctx, mUnary, wrapperspb.String(""), out)
		return out.GetValue(), err
	}
	stream := func(ctx context.Context) (string, error) {
		cs, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, mStreaming)
		if err != nil {
			return "", err
		}
		if err := cs.CloseSend(); err != nil {
			return "", err
		}
		out := new(wrapperspb.StringValue)
		err = cs.RecvMsg(out)
		return out.GetValue(), err
	}

	for _, tc := range []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"tenant in context", tenancy.WithTenant(bg, "acme"), "acme"},
		{"no tenant", bg, ""},
		{"wildcard", tenancy.WithTenant(bg, tenancy.All), tenancy.All},
		// Metadata the caller set explicitly wins and is not duplicated.
		{"explicit metadata", metadata.AppendToOutgoingContext(tenancy.WithTenant(bg, "acme"), tenancy.MetadataKey, "globex"), "globex"},
		// Other outgoing metadata is kept alongside the tenant.
		{"other metadata", metadata.AppendToOutgoingContext(tenancy.WithTenant(bg, "acme"), "x-request-id", "r1"), "acme"},
	} {
		for kind, call := range map[string]func(context.Context) (string, error){"unary": unary, "stream": stream} {
			got, err := call(tc.ctx)
			if err != nil || got != tc.want {
				t.Errorf("%s, %s: server received tenant %q, %v; want %q", tc.name, kind, got, err, tc.want)
			}
		}
	}
}

func TestDial(t *testing.T) {
	// Nothing listens here: the connection is lazy, so Dial succeeds.
	cc, err := grpcclient.Dial("passthrough:///127.0.0.1:1", grpcclient.Options{})
	if err != nil {
		t.Fatalf("Dial of an unreachable address: %v", err)
	}
	cc.Close()

	_, err = grpcclient.Dial("dns:///%zz", grpcclient.Options{})
	if err == nil || !strings.Contains(err.Error(), "grpcclient: dial dns:///%zz") {
		t.Errorf("Dial of a malformed target: err = %v, want it to name the target", err)
	}
}
