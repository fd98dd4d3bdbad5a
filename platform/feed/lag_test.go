package feed_test

import (
	"context"
	"net"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/wrapperspb"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/telemetry"
	"rapport.dev/platform/telemetry/metricstest"
	"rapport.dev/platform/tenancy"
)

// response is a FollowChanges response, as the services' generated ones.
type response struct{ *feedv1.Event }

func (r response) GetEvent() *feedv1.Event { return r.Event }

// followStream is the client end of the test's FollowChanges stream: a
// real gRPC client stream, headers included.
type followStream struct{ grpc.ClientStream }

func (s followStream) Recv() (response, error) {
	ev := &feedv1.Event{}
	if err := s.RecvMsg(ev); err != nil {
		return response{}, err
	}
	return response{ev}, nil
}

const followMethod = "/rapport.test.v1.Feed/FollowChanges"

// grpcSource serves log over a real gRPC server (bufconn), as the services
// serve FollowChanges: the request is the cursor, the responses the
// events of every tenant, through Log.Serve.
func grpcSource(t *testing.T, log *feed.Log) feed.Source {
	t.Helper()
	srv := grpc.NewServer()
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "rapport.test.v1.Feed",
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{StreamName: "FollowChanges", ServerStreams: true,
			Handler: func(_ any, stream grpc.ServerStream) error {
				after := &wrapperspb.UInt64Value{}
				if err := stream.RecvMsg(after); err != nil {
					return err
				}
				return log.Serve(stream.Context(), tenancy.All, after.Value, true, func(ev *feedv1.Event) error {
					return stream.SendMsg(ev)
				})
			}}},
	}, struct{}{})
	lis := bufconn.Listen(1 << 20)
	go srv.Serve(lis)
	cc, err := grpc.NewClient("passthrough:///bufnet", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	// Registered after the databases were opened, so it runs before they close.
	t.Cleanup(func() { cc.Close(); srv.Stop() })
	return func(ctx context.Context, after uint64) (feed.Stream, error) {
		cs, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, followMethod)
		if err != nil {
			return nil, err
		}
		if err := cs.SendMsg(wrapperspb.UInt64(after)); err != nil {
			return nil, err
		}
		if err := cs.CloseSend(); err != nil {
			return nil, err
		}
		return feed.StreamOf(followStream{cs}), nil
	}
}

// TestFollowerLag: a follower knows from the head metadata how far behind
// it is even when it has received only a few of the events it owes, and
// reports it as metrics until it has caught up; then both lags are 0.
func TestFollowerLag(t *testing.T) {
	src, log, clk := producer(t)
	dst := consumer(t)
	// Ten events a minute apart.
	for i := 1; i <= 10; i++ {
		appendN(t, src, log, i, i)
		clk.Advance(time.Minute)
	}
	first := epoch // the commit time of event 1

	m := metricstest.New(t)
	if err := log.Instrument(m.Provider, "profile"); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	p := newProgress()
	handle := func(ctx context.Context, tx *bolt.Tx, ev *feedv1.Event) error {
		if ev.Sequence == 1 {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-gate
		}
		return nil
	}
	f := &feed.Follower{Name: "profile", DB: dst, Source: grpcSource(t, log), Handle: handle,
		MaxBatch: 1, MeterProvider: m.Provider, Component: "loyalty", Clock: clk, Applied: p.applied}
	run(t, f)

	attrs := []attribute.KeyValue{telemetry.ComponentKey.String("loyalty"), attribute.String("feed.follower", "profile")}
	// The follower is stuck on event 1 with at most a couple of events
	// received (one per batch): the head metadata says ten are owed.
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the follower did not start applying")
	}
	clk.Set(first.Add(time.Hour))
	if n, ok := m.Value(t, "rapport.feed.lag.events", attrs...); !ok || n != 10 {
		t.Errorf("lag while stuck on event 1: %v events (observed %v), want 10", n, ok)
	}
	if s, _ := m.Value(t, "rapport.feed.lag", attrs...); s != time.Hour.Seconds() {
		t.Errorf("lag while stuck on event 1: %v s, want 3600 (event 1 committed an hour ago)", s)
	}
	// The cursor and the head say the same from the files, whatever the
	// follower has heard.
	if n, ok := m.Value(t, "rapport.feed.cursor", attrs...); !ok || n != 0 {
		t.Errorf("cursor while stuck on event 1: %v (observed %v), want 0", n, ok)
	}
	if n, ok := m.Value(t, "rapport.feed.head", telemetry.ComponentKey.String("profile")); !ok || n != 10 {
		t.Errorf("head: %v (observed %v), want 10", n, ok)
	}

	close(gate)
	p.waitFor(t, 10)
	if n, _ := m.Value(t, "rapport.feed.lag.events", attrs...); n != 0 {
		t.Errorf("lag after catching up: %v events, want 0", n)
	}
	if s, _ := m.Value(t, "rapport.feed.lag", attrs...); s != 0 {
		t.Errorf("lag after catching up: %v s, want 0", s)
	}
	// A new event is applied and counted too.
	appendN(t, src, log, 11, 11)
	p.waitFor(t, 11)
	if n, _ := m.Value(t, "rapport.feed.applied", attrs...); n != 11 {
		t.Errorf("applied = %v, want 11", n)
	}
	if n, _ := m.Value(t, "rapport.feed.lag.events", attrs...); n != 0 {
		t.Errorf("lag after event 11: %v events, want 0", n)
	}
	if n, _ := m.Value(t, "rapport.feed.cursor", attrs...); n != 11 {
		t.Errorf("cursor after event 11: %v, want 11", n)
	}
	if n, _ := m.Value(t, "rapport.feed.head", telemetry.ComponentKey.String("profile")); n != 11 {
		t.Errorf("head after event 11: %v, want 11", n)
	}
}
