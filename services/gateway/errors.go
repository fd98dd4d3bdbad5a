package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorBody is the JSON body of every error the gateway returns:
//
//	{"error":{"code":3,"status":"INVALID_ARGUMENT","message":"...",
//	  "fieldViolations":[{"field":"display_name","description":"..."}]}}
type ErrorBody struct {
	// Error describes the failure.
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the gRPC status of a failed request.
type ErrorDetail struct {
	// Code is the numeric gRPC code, e.g. 3.
	Code int32 `json:"code"`
	// Status is the gRPC code's name, e.g. "INVALID_ARGUMENT".
	Status string `json:"status"`
	// Message is meant for the developer calling the API.
	Message string `json:"message"`
	// FieldViolations name the invalid fields, from google.rpc.BadRequest.
	FieldViolations []FieldViolation `json:"fieldViolations,omitempty"`
}

// FieldViolation is one invalid field of a request.
type FieldViolation struct {
	// Field is the path of the field, e.g. "customer.display_name", or a
	// header name.
	Field string `json:"field"`
	// Description says what is wrong with it.
	Description string `json:"description"`
}

// handleError is the grpc-gateway error handler: it writes the status of a
// failed call as ErrorBody, with the HTTP status of its code.
func (g *Gateway) handleError(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if bodyTooLarge(r, err) {
		writeError(w, http.StatusRequestEntityTooLarge, bodyTooLargeStatus(g.opts.MaxBodyBytes))
		return
	}
	httpStatus := 0
	if hse, ok := errors.AsType[*runtime.HTTPStatusError](err); ok {
		httpStatus, err = hse.HTTPStatus, hse.Err
	}
	st, ok := status.FromError(err)
	switch {
	case !ok && httpStatus >= 400 && httpStatus < 500:
		// grpc-gateway's own refusals (a malformed path escape) carry no code.
		st = status.New(codeOfHTTP(httpStatus), err.Error())
	case !ok:
		// Not a gRPC status: a fault in the gateway, not in the request.
		st = status.New(codes.Internal, err.Error())
	}
	if httpStatus == 0 {
		httpStatus = runtime.HTTPStatusFromCode(st.Code())
	}
	if httpStatus >= 500 {
		g.opts.Logger.ErrorContext(ctx, "gateway: request failed",
			"method", r.Method, "path", r.URL.Path, "code", st.Code().String(), "error", st.Message())
		st = redact(st)
	}
	writeError(w, httpStatus, st)
}

// redact replaces messages that may describe the gateway's network or
// internals (dial errors, panics) with a generic one; they are logged.
// Backends already keep internals out of their Internal messages.
func redact(st *status.Status) *status.Status {
	switch st.Code() {
	case codes.Unavailable:
		return status.New(st.Code(), "the service is unavailable; retry later")
	case codes.Unknown:
		return status.New(codes.Internal, "internal error")
	}
	return st
}

// handleRoutingError answers requests that match no route, or match one
// with another method.
func (g *Gateway) handleRoutingError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	var st *status.Status
	switch httpStatus {
	case http.StatusNotFound:
		st = status.Newf(codes.NotFound, "no route for %s %s", r.Method, r.URL.Path)
	case http.StatusMethodNotAllowed:
		st = status.Newf(codes.Unimplemented, "method %s is not allowed on %s", r.Method, r.URL.Path)
	case http.StatusBadRequest:
		st = status.Newf(codes.InvalidArgument, "malformed request path %q", r.URL.Path)
	default:
		st = status.New(codeOfHTTP(httpStatus), http.StatusText(httpStatus))
	}
	writeError(w, httpStatus, st)
}

// codeOfHTTP is the gRPC code for an HTTP error status the gateway itself
// produces.
func codeOfHTTP(httpStatus int) codes.Code {
	switch httpStatus {
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusMethodNotAllowed:
		return codes.Unimplemented
	case http.StatusRequestEntityTooLarge:
		return codes.ResourceExhausted
	}
	return codes.Unknown
}

// writeError writes st as ErrorBody with the given HTTP status.
func writeError(w http.ResponseWriter, httpStatus int, st *status.Status) {
	body := ErrorBody{Error: ErrorDetail{
		Code:    int32(st.Code()),
		Status:  code.Code(st.Code()).String(),
		Message: st.Message(),
	}}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				body.Error.FieldViolations = append(body.Error.FieldViolations,
					FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
			}
		}
	}
	// A failed call may have set headers meant for a success (streaming).
	w.Header().Del("Trailer")
	w.Header().Del("Transfer-Encoding")
	writeJSON(w, httpStatus, body)
}

// writeJSON writes v as a JSON response.
func writeJSON(w http.ResponseWriter, httpStatus int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Messages quote client input; keep <, > and & readable.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only the gateway's own types get here, and they always encode.
		httpStatus = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":{"code":13,"status":"INTERNAL","message":"internal error"}}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(httpStatus)
	_, _ = w.Write(buf.Bytes())
}
