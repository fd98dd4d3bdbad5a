package timers

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"rapport.dev/platform/telemetry"
	"rapport.dev/platform/telemetry/metricstest"
)

func TestLateness(t *testing.T) {
	m := metricstest.New(t)
	l, err := NewLateness(m.Provider, "care", "task")
	if err != nil {
		t.Fatal(err)
	}
	due := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	l.Fired(context.Background(), due, due.Add(1500*time.Millisecond))
	l.Fired(context.Background(), due, due.Add(-time.Second)) // a timer fired early is not late
	var none *Lateness
	none.Fired(context.Background(), due, due.Add(time.Hour))

	attrs := []attribute.KeyValue{telemetry.ComponentKey.String("care"), attribute.String("timer.set", "task")}
	if n, sum := m.Histogram(t, "rapport.timer.lateness", attrs...); n != 2 || sum != 1.5 {
		t.Errorf("lateness: %d timers, %v s in all; want 2 and 1.5", n, sum)
	}
	if max := m.HistogramMax(t, "rapport.timer.lateness", attrs...); max != 1.5 {
		t.Errorf("latest: %v s, want 1.5", max)
	}
}
