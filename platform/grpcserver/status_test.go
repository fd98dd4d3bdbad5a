package grpcserver_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"rapport.dev/platform/fault"
	"rapport.dev/platform/grpcserver"
)

func TestStatus(t *testing.T) {
	ctx := context.Background()
	existing := status.Error(codes.ResourceExhausted, "slow down")
	var v fault.Violations
	v.Add("customer.email", "must contain @")
	v.Add("customer.id", "required")
	invalid := v.Err()

	for _, tc := range []struct {
		name    string
		err     error
		code    codes.Code
		msg     string
		fields  []string // BadRequest field violations
		logged  bool
		exactly bool // the very error is returned
	}{
		{name: "not found", err: fmt.Errorf("customer %q: %w", "c1", fault.ErrNotFound), code: codes.NotFound, msg: `customer "c1": not found`},
		{name: "already exists", err: fmt.Errorf("create: %w", fault.ErrAlreadyExists), code: codes.AlreadyExists, msg: "create: already exists"},
		{name: "conflict", err: fmt.Errorf("etag: %w", fault.ErrConflict), code: codes.Aborted, msg: "etag: conflict"},
		{name: "failed precondition", err: fmt.Errorf("refund: %w", fault.ErrFailedPrecondition), code: codes.FailedPrecondition, msg: "refund: failed precondition"},
		{name: "invalid sentinel", err: fmt.Errorf("bad: %w", fault.ErrInvalid), code: codes.InvalidArgument, msg: "bad: invalid argument"},
		{name: "unavailable", err: fmt.Errorf("profile: %w", fault.ErrUnavailable), code: codes.Unavailable, msg: "profile: unavailable"},
		{name: "field violations", err: invalid, code: codes.InvalidArgument, msg: invalid.Error(), fields: []string{"customer.email", "customer.id"}},
		{name: "wrapped field violations", err: fmt.Errorf("create: %w", invalid), code: codes.InvalidArgument, msg: "create: " + invalid.Error(), fields: []string{"customer.email", "customer.id"}},
		{name: "canceled", err: context.Canceled, code: codes.Canceled, msg: context.Canceled.Error()},
		{name: "wrapped deadline", err: fmt.Errorf("store: %w", context.DeadlineExceeded), code: codes.DeadlineExceeded, msg: "store: context deadline exceeded"},
		{name: "unknown", err: errors.New("open /var/lib/rapport/secret.db: permission denied"), code: codes.Internal, msg: "internal error", logged: true},
		{name: "status passes through", err: existing, code: codes.ResourceExhausted, msg: "slow down", exactly: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &records{}
			got := grpcserver.Status(ctx, tc.err, slog.New(logs))
			st, ok := status.FromError(got)
			if !ok {
				t.Fatalf("Status returned %T %v, not a status error", got, got)
			}
			if st.Code() != tc.code || st.Message() != tc.msg {
				t.Errorf("status = %v %q, want %v %q", st.Code(), st.Message(), tc.code, tc.msg)
			}
			if tc.exactly && got != tc.err {
				t.Errorf("status error was rebuilt: %v", got)
			}

			var fields []string
			for _, d := range st.Details() {
				br, ok := d.(*errdetails.BadRequest)
				if !ok {
					t.Errorf("unexpected detail %T", d)
					continue
				}
				for _, fv := range br.FieldViolations {
					fields = append(fields, fv.Field)
				}
			}
			if strings.Join(fields, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("field violations = %v, want %v", fields, tc.fields)
			}

			rec, found := logs.find("internal error", nil)
			if found != tc.logged {
				t.Errorf("logged = %v, want %v", found, tc.logged)
			}
			if found {
				// The cause goes to the log, not to the caller.
				var cause string
				rec.Attrs(func(a slog.Attr) bool {
					if a.Key == "error" {
						cause = a.Value.String()
					}
					return true
				})
				if cause != tc.err.Error() {
					t.Errorf("logged error = %q, want %q", cause, tc.err.Error())
				}
			}
		})
	}

	if err := grpcserver.Status(ctx, nil, nil); err != nil {
		t.Errorf("Status(nil) = %v", err)
	}
}

func TestStatusViolationDescriptions(t *testing.T) {
	err := grpcserver.Status(context.Background(), fault.InvalidField("page_size", "must be at most %d", 1000), nil)
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) == 1 {
			fv := br.FieldViolations[0]
			if fv.Field != "page_size" || fv.Description != "must be at most 1000" {
				t.Errorf("violation = %q %q", fv.Field, fv.Description)
			}
			return
		}
	}
	t.Errorf("no BadRequest detail in %v", err)
}
