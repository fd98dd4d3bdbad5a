package store

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/metric"

	"rapport.dev/platform/timers"
)

// metrics are the store's instruments; a nil *metrics records nothing.
type metrics struct {
	plans, tasks *timers.Lateness
}

// Instrument makes the store record the lateness of its timers — plan
// occurrences (timer.set=plan) and task due times and SLAs (timer.set=task)
// — with mp. Call it before the store is used; without it the store
// records nothing.
func (s *Store) Instrument(mp metric.MeterProvider) error {
	m := &metrics{}
	var err1, err2 error
	m.plans, err1 = timers.NewLateness(mp, "care", "plan")
	m.tasks, err2 = timers.NewLateness(mp, "care", "task")
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	s.metrics = m
	return nil
}

// firedTimer is a timer fired by a FireDue transaction.
type firedTimer struct {
	plan bool
	due  time.Time
}

// timersFired records the lateness of fired timers, fired at now.
func (m *metrics) timersFired(ctx context.Context, fired []firedTimer, now time.Time) {
	if m == nil {
		return
	}
	for _, f := range fired {
		if f.plan {
			m.plans.Fired(ctx, f.due, now)
		} else {
			m.tasks.Fired(ctx, f.due, now)
		}
	}
}
