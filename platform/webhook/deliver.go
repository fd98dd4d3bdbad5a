package webhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
)

// How much of a response is read to reuse the connection,
// and how much of it is kept in LastError.
const (
	drainLimit   = 64 << 10
	excerptLimit = 256
)

// claim is a due message taken by the loop for one attempt.
type claim struct {
	dueKey []byte
	rec    *record
}

// Run delivers due messages until ctx ends, and then waits for the requests
// in flight to finish (they are cancelled, and not counted as attempts). It
// returns ctx's error, or the storage error that stopped it: an outcome that
// cannot be recorded stops the loop rather than sending the message again
// and again. Only one Run may be active per Outbox (ErrRunning).
func (o *Outbox) Run(ctx context.Context) error {
	if !o.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer o.running.Store(false)
	var wg sync.WaitGroup
	defer wg.Wait()
	loopCtx, cancel := context.WithCancel(ctx)
	defer cancel() // before wg.Wait: stops the requests in flight
	for {
		o.mu.Lock()
		fatal := o.fatal
		o.fatal = nil
		o.mu.Unlock()
		if fatal != nil {
			return fatal
		}
		claimed, next, err := o.claim(o.clock.Now())
		if err != nil {
			return err
		}
		for _, c := range claimed {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o.deliver(loopCtx, c)
			}()
		}
		if !clock.WaitUntil(ctx, o.clock, next, o.wake) {
			return ctx.Err()
		}
	}
}

// claim takes the due messages that fit in the free slots, oldest due
// first, and returns when the loop should look again: the due time of the
// first message not yet due, or zero when only a wake can change anything
// (no message waiting, or every slot busy).
func (o *Outbox) claim(now time.Time) ([]claim, time.Time, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	free := o.opts.MaxInFlight - len(o.inflight)
	if free <= 0 {
		return nil, time.Time{}, nil
	}
	var out []claim
	var next time.Time
	err := o.db.View(func(tx *bolt.Tx) error {
		outbox := tx.Bucket(OutboxBucket)
		c := tx.Bucket(DueBucket).Cursor()
		for k, v := c.First(); k != nil && len(out) < free; k, v = c.Next() {
			at, err := dueTime(k)
			if err != nil {
				return err
			}
			if at.After(now) {
				next = at
				return nil
			}
			if o.inflight[string(k)] {
				continue
			}
			raw := outbox.Get(v)
			if raw == nil {
				return fmt.Errorf("webhook: due entry %x names missing message %q", k, v)
			}
			rec, err := boltdb.GetJSON[record](raw)
			if err != nil {
				return err
			}
			out = append(out, claim{dueKey: boltdb.Copy(k), rec: rec})
		}
		return nil
	})
	if err != nil {
		return nil, time.Time{}, err
	}
	for _, c := range out {
		o.inflight[string(c.dueKey)] = true
	}
	return out, next, nil
}

// deliver makes one attempt and records its outcome, then frees the slot.
func (o *Outbox) deliver(ctx context.Context, c claim) {
	defer func() {
		o.mu.Lock()
		delete(o.inflight, string(c.dueKey))
		o.mu.Unlock()
		o.kick()
	}()
	m := c.rec.Message
	status, errText := o.send(ctx, m)
	delivered := status >= 200 && status < 300
	if status == 0 && ctx.Err() != nil {
		// Cut short by shutdown: not the receiver's failure. The message
		// stays due and is sent again by the next Run.
		return
	}
	state := Dead
	switch {
	case delivered:
		state = Delivered
	case retryable(status) && c.rec.Attempts+1 < o.opts.MaxAttempts:
		state = Pending
	}
	a := Attempt{Tenant: m.Tenant, ID: m.ID, Number: c.rec.Attempts + 1, Status: status, Error: errText, State: state}
	now := o.clock.Now()
	if state == Pending {
		a.NextAttempt = now.Add(o.opts.Backoff(m.ID, a.Number))
	}
	// A 2xx is recorded even when ctx has just ended: the receiver has it,
	// and recording it spares a duplicate after the restart.
	err := o.db.Update(context.WithoutCancel(ctx), func(tx *bolt.Tx) error {
		return o.record(tx, c, a, now)
	})
	if err != nil {
		o.log.ErrorContext(ctx, "webhook: recording an attempt failed; stopping delivery",
			"tenant", m.Tenant, "id", m.ID, "attempt", a.Number, "state", state, "error", err)
		o.mu.Lock()
		if o.fatal == nil {
			o.fatal = fmt.Errorf("webhook: record attempt on %s/%s: %w", m.Tenant, m.ID, err)
		}
		o.mu.Unlock()
		return
	}
	switch state {
	case Delivered:
		o.log.DebugContext(ctx, "webhook delivered", "tenant", m.Tenant, "id", m.ID, "event", m.EventType,
			"attempt", a.Number, "status", status)
	case Pending:
		o.log.WarnContext(ctx, "webhook attempt failed; will retry", "tenant", m.Tenant, "id", m.ID,
			"attempt", a.Number, "status", status, "error", errText, "next_attempt", a.NextAttempt)
	case Dead:
		o.log.ErrorContext(ctx, "webhook dead-lettered", "tenant", m.Tenant, "id", m.ID, "event", m.EventType,
			"attempt", a.Number, "status", status, "error", errText)
	}
	if o.opts.Recorded != nil {
		o.opts.Recorded(a)
	}
}

// record applies an attempt's outcome in tx. It may run more than once.
func (o *Outbox) record(tx *bolt.Tx, c claim, a Attempt, now time.Time) error {
	key := messageKey(a.Tenant, a.ID)
	raw := tx.Bucket(OutboxBucket).Get(key)
	if raw == nil {
		return fmt.Errorf("webhook: message %s/%s left the outbox during its attempt", a.Tenant, a.ID)
	}
	rec, err := boltdb.GetJSON[record](raw)
	if err != nil {
		return err
	}
	if !bytes.Equal(rec.DueKey, c.dueKey) {
		return fmt.Errorf("webhook: message %s/%s was rescheduled during its attempt", a.Tenant, a.ID)
	}
	if err := tx.Bucket(DueBucket).Delete(rec.DueKey); err != nil {
		return err
	}
	rec.Attempts, rec.LastStatus, rec.LastError = a.Number, a.Status, a.Error
	switch a.State {
	case Pending:
		return o.schedule(tx, key, rec, a.NextAttempt)
	case Delivered:
		if err := tx.Bucket(OutboxBucket).Delete(key); err != nil {
			return err
		}
		return boltdb.PutJSON(tx.Bucket(DeliveredBucket), key, deliveredRecord{
			EventType: rec.Message.EventType, CreatedAt: rec.Message.CreatedAt,
			Attempts: rec.Attempts, LastStatus: rec.LastStatus, DeliveredAt: now})
	default:
		if err := tx.Bucket(OutboxBucket).Delete(key); err != nil {
			return err
		}
		return boltdb.PutJSON(tx.Bucket(DeadBucket), key, deadRecord{Message: rec.Message,
			Attempts: rec.Attempts, LastStatus: rec.LastStatus, LastError: rec.LastError, DiedAt: now})
	}
}

// retryable reports whether a failed attempt may succeed later: no response
// (status 0: timeout, connection error), 408, 429 and 5xx.
func retryable(status int) bool {
	return status == 0 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// send makes one POST of m and returns the response status (0 for none) and,
// unless it is a 2xx, what went wrong.
func (o *Outbox) send(ctx context.Context, m Message) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, o.opts.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL, bytes.NewReader(m.Body))
	if err != nil {
		// Enqueue validated the URL; a request that cannot be built never
		// will be. 400 keeps it out of the retryable class.
		return http.StatusBadRequest, "building request: " + err.Error()
	}
	ts := o.clock.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderEvent, m.EventType)
	req.Header.Set(HeaderDelivery, m.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(m.Secret, ts, m.Body))
	resp, err := o.client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	// Read some of the body so the connection can be reused; keep the start
	// of it to explain a failure.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, drainLimit))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, ""
	}
	msg := "HTTP " + strconv.Itoa(resp.StatusCode)
	if excerpt := strings.ToValidUTF8(string(body[:min(len(body), excerptLimit)]), ""); strings.TrimSpace(excerpt) != "" {
		msg += ": " + strings.TrimSpace(excerpt)
	}
	return resp.StatusCode, msg
}
