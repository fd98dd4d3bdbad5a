package store_test

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"rapport.dev/platform/telemetry"
	"rapport.dev/platform/telemetry/metricstest"
	"rapport.dev/services/loyalty/domain"
	"rapport.dev/services/loyalty/store"
)

// TestMetrics: each reconciliation sets its programme's differences gauge
// and counts a run by result; an unknown programme is no run; an expiry
// fired late says how late.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	m := metricstest.New(t)
	if err := e.st.Instrument(m.Provider); err != nil {
		t.Fatal(err)
	}
	loyalty := telemetry.ComponentKey.String("loyalty")
	club := []attribute.KeyValue{loyalty, attribute.String("rapport.tenant", tenant), attribute.String("loyalty.program", "club")}
	runs := func(result string) float64 {
		n, _ := m.Value(t, "rapport.loyalty.reconciliation.runs", loyalty, attribute.String("loyalty.reconciliation.result", result))
		return n
	}

	e.program(domain.Program{Enrollment: domain.EnrollExplicit, Expiry: domain.ExpireAfter, ExpiryMonths: 1})
	for _, c := range []string{"ann", "bob"} {
		e.enroll("club", c, "UTC", 0)
		e.record("club", c, purchase("k1", "o1", 10000))
	}
	e.reconcile("club")
	if n, ok := m.Value(t, "rapport.loyalty.reconciliation.differences", club...); !ok || n != 0 || runs("clean") != 1 {
		t.Fatalf("clean reconciliation: %v differences (recorded %v), %v clean runs", n, ok, runs("clean"))
	}
	e.tamper("club", "bob", func(m *store.Member) { m.Account.Debt = 5 })
	if r, err := e.st.Reconcile(ctx, tenant, "club"); err != nil || len(r.Differences) != 1 {
		t.Fatalf("reconciling after tampering: %v, %v", r, err)
	}
	if n, _ := m.Value(t, "rapport.loyalty.reconciliation.differences", club...); n != 1 || runs("differences") != 1 {
		t.Errorf("after tampering: %v differences, %v runs with differences; want 1 and 1", n, runs("differences"))
	}
	if _, err := e.st.Reconcile(ctx, tenant, "nope"); err == nil {
		t.Fatal("reconciled an unknown programme")
	}
	if runs("failed") != 0 || runs("clean") != 1 {
		t.Errorf("an unknown programme counted as a run: %v failed, %v clean", runs("failed"), runs("clean"))
	}

	// The points expire a month after the purchase; the timer loop gets
	// there two minutes late.
	exp := t0.AddDate(0, 1, 0)
	e.clk.Set(exp.Add(2 * time.Minute))
	e.fire()
	late := []attribute.KeyValue{loyalty, attribute.String("timer.set", "member")}
	if n, sum := m.Histogram(t, "rapport.timer.lateness", late...); n != 2 || sum != 240 {
		t.Errorf("lateness: %d timers, %v s in all; want two members' timers, 120 s late each", n, sum)
	}
}
