package store_test

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"rapport.dev/platform/telemetry"
	"rapport.dev/platform/telemetry/metricstest"
	"rapport.dev/services/segmentation/store"
)

// TestMetrics: evaluating a segment over a tenant, and one customer after
// an event, is timed by scope; a timer that fires late says how late.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	m := metricstest.New(t)
	if err := e.st.Instrument(m.Provider); err != nil {
		t.Fatal(err)
	}
	seg := telemetry.ComponentKey.String("segmentation")
	scope := func(s string) []attribute.KeyValue {
		return []attribute.KeyValue{seg, attribute.String("segmentation.scope", s)}
	}
	e.customers(acme, person("c1"), person("c2"), person("c3"))
	if n, _ := m.Histogram(t, "rapport.segmentation.evaluation.duration", scope("customer")...); n != 0 {
		t.Fatalf("%d customer evaluations with no dynamic segment", n)
	}
	e.create(acme, store.SegmentInput{ID: "lapsed", Kind: dynamic, Rule: `features.purchases > 0 && days_since(features.last_purchase) > 30`})
	if n, sum := m.Histogram(t, "rapport.segmentation.evaluation.duration", scope("tenant")...); n != 1 || sum <= 0 {
		t.Errorf("creating a segment: %d tenant evaluations taking %v s, want 1", n, sum)
	}
	// The full re-evaluation evaluates the tenant at once, not customer
	// by customer.
	if n, _ := m.Histogram(t, "rapport.segmentation.evaluation.duration", scope("customer")...); n != 0 {
		t.Errorf("creating a segment: %d customer evaluations, want none", n)
	}
	last := t0.Add(-10 * day)
	e.purchase(acme, "c1", "o1", 100, last)
	if n, _ := m.Histogram(t, "rapport.segmentation.evaluation.duration", scope("customer")...); n != 1 {
		t.Errorf("after a purchase: %d customer evaluations, want 1", n)
	}

	// The rule flips 31 days after the purchase; the scheduler runs 90
	// seconds after that.
	due := last.Add(31 * day)
	if fired, _, err := e.st.FireDue(ctx, due.Add(90*time.Second)); err != nil || fired != 1 {
		t.Fatalf("FireDue: fired %d, %v", fired, err)
	}
	late := []attribute.KeyValue{seg, attribute.String("timer.set", "segment")}
	if n, sum := m.Histogram(t, "rapport.timer.lateness", late...); n != 1 || sum != 90 {
		t.Errorf("lateness: %d timers, %v s; want one 90 s late", n, sum)
	}
}
