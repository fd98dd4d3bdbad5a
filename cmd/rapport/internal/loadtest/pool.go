package loadtest

import (
	"context"
	"errors"
	"fmt"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// Op performs one operation. seq numbers the operations of a Run from 0,
// warm-up included and without gaps or repeats, so an operation can derive
// distinct ids from it; worker is the index of the worker running it.
type Op func(ctx context.Context, worker int, seq int64) error

// Options bounds a Run.
type Options struct {
	// Concurrency is the number of workers, each with one operation in
	// flight at a time.
	Concurrency int
	// Duration is how long the measured part lasts: no operation starts
	// after it, and those in flight are waited for. Zero means no limit.
	Duration time.Duration
	// MaxOps is the most operations the measured part starts. Zero means
	// no limit; at least one of Duration and MaxOps must be set.
	MaxOps int64
	// Warmup runs the operation for this long, unrecorded, before the
	// measured part, so connections, caches and the Go heap are warm.
	Warmup time.Duration
}

// Validate checks the bounds.
func (o Options) Validate() error {
	var errs []error
	if o.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("loadtest: concurrency %d is less than 1", o.Concurrency))
	}
	if o.Duration < 0 || o.MaxOps < 0 || o.Warmup < 0 {
		errs = append(errs, errors.New("loadtest: negative duration, op limit or warm-up"))
	}
	if o.Duration == 0 && o.MaxOps == 0 {
		errs = append(errs, errors.New("loadtest: a duration or an op limit is required"))
	}
	return errors.Join(errs...)
}

// maxKeptErrors bounds the distinct errors a Result keeps.
const maxKeptErrors = 5

// Result is the measured part of a Run.
type Result struct {
	// Ops is the number of operations that succeeded; Errors the number
	// that failed. Operations cut short because ctx ended count as neither.
	Ops    int64
	Errors int64
	// FirstErrors are the first few errors, for the report.
	FirstErrors []error
	// Elapsed runs from the start of the measured part until its last
	// operation returned.
	Elapsed time.Duration
	// Latency holds the duration of every successful operation.
	Latency Latencies
	// CPU is the CPU time the whole process used during the measured part
	// (zero where it cannot be measured): the load generator's and, when
	// the system under test runs in the process, the system's.
	CPU time.Duration
	// Allocs is how many heap objects the whole process allocated during
	// the measured part: unlike CPU time, other processes on the machine
	// do not change it.
	Allocs uint64
}

// PerSecond is the rate of successful operations.
func (r Result) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// Err joins the kept errors, nil when every operation succeeded.
func (r Result) Err() error {
	if r.Errors == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d operations failed: %w", r.Errors, r.Ops+r.Errors, errors.Join(r.FirstErrors...))
}

// Run runs op on Concurrency workers, first for the warm-up and then for the
// measured part, and stops by itself at Duration or MaxOps, whichever comes
// first, or earlier when ctx ends.
//
// Operations get ctx, not the deadline: one in flight when the time is up
// finishes and is counted, as in a real closed loop, rather than being
// cancelled into an error. The run's ctx ending does cancel them; those are
// not counted.
func Run(ctx context.Context, opts Options, op Op) (Result, error) {
	if err := opts.Validate(); err != nil {
		return Result{}, err
	}
	var seq atomic.Int64
	if opts.Warmup > 0 {
		stage(ctx, opts.Concurrency, opts.Warmup, opts.MaxOps, &seq, op, false)
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
	}
	cpu, allocs := processCPU(), heapAllocs()
	res := stage(ctx, opts.Concurrency, opts.Duration, opts.MaxOps, &seq, op, true)
	res.CPU, res.Allocs = processCPU()-cpu, heapAllocs()-allocs
	return res, ctx.Err()
}

// heapAllocs is the number of heap objects the process has allocated.
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// Interleave measures several operations in turn, in rounds short
// stretches each (A B A B …, Duration/rounds a stretch), after a warm-up of
// each, and returns one Result per operation, its stretches added up. On a
// shared machine the load of the neighbours drifts over seconds; measured
// one after the other, two operations can meet different machines, and
// their ratio says as much about the drift as about them. Interleaved,
// they meet the same. Duration is required; MaxOps, when set, bounds each
// operation's calls, MaxOps/rounds a stretch.
func Interleave(ctx context.Context, opts Options, rounds int, ops ...Op) ([]Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Duration <= 0 || rounds < 1 {
		return nil, errors.New("loadtest: interleaving needs a duration and at least one round")
	}
	var maxOps int64
	if opts.MaxOps > 0 {
		maxOps = max(1, opts.MaxOps/int64(rounds))
	}
	seqs := make([]atomic.Int64, len(ops))
	if opts.Warmup > 0 {
		for i, op := range ops {
			stage(ctx, opts.Concurrency, opts.Warmup, 0, &seqs[i], op, false)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	results := make([]Result, len(ops))
	lat := make([][]time.Duration, len(ops))
	for range rounds {
		for i, op := range ops {
			cpu, allocs := processCPU(), heapAllocs()
			r := stage(ctx, opts.Concurrency, opts.Duration/time.Duration(rounds), maxOps, &seqs[i], op, true)
			r.CPU, r.Allocs = processCPU()-cpu, heapAllocs()-allocs
			results[i].add(r)
			lat[i] = append(lat[i], r.Latency.sorted...)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	for i := range results {
		results[i].Latency = NewLatencies(lat[i])
	}
	return results, nil
}

// add counts r's operations, errors, time and resources into a; not its
// latencies.
func (a *Result) add(r Result) {
	a.Ops += r.Ops
	a.Errors += r.Errors
	for _, err := range r.FirstErrors {
		if len(a.FirstErrors) < maxKeptErrors {
			a.FirstErrors = append(a.FirstErrors, err)
		}
	}
	a.Elapsed += r.Elapsed
	a.CPU += r.CPU
	a.Allocs += r.Allocs
}

// worker is what one worker saw.
type worker struct {
	ops, errors int64
	errs        []error
	latencies   []time.Duration
}

// stage runs one bounded stretch of the closed loop.
func stage(ctx context.Context, concurrency int, d time.Duration, maxOps int64, seq *atomic.Int64, op Op, record bool) Result {
	start := time.Now()
	var deadline time.Time
	if d > 0 {
		deadline = start.Add(d)
	}
	// The clock, not a timer, ends the stage: a timer's goroutine may run
	// late on a busy machine.
	more := func() bool {
		return ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline))
	}
	var started atomic.Int64
	workers := make([]worker, concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		wg.Go(func() {
			for more() {
				if maxOps > 0 && started.Add(1) > maxOps {
					return
				}
				t0 := time.Now()
				err := op(ctx, i, seq.Add(1)-1)
				took := time.Since(t0)
				switch {
				case err != nil && ctx.Err() != nil:
					return // cut short by the caller, not a failure
				case err != nil:
					w.errors++
					if len(w.errs) < maxKeptErrors {
						w.errs = append(w.errs, err)
					}
				default:
					w.ops++
					if record {
						w.latencies = append(w.latencies, took)
					}
				}
			}
		})
	}
	wg.Wait()
	res := Result{Elapsed: time.Since(start)}
	var all []time.Duration
	for _, w := range workers {
		res.Ops += w.ops
		res.Errors += w.errors
		for _, err := range w.errs {
			if len(res.FirstErrors) < maxKeptErrors {
				res.FirstErrors = append(res.FirstErrors, err)
			}
		}
		all = append(all, w.latencies...)
	}
	res.Latency = NewLatencies(all)
	return res
}
