package timers_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"rapport.dev/platform/clock"
	"rapport.dev/platform/timers"
)

// TestRun: the loop fires at once, then when the clock reaches the next
// due time, when woken, and a second after a failure; it returns when ctx
// ends.
func TestRun(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clk := clock.NewFake(t0)
	wake := make(chan struct{}, 1)
	calls := make(chan time.Time)
	results := make(chan error)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		timers.Run(ctx, clk, slog.New(slog.NewTextHandler(io.Discard, nil)), wake, func(_ context.Context, now time.Time) (time.Time, error) {
			calls <- now
			if err := <-results; err != nil {
				return time.Time{}, err
			}
			return now.Add(time.Hour), nil
		})
	}()
	expect := func(want time.Time) {
		t.Helper()
		select {
		case got := <-calls:
			if !got.Equal(want) {
				t.Fatalf("fired at %v, want %v", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no fire (want one at %v)", want)
		}
	}
	expect(t0)
	results <- nil           // next due in an hour
	clk.Advance(time.Minute) // not yet
	wake <- struct{}{}
	expect(t0.Add(time.Minute)) // woken before the hour
	results <- errors.New("disk on fire")
	clk.Advance(time.Second)
	expect(t0.Add(time.Minute + time.Second)) // retried a second later
	results <- nil                            // next due an hour after the retry
	clk.Set(t0.Add(time.Hour + time.Minute + time.Second))
	expect(t0.Add(time.Hour + time.Minute + time.Second))
	cancel()
	results <- nil
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return when ctx ended")
	}
}
