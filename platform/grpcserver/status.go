package grpcserver

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"rapport.dev/platform/fault"
)

// codeOf is the one table from domain errors to gRPC codes.
var codeOf = []struct {
	err  error
	code codes.Code
}{
	{fault.ErrInvalid, codes.InvalidArgument},
	{fault.ErrNotFound, codes.NotFound},
	{fault.ErrAlreadyExists, codes.AlreadyExists},
	{fault.ErrConflict, codes.Aborted},
	{fault.ErrFailedPrecondition, codes.FailedPrecondition},
	{fault.ErrUnavailable, codes.Unavailable},
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
}

// Status turns an error from the domain into a gRPC status error. Field
// violations travel as google.rpc.BadRequest details; context errors pass
// through; a status error is returned as it is; anything unexpected is logged
// (when log is not nil) and hidden behind Internal, so no internals leak.
func Status(ctx context.Context, err error, log *slog.Logger) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, m := range codeOf {
		if !errors.Is(err, m.err) {
			continue
		}
		st := status.New(m.code, err.Error())
		var inv *fault.Invalid
		if errors.As(err, &inv) {
			br := &errdetails.BadRequest{}
			for _, v := range inv.Violations {
				br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
					Field: v.Field, Description: v.Description,
				})
			}
			if d, derr := st.WithDetails(br); derr == nil {
				st = d
			}
		}
		return st.Err()
	}
	if log == nil {
		log = slog.Default()
	}
	log.ErrorContext(ctx, "internal error", "error", err)
	return status.Error(codes.Internal, "internal error")
}
