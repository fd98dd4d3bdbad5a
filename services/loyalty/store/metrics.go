package store

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"rapport.dev/platform/fault"
	"rapport.dev/platform/telemetry"
	"rapport.dev/platform/timers"
)

// metrics are the store's instruments; a nil *metrics records nothing.
type metrics struct {
	differences metric.Int64Gauge
	runs        metric.Int64Counter
	lateness    *timers.Lateness
}

var component = telemetry.ComponentKey.String("loyalty")

// Instrument makes the store record its metrics with mp: the outcome of
// every reconciliation and the lateness of the member timers. Call it
// before the store is used; without it the store records nothing.
func (s *Store) Instrument(mp metric.MeterProvider) error {
	meter := mp.Meter("rapport.dev/services/loyalty/store")
	m := &metrics{}
	var errs [3]error
	m.differences, errs[0] = meter.Int64Gauge("rapport.loyalty.reconciliation.differences", metric.WithUnit("{difference}"),
		metric.WithDescription("Differences between stored accounts and their ledgers found by the programme's last reconciliation; 0 is clean."))
	m.runs, errs[1] = meter.Int64Counter("rapport.loyalty.reconciliation.runs", metric.WithUnit("{run}"),
		metric.WithDescription("Reconciliations run, by result: clean, differences or failed."))
	m.lateness, errs[2] = timers.NewLateness(mp, "loyalty", "member")
	if err := errors.Join(errs[:]...); err != nil {
		return err
	}
	s.metrics = m
	return nil
}

// reconciled records a reconciliation of a tenant's programme. An unknown
// programme is a bad request, not a run.
func (m *metrics) reconciled(ctx context.Context, tenant, program string, rec *Reconciliation, err error) {
	if m == nil || errors.Is(err, fault.ErrNotFound) || errors.Is(err, context.Canceled) {
		return
	}
	result := "failed"
	if err == nil {
		result = "clean"
		if len(rec.Differences) > 0 {
			result = "differences"
		}
		m.differences.Record(ctx, int64(len(rec.Differences)), metric.WithAttributes(component,
			attribute.String("rapport.tenant", tenant), attribute.String("loyalty.program", program)))
	}
	m.runs.Add(ctx, 1, metric.WithAttributes(component, attribute.String("loyalty.reconciliation.result", result)))
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
