package importer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
)

// Retry policy for whole calls. Items are idempotent (customer ids and
// event ids are client-supplied), so resending a batch whose answer was
// lost records nothing twice.
const (
	maxAttempts  = 6
	firstBackoff = 200 * time.Millisecond
	maxBackoff   = 5 * time.Second
)

// retryable are the codes that say "try again later" rather than "no".
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return true
	}
	return false
}

// call runs fn until it succeeds, fails for good, or runs out of attempts,
// waiting twice as long after each transient failure.
func (ru *runner) call(ctx context.Context, what string, fn func(context.Context) error) error {
	wait := firstBackoff
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if !retryable(err) || attempt == maxAttempts {
			return fmt.Errorf("%s: %w", what, err)
		}
		if err := ru.sleep(ctx, wait); err != nil {
			return err
		}
		wait = min(2*wait, maxBackoff)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// inBatches calls fn for consecutive slices [lo, hi) of n items, with up to
// the configured number of calls in flight. The first error stops the
// batches not yet started and is returned.
func (ru *runner) inBatches(ctx context.Context, n int, fn func(ctx context.Context, lo, hi int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(ru.opts.Concurrency, (n+ru.opts.BatchSize-1)/ru.opts.BatchSize) {
		wg.Go(func() {
			for lo := range next {
				if err := fn(ctx, lo, min(lo+ru.opts.BatchSize, n)); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for lo := 0; lo < n; lo += ru.opts.BatchSize {
		select {
		case next <- lo:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// ensureCustomers creates the file's customers, so that their events have
// someone to belong to. A customer that already exists is fine, whether the
// service says so with OK (same content) or ALREADY_EXISTS (created
// elsewhere with other data). It returns the customers that could not be
// created, with the service's reason; their rows are rejected.
func (ru *runner) ensureCustomers(ctx context.Context, ids []string, sum *Summary) (map[string]string, error) {
	var mu sync.Mutex
	failed := map[string]string{}
	err := ru.inBatches(ctx, len(ids), func(ctx context.Context, lo, hi int) error {
		req := &profilev1.BatchCreateCustomersRequest{}
		for _, id := range ids[lo:hi] {
			req.Customers = append(req.Customers, &profilev1.Customer{
				CustomerId:  id,
				Kind:        profilev1.CustomerKind_CUSTOMER_KIND_PERSON,
				DisplayName: "Customer " + id,
			})
		}
		var resp *profilev1.BatchCreateCustomersResponse
		err := ru.call(ctx, "creating customers", func(ctx context.Context) (err error) {
			resp, err = ru.client.BatchCreateCustomers(ctx, req)
			return err
		})
		if err != nil {
			return err
		}
		if len(resp.GetResults()) != hi-lo {
			return fmt.Errorf("creating customers: the service answered %d results for %d customers", len(resp.GetResults()), hi-lo)
		}
		mu.Lock()
		defer mu.Unlock()
		for i, res := range resp.GetResults() {
			switch code := codes.Code(res.GetStatus().GetCode()); {
			case code == codes.OK && res.GetCreated():
				sum.CustomersCreated++
			case code == codes.OK || code == codes.AlreadyExists:
			default:
				failed[ids[lo+i]] = "customer not created: " + statusReason(res.GetStatus().GetMessage(), code)
			}
		}
		return nil
	})
	sum.Customers = len(ids)
	return failed, err
}

// record sends events and notes each one's outcome.
func (ru *runner) record(ctx context.Context, events []*event) error {
	return ru.inBatches(ctx, len(events), func(ctx context.Context, lo, hi int) error {
		batch := events[lo:hi]
		req := &profilev1.BatchRecordEventsRequest{Events: make([]*profilev1.Event, len(batch))}
		for i, e := range batch {
			req.Events[i] = ru.message(e)
		}
		var resp *profilev1.BatchRecordEventsResponse
		err := ru.call(ctx, "recording events", func(ctx context.Context) (err error) {
			resp, err = ru.client.BatchRecordEvents(ctx, req)
			return err
		})
		if err != nil {
			return err
		}
		if len(resp.GetResults()) != len(batch) {
			return fmt.Errorf("recording events: the service answered %d results for %d events", len(resp.GetResults()), len(batch))
		}
		rows := 0
		for i, res := range resp.GetResults() {
			e := batch[i]
			switch code := codes.Code(res.GetStatus().GetCode()); {
			case code != codes.OK:
				e.outcome, e.reason = rejected, statusReason(res.GetStatus().GetMessage(), code)
			case res.GetCreated():
				e.outcome = created
			default:
				e.outcome = present
			}
			rows += len(e.rows)
		}
		ru.progress.add(rows)
		return nil
	})
}

// statusReason is the service's message, or its code when it gave none.
func statusReason(msg string, code codes.Code) string {
	if msg == "" {
		return code.String()
	}
	return msg
}

// message turns an event into its wire form.
func (ru *runner) message(e *event) *profilev1.Event {
	m := &profilev1.Event{
		EventId:    e.id,
		CustomerId: e.customer,
		OccurTime:  timestamppb.New(e.at),
		Source:     ru.opts.Source,
	}
	amount := &typev1.Money{AmountMinor: e.amount, Currency: e.currency}
	if e.refund {
		r := e.rows[0]
		reason := ""
		if r.order != "" {
			reason = "imported from order " + r.order
		}
		m.Kind = &profilev1.Event_Refund{Refund: &profilev1.Refund{
			OrderId: e.orderID, Amount: amount, Reason: reason, Cancellation: r.cancelled,
		}}
		return m
	}
	p := &profilev1.Purchase{OrderId: e.orderID, Amount: amount}
	for _, r := range e.rows {
		if !r.item {
			continue
		}
		item := &profilev1.LineItem{Sku: r.sku, Category: r.category, Quantity: r.quantity}
		if r.unitPrice > 0 {
			item.UnitPrice = &typev1.Money{AmountMinor: r.unitPrice, Currency: r.currency}
		}
		p.Items = append(p.Items, item)
	}
	m.Kind = &profilev1.Event_Purchase{Purchase: p}
	return m
}
