// Package clock abstracts the time source so that schedulers, windows and
// expiries can be tested by setting the time instead of sleeping.
package clock

import (
	"context"
	"sync"
	"time"
)

// Clock tells the time.
type Clock interface {
	Now() time.Time
}

// Real is the system clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// Fake is a clock that only moves when told to. It is safe for concurrent use.
type Fake struct {
	mu  sync.Mutex
	now time.Time
	// subscribers are woken whenever the time changes.
	subs []chan struct{}
}

// NewFake returns a fake clock set to t.
func NewFake(t time.Time) *Fake { return &Fake{now: t} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Set moves the clock to t.
func (f *Fake) Set(t time.Time) { f.move(func(time.Time) time.Time { return t }) }

// Advance moves the clock forward by d.
func (f *Fake) Advance(d time.Duration) {
	// Read and write under one lock: concurrent Advances must all count.
	f.move(func(now time.Time) time.Time { return now.Add(d) })
}

func (f *Fake) move(to func(now time.Time) time.Time) {
	f.mu.Lock()
	f.now = to(f.now)
	subs := f.subs
	f.subs = nil
	f.mu.Unlock()
	for _, c := range subs {
		close(c)
	}
}

// Changed returns a channel closed at the next Set or Advance.
func (f *Fake) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := make(chan struct{})
	f.subs = append(f.subs, c)
	return c
}

// changer is a clock that announces when it is moved (Fake).
type changer interface {
	Changed() <-chan struct{}
}

// WaitUntil blocks until c reads at or after t, wake fires, or ctx ends. A
// zero t waits only for wake or ctx. With a Fake clock it wakes when the
// clock is moved; with the real clock it sets a timer. It returns false when
// ctx ended.
func WaitUntil(ctx context.Context, c Clock, t time.Time, wake <-chan struct{}) bool {
	for {
		now := c.Now()
		if !t.IsZero() && !now.Before(t) {
			return true
		}
		var fire <-chan time.Time
		var moved <-chan struct{}
		if f, ok := c.(changer); ok {
			moved = f.Changed()
			if !t.IsZero() && !c.Now().Before(t) { // moved between the read and the subscription
				return true
			}
		} else if !t.IsZero() {
			timer := time.NewTimer(t.Sub(now))
			defer timer.Stop()
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			return false
		case <-wake:
			return true
		case <-fire:
			return true
		case <-moved:
		}
	}
}
