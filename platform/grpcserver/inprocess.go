package grpcserver

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// localMethod is a unary method registered through Server.RegisterService.
type localMethod struct {
	impl    any
	handler grpc.MethodHandler
}

// RegisterService registers a service on s.GRPC, as the generated
// Register…Server functions do, and also makes its unary methods callable
// in-process through InProcess. It makes *Server a grpc.ServiceRegistrar.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	s.GRPC.RegisterService(desc, impl) // checks that impl implements desc
	s.mu.Lock()
	defer s.mu.Unlock()
	methods := make(map[string]localMethod, len(s.methods)+len(desc.Methods))
	for k, v := range s.methods {
		methods[k] = v
	}
	for _, m := range desc.Methods {
		methods["/"+desc.ServiceName+"/"+m.MethodName] = localMethod{impl: impl, handler: m.Handler}
	}
	s.methods = methods
}

func (s *Server) method(name string) (localMethod, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.methods[name]
	return m, ok
}

// InProcess returns a client connection to s for a caller in the same
// process. A unary call to a service registered with s.RegisterService runs
// in the caller's goroutine, with no transport, but otherwise as it would
// arrive over the network:
//
//   - the request is marshalled, checked against the server's receive
//     limit and unmarshalled into the handler's own message, so the
//     handler shares no memory with the caller and a request the wire
//     would refuse is refused; the response is sized (for the stats
//     handler and the caller's receive limit) and handed to the caller
//     without a copy, since the server side drops it once sent as it does
//     over the network. It is not encoded, so a response the wire would
//     refuse to encode (a string that is not UTF-8) reaches the caller;
//   - the handler sees the caller's outgoing metadata as incoming
//     metadata (validated and without reserved headers, as a gRPC client
//     sends it), the caller's deadline and cancellation, and none of the
//     caller's context values; the caller's trace context and baggage
//     reach the server as the remote parent a traceparent and baggage
//     header would give it, without being formatted and parsed;
//   - the call passes through the server's stats handler (its span and
//     metrics) and the same interceptor chain: logging, panic recovery,
//     tenancy;
//   - grpc.SetHeader and grpc.SetTrailer work, and grpc.Header and
//     grpc.Trailer call options receive them;
//   - errors reach the caller as the status the network would carry.
//
// What is not reproduced: the client side of a network call (its
// interceptors, stats handler and span; wrap the result with
// grpcclient.Wrap for the interceptors), transport-level metadata
// (:authority, content-type, user-agent) and compression.
//
// Streams, services registered directly on s.GRPC (health, reflection) and
// unknown methods go to fallback, typically a network connection to s.
// Once Stop has begun, in-process calls fail with Unavailable, as calls on
// a stopped connection do.
func (s *Server) InProcess(fallback grpc.ClientConnInterface) grpc.ClientConnInterface {
	if s.unary == nil { // not built by New
		return fallback
	}
	return &inProcess{s: s, fallback: fallback}
}

type inProcess struct {
	s        *Server
	fallback grpc.ClientConnInterface
}

func (c *inProcess) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	m, ok := c.s.method(method)
	_, isProto := args.(proto.Message)
	if _, ok := reply.(proto.Message); !ok {
		isProto = false
	}
	if !ok || !isProto { // grpc's codec reports what is not protobuf
		return c.fallback.Invoke(ctx, method, args, reply, opts...)
	}
	return c.s.invoke(ctx, m, method, args, reply, opts)
}

func (c *inProcess) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.fallback.NewStream(ctx, desc, method, opts...)
}

// invoke is the client side of the call: what grpc's ClientConn checks and
// encodes before anything is sent, and what it decodes once the answer is
// back.
func (s *Server) invoke(ctx context.Context, m localMethod, method string, args, reply any, opts []grpc.CallOption) error {
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	md, _ := metadata.FromOutgoingContext(ctx) // a copy
	if err := outgoingMetadata(md); err != nil {
		return err
	}
	in, err := proto.Marshal(args.(proto.Message))
	if err != nil {
		return status.Errorf(codes.Internal, "grpc: error while marshaling: %v", err)
	}
	if md == nil {
		md = metadata.MD{}
	}
	if !s.calls.enter() {
		return status.Error(codes.Unavailable, "grpcserver: the server is stopping")
	}
	defer s.calls.leave()

	remote := trace.ContextWithRemoteSpanContext(baggage.ContextWithBaggage(context.Background(), baggage.FromContext(ctx)),
		trace.SpanContextFromContext(ctx))
	c := &inCall{ctx: callContext{Context: remote, caller: ctx}, st: localStream{method: method}}
	resp, size, err := s.serve(c, m, method, md, in)
	header, trailer := c.st.sent(status.Convert(err))
	limit := -1 // the last limit given applies, as in grpc
	for _, o := range opts {
		if o, ok := o.(grpc.MaxRecvMsgSizeCallOption); ok {
			limit = o.MaxRecvMsgSize
		}
	}
	if err == nil && limit >= 0 && size > limit {
		err = status.Errorf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", size, limit)
	}
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = header
		case grpc.TrailerCallOption:
			*o.TrailerAddr = trailer
		case grpc.PeerCallOption:
			*o.PeerAddr = peer.Peer{Addr: s.localAddr()}
		}
	}
	if err != nil {
		return err
	}
	if !handOver(reply.(proto.Message), resp) {
		out, err := proto.Marshal(resp)
		if err == nil {
			err = proto.Unmarshal(out, reply.(proto.Message))
		}
		if err != nil {
			return status.Errorf(codes.Internal, "grpc: failed to unmarshal the received message: %v", err)
		}
	}
	return nil
}

// handOver sets reply's fields to those of resp, without copying what they
// point to, and reports whether the types matched. resp is the response a
// handler returned; once marshalled the server side drops it, as it does
// after sending it over the network, so the caller may own it. This saves
// the unmarshalling of every response, most of the cost of a copy.
func handOver(reply, resp proto.Message) bool {
	dst, src := reply.ProtoReflect(), resp.ProtoReflect()
	if dst.Descriptor() != src.Descriptor() {
		return false
	}
	proto.Reset(reply)
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		dst.Set(fd, v)
		return true
	})
	if u := src.GetUnknown(); len(u) > 0 {
		dst.SetUnknown(u)
	}
	return true
}

// serve is the server side of the call, in the order grpc.Server runs it
// (handleStream, processRPC): stats tag and begin, decode under the receive
// limit, the handler through the interceptors, encode, stats end. It
// returns the response with the size of its encoding, or the status error
// the client would get. The response is sized, not encoded: the caller
// takes it over as it is (handOver), so the bytes would only be counted.
func (s *Server) serve(c *inCall, m localMethod, method string, md metadata.MD, in []byte) (resp proto.Message, size int, err error) {
	st := &c.st
	ctx := metadata.NewIncomingContext(&c.ctx, md)
	c.peer = peer.Peer{Addr: inProcessAddr{}, LocalAddr: s.localAddr()}
	ctx = peer.NewContext(ctx, &c.peer)
	sh := s.stats
	c.tag = stats.RPCTagInfo{FullMethodName: method}
	ctx = sh.TagRPC(ctx, &c.tag)
	c.inHeader = stats.InHeader{FullMethod: method, RemoteAddr: inProcessAddr{}, LocalAddr: s.localAddr(), Header: md}
	sh.HandleRPC(ctx, &c.inHeader)
	c.begin = stats.Begin{BeginTime: time.Now()}
	sh.HandleRPC(ctx, &c.begin)
	defer func() {
		c.outTrailer = stats.OutTrailer{Trailer: st.trailerMD()}
		sh.HandleRPC(ctx, &c.outTrailer)
		c.end = stats.End{BeginTime: c.begin.BeginTime, EndTime: time.Now(), Error: err}
		sh.HandleRPC(ctx, &c.end)
	}()
	ctx = grpc.NewContextWithServerTransportStream(ctx, st)

	dec := func(v any) error {
		if len(in) > s.maxRecv {
			return status.Errorf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", len(in), s.maxRecv)
		}
		if err := proto.Unmarshal(in, v.(proto.Message)); err != nil {
			return status.Errorf(codes.Internal, "grpc: failed to unmarshal the received message: %v", err)
		}
		c.inPayload = stats.InPayload{RecvTime: time.Now(), Payload: v, Length: len(in), CompressedLength: len(in), WireLength: len(in) + 5}
		sh.HandleRPC(ctx, &c.inPayload)
		return nil
	}
	r, appErr := m.handler(m.impl, ctx, dec, s.unary)
	if appErr != nil {
		// As processRPC: a status passes as it is, anything else becomes
		// Unknown, context errors their code; the client gets a copy.
		as, ok := status.FromError(appErr)
		if !ok {
			as = status.FromContextError(appErr)
		}
		return nil, 0, status.FromProto(as.Proto()).Err()
	}
	resp, ok := r.(proto.Message)
	if !ok {
		return nil, 0, status.Errorf(codes.Internal, "grpc: error while marshaling: proto: failed to marshal, message is %T, want proto.Message", r)
	}
	size = proto.Size(resp)
	header := st.sendHeader()
	c.outHeader = stats.OutHeader{Header: header, FullMethod: method, RemoteAddr: inProcessAddr{}, LocalAddr: s.localAddr()}
	sh.HandleRPC(ctx, &c.outHeader)
	c.outPayload = stats.OutPayload{Payload: resp, Length: size, CompressedLength: size, WireLength: size + 5, SentTime: time.Now()}
	sh.HandleRPC(ctx, &c.outPayload)
	return resp, size, nil
}

// inCall is what the server side of one in-process call needs, allocated
// in one piece rather than a dozen: its context and stream, the peer it
// reports and the stats events it sends, each of which grpc's server
// allocates on its own.
type inCall struct {
	ctx        callContext
	st         localStream
	peer       peer.Peer
	tag        stats.RPCTagInfo
	inHeader   stats.InHeader
	begin      stats.Begin
	inPayload  stats.InPayload
	outHeader  stats.OutHeader
	outPayload stats.OutPayload
	outTrailer stats.OutTrailer
	end        stats.End
}

// outgoingMetadata checks md as grpc's client does before a call, then
// drops what a gRPC client never sends as metadata: the reserved headers,
// and host, which the server replaces by :authority.
func outgoingMetadata(md metadata.MD) error {
	for k, vs := range md {
		if err := validatePair(k, vs); err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		if reservedHeader(k) || k == "host" {
			delete(md, k)
		}
	}
	return nil
}

// validatePair is grpc's metadata rule: keys in [0-9a-z-_.], values
// printable ASCII unless the key ends in -bin.
func validatePair(k string, vs []string) error {
	if k == "" {
		return fmt.Errorf("there is an empty key in the header")
	}
	if k[0] == ':' {
		return nil
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '.' && c != '-' && c != '_' {
			return fmt.Errorf("header key %q contains illegal characters not in [0-9a-z-_.]", k)
		}
	}
	if strings.HasSuffix(k, "-bin") {
		return nil
	}
	for _, v := range vs {
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				return fmt.Errorf("header key %q contains value with non-printable ASCII characters", k)
			}
		}
	}
	return nil
}

// reservedHeader lists the headers a gRPC client sets itself and never
// takes from metadata.
func reservedHeader(k string) bool {
	if k != "" && k[0] == ':' {
		return true
	}
	switch k {
	case "content-type", "user-agent", "grpc-message-type", "grpc-encoding", "grpc-message", "grpc-status",
		"grpc-timeout", "te":
		return true
	}
	return false
}

// callContext is the server's context of an in-process call: the caller's
// deadline and cancellation, but not its values, as over the network.
type callContext struct {
	context.Context // values: the server's own
	caller          context.Context
}

func (c *callContext) Deadline() (time.Time, bool) { return c.caller.Deadline() }
func (c *callContext) Done() <-chan struct{}       { return c.caller.Done() }
func (c *callContext) Err() error                  { return c.caller.Err() }

// AfterFunc lets contexts derived from c follow the caller's cancellation
// without a goroutine each (context.AfterFunc's afterFuncer).
func (c *callContext) AfterFunc(f func()) func() bool { return context.AfterFunc(c.caller, f) }

// localStream is the grpc.ServerTransportStream of an in-process call: it
// collects the headers and trailers the handler sets.
type localStream struct {
	method string

	mu         sync.Mutex
	header     metadata.MD
	trailer    metadata.MD
	headerSent bool
}

func (st *localStream) Method() string { return st.method }

func (st *localStream) SetHeader(md metadata.MD) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.headerSent {
		return status.Error(codes.Internal, "transport: the stream is done or WriteHeader was already called")
	}
	st.header = metadata.Join(st.header, md)
	return nil
}

func (st *localStream) SendHeader(md metadata.MD) error {
	if err := st.SetHeader(md); err != nil {
		return err
	}
	st.sendHeader()
	return nil
}

func (st *localStream) SetTrailer(md metadata.MD) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.trailer = metadata.Join(st.trailer, md)
	return nil
}

// sendHeader marks the header sent and returns it as a client receives
// it: with the content type the server adds.
func (st *localStream) sendHeader() metadata.MD {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.headerSent {
		st.headerSent = true
		if st.header == nil {
			st.header = metadata.MD{}
		}
		st.header["content-type"] = []string{"application/grpc"}
	}
	return st.header
}

func (st *localStream) trailerMD() metadata.MD {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.trailer
}

// sent returns the metadata the client receives with a call that ended in
// status: the header once sent, and the trailer. A failed call whose header
// was not sent is answered with trailers only, which carry the content type;
// a status with details carries them in the trailer too.
func (st *localStream) sent(status *status.Status) (header, trailer metadata.MD) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.headerSent {
		header = st.header
	}
	trailer = st.trailer
	if status.Code() == codes.OK {
		if trailer == nil {
			trailer = metadata.MD{}
		}
		return header, trailer
	}
	trailer = trailer.Copy()
	if trailer == nil {
		trailer = metadata.MD{}
	}
	if !st.headerSent {
		trailer["content-type"] = []string{"application/grpc"}
	}
	if p := status.Proto(); len(p.GetDetails()) > 0 {
		if b, err := proto.Marshal(p); err == nil {
			trailer["grpc-status-details-bin"] = []string{string(b)}
		}
	}
	return header, trailer
}

// inProcessAddr is the peer address of an in-process call.
type inProcessAddr struct{}

func (inProcessAddr) Network() string { return "inprocess" }
func (inProcessAddr) String() string  { return "inprocess" }

// calls tracks in-process calls so Stop can refuse new ones and wait for
// those in flight, as GracefulStop does for network calls.
type calls struct {
	mu      sync.Mutex
	stopped bool
	n       int
	idle    chan struct{} // closed by the last call to leave after stop
}

func (c *calls) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return false
	}
	c.n++
	return true
}

func (c *calls) leave() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n--
	if c.n == 0 && c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
}

// stop refuses new calls and returns a channel closed once none is in
// flight.
func (c *calls) stop() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if c.n == 0 {
		done := make(chan struct{})
		close(done)
		return done
	}
	if c.idle == nil {
		c.idle = make(chan struct{})
	}
	return c.idle
}
