package clock_test

import (
	"context"
	"testing"
	"time"

	"rapport.dev/platform/clock"
)

func TestWaitUntilFakeWakesWhenMovedPastTheTime(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := clock.NewFake(t0)
	done := make(chan bool)
	go func() { done <- clock.WaitUntil(context.Background(), c, t0.Add(time.Hour), nil) }()
	c.Advance(30 * time.Minute) // not yet: must keep waiting
	select {
	case <-done:
		t.Fatal("WaitUntil returned before the clock reached the time")
	default:
	}
	c.Advance(30 * time.Minute)
	if !<-done {
		t.Fatal("WaitUntil reported a cancelled context")
	}
}

func TestWaitUntilReturnsAtOnceForAPastTime(t *testing.T) {
	c := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if !clock.WaitUntil(context.Background(), c, c.Now().Add(-time.Second), nil) {
		t.Fatal("a past time must not wait")
	}
}

func TestWaitUntilWakeAndCancel(t *testing.T) {
	c := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	wake := make(chan struct{}, 1)
	wake <- struct{}{}
	if !clock.WaitUntil(context.Background(), c, time.Time{}, wake) {
		t.Fatal("wake must end the wait")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if clock.WaitUntil(ctx, c, time.Time{}, nil) {
		t.Fatal("a cancelled context must end the wait with false")
	}
}

func TestWaitUntilRealClock(t *testing.T) {
	start := time.Now()
	if !clock.WaitUntil(context.Background(), clock.Real{}, start.Add(20*time.Millisecond), nil) {
		t.Fatal("WaitUntil on the real clock returned false")
	}
	if time.Since(start) < 20*time.Millisecond {
		t.Fatal("WaitUntil on the real clock returned early")
	}
}
