package timers

import (
	"context"
	"log/slog"
	"time"

	"rapport.dev/platform/clock"
)

// Run is a service's timer loop: it calls fire with the clock's time, then
// sleeps on the (injected) clock until the next due time fire returned, or
// until wake says a commit scheduled an earlier timer, and again, until ctx
// ends. A zero next means no timer is pending. A failed fire is logged and
// retried a second after the time it was called with.
func Run(ctx context.Context, clk clock.Clock, log *slog.Logger, wake <-chan struct{},
	fire func(ctx context.Context, now time.Time) (next time.Time, err error)) {
	for {
		now := clk.Now().UTC()
		next, err := fire(ctx, now)
		if err != nil && ctx.Err() == nil {
			log.ErrorContext(ctx, "firing timers failed", "error", err)
			next = now.Add(time.Second)
		}
		if !clock.WaitUntil(ctx, clk, next, wake) {
			return
		}
	}
}
