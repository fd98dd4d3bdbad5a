package feed_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/tenancy"
)

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// producer opens a service database with a feed, on a fake clock.
func producer(t *testing.T) (*boltdb.DB, *feed.Log, *clock.Fake) {
	t.Helper()
	db := boltdb.OpenTemp(t, boltdb.Options{Schema: 1, Buckets: feed.Buckets})
	clk := clock.NewFake(epoch)
	return db, feed.NewLog(db, clk), clk
}

type rec struct{ tenant, key string }

// appendTx appends one event per record in one transaction.
func appendTx(t *testing.T, ctx context.Context, db *boltdb.DB, log *feed.Log, recs ...rec) {
	t.Helper()
	err := db.Update(ctx, func(tx *bolt.Tx) error {
		for _, r := range recs {
			if _, err := log.Append(ctx, tx, r.tenant, "customer.updated", r.key, wrapperspb.String("payload of "+r.key)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("append: %v", err)
	}
}

func seqs(evs []*feedv1.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, ev := range evs {
		out[i] = ev.Sequence
	}
	return out
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func read(t *testing.T, log *feed.Log, tenant string, after uint64, limit int) []*feedv1.Event {
	t.Helper()
	evs, err := log.Read(tenant, after, limit)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return evs
}

func last(t *testing.T, log *feed.Log) uint64 {
	t.Helper()
	n, err := log.Last()
	if err != nil {
		t.Fatalf("last: %v", err)
	}
	return n
}

func TestAppendThenReadInOrder(t *testing.T) {
	ctx := context.Background()
	db, log, clk := producer(t)
	if n := last(t, log); n != 0 {
		t.Fatalf("Last of an empty feed = %d", n)
	}

	appendTx(t, ctx, db, log, rec{"t1", "c1"})
	clk.Advance(time.Minute)
	appendTx(t, ctx, db, log, rec{"t1", "c2"}, rec{"t2", "c3"}, rec{"t1", "c4"})
	appendTx(t, ctx, db, log, rec{"t2", "c5"}, rec{"t1", "c6"})

	evs := read(t, log, tenancy.All, 0, 100)
	if got, want := seqs(evs), seqRange(1, 6); !slices.Equal(got, want) {
		t.Fatalf("sequences = %v, want %v", got, want)
	}
	for i, ev := range evs {
		if want := fmt.Sprintf("c%d", i+1); ev.Key != want {
			t.Errorf("event %d key = %q, want %q", ev.Sequence, ev.Key, want)
		}
		if ev.Type != "customer.updated" {
			t.Errorf("event %d type = %q", ev.Sequence, ev.Type)
		}
		var p wrapperspb.StringValue
		if err := ev.Payload.UnmarshalTo(&p); err != nil || p.Value != "payload of "+ev.Key {
			t.Errorf("event %d payload = %q, %v", ev.Sequence, p.Value, err)
		}
	}
	if got := evs[0].Time.AsTime(); !got.Equal(epoch) {
		t.Errorf("event 1 time = %v, want the clock's %v", got, epoch)
	}
	if got, want := evs[1].Time.AsTime(), epoch.Add(time.Minute); !got.Equal(want) {
		t.Errorf("event 2 time = %v, want %v", got, want)
	}
	if n := last(t, log); n != 6 {
		t.Errorf("Last = %d, want 6", n)
	}

	if got, want := seqs(read(t, log, tenancy.All, 2, 3)), []uint64{3, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("Read after 2, limit 3 = %v, want %v", got, want)
	}
	if got := read(t, log, tenancy.All, 6, 10); len(got) != 0 {
		t.Errorf("Read after the last event = %v, want none", seqs(got))
	}
}

func TestRolledBackAppendLeavesNoEventAndNoGap(t *testing.T) {
	ctx := context.Background()
	db, log, _ := producer(t)
	appendTx(t, ctx, db, log, rec{"t1", "c1"}, rec{"t1", "c2"})

	errBoom := errors.New("boom")
	err := db.Update(ctx, func(tx *bolt.Tx) error {
		if _, err := log.Append(ctx, tx, "t1", "customer.updated", "lost", wrapperspb.String("x")); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update err = %v", err)
	}
	if n := last(t, log); n != 2 {
		t.Errorf("Last after a rolled-back append = %d, want 2 (NextSequence is rolled back too)", n)
	}

	appendTx(t, ctx, db, log, rec{"t1", "c3"})
	evs := read(t, log, tenancy.All, 0, 100)
	if got, want := seqs(evs), seqRange(1, 3); !slices.Equal(got, want) {
		t.Fatalf("sequences = %v, want %v", got, want)
	}
	if evs[2].Key != "c3" {
		t.Errorf("event 3 is %q, want the next committed write c3", evs[2].Key)
	}
}

// TestConcurrentAppendsHaveNoGaps: with group commit, some writes in a shared
// transaction fail; the feed still holds exactly the committed writes, in
// sequences 1..N, and each caller's event is the one stored at its sequence.
func TestConcurrentAppendsHaveNoGaps(t *testing.T) {
	const n = 60
	ctx := context.Background()
	db, log, _ := producer(t)

	fails := func(i int) bool { return i%5 == 3 }
	var (
		mu  sync.Mutex
		got = map[uint64]string{}
		wg  sync.WaitGroup
	)
	for i := range n {
		wg.Go(func() {
			key := fmt.Sprintf("c%d", i)
			var seq uint64
			err := db.Update(ctx, func(tx *bolt.Tx) error {
				var err error
				// The last run of fn is the one that committed.
				seq, err = log.Append(ctx, tx, "t1", "customer.updated", key, wrapperspb.String(key))
				if err != nil {
					return err
				}
				if fails(i) {
					return errors.New("rejected")
				}
				return nil
			})
			if fails(i) != (err != nil) {
				t.Errorf("write %d: err = %v", i, err)
				return
			}
			if err == nil {
				mu.Lock()
				got[seq] = key
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	committed := n - n/5
	evs := read(t, log, tenancy.All, 0, 1000)
	if gotSeqs, want := seqs(evs), seqRange(1, uint64(committed)); !slices.Equal(gotSeqs, want) {
		t.Fatalf("sequences = %v, want %v", gotSeqs, want)
	}
	for _, ev := range evs {
		if got[ev.Sequence] != ev.Key {
			t.Errorf("event %d is %q, but the write told it got that sequence is %q", ev.Sequence, ev.Key, got[ev.Sequence])
		}
	}
}

func TestReadFiltersByTenant(t *testing.T) {
	ctx := context.Background()
	db, log, _ := producer(t)
	// "acme-eu" contains "acme": the cheap pre-filter matches it, the decode must not.
	appendTx(t, ctx, db, log, rec{"acme", "c1"}, rec{"acme-eu", "c2"}, rec{"globex", "c3"})
	appendTx(t, ctx, db, log, rec{"acme", "c4"}, rec{"globex", "c5"}, rec{"acme", "c6"})

	for _, tc := range []struct {
		tenant string
		after  uint64
		limit  int
		want   []uint64
	}{
		{"acme", 0, 100, []uint64{1, 4, 6}},
		{"acme", 1, 100, []uint64{4, 6}},
		{"acme", 0, 2, []uint64{1, 4}},
		{"acme-eu", 0, 100, []uint64{2}},
		{"globex", 0, 100, []uint64{3, 5}},
		{"initech", 0, 100, []uint64{}},
		{tenancy.All, 0, 100, seqRange(1, 6)},
	} {
		evs := read(t, log, tc.tenant, tc.after, tc.limit)
		if got := seqs(evs); !slices.Equal(got, tc.want) {
			t.Errorf("Read(%q, %d, %d) = %v, want %v", tc.tenant, tc.after, tc.limit, got, tc.want)
		}
		for _, ev := range evs {
			if tc.tenant != tenancy.All && ev.Tenant != tc.tenant {
				t.Errorf("Read(%q) returned event %d of %q", tc.tenant, ev.Sequence, ev.Tenant)
			}
		}
	}
}

func TestServeCatchesUpAndReturns(t *testing.T) {
	ctx := context.Background()
	db, log, _ := producer(t)
	appendTx(t, ctx, db, log, rec{"acme", "c1"}, rec{"globex", "c2"}, rec{"acme", "c3"}, rec{"acme", "c4"})

	var got []*feedv1.Event
	err := log.Serve(ctx, "acme", 1, false, func(ev *feedv1.Event) error {
		got = append(got, ev)
		return nil
	})
	if err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if s, want := seqs(got), []uint64{3, 4}; !slices.Equal(s, want) {
		t.Errorf("Serve(acme, after 1) sent %v, want %v", s, want)
	}

	errStop := errors.New("client went away")
	sent := 0
	err = log.Serve(ctx, tenancy.All, 0, false, func(*feedv1.Event) error {
		sent++
		if sent == 2 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) || sent != 2 {
		t.Errorf("Serve with a failing send: err = %v after %d sends, want the send's error after 2", err, sent)
	}
}

func TestServeWaitsForNewCommits(t *testing.T) {
	db, log, _ := producer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	appendTx(t, ctx, db, log, rec{"acme", "c1"}, rec{"globex", "c2"})

	got := make(chan *feedv1.Event)
	served := make(chan error, 1)
	go func() {
		served <- log.Serve(ctx, "acme", 0, true, func(ev *feedv1.Event) error {
			select {
			case got <- ev:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	next := func() *feedv1.Event {
		t.Helper()
		select {
		case ev := <-got:
			return ev
		case err := <-served:
			t.Fatalf("Serve returned early: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("Serve sent nothing")
		}
		return nil
	}

	// Serve has started: it sent what was there.
	if ev := next(); ev.Sequence != 1 {
		t.Fatalf("first event = %d, want 1", ev.Sequence)
	}
	// Committed after Serve caught up; the other tenant's event is skipped.
	appendTx(t, ctx, db, log, rec{"globex", "c3"})
	appendTx(t, ctx, db, log, rec{"acme", "c4"})
	if ev := next(); ev.Sequence != 4 || ev.Key != "c4" {
		t.Fatalf("next event = %d %q, want 4 c4", ev.Sequence, ev.Key)
	}

	cancel()
	select {
	case err := <-served:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Serve after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}

// TestPrepareAnyMatchesPrepare appends a payload encoded by the caller: the
// stored event must be the one Prepare would have built from the message.
func TestPrepareAnyMatchesPrepare(t *testing.T) {
	ctx := context.Background()
	db, log, _ := producer(t)
	msg := wrapperspb.String("payload")
	viaPrepare, err := log.Prepare(ctx, "acme", "customer.updated", "c1", msg)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	viaAny, err := log.PrepareAny(ctx, "acme", "customer.updated", "c1",
		&anypb.Any{TypeUrl: "type.googleapis.com/google.protobuf.StringValue", Value: raw})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(ctx, func(tx *bolt.Tx) error {
		for _, p := range []feed.Prepared{viaPrepare, viaAny} {
			if _, err := log.AppendPrepared(tx, p); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	evs, err := log.Read("acme", 0, 10)
	if err != nil || len(evs) != 2 {
		t.Fatalf("read: %d events, %v", len(evs), err)
	}
	evs[0].Sequence, evs[1].Sequence = 0, 0
	if !proto.Equal(evs[0], evs[1]) {
		t.Errorf("PrepareAny stored %v, Prepare %v", evs[1], evs[0])
	}
	got := &wrapperspb.StringValue{}
	if err := evs[1].GetPayload().UnmarshalTo(got); err != nil || got.GetValue() != "payload" {
		t.Errorf("payload = %v, %v", got, err)
	}
}

// TestPreparedEventDecodes: the event Prepare encodes by hand decodes to
// the generated message with every field, for a request with a trace and
// baggage and for one without, at times before and after 1970 and with
// and without nanoseconds.
func TestPreparedEventDecodes(t *testing.T) {
	db, log, clk := producer(t)
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	traced := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled}))
	member, _ := baggage.NewMember("campaign", "spring")
	bag, _ := baggage.New(member)
	traced = baggage.ContextWithBaggage(traced, bag)
	payload := wrapperspb.String("payload")
	for _, c := range []struct {
		ctx              context.Context
		at               time.Time
		tenant, typ, key string
		traceContext     map[string]string
	}{
		{traced, epoch.Add(123 * time.Nanosecond), "acme", "customer.updated", "c1",
			map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "baggage": "campaign=spring"}},
		{context.Background(), time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC), "acme", "t", "", nil},
		{context.Background(), time.Unix(0, 0), "", "", "", nil},
	} {
		clk.Set(c.at)
		p, err := log.Prepare(c.ctx, c.tenant, c.typ, c.key, payload)
		if err != nil {
			t.Fatal(err)
		}
		var seq uint64
		if err := db.Update(context.Background(), func(tx *bolt.Tx) error {
			seq, err = log.AppendPrepared(tx, p)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		evs, err := log.Read(tenancy.All, seq-1, 1)
		if err != nil || len(evs) != 1 {
			t.Fatalf("read %d: %v %v", seq, evs, err)
		}
		want := &feedv1.Event{Sequence: seq, Tenant: c.tenant, Type: c.typ, Key: c.key, Time: timestamppb.New(c.at), TraceContext: c.traceContext}
		if want.Payload, err = anypb.New(payload); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(evs[0], want) {
			t.Errorf("stored event\n%v\nwant\n%v", evs[0], want)
		}
	}
}
