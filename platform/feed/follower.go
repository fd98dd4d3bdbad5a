package feed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/telemetry"
)

// Stream is the receiving end of a feed subscription (a gRPC client stream).
type Stream interface {
	Recv() (*feedv1.Event, error)
}

// Source opens a subscription to another service's feed after a sequence.
type Source func(ctx context.Context, after uint64) (Stream, error)

// Handler applies one event inside tx. It must only write through tx: the
// cursor is stored in the same transaction, which is what makes each event
// take effect exactly once. A handler may run more than once for an event
// whose transaction was rolled back, so it must have no other side effects.
type Handler func(ctx context.Context, tx *bolt.Tx, ev *feedv1.Event) error

// Follower applies another service's feed to this service's bbolt file.
type Follower struct {
	// Name identifies the follower's cursor, e.g. "profile".
	Name string
	// DB is this service's database, holding the cursor.
	DB *boltdb.DB
	// Source opens the subscription.
	Source Source
	// Handle applies one event.
	Handle Handler
	// Logger and TracerProvider: nil means slog.Default() and no tracing.
	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	// MeterProvider receives the follower's metrics, labelled with
	// Component (the following service) and Name: its lag behind the
	// leader (rapport.feed.lag.events and rapport.feed.lag, in seconds),
	// the events applied and those set aside. Nil means none.
	MeterProvider metric.MeterProvider
	Component     string
	// Clock measures the lag against the commit times the leader stamps on
	// its events (the same fake clock in tests); nil means the real clock.
	Clock clock.Clock
	// MaxAttempts is how often an event whose handler fails is tried before
	// it is set aside in the dead-letter bucket so the feed keeps moving;
	// 0 means 5.
	MaxAttempts int
	// Backoff is the wait before reconnecting or retrying; nil means
	// 50 ms doubling up to 5 s.
	Backoff func(attempt int) time.Duration
	// MaxBatch is the most events applied in one transaction; 0 means 256.
	MaxBatch int
	// Applied, when set, is called after each committed batch with the new
	// cursor (tests and metrics).
	Applied func(cursor uint64)
}

// Cursor returns the last sequence the named follower applied.
func Cursor(db *boltdb.DB, name string) (uint64, error) {
	var seq uint64
	err := db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(CursorBucket).Get([]byte(name))
		if v == nil {
			return nil
		}
		var err error
		seq, err = boltdb.ReadU64(v)
		return err
	})
	return seq, err
}

// DeadLetter is an event a follower gave up on.
type DeadLetter struct {
	Sequence uint64
	Error    string
}

// DeadLetters lists the events the named follower set aside.
func DeadLetters(db *boltdb.DB, name string) ([]DeadLetter, error) {
	var out []DeadLetter
	err := db.View(func(tx *bolt.Tx) error {
		prefix := boltdb.Prefix(name)
		c := tx.Bucket(DeadLetterBucket).Cursor()
		for k, v := c.Seek(prefix); k != nil && len(k) == len(prefix)+8 && string(k[:len(prefix)]) == string(prefix); k, v = c.Next() {
			seq, err := boltdb.ReadU64(k[len(prefix):])
			if err != nil {
				return err
			}
			out = append(out, DeadLetter{Sequence: seq, Error: string(v)})
		}
		return nil
	})
	return out, err
}

func (f *Follower) defaults() {
	if f.Logger == nil {
		f.Logger = slog.Default()
	}
	if f.TracerProvider == nil {
		f.TracerProvider = noop.NewTracerProvider()
	}
	if f.MeterProvider == nil {
		f.MeterProvider = metricnoop.NewMeterProvider()
	}
	if f.Clock == nil {
		f.Clock = clock.Real{}
	}
	if f.MaxAttempts == 0 {
		f.MaxAttempts = 5
	}
	if f.MaxBatch == 0 {
		f.MaxBatch = 256
	}
	if f.Backoff == nil {
		f.Backoff = func(attempt int) time.Duration {
			d := 50 * time.Millisecond << min(attempt, 7)
			return min(d, 5*time.Second)
		}
	}
}

// Run follows the feed until ctx ends, reconnecting after errors. It returns
// ctx's error.
func (f *Follower) Run(ctx context.Context) error {
	f.defaults()
	r := &run{tracer: f.TracerProvider.Tracer("rapport.dev/platform/feed"), lag: &lag{}}
	var err error
	if r.metrics, err = newFollowerMetrics(f.MeterProvider, f.Component, f.Name); err != nil {
		f.Logger.WarnContext(ctx, "feed follower not measured", "follower", f.Name, "error", err)
		r.metrics, _ = newFollowerMetrics(metricnoop.NewMeterProvider(), f.Component, f.Name)
	}
	if reg, err := r.metrics.observe(f.MeterProvider, r.lag, f.Clock); err != nil {
		f.Logger.WarnContext(ctx, "feed follower lag not measured", "follower", f.Name, "error", err)
	} else {
		defer reg.Unregister()
	}
	for attempt := 0; ; attempt++ {
		err := f.follow(ctx, r)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			attempt = 0
		} else {
			f.Logger.WarnContext(ctx, "feed follower disconnected", "follower", f.Name, "error", err)
		}
		if !sleep(ctx, f.Backoff(attempt)) {
			return ctx.Err()
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// run is what one Run shares across its subscriptions.
type run struct {
	tracer  trace.Tracer
	lag     *lag
	metrics *followerMetrics
}

// follow runs one subscription until it breaks.
func (f *Follower) follow(ctx context.Context, r *run) error {
	cursor, err := Cursor(f.DB, f.Name)
	if err != nil {
		return err
	}
	r.lag.subscribed(cursor)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := f.Source(ctx, cursor)
	if err != nil {
		return fmt.Errorf("subscribe after %d: %w", cursor, err)
	}
	// A reader goroutine keeps the stream drained while a batch commits, so
	// the next batch is ready when the fsync returns.
	events := make(chan *feedv1.Event, f.MaxBatch)
	recvErr := make(chan error, 1)
	go func() {
		defer close(events)
		if h, ok := stream.(header); ok {
			if seq, at, ok := h.Head(); ok {
				r.lag.sawHead(seq, at)
			}
		}
		for {
			ev, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			r.lag.received(ev)
			select {
			case events <- ev:
			case <-ctx.Done():
				recvErr <- ctx.Err()
				return
			}
		}
	}()
	batch := make([]*feedv1.Event, 0, f.MaxBatch)
	for ev := range events {
		batch = append(batch[:0], ev)
	fill:
		for len(batch) < f.MaxBatch {
			select {
			case ev, ok := <-events:
				if !ok {
					break fill
				}
				batch = append(batch, ev)
			default:
				break fill
			}
		}
		for _, ev := range batch {
			// A filtered feed may skip sequences; it may never go back.
			if ev.Sequence <= cursor {
				return fmt.Errorf("feed %s: event %d repeats (cursor %d)", f.Name, ev.Sequence, cursor)
			}
			cursor = ev.Sequence
		}
		if err := f.applyBatch(ctx, r, batch); err != nil {
			return err
		}
		r.lag.appliedUpTo(cursor)
		r.metrics.applied.Add(ctx, int64(len(batch)), r.metrics.attrs)
		if f.Applied != nil {
			f.Applied(cursor)
		}
	}
	err = <-recvErr
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// span starts the follower's span for ev as a child of the request that
// caused it.
func (f *Follower) span(ctx context.Context, tracer trace.Tracer, ev *feedv1.Event) (context.Context, trace.Span) {
	parent := telemetry.Propagator.Extract(ctx, propagation.MapCarrier(ev.TraceContext))
	return tracer.Start(parent, "feed.apply "+ev.Type,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("feed.follower", f.Name),
			attribute.Int64("feed.sequence", int64(ev.Sequence)),
			attribute.String("rapport.tenant", ev.Tenant),
		))
}

// applyBatch applies a batch in one transaction; if any event fails, it falls
// back to applying them one at a time so a bad event cannot hold back good ones.
func (f *Follower) applyBatch(ctx context.Context, r *run, batch []*feedv1.Event) error {
	ctxs := make([]context.Context, len(batch))
	spans := make([]trace.Span, len(batch))
	for i, ev := range batch {
		ctxs[i], spans[i] = f.span(ctx, r.tracer, ev)
	}
	defer func() {
		for _, s := range spans {
			s.End()
		}
	}()
	last := batch[len(batch)-1].Sequence
	err := f.DB.Update(ctx, func(tx *bolt.Tx) error {
		for i, ev := range batch {
			if err := f.Handle(ctxs[i], tx, ev); err != nil {
				return err
			}
		}
		return tx.Bucket(CursorBucket).Put([]byte(f.Name), boltdb.U64(last))
	})
	if err == nil || ctx.Err() != nil {
		return err
	}
	for i, ev := range batch {
		if err := f.applyOne(ctxs[i], r, spans[i], ev); err != nil {
			return err
		}
	}
	return nil
}

// applyOne applies one event, retrying; after MaxAttempts it records the
// event as a dead letter and moves the cursor past it.
func (f *Follower) applyOne(ctx context.Context, r *run, span trace.Span, ev *feedv1.Event) error {
	var lastErr error
	for attempt := 0; attempt < f.MaxAttempts; attempt++ {
		if attempt > 0 && !sleep(ctx, f.Backoff(attempt)) {
			return ctx.Err()
		}
		lastErr = f.DB.Update(ctx, func(tx *bolt.Tx) error {
			if err := f.Handle(ctx, tx, ev); err != nil {
				return err
			}
			return tx.Bucket(CursorBucket).Put([]byte(f.Name), boltdb.U64(ev.Sequence))
		})
		if lastErr == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	span.SetStatus(codes.Error, lastErr.Error())
	f.Logger.ErrorContext(ctx, "feed event set aside after repeated failures",
		"follower", f.Name, "sequence", ev.Sequence, "type", ev.Type, "error", lastErr)
	err := f.DB.Update(ctx, func(tx *bolt.Tx) error {
		if err := tx.Bucket(DeadLetterBucket).Put(boltdb.Key(f.Name, boltdb.U64(ev.Sequence)), []byte(lastErr.Error())); err != nil {
			return err
		}
		return tx.Bucket(CursorBucket).Put([]byte(f.Name), boltdb.U64(ev.Sequence))
	})
	if err == nil {
		r.metrics.deadLetters.Add(ctx, 1, r.metrics.attrs)
	}
	return err
}
