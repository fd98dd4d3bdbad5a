package shutdown_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"rapport.dev/platform/shutdown"
)

var quiet = slog.New(slog.DiscardHandler)

func TestRunsEveryStepInOrderAndJoinsErrors(t *testing.T) {
	var ran []string
	errGRPC := errors.New("grpc: stop timed out")
	errBolt := errors.New("bbolt: close failed")
	step := func(name string, err error) func(context.Context) error {
		return func(context.Context) error {
			ran = append(ran, name)
			return err
		}
	}

	var s shutdown.Sequence
	s.Add("health", step("health", nil))
	s.Add("grpc", step("grpc", errGRPC))
	s.Add("followers", step("followers", nil))
	s.Add("bbolt", step("bbolt", errBolt))
	s.Add("telemetry", step("telemetry", nil))
	err := s.Run(time.Second, quiet)

	if want := []string{"health", "grpc", "followers", "bbolt", "telemetry"}; !slices.Equal(ran, want) {
		t.Errorf("ran %v, want %v", ran, want)
	}
	if !errors.Is(err, errGRPC) || !errors.Is(err, errBolt) {
		t.Fatalf("Run = %v, want both failures", err)
	}
	if got, want := err.Error(), "grpc: grpc: stop timed out\nbbolt: bbolt: close failed"; got != want {
		t.Errorf("Run error = %q, want %q (each failure named by its step)", got, want)
	}
}

func TestStepsShareOneDeadline(t *testing.T) {
	var deadlines []time.Time
	var s shutdown.Sequence
	for range 3 {
		s.Add("step", func(ctx context.Context) error {
			d, ok := ctx.Deadline()
			if !ok {
				return errors.New("no deadline")
			}
			deadlines = append(deadlines, d)
			return nil
		})
	}
	before := time.Now()
	if err := s.Run(time.Minute, quiet); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if len(deadlines) != 3 || deadlines[0] != deadlines[1] || deadlines[1] != deadlines[2] {
		t.Fatalf("deadlines = %v, want one shared deadline", deadlines)
	}
	if d := deadlines[0]; d.Before(before.Add(time.Minute)) || d.After(after.Add(time.Minute)) {
		t.Errorf("deadline %v after Run began, want the one-minute timeout", d.Sub(before))
	}
}

// A step that runs out the clock does not stop the later ones, which see the
// expired context and can do their quick, final part.
func TestStepAfterDeadlineStillRuns(t *testing.T) {
	var s shutdown.Sequence
	s.Add("grpc", func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	var lastRan bool
	s.Add("bbolt", func(ctx context.Context) error {
		lastRan = true
		return nil
	})
	err := s.Run(10*time.Millisecond, quiet)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "grpc: ") {
		t.Errorf("Run = %v, want grpc's deadline error", err)
	}
	if !lastRan {
		t.Error("step after the timed-out one did not run")
	}
}

func TestEmptySequence(t *testing.T) {
	var s shutdown.Sequence
	if err := s.Run(time.Second, quiet); err != nil {
		t.Errorf("Run of no steps = %v", err)
	}
}
