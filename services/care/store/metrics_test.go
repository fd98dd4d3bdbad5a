package store_test

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/protobuf/types/known/timestamppb"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/platform/telemetry"
	"rapport.dev/platform/telemetry/metricstest"
	"rapport.dev/services/care/domain"
)

// TestTimerLateness: a complaint's follow-up (a plan occurrence) and its
// SLA (a task timer) fired late say how late, each in its timer set.
func TestTimerLateness(t *testing.T) {
	e := newEnv(t)
	m := metricstest.New(t)
	if err := e.st.Instrument(m.Provider); err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetManager(ctx, tenant, "alice", "bob"); err != nil {
		t.Fatal(err)
	}
	e.plan(domain.Plan{Target: allCustomers, Complaint: &domain.Complaint{SLAHours: 24}})
	e.customer(&profilev1.Customer{CustomerId: "c1", TimeZone: "Asia/Shanghai", Owner: "alice"})
	recorded := local(shanghai, 2026, 3, 2, 10, 30)
	e.apply(e.st.ApplyProfileEvent, e.event("event.recorded", "c1", &profilev1.Event{EventId: "k1", CustomerId: "c1",
		OccurTime: timestamppb.New(recorded.Add(-time.Hour)), RecordTime: timestamppb.New(recorded),
		Kind: &profilev1.Event_Complaint{Complaint: &profilev1.Complaint{ComplaintId: "k1"}}}))

	set := func(name string) []attribute.KeyValue {
		return []attribute.KeyValue{telemetry.ComponentKey.String("care"), attribute.String("timer.set", name)}
	}
	e.fire(recorded.Add(10 * time.Second))
	e.fire(recorded.Add(24*time.Hour + 45*time.Second))
	for _, c := range []struct {
		set  string
		n    uint64
		late float64
	}{{"plan", 1, 10}, {"task", 1, 45}} {
		if n, sum := m.Histogram(t, "rapport.timer.lateness", set(c.set)...); n != c.n || sum != c.late {
			t.Errorf("%s timers: %d fired, %v s late in all; want %d, %v s", c.set, n, sum, c.n, c.late)
		}
	}
}
