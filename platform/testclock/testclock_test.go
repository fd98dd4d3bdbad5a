package testclock_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	testingv1 "rapport.dev/gen/go/rapport/testing/v1"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/testclock"
)

func TestSetTimeMovesForwardOnly(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := clock.NewFake(t0)
	s := testclock.New(c)
	ctx := context.Background()
	if _, err := s.SetTime(ctx, &testingv1.SetTimeRequest{Time: timestamppb.New(t0.Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	if got := c.Now(); !got.Equal(t0.Add(time.Hour)) {
		t.Fatalf("clock at %v", got)
	}
	_, err := s.SetTime(ctx, &testingv1.SetTimeRequest{Time: timestamppb.New(t0)})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("moving back: %v", err)
	}
	if _, err := s.SetTime(ctx, &testingv1.SetTimeRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("no time: %v", err)
	}
	got, err := s.GetTime(ctx, &testingv1.GetTimeRequest{})
	if err != nil || !got.Time.AsTime().Equal(t0.Add(time.Hour)) {
		t.Fatalf("GetTime: %v %v", got, err)
	}
}
