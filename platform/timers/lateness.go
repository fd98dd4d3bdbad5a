package timers

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"rapport.dev/platform/telemetry"
)

// Lateness measures how late a scheduler fires its timers: the time a timer
// fired at minus the time it was due, as the rapport.timer.lateness
// histogram (seconds), labelled with the component and the timer set. The
// durable timers of this package and the services' own (segmentation's rule
// flips) report to it the same way.
type Lateness struct {
	hist  metric.Float64Histogram
	attrs metric.MeasurementOption
}

// NewLateness returns the lateness of component's timer set named set
// ("member", "task", …).
func NewLateness(mp metric.MeterProvider, component, set string) (*Lateness, error) {
	h, err := mp.Meter("rapport.dev/platform/timers").Float64Histogram("rapport.timer.lateness", metric.WithUnit("s"),
		metric.WithDescription("How late a durable timer fired: the time it fired at minus the time it was due."),
		metric.WithExplicitBucketBoundaries(telemetry.LatenessBuckets...))
	if err != nil {
		return nil, err
	}
	return &Lateness{hist: h, attrs: metric.WithAttributeSet(attribute.NewSet(
		telemetry.ComponentKey.String(component), attribute.String("timer.set", set)))}, nil
}

// Fired records that a timer due at due fired at at. Record it once the
// transaction that fired the timer has committed: a rolled-back attempt
// fired nothing. A nil Lateness records nothing.
func (l *Lateness) Fired(ctx context.Context, due, at time.Time) {
	if l == nil {
		return
	}
	l.hist.Record(ctx, max(0, at.Sub(due).Seconds()), l.attrs)
}
