package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"rapport.dev/platform/tenancy"
)

// CORS answers. Browsers cache a preflight for at most two hours (Chrome);
// ten minutes keeps a changed policy from lingering.
const (
	corsAllowMethods = "GET, POST, PUT, PATCH, DELETE"
	corsAllowHeaders = "Content-Type, Authorization, X-Rapport-Tenant, traceparent"
	corsMaxAge       = "600"
)

// matchIncomingHeader forwards the tenant header as tenant metadata and
// nothing else: the headers a client could use to set metadata keys
// (Grpc-Metadata-*) are not forwarded, as with grpc-gateway's default, and
// neither, unlike with that default, are the standard HTTP headers
// (User-Agent, Cookie, Accept, …) as grpcgateway-* metadata. No backend
// reads them, Authorization reaches the backends as it is anyway, and
// every request paid for building them.
func matchIncomingHeader(key string) (string, bool) {
	if textproto.CanonicalMIMEHeaderKey(key) == tenancy.HeaderName {
		return tenancy.MetadataKey, true
	}
	return "", false
}

// matchOutgoingHeader passes a backend's response metadata to the HTTP
// client as Grpc-Metadata-* headers, as grpc-gateway does (the feed's head
// sequence reaches /v1/changes clients so), except the gRPC content type,
// which says how the backend answered the gateway, not the client.
func matchOutgoingHeader(key string) (string, bool) {
	if key == "content-type" {
		return "", false
	}
	return runtime.MetadataHeaderPrefix + key, true
}

// checkTenant refuses API requests whose tenant header is repeated or
// malformed (or, when required, missing) before anything reaches a
// backend. The wildcard tenant is for service followers over gRPC only and
// is refused here.
func checkTenant(next http.Handler, required bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vals := r.Header.Values(tenancy.HeaderName)
		var problem string
		switch {
		case (len(vals) == 0 || vals[0] == "") && !required:
			next.ServeHTTP(w, r)
			return
		case len(vals) == 0 || vals[0] == "":
			problem = "is required: it names the tenant the request acts for"
		case len(vals) > 1:
			problem = "must be sent once"
		case vals[0] == tenancy.All:
			problem = fmt.Sprintf("must name one tenant; the wildcard %q is not accepted over HTTP", tenancy.All)
		default:
			if err := tenancy.Validate(vals[0]); err != nil {
				problem = "is invalid: " + err.Error()
			}
		}
		if problem != "" {
			st := withFieldViolation(
				status.New(codes.InvalidArgument, tenancy.HeaderName+" header "+problem),
				tenancy.HeaderName, problem)
			writeError(w, http.StatusBadRequest, st)
			return
		}
		// The tenant in the context reaches the logs; the header matcher
		// forwards it to the backend.
		next.ServeHTTP(w, r.WithContext(tenancy.WithTenant(r.Context(), vals[0])))
	})
}

// requireKey refuses API requests without one "Authorization: Bearer <key>"
// header. Service tokens are for the suite's own gRPC calls: the gateway
// does not pass them on.
func requireKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vals := r.Header.Values("Authorization")
		var problem string
		switch {
		case len(vals) == 0 || vals[0] == "":
			problem = "no API key: send \"Authorization: Bearer <api key>\""
		case len(vals) > 1:
			problem = "the Authorization header must be sent once"
		case len(vals[0]) < 7 || !strings.EqualFold(vals[0][:7], "Bearer "):
			problem = "the Authorization header must be \"Bearer <api key>\""
		}
		if problem != "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rapport"`)
			writeError(w, http.StatusUnauthorized, status.New(codes.Unauthenticated, problem))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func withFieldViolation(st *status.Status, field, description string) *status.Status {
	ds, err := st.WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: description}},
	})
	if err != nil {
		return st // only fails for an OK status
	}
	return ds
}

// errBodyTooLarge is the cause of a request context cancelled because the
// body overran the limit.
var errBodyTooLarge = errors.New("gateway: request body too large")

// limitBody refuses bodies over MaxBodyBytes with 413. A declared length is
// checked up front; a chunked body is cut by http.MaxBytesReader, and the
// overrun cancels the request's context. grpc-gateway reports every body
// read error as InvalidArgument, so the cancellation is how the error
// handler tells an overrun apart, and it also keeps a request whose body
// was cut during the final drain from being forwarded.
func (g *Gateway) limitBody(next http.Handler) http.Handler {
	limit := g.opts.MaxBodyBytes
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			writeError(w, http.StatusRequestEntityTooLarge, bodyTooLargeStatus(limit))
			return
		}
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r) // nothing to limit (most GETs)
			return
		}
		ctx, cancel := context.WithCancelCause(r.Context())
		defer cancel(nil)
		r = r.WithContext(ctx)
		r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, limit), cancel: cancel}
		next.ServeHTTP(w, r)
	})
}

func bodyTooLargeStatus(limit int64) *status.Status {
	return status.Newf(codes.ResourceExhausted, "request body exceeds %d bytes", limit)
}

// bodyTooLarge reports whether the request failed because its body overran
// the limit.
func bodyTooLarge(r *http.Request, err error) bool {
	_, ok := errors.AsType[*http.MaxBytesError](err)
	return ok || errors.Is(context.Cause(r.Context()), errBodyTooLarge)
}

type limitedBody struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		b.cancel(errBodyTooLarge)
	}
	return n, err
}

// bodyMarshaler is grpc-gateway's protobuf JSON marshaler with decode errors
// that say they are about the request body; grpc-gateway passes them to the
// client as the InvalidArgument message.
type bodyMarshaler struct{ *runtime.JSONPb }

// newBodyMarshaler is the gateway's marshaler for every request and reply.
func newBodyMarshaler() bodyMarshaler {
	return bodyMarshaler{&runtime.JSONPb{
		MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: false, UseProtoNames: false},
		// Unknown fields are refused so a misspelt field is a 400, not
		// silently dropped data.
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}}
}

// marshalBufSize is the buffer a response is encoded into to start with:
// most single-resource answers fit, so the encoding does not grow its
// output from nothing, a few bytes at a time.
const marshalBufSize = 1024

// Marshal encodes a response message straight into a buffer of
// marshalBufSize (JSONPb would encode it and copy it into another), with
// appendJSON when it can, else with protojson.
func (m bodyMarshaler) Marshal(v any) ([]byte, error) {
	p, ok := v.(proto.Message)
	if !ok || m.Indent != "" {
		return m.JSONPb.Marshal(v)
	}
	o := m.MarshalOptions
	if !o.Multiline && !o.EmitUnpopulated && !o.EmitDefaultValues && !o.UseProtoNames && !o.UseEnumNumbers {
		if b, err := appendJSON(make([]byte, 0, marshalBufSize), p.ProtoReflect()); err == nil {
			return b, nil
		}
	}
	return o.MarshalAppend(make([]byte, 0, marshalBufSize), p)
}

// NewDecoder returns a decoder whose errors name the request body.
func (m bodyMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	d := m.JSONPb.NewDecoder(r)
	return runtime.DecoderFunc(func(v any) error {
		err := d.Decode(v)
		if err == nil || errors.Is(err, io.EOF) {
			return err // EOF is an empty body or the end of a stream
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("request body: JSON ends before the value is complete: %w", err)
		}
		return fmt.Errorf("request body: %w", err)
	})
}

// cors answers preflight requests and marks responses readable by the
// allowed origins. Credentials are not allowed: API clients authenticate
// with a header, not a cookie.
func (g *Gateway) cors(next http.Handler) http.Handler {
	anyOrigin := slices.Contains(g.opts.AllowedOrigins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		origin := r.Header.Get("Origin")
		allowed := origin != "" && (anyOrigin || slices.Contains(g.opts.AllowedOrigins, origin))
		if !anyOrigin {
			h.Add("Vary", "Origin")
		}
		if allowed {
			if anyOrigin {
				h.Set("Access-Control-Allow-Origin", "*")
			} else {
				h.Set("Access-Control-Allow-Origin", origin)
			}
		}
		if r.Method != http.MethodOptions {
			next.ServeHTTP(w, r)
			return
		}
		// The API has no OPTIONS routes: every OPTIONS is answered here,
		// without a tenant.
		if origin != "" && r.Header.Get("Access-Control-Request-Method") != "" {
			if !allowed {
				writeError(w, http.StatusForbidden, status.Newf(codes.PermissionDenied, "origin %q is not allowed", origin))
				return
			}
			h.Set("Access-Control-Allow-Methods", corsAllowMethods)
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", corsMaxAge)
		}
		h.Set("Allow", corsAllowMethods+", OPTIONS")
		w.WriteHeader(http.StatusNoContent)
	})
}

// recoverPanic turns a panic into a logged 500 instead of a dropped
// connection.
func (g *Gateway) recoverPanic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			g.opts.Logger.ErrorContext(r.Context(), "gateway: panic",
				"method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			writeError(w, http.StatusInternalServerError, status.New(codes.Internal, "internal error"))
		}()
		next.ServeHTTP(w, r)
	})
}

// initialSpanName names the request span when otelhttp starts it. API
// routes are only known once grpc-gateway has matched one; nameSpan then
// renames the span.
func initialSpanName(_ string, r *http.Request) string {
	switch r.URL.Path {
	case "/healthz", "/readyz", "/openapi.json":
		return spanName(r.Method, r.URL.Path)
	}
	return spanName(r.Method, "")
}

// spanName is "HTTP GET /v1/customers/{customer_id}". Unknown methods are
// left out so clients cannot mint span names.
func spanName(method, route string) string {
	name := "HTTP"
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		name += " " + method
	}
	if route != "" {
		name += " " + route
	}
	return name
}

// nameSpan renames the request span after the matched grpc-gateway route
// and adds the route to the span and to the HTTP metrics. Metadata
// annotators are the one hook grpc-gateway runs after matching with the
// route in the context; it adds no metadata.
func nameSpan(ctx context.Context, r *http.Request) metadata.MD {
	route, ok := runtime.HTTPPathPattern(ctx)
	if !ok {
		return nil
	}
	attr := attribute.String("http.route", route)
	span := trace.SpanFromContext(ctx)
	span.SetName(spanName(r.Method, route))
	span.SetAttributes(attr)
	if l, ok := otelhttp.LabelerFromContext(ctx); ok {
		l.Add(attr)
	}
	return nil
}

// allowMethods answers 405 unless the request uses one of methods.
func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	if slices.Contains(methods, r.Method) {
		return true
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, http.StatusMethodNotAllowed,
		status.Newf(codes.Unimplemented, "method %s is not allowed on %s", r.Method, r.URL.Path))
	return false
}
