package store

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"rapport.dev/platform/telemetry"
	"rapport.dev/platform/timers"
)

// Evaluation scopes, the segmentation.scope attribute of
// rapport.segmentation.evaluation.duration.
const (
	// scopeCustomer is one customer's dynamic memberships brought up to
	// date: after a profile event, a timer, a rescore, or as part of a
	// tenant's.
	scopeCustomer = "customer"
	// scopeTenant is every customer of a tenant re-evaluated: a segment
	// created, a rule changed, a full re-evaluation.
	scopeTenant = "tenant"
)

// metrics are the store's instruments; a nil *metrics records nothing.
type metrics struct {
	evaluation metric.Float64Histogram
	scopes     map[string]metric.MeasurementOption
	lateness   *timers.Lateness
}

// Instrument makes the store record its metrics with mp: segment
// evaluation time and the lateness of its timers. Call it before the store
// is used; without it the store records nothing.
func (s *Store) Instrument(mp metric.MeterProvider) error {
	m := &metrics{scopes: map[string]metric.MeasurementOption{}}
	var err1, err2 error
	m.evaluation, err1 = mp.Meter("rapport.dev/services/segmentation/store").Float64Histogram(
		"rapport.segmentation.evaluation.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to evaluate the dynamic segments of one customer, or of a whole tenant."),
		metric.WithExplicitBucketBoundaries(telemetry.LatencyBuckets...))
	for _, scope := range []string{scopeCustomer, scopeTenant} {
		m.scopes[scope] = metric.WithAttributeSet(attribute.NewSet(
			telemetry.ComponentKey.String("segmentation"), attribute.String("segmentation.scope", scope)))
	}
	m.lateness, err2 = timers.NewLateness(mp, "segmentation", "segment")
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	s.metrics = m
	return nil
}

// evaluated records an evaluation of scope that started at start.
func (m *metrics) evaluated(ctx context.Context, scope string, start time.Time) {
	if m == nil {
		return
	}
	m.evaluation.Record(ctx, time.Since(start).Seconds(), m.scopes[scope])
}

// timersFired records the lateness of timers due at dues, fired at now.
func (m *metrics) timersFired(ctx context.Context, dues []time.Time, now time.Time) {
	if m == nil {
		return
	}
	for _, due := range dues {
		m.lateness.Fired(ctx, due, now)
	}
}
