package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/ident"
	"rapport.dev/platform/tenancy"
)

// Message is one webhook to send.
type Message struct {
	// ID is the idempotency key, unique per tenant, and the
	// X-Rapport-Delivery header (ident rule).
	ID string `json:"id"`
	// Tenant owns the webhook.
	Tenant string `json:"tenant"`
	// URL is the tenant's endpoint, http or https.
	URL string `json:"url"`
	// Secret is the HMAC key shared with the tenant's endpoint. It is stored
	// with the message in clear: secrets at rest are a known gap until
	// issue 7's secret handling.
	Secret []byte `json:"secret"`
	// EventType is the X-Rapport-Event header, e.g. "care.message" (ident rule).
	EventType string `json:"event_type"`
	// Body is the JSON request body.
	Body []byte `json:"body"`
	// CreatedAt is when the cause happened; zero means the time of Enqueue.
	CreatedAt time.Time `json:"created_at"`
}

// State is where a message is in its life.
type State int

// States of a message.
const (
	// Pending: in the outbox, waiting for its next attempt.
	Pending State = iota + 1
	// Delivered: a 2xx was recorded.
	Delivered
	// Dead: given up on; see DeadLetters and Replay.
	Dead
)

func (s State) String() string {
	switch s {
	case Pending:
		return "pending"
	case Delivered:
		return "delivered"
	case Dead:
		return "dead"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Delivery is what the outbox knows of one message.
type Delivery struct {
	Tenant    string
	ID        string
	EventType string
	CreatedAt time.Time
	State     State
	// Attempts is how many attempts were made (since the last Replay).
	Attempts int
	// LastStatus is the HTTP status of the last attempt; 0 when there was
	// none or it got no response.
	LastStatus int
	// LastError describes the last failed attempt.
	LastError string
	// NextAttempt is when a Pending message is due.
	NextAttempt time.Time
	// DeliveredAt is when a Delivered message got its 2xx.
	DeliveredAt time.Time
	// DiedAt is when a Dead message was given up on.
	DiedAt time.Time
}

// DeadLetter is a message the outbox gave up on. Its Message.Secret is
// left empty: listings do not hand secrets out.
type DeadLetter struct {
	Message    Message
	Attempts   int
	LastStatus int
	LastError  string
	DiedAt     time.Time
}

// Attempt reports one recorded attempt to Options.Recorded.
type Attempt struct {
	Tenant string
	ID     string
	// Number is 1 for the first attempt (since the last Replay).
	Number int
	Status int
	Error  string
	// State is the message's state after the attempt.
	State State
	// NextAttempt is when a message left Pending is due again.
	NextAttempt time.Time
}

// Options configures an Outbox. The zero value of every field is a default.
type Options struct {
	// Clock times attempts and retries; nil means the real clock.
	Clock clock.Clock
	// Client sends the requests; nil means a client that does not follow
	// redirects (a POST redirected becomes a GET; a moved endpoint is the
	// tenant's to fix). A client given here should not follow them either,
	// and may be instrumented (otelhttp).
	Client *http.Client
	// Logger: nil means slog.Default().
	Logger *slog.Logger
	// MaxAttempts is how many attempts are made before a message is
	// dead-lettered; 0 means 8.
	MaxAttempts int
	// Backoff is the wait after the attempt-th failed attempt; nil means
	// DefaultBackoff.
	Backoff func(id string, attempt int) time.Duration
	// RequestTimeout bounds one attempt, response included; 0 means 10 s.
	RequestTimeout time.Duration
	// MaxInFlight bounds the concurrent requests; 0 means 4.
	MaxInFlight int
	// Recorded, when set, is called after each attempt's outcome has
	// committed (tests and metrics). It must not block for long: it runs on
	// the delivery's goroutine and holds its slot.
	Recorded func(Attempt)
}

// ErrRunning is returned by Run when the outbox is already running.
var ErrRunning = errors.New("webhook: outbox is already running")

// Outbox is a durable webhook outbox in a service's bbolt file. Use one
// Outbox per database.
type Outbox struct {
	db     *boltdb.DB
	clock  clock.Clock
	client *http.Client
	log    *slog.Logger
	opts   Options

	// wake is signalled (never blocking) when a message may have become
	// deliverable: an enqueue or replay committed, or a slot freed.
	wake chan struct{}

	running atomic.Bool
	// mu guards inflight, the due keys of messages being delivered, and
	// fatal, the first error recording an outcome.
	mu       sync.Mutex
	inflight map[string]bool
	fatal    error
}

// New returns the outbox stored in db, which must have been opened with
// Buckets.
func New(db *boltdb.DB, opts Options) *Outbox {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Client == nil {
		opts.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 8
	}
	if opts.Backoff == nil {
		opts.Backoff = DefaultBackoff
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 4
	}
	return &Outbox{
		db:       db,
		clock:    opts.Clock,
		client:   opts.Client,
		log:      opts.Logger,
		opts:     opts,
		wake:     make(chan struct{}, 1),
		inflight: map[string]bool{},
	}
}

func (o *Outbox) kick() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func validate(m Message) error {
	var v fault.Violations
	if err := tenancy.Validate(m.Tenant); err != nil {
		v.Add("tenant", "%v", err)
	}
	ident.Check(&v, "id", m.ID, true)
	ident.Check(&v, "event_type", m.EventType, true)
	if u, err := url.Parse(m.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.Add("url", "must be an absolute http or https URL")
	}
	if len(m.Secret) == 0 {
		v.Add("secret", "is required")
	}
	if !json.Valid(m.Body) {
		v.Add("body", "must be JSON")
	}
	return v.Err()
}

// Enqueue stores m in tx, due now, to be delivered once tx commits. An id
// the outbox already knows for the tenant (pending, delivered or dead) is
// left as it is. An invalid message is refused with fault.ErrInvalid.
//
// Enqueue only writes through tx, so it is safe in a boltdb.DB.Update
// function that may run more than once.
func (o *Outbox) Enqueue(tx *bolt.Tx, m Message) error {
	if err := validate(m); err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	key := messageKey(m.Tenant, m.ID)
	for _, b := range [][]byte{OutboxBucket, DeliveredBucket, DeadBucket} {
		if tx.Bucket(b).Get(key) != nil {
			return nil
		}
	}
	now := o.clock.Now()
	if m.CreatedAt.IsZero() {
		m.CreatedAt = now
	}
	if err := o.schedule(tx, key, &record{Message: m}, now); err != nil {
		return err
	}
	// tx.OnCommit rather than DB.OnCommit: it fires only for the
	// transactions that enqueued, and also for those not begun by DB.Update.
	tx.OnCommit(o.kick)
	return nil
}

// schedule stores rec under key, due at due, with a new due entry.
func (o *Outbox) schedule(tx *bolt.Tx, key []byte, rec *record, due time.Time) error {
	dueB := tx.Bucket(DueBucket)
	seq, err := dueB.NextSequence()
	if err != nil {
		return err
	}
	rec.DueKey = dueKey(due, seq)
	rec.NextAttempt = due
	if err := dueB.Put(rec.DueKey, key); err != nil {
		return err
	}
	return boltdb.PutJSON(tx.Bucket(OutboxBucket), key, rec)
}

// Get returns what the outbox knows of a message, fault.ErrNotFound if
// nothing.
func (o *Outbox) Get(tenant, id string) (Delivery, error) {
	d := Delivery{Tenant: tenant, ID: id}
	err := o.db.View(func(tx *bolt.Tx) error {
		key := messageKey(tenant, id)
		if raw := tx.Bucket(OutboxBucket).Get(key); raw != nil {
			r, err := boltdb.GetJSON[record](raw)
			if err != nil {
				return err
			}
			d.EventType, d.CreatedAt, d.State = r.Message.EventType, r.Message.CreatedAt, Pending
			d.Attempts, d.LastStatus, d.LastError, d.NextAttempt = r.Attempts, r.LastStatus, r.LastError, r.NextAttempt
			return nil
		}
		if raw := tx.Bucket(DeliveredBucket).Get(key); raw != nil {
			r, err := boltdb.GetJSON[deliveredRecord](raw)
			if err != nil {
				return err
			}
			d.EventType, d.CreatedAt, d.State = r.EventType, r.CreatedAt, Delivered
			d.Attempts, d.LastStatus, d.DeliveredAt = r.Attempts, r.LastStatus, r.DeliveredAt
			return nil
		}
		if raw := tx.Bucket(DeadBucket).Get(key); raw != nil {
			r, err := boltdb.GetJSON[deadRecord](raw)
			if err != nil {
				return err
			}
			d.EventType, d.CreatedAt, d.State = r.Message.EventType, r.Message.CreatedAt, Dead
			d.Attempts, d.LastStatus, d.LastError, d.DiedAt = r.Attempts, r.LastStatus, r.LastError, r.DiedAt
			return nil
		}
		return fmt.Errorf("webhook %s/%s: %w", tenant, id, fault.ErrNotFound)
	})
	return d, err
}

// DeadLetters lists the tenant's dead letters in id order.
func (o *Outbox) DeadLetters(tenant string) ([]DeadLetter, error) {
	var out []DeadLetter
	err := o.db.View(func(tx *bolt.Tx) error {
		prefix := boltdb.Prefix(tenant)
		c := tx.Bucket(DeadBucket).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			r, err := boltdb.GetJSON[deadRecord](v)
			if err != nil {
				return err
			}
			r.Message.Secret = nil
			out = append(out, DeadLetter{Message: r.Message, Attempts: r.Attempts,
				LastStatus: r.LastStatus, LastError: r.LastError, DiedAt: r.DiedAt})
		}
		return nil
	})
	return out, err
}

// Replay moves a dead letter back into the outbox, due now with its attempts
// reset, and wakes the delivery loop. It returns fault.ErrNotFound when the
// tenant has no dead letter with that id.
func (o *Outbox) Replay(ctx context.Context, tenant, id string) error {
	now := o.clock.Now()
	return o.db.Update(ctx, func(tx *bolt.Tx) error {
		key := messageKey(tenant, id)
		raw := tx.Bucket(DeadBucket).Get(key)
		if raw == nil {
			return fmt.Errorf("webhook: dead letter %s/%s: %w", tenant, id, fault.ErrNotFound)
		}
		r, err := boltdb.GetJSON[deadRecord](raw)
		if err != nil {
			return err
		}
		if err := tx.Bucket(DeadBucket).Delete(key); err != nil {
			return err
		}
		if err := o.schedule(tx, key, &record{Message: r.Message}, now); err != nil {
			return err
		}
		tx.OnCommit(o.kick)
		return nil
	})
}

// PruneDelivered forgets messages delivered before before and returns how
// many. A forgotten id can be enqueued again: the retention chosen here is
// also how long Enqueue deduplicates delivered ids.
func (o *Outbox) PruneDelivered(ctx context.Context, before time.Time) (int, error) {
	var n int
	err := o.db.Update(ctx, func(tx *bolt.Tx) error {
		n = 0
		var old [][]byte
		c := tx.Bucket(DeliveredBucket).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			r, err := boltdb.GetJSON[deliveredRecord](v)
			if err != nil {
				return err
			}
			if r.DeliveredAt.Before(before) {
				old = append(old, boltdb.Copy(k))
			}
		}
		for _, k := range old {
			if err := tx.Bucket(DeliveredBucket).Delete(k); err != nil {
				return err
			}
		}
		n = len(old)
		return nil
	})
	return n, err
}
