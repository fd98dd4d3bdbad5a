// Package clock abstracts the time source so that schedulers, windows and
// expiries can be tested by setting the time instead of sleeping.
package clock

import (
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
