// Package testclock serves rapport.testing.v1.ClockService over a fake
// clock, for suites started with `rapport serve --fake-clock`: tests move
// the time and watch schedules, windows and date rules act, with no sleeps.
package testclock

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	testingv1 "rapport.dev/gen/go/rapport/testing/v1"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/grpcserver"
)

// Server implements testingv1.ClockServiceServer.
type Server struct {
	testingv1.UnimplementedClockServiceServer
	clock *clock.Fake
}

// New serves c.
func New(c *clock.Fake) *Server { return &Server{clock: c} }

// GetTime implements testingv1.ClockServiceServer.
func (s *Server) GetTime(context.Context, *testingv1.GetTimeRequest) (*testingv1.GetTimeResponse, error) {
	return &testingv1.GetTimeResponse{Time: timestamppb.New(s.clock.Now())}, nil
}

// SetTime implements testingv1.ClockServiceServer.
func (s *Server) SetTime(ctx context.Context, req *testingv1.SetTimeRequest) (*testingv1.SetTimeResponse, error) {
	if req.GetTime() == nil || req.GetTime().CheckValid() != nil {
		return nil, grpcserver.Status(ctx, fault.InvalidField("time", "is required and must be a valid timestamp"), nil)
	}
	t := req.GetTime().AsTime()
	if t.Before(s.clock.Now()) {
		return nil, status.Errorf(codes.FailedPrecondition, "time may only move forward (now %s)", s.clock.Now().Format("2006-01-02T15:04:05Z07:00"))
	}
	s.clock.Set(t)
	return &testingv1.SetTimeResponse{Time: timestamppb.New(t)}, nil
}
