package feed

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/telemetry"
)

// lag is how far a follower is behind its leader, as far as it knows: the
// newest leader event it has heard of (from the head metadata at
// subscription, then from every event it receives) against the cursor it
// has committed.
type lag struct {
	mu       sync.Mutex
	head     uint64
	headTime time.Time
	applied  uint64
	// subscribedOnce: applied holds the committed cursor (read from the
	// follower's file at the first subscription, then moved by each batch).
	subscribedOnce bool
	// pending are the events received and not yet applied, in order:
	// pending[0] is the oldest event the follower knows it still owes.
	pending []pendingEvent
}

type pendingEvent struct {
	seq uint64
	at  time.Time
}

// subscribed starts a subscription after cursor: what an earlier one
// received and did not apply will be sent again.
func (l *lag) subscribed(cursor uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.applied = cursor
	l.subscribedOnce = true
	l.pending = l.pending[:0]
}

// cursor returns the committed cursor, false before the first
// subscription read it.
func (l *lag) cursor() (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.applied, l.subscribedOnce
}

func (l *lag) sawHead(seq uint64, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq > l.head {
		l.head, l.headTime = seq, at
	}
}

func (l *lag) received(ev *feedv1.Event) {
	at := ev.GetTime().AsTime()
	l.mu.Lock()
	defer l.mu.Unlock()
	if ev.Sequence > l.head {
		l.head, l.headTime = ev.Sequence, at
	}
	l.pending = append(l.pending, pendingEvent{ev.Sequence, at})
}

func (l *lag) appliedUpTo(cursor uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.applied = cursor
	i := 0
	for i < len(l.pending) && l.pending[i].seq <= cursor {
		i++
	}
	l.pending = l.pending[i:]
	if len(l.pending) == 0 {
		l.pending = nil // let the drained array go
	}
}

// behind returns how many events the follower owes and how long the oldest
// of them has waited at now: its commit time when it has been received,
// else the newest event's (what is owed is at least that old). Both are 0
// when the follower has caught up with everything it knows of.
func (l *lag) behind(now time.Time) (events int64, seconds float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.head <= l.applied {
		return 0, 0
	}
	oldest := l.headTime
	if len(l.pending) > 0 {
		oldest = l.pending[0].at
	}
	if oldest.IsZero() {
		return int64(l.head - l.applied), 0
	}
	return int64(l.head - l.applied), max(0, now.Sub(oldest).Seconds())
}

// followerMetrics are a follower's instruments.
type followerMetrics struct {
	attrs       metric.MeasurementOption
	applied     metric.Int64Counter
	deadLetters metric.Int64Counter
	lagEvents   metric.Int64ObservableGauge
	lagSeconds  metric.Float64ObservableGauge
	cursor      metric.Int64ObservableGauge
}

func newFollowerMetrics(mp metric.MeterProvider, component, name string) (*followerMetrics, error) {
	m := &followerMetrics{attrs: metric.WithAttributeSet(attribute.NewSet(
		telemetry.ComponentKey.String(component), attribute.String("feed.follower", name)))}
	meter := mp.Meter("rapport.dev/platform/feed")
	var errs [5]error
	m.applied, errs[0] = meter.Int64Counter("rapport.feed.applied", metric.WithUnit("{event}"),
		metric.WithDescription("Feed events the follower has moved its cursor past (applied or set aside)."))
	m.deadLetters, errs[1] = meter.Int64Counter("rapport.feed.dead_letters", metric.WithUnit("{event}"),
		metric.WithDescription("Feed events set aside after repeated failures."))
	m.lagEvents, errs[2] = meter.Int64ObservableGauge("rapport.feed.lag.events", metric.WithUnit("{event}"),
		metric.WithDescription("Events between the follower's cursor and the newest leader event it knows of."))
	m.lagSeconds, errs[3] = meter.Float64ObservableGauge("rapport.feed.lag", metric.WithUnit("s"),
		metric.WithDescription("How long the oldest event the follower has not applied has waited since its commit; 0 when caught up."))
	m.cursor, errs[4] = meter.Int64ObservableGauge("rapport.feed.cursor", metric.WithUnit("{event}"),
		metric.WithDescription("The sequence of the last leader event the follower has committed; it has caught up when it equals the leader's rapport.feed.head."))
	return m, errors.Join(errs[:]...)
}

// observe reports l's lag at every collection until the returned
// registration is unregistered.
func (m *followerMetrics) observe(mp metric.MeterProvider, l *lag, clk clock.Clock) (metric.Registration, error) {
	return mp.Meter("rapport.dev/platform/feed").RegisterCallback(func(_ context.Context, o metric.Observer) error {
		events, seconds := l.behind(clk.Now())
		o.ObserveInt64(m.lagEvents, events, m.attrs)
		o.ObserveFloat64(m.lagSeconds, seconds, m.attrs)
		if cur, ok := l.cursor(); ok {
			o.ObserveInt64(m.cursor, int64(cur), m.attrs)
		}
		return nil
	}, m.lagEvents, m.lagSeconds, m.cursor)
}

// Instrument reports the feed's newest sequence as rapport.feed.head (one
// sequence across tenants), read at every collection from the file: with
// each follower's rapport.feed.cursor it says exactly who is behind, even
// a follower that is down or cannot reach the leader.
func (l *Log) Instrument(mp metric.MeterProvider, component string) error {
	meter := mp.Meter("rapport.dev/platform/feed")
	head, err := meter.Int64ObservableGauge("rapport.feed.head", metric.WithUnit("{event}"),
		metric.WithDescription("The sequence of the newest event of the component's change feed."))
	if err != nil {
		return err
	}
	attrs := metric.WithAttributeSet(attribute.NewSet(telemetry.ComponentKey.String(component)))
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		seq, err := l.Last()
		if err != nil {
			return err
		}
		o.ObserveInt64(head, int64(seq), attrs)
		return nil
	}, head)
	return err
}
