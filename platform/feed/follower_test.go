package feed_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/wrapperspb"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/tenancy"
)

// appliedBucket is the follower's own data: sequence -> how many times the
// event took effect.
var appliedBucket = []byte("applied")

func consumer(t *testing.T) *boltdb.DB {
	t.Helper()
	return boltdb.OpenTemp(t, boltdb.Options{Schema: 1, Buckets: append([][]byte{appliedBucket}, feed.Buckets...)})
}

// chanStream is the receiving end of an in-process subscription.
type chanStream struct {
	events chan *feedv1.Event
	done   chan struct{}
	err    error // set before done is closed
}

func (s *chanStream) Recv() (*feedv1.Event, error) {
	select {
	case ev := <-s.events:
		return ev, nil
	case <-s.done:
		return nil, s.err
	}
}

// logSource adapts a Log to a Source in process: Log.Serve runs in a
// goroutine and its events come through a channel, as they would through the
// gRPC stream a service serves (that path is tested by the services).
func logSource(t *testing.T, log *feed.Log) feed.Source {
	var wg sync.WaitGroup
	// Registered after the databases were opened, so it runs before they close.
	t.Cleanup(wg.Wait)
	return func(ctx context.Context, after uint64) (feed.Stream, error) {
		s := &chanStream{events: make(chan *feedv1.Event), done: make(chan struct{})}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.err = log.Serve(ctx, tenancy.All, after, true, func(ev *feedv1.Event) error {
				select {
				case s.events <- ev:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			close(s.done)
		}()
		return s, nil
	}
}

// progress records the cursors a follower reports through Applied, so a
// test waits for a cursor instead of sleeping.
type progress struct {
	mu      sync.Mutex
	cursor  uint64
	changed chan struct{}
}

func newProgress() *progress { return &progress{changed: make(chan struct{})} }

func (p *progress) applied(cursor uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cursor = cursor
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *progress) waitFor(t *testing.T, cursor uint64) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		p.mu.Lock()
		got, changed := p.cursor, p.changed
		p.mu.Unlock()
		if got >= cursor {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("follower reached cursor %d, want %d", got, cursor)
		}
	}
}

// run starts f and returns a stop that cancels it and waits for Run to end.
func run(t *testing.T, f *feed.Follower) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Run returned %v, want context.Canceled", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// countingHandler writes seq -> number of times applied, in the follower's
// transaction, and counts its calls.
func countingHandler(calls *atomic.Int64) feed.Handler {
	return func(_ context.Context, tx *bolt.Tx, ev *feedv1.Event) error {
		calls.Add(1)
		b := tx.Bucket(appliedBucket)
		var n uint64
		if v := b.Get(boltdb.U64(ev.Sequence)); v != nil {
			var err error
			if n, err = boltdb.ReadU64(v); err != nil {
				return err
			}
		}
		return b.Put(boltdb.U64(ev.Sequence), boltdb.U64(n+1))
	}
}

// appliedCounts returns how often each sequence took effect.
func appliedCounts(t *testing.T, db *boltdb.DB) map[uint64]uint64 {
	t.Helper()
	out := map[uint64]uint64{}
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(appliedBucket).ForEach(func(k, v []byte) error {
			seq, err := boltdb.ReadU64(k)
			if err != nil {
				return err
			}
			n, err := boltdb.ReadU64(v)
			out[seq] = n
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func appendN(t *testing.T, db *boltdb.DB, log *feed.Log, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		tenant := []string{"acme", "globex"}[i%2]
		appendTx(t, context.Background(), db, log, rec{tenant, fmt.Sprintf("c%d", i)})
	}
}

func cursorOf(t *testing.T, db *boltdb.DB, name string) uint64 {
	t.Helper()
	c, err := feed.Cursor(db, name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFollowerAppliesEachEventOnceAndResumes(t *testing.T) {
	src, log, _ := producer(t)
	dst := consumer(t)
	source := logSource(t, log)
	appendN(t, src, log, 1, 30)

	var calls atomic.Int64
	p := newProgress()
	newFollower := func() *feed.Follower {
		return &feed.Follower{
			Name:     "segmentation",
			DB:       dst,
			Source:   source,
			Handle:   countingHandler(&calls),
			MaxBatch: 8, // several batches
			Backoff:  func(int) time.Duration { return 0 },
			Applied:  p.applied,
		}
	}

	stop := run(t, newFollower())
	p.waitFor(t, 30)
	// Live: committed while the follower runs.
	appendN(t, src, log, 31, 40)
	p.waitFor(t, 40)
	stop()

	if c := cursorOf(t, dst, "segmentation"); c != 40 {
		t.Fatalf("cursor = %d, want 40", c)
	}
	if n := calls.Load(); n != 40 {
		t.Errorf("handler ran %d times for 40 events", n)
	}

	// Committed while the follower is down; a new follower resumes after 40.
	appendN(t, src, log, 41, 50)
	calls.Store(0)
	stop = run(t, newFollower())
	p.waitFor(t, 50)
	stop()

	if n := calls.Load(); n != 10 {
		t.Errorf("after restart the handler ran %d times, want 10 (events 41-50 only)", n)
	}
	if c := cursorOf(t, dst, "segmentation"); c != 50 {
		t.Errorf("cursor = %d, want 50", c)
	}
	counts := appliedCounts(t, dst)
	if len(counts) != 50 {
		t.Errorf("%d events applied, want 50", len(counts))
	}
	for seq := uint64(1); seq <= 50; seq++ {
		if counts[seq] != 1 {
			t.Errorf("event %d took effect %d times, want once", seq, counts[seq])
		}
	}
	if dl, err := feed.DeadLetters(dst, "segmentation"); err != nil || len(dl) != 0 {
		t.Errorf("dead letters = %v, %v; want none", dl, err)
	}
}

func TestFollowerSetsAsideEventThatKeepsFailing(t *testing.T) {
	const bad, maxAttempts = 4, 3
	src, log, _ := producer(t)
	dst := consumer(t)
	appendN(t, src, log, 1, 10)

	var calls atomic.Int64
	var badCalls atomic.Int64
	good := countingHandler(&calls)
	p := newProgress()
	f := &feed.Follower{
		Name:   "loyalty",
		DB:     dst,
		Source: logSource(t, log),
		Handle: func(ctx context.Context, tx *bolt.Tx, ev *feedv1.Event) error {
			if ev.Sequence == bad {
				badCalls.Add(1)
				return fmt.Errorf("cannot apply %s", ev.Key)
			}
			return good(ctx, tx, ev)
		},
		Logger:      slog.New(slog.DiscardHandler),
		MaxAttempts: maxAttempts,
		Backoff:     func(int) time.Duration { return 0 },
		Applied:     p.applied,
	}
	stop := run(t, f)
	p.waitFor(t, 10)
	stop()

	dl, err := feed.DeadLetters(dst, "loyalty")
	if err != nil {
		t.Fatal(err)
	}
	if want := []feed.DeadLetter{{Sequence: bad, Error: "cannot apply c4"}}; len(dl) != 1 || dl[0] != want[0] {
		t.Errorf("dead letters = %+v, want %+v", dl, want)
	}
	// Once in its batch, then MaxAttempts times on its own.
	if n := badCalls.Load(); n != maxAttempts+1 {
		t.Errorf("failing event was tried %d times, want %d", n, maxAttempts+1)
	}
	if c := cursorOf(t, dst, "loyalty"); c != 10 {
		t.Errorf("cursor = %d, want 10", c)
	}
	counts := appliedCounts(t, dst)
	for seq := uint64(1); seq <= 10; seq++ {
		want := uint64(1)
		if seq == bad {
			want = 0
		}
		if counts[seq] != want {
			t.Errorf("event %d took effect %d times, want %d", seq, counts[seq], want)
		}
	}
	if dl, err := feed.DeadLetters(dst, "other"); err != nil || len(dl) != 0 {
		t.Errorf("another follower's dead letters = %v, %v; want none", dl, err)
	}
}

func TestFollowerSpanJoinsTheRequestTrace(t *testing.T) {
	srcRec := tracetest.NewSpanRecorder()
	srcTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(srcRec))
	dstRec := tracetest.NewSpanRecorder()
	dstTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(dstRec))

	src, log, _ := producer(t)
	dst := consumer(t)

	// Event 1 is written by a traced request, event 2 by untraced work.
	reqCtx, reqSpan := srcTP.Tracer("test").Start(context.Background(), "CreateCustomer")
	err := src.Update(reqCtx, func(tx *bolt.Tx) error {
		_, err := log.Append(reqCtx, tx, "acme", "customer.created", "c1", wrapperspb.String("c1"))
		return err
	})
	reqSpan.End()
	if err != nil {
		t.Fatal(err)
	}
	appended := read(t, log, tenancy.All, 0, 1)[0]
	req := reqSpan.SpanContext()
	if tp := appended.TraceContext["traceparent"]; !strings.Contains(tp, req.TraceID().String()) || !strings.Contains(tp, req.SpanID().String()) {
		t.Fatalf("traceparent = %q, want trace %s span %s", tp, req.TraceID(), req.SpanID())
	}
	appendTx(t, context.Background(), src, log, rec{"acme", "c2"})

	var handlerTrace sync.Map // seq -> trace id seen by the handler
	p := newProgress()
	stop := run(t, &feed.Follower{
		Name:   "care",
		DB:     dst,
		Source: logSource(t, log),
		Handle: func(ctx context.Context, _ *bolt.Tx, ev *feedv1.Event) error {
			handlerTrace.Store(ev.Sequence, trace.SpanContextFromContext(ctx).TraceID())
			return nil
		},
		TracerProvider: dstTP,
		Applied:        p.applied,
	})
	p.waitFor(t, 2)
	stop()

	spans := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range dstRec.Ended() {
		if strings.HasPrefix(s.Name(), "feed.apply ") {
			spans[s.Name()] = s
		}
	}
	created, ok := spans["feed.apply customer.created"]
	if !ok {
		t.Fatalf("no follower span for event 1; spans: %v", spans)
	}
	if created.SpanContext().TraceID() != req.TraceID() {
		t.Errorf("follower span trace = %s, want the request's %s", created.SpanContext().TraceID(), req.TraceID())
	}
	if created.Parent().SpanID() != req.SpanID() || !created.Parent().IsRemote() {
		t.Errorf("follower span parent = %v, want the request span %s", created.Parent(), req.SpanID())
	}
	if created.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("follower span kind = %v, want consumer", created.SpanKind())
	}
	if tid, _ := handlerTrace.Load(uint64(1)); tid != req.TraceID() {
		t.Errorf("handler ran in trace %v, want %s", tid, req.TraceID())
	}

	untraced, ok := spans["feed.apply customer.updated"]
	if !ok {
		t.Fatal("no follower span for event 2")
	}
	if untraced.Parent().IsValid() || untraced.SpanContext().TraceID() == req.TraceID() {
		t.Errorf("span of an untraced event has parent %v in trace %s, want a new root", untraced.Parent(), untraced.SpanContext().TraceID())
	}
}
