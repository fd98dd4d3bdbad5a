// Package shutdown runs the steps of a graceful stop in the order they were
// added, each under the same deadline, and reports every failure. The order
// every Rapport process uses is:
//
//  1. health NOT_SERVING, so load balancers stop sending new work;
//  2. HTTP Shutdown (gateway), letting in-flight requests finish;
//  3. gRPC GracefulStop under the deadline, then Stop;
//  4. background workers (feed followers) stopped and waited for;
//  5. client connections closed;
//  6. bbolt files closed (after every writer is gone);
//  7. telemetry flushed, last, so the spans of the steps above are exported.
package shutdown

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

type step struct {
	name string
	fn   func(context.Context) error
}

// Sequence is an ordered list of shutdown steps. The zero value is ready.
type Sequence struct {
	steps []step
}

// Add appends a step.
func (s *Sequence) Add(name string, fn func(context.Context) error) {
	s.steps = append(s.steps, step{name, fn})
}

// Run runs every step in order, even after one fails, within timeout.
func (s *Sequence) Run(timeout time.Duration, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	for _, st := range s.steps {
		start := time.Now()
		if err := st.fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", st.name, err))
			log.Error("shutdown step failed", "step", st.name, "error", err)
			continue
		}
		log.Debug("shutdown step done", "step", st.name, "took", time.Since(start))
	}
	return errors.Join(errs...)
}
