package clock_test

import (
	"sync"
	"testing"
	"time"

	"rapport.dev/platform/clock"
)

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestFakeMovesOnlyWhenTold(t *testing.T) {
	f := clock.NewFake(epoch)
	if got := f.Now(); !got.Equal(epoch) {
		t.Fatalf("Now = %v, want %v", got, epoch)
	}
	if got := f.Now(); !got.Equal(epoch) {
		t.Errorf("Now moved by itself: %v", got)
	}
	f.Advance(90 * time.Second)
	if got, want := f.Now(), epoch.Add(90*time.Second); !got.Equal(want) {
		t.Errorf("after Advance: %v, want %v", got, want)
	}
	later := epoch.Add(24 * time.Hour)
	f.Set(later)
	if got := f.Now(); !got.Equal(later) {
		t.Errorf("after Set: %v, want %v", got, later)
	}
	f.Set(epoch) // backwards is allowed
	if got := f.Now(); !got.Equal(epoch) {
		t.Errorf("after Set back: %v, want %v", got, epoch)
	}
}

func TestFakeChanged(t *testing.T) {
	f := clock.NewFake(epoch)
	a, b := f.Changed(), f.Changed()
	if closed(a) || closed(b) {
		t.Fatal("Changed closed before the clock moved")
	}
	f.Advance(time.Second)
	if !closed(a) || !closed(b) {
		t.Fatal("Changed not closed by Advance")
	}

	// Each Changed is for the next move only.
	c := f.Changed()
	if closed(c) {
		t.Fatal("a new Changed channel is already closed")
	}
	f.Set(epoch.Add(time.Hour))
	if !closed(c) {
		t.Fatal("Changed not closed by Set")
	}
}

// TestFakeWakesWaiter is how a scheduler test uses the fake: a goroutine
// waits for the clock instead of sleeping.
func TestFakeWakesWaiter(t *testing.T) {
	f := clock.NewFake(epoch)
	deadline := epoch.Add(time.Minute)
	fired := make(chan time.Time)
	go func() {
		for {
			changed := f.Changed()
			if now := f.Now(); !now.Before(deadline) {
				fired <- now
				return
			}
			<-changed
		}
	}()
	f.Advance(30 * time.Second)
	f.Advance(30 * time.Second)
	if got := <-fired; !got.Equal(deadline) {
		t.Errorf("fired at %v, want %v", got, deadline)
	}
}

func TestFakeConcurrentAdvance(t *testing.T) {
	const goroutines, steps = 8, 500
	f := clock.NewFake(epoch)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range steps {
				f.Advance(time.Second)
				_ = f.Changed()
			}
		})
	}
	wg.Wait()
	if got, want := f.Now(), epoch.Add(goroutines*steps*time.Second); !got.Equal(want) {
		t.Errorf("after concurrent Advances: %v, want %v (an Advance was lost)", got, want)
	}
}

func TestReal(t *testing.T) {
	before := time.Now()
	got := clock.Real{}.Now()
	if got.Before(before) || got.After(time.Now()) {
		t.Errorf("Real.Now = %v, not between the calls around it", got)
	}
}
