package loadtest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// seqs records the sequence numbers an op was called with.
type seqs struct {
	mu  sync.Mutex
	all []int64
}

func (s *seqs) add(n int64) {
	s.mu.Lock()
	s.all = append(s.all, n)
	s.mu.Unlock()
}

// distinctFromZero checks that the recorded numbers are exactly 0..n-1.
func (s *seqs) distinctFromZero(t *testing.T) {
	t.Helper()
	got := slices.Sorted(slices.Values(s.all))
	for i, n := range got {
		if n != int64(i) {
			t.Fatalf("sequence numbers are not 0..%d without gaps or repeats: position %d holds %d", len(got)-1, i, n)
		}
	}
}

func TestRunStopsAtMaxOps(t *testing.T) {
	var calls seqs
	res, err := Run(t.Context(), Options{Concurrency: 8, MaxOps: 1000}, func(_ context.Context, _ int, seq int64) error {
		calls.add(seq)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 1000 || res.Errors != 0 || len(calls.all) != 1000 {
		t.Errorf("Ops = %d, Errors = %d, calls = %d; want exactly 1000 successful calls", res.Ops, res.Errors, len(calls.all))
	}
	if res.Latency.Len() != 1000 {
		t.Errorf("recorded %d latencies, want 1000", res.Latency.Len())
	}
	calls.distinctFromZero(t)
}

func TestRunStopsAtDeadline(t *testing.T) {
	const d = 20 * time.Millisecond
	res, err := Run(t.Context(), Options{Concurrency: 4, Duration: d}, func(ctx context.Context, _ int, _ int64) error {
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops == 0 {
		t.Error("no operations ran")
	}
	if res.Elapsed < d {
		t.Errorf("Elapsed = %v, want at least the duration %v", res.Elapsed, d)
	}
	if got, want := res.PerSecond(), float64(res.Ops)/res.Elapsed.Seconds(); got != want {
		t.Errorf("PerSecond = %v, want %v", got, want)
	}
}

// TestRunLetsInFlightOpsFinish: an operation running when the time is up
// completes with the caller's context, not a cancelled one, and counts.
func TestRunLetsInFlightOpsFinish(t *testing.T) {
	const d = time.Millisecond
	var started atomic.Int64
	res, err := Run(t.Context(), Options{Concurrency: 1, Duration: d}, func(ctx context.Context, _ int, _ int64) error {
		if started.Add(1) > 1 {
			return errors.New("an operation started after the deadline")
		}
		// A slow operation, still running when the deadline passes.
		<-time.After(10 * d)
		return ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 1 || res.Errors != 0 {
		t.Errorf("Ops = %d, Errors = %d (%v); want the one in-flight op counted as a success", res.Ops, res.Errors, res.Err())
	}
}

// TestRunStopsWhenContextEnds: the caller's context ending stops the run
// long before its duration, and the operations it cut short are not errors.
func TestRunStopsWhenContextEnds(t *testing.T) {
	const workers = 4
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var cancelled atomic.Bool
	var startedAfter atomic.Int64
	res, err := Run(ctx, Options{Concurrency: workers, Duration: time.Hour}, func(ctx context.Context, _ int, seq int64) error {
		if cancelled.Load() {
			startedAfter.Add(1)
		}
		if seq == 100 {
			cancel()
			cancelled.Store(true)
		}
		return ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if res.Errors != 0 {
		t.Errorf("Errors = %d, want 0: cancelled operations are not failures", res.Errors)
	}
	if res.Ops < 100 {
		t.Errorf("Ops = %d, want at least the 100 before the cancel", res.Ops)
	}
	// A worker may have passed its check of the context just before the
	// cancel; none may start a second operation after it.
	if n := startedAfter.Load(); n > workers {
		t.Errorf("%d operations started after the cancel, want at most one per worker (%d)", n, workers)
	}
}

func TestRunWarmupIsNotRecorded(t *testing.T) {
	var calls seqs
	res, err := Run(t.Context(), Options{Concurrency: 2, MaxOps: 50, Warmup: 5 * time.Millisecond}, func(_ context.Context, _ int, seq int64) error {
		calls.add(seq)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 50 || res.Latency.Len() != 50 {
		t.Errorf("Ops = %d, latencies = %d; want the 50 measured ops only", res.Ops, res.Latency.Len())
	}
	if len(calls.all) < 51 {
		t.Errorf("%d calls, want the warm-up's on top of the 50 measured", len(calls.all))
	}
	calls.distinctFromZero(t) // warm-up and measurement share one sequence
}

func TestRunCountsErrors(t *testing.T) {
	boom := errors.New("boom")
	res, err := Run(t.Context(), Options{Concurrency: 3, MaxOps: 100}, func(_ context.Context, _ int, seq int64) error {
		if seq%2 == 1 {
			return boom
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 50 || res.Errors != 50 {
		t.Errorf("Ops = %d, Errors = %d; want 50 and 50", res.Ops, res.Errors)
	}
	if res.Latency.Len() != 50 {
		t.Errorf("recorded %d latencies, want only the 50 successes", res.Latency.Len())
	}
	if len(res.FirstErrors) == 0 || len(res.FirstErrors) > maxKeptErrors {
		t.Errorf("kept %d errors, want 1 to %d", len(res.FirstErrors), maxKeptErrors)
	}
	if !errors.Is(res.Err(), boom) {
		t.Errorf("Err() = %v, want it to wrap boom", res.Err())
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{Concurrency: 0, MaxOps: 1},
		{Concurrency: 1},
		{Concurrency: 1, Duration: -time.Second},
		{Concurrency: 1, MaxOps: 1, Warmup: -time.Second},
	} {
		if o.Validate() == nil {
			t.Errorf("Validate(%+v) = nil, want an error", o)
		}
		if _, err := Run(t.Context(), o, func(context.Context, int, int64) error {
			t.Fatal("op called with invalid options")
			return nil
		}); err == nil {
			t.Errorf("Run(%+v) = nil error", o)
		}
	}
}

func TestRunMeasuresCPU(t *testing.T) {
	var sink atomic.Int64
	res, err := Run(t.Context(), Options{Concurrency: 2, MaxOps: 100}, func(context.Context, int, int64) error {
		sum := int64(0)
		for i := range int64(1_000_000) {
			sum += i * i
		}
		sink.Add(sum)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// About 100 ms of work; the kernel counts CPU time in ticks of at most 10 ms.
	if res.CPU <= 0 {
		t.Errorf("CPU = %v for 100 busy operations, want more than zero", res.CPU)
	}
}

// TestInterleaveAlternates: the operations run in turn, one stretch each
// per round, and each one's result counts its own calls only.
func TestInterleaveAlternates(t *testing.T) {
	var mu sync.Mutex
	var turns []string // who ran, each time the runner changed
	var a, b seqs
	op := func(name string, s *seqs) Op {
		return func(_ context.Context, _ int, seq int64) error {
			s.add(seq)
			mu.Lock()
			if len(turns) == 0 || turns[len(turns)-1] != name {
				turns = append(turns, name)
			}
			mu.Unlock()
			return nil
		}
	}
	countA, countB := op("a", &a), op("b", &b)
	res, err := Interleave(t.Context(), Options{Concurrency: 2, Duration: 30 * time.Millisecond, Warmup: 5 * time.Millisecond}, 3, countA, countB)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "a", "b", "a", "b", "a", "b"}; !slices.Equal(turns, want) {
		t.Errorf("turns %v, want %v (a warm-up each, then three rounds)", turns, want)
	}
	for i, s := range []*seqs{&a, &b} {
		s.distinctFromZero(t)
		r := res[i]
		if r.Ops == 0 || r.Ops > int64(len(s.all)) || int64(r.Latency.Len()) != r.Ops {
			t.Errorf("op %d: Ops %d, latencies %d, calls %d (warm-up included)", i, r.Ops, r.Latency.Len(), len(s.all))
		}
		if r.Elapsed < 30*time.Millisecond {
			t.Errorf("op %d: elapsed %v, want the three stretches of 10ms", i, r.Elapsed)
		}
	}
	if _, err := Interleave(t.Context(), Options{Concurrency: 1, MaxOps: 10}, 3, countA); err == nil {
		t.Error("Interleave with an op limit and no duration: no error")
	}
	res, err = Interleave(t.Context(), Options{Concurrency: 1, Duration: time.Minute, MaxOps: 30}, 3, countA)
	if err != nil || res[0].Ops != 30 {
		t.Errorf("Interleave of 3 rounds, at most 30 calls: %d calls, err %v; want 10 a round", res[0].Ops, err)
	}
}
