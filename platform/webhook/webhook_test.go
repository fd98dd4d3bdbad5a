package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/webhook"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// harness is an outbox on a real bbolt file with a fake clock; attempts
// receives every recorded attempt.
type harness struct {
	t        *testing.T
	db       *boltdb.DB
	clk      *clock.Fake
	ob       *webhook.Outbox
	attempts chan webhook.Attempt
}

func newHarness(t *testing.T, opts webhook.Options) *harness {
	t.Helper()
	db := boltdb.OpenTemp(t, boltdb.Options{Schema: 1, Buckets: webhook.Buckets})
	return attach(t, db, clock.NewFake(t0), opts)
}

// attach builds an outbox on db (a fresh one, or one reopened).
func attach(t *testing.T, db *boltdb.DB, clk *clock.Fake, opts webhook.Options) *harness {
	h := &harness{t: t, db: db, clk: clk, attempts: make(chan webhook.Attempt, 1000)}
	opts.Clock = clk
	opts.Logger = quiet
	opts.Recorded = func(a webhook.Attempt) { h.attempts <- a }
	h.ob = webhook.New(db, opts)
	return h
}

func (h *harness) enqueue(msgs ...webhook.Message) {
	h.t.Helper()
	err := h.db.Update(context.Background(), func(tx *bolt.Tx) error {
		for _, m := range msgs {
			if err := h.ob.Enqueue(tx, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		h.t.Fatalf("enqueue: %v", err)
	}
}

// run starts the delivery loop; the returned stop cancels it and returns
// Run's error. The loop is also stopped when the test ends.
func (h *harness) run() (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.ob.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	h.t.Cleanup(func() { stop() })
	return stop
}

// next waits for the next recorded attempt.
func (h *harness) next() webhook.Attempt {
	h.t.Helper()
	return recv(h.t, h.attempts)
}

// recv and send bound a channel operation: the deadline only turns a hang
// into a failure.
func recv[T any](t *testing.T, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received")
		var zero T
		return zero
	}
}

func send[T any](t *testing.T, c chan<- T) {
	t.Helper()
	var zero T
	select {
	case c <- zero:
	case <-time.After(10 * time.Second):
		t.Fatal("nobody received")
	}
}

func (h *harness) get(id string) webhook.Delivery {
	h.t.Helper()
	d, err := h.ob.Get("t1", id)
	if err != nil {
		h.t.Fatalf("get %s: %v", id, err)
	}
	return d
}

// bucketLen counts the keys of a bucket.
func (h *harness) bucketLen(name []byte) int {
	h.t.Helper()
	n := 0
	if err := h.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(name).ForEach(func(_, _ []byte) error { n++; return nil })
	}); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// request is what a receiver saw.
type request struct {
	header http.Header
	body   []byte
}

// receiver is a real HTTP endpoint answering with status(n, r) for its n-th
// request (0-based), 200 when status is nil.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []request
	status func(n int, r *http.Request) int
}

func newReceiver(t *testing.T, status func(n int, r *http.Request) int) *receiver {
	rc := &receiver{status: status}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("receiver: %v", err)
		}
		rc.mu.Lock()
		n := len(rc.got)
		rc.got = append(rc.got, request{header: r.Header.Clone(), body: body})
		rc.mu.Unlock()
		code := http.StatusOK
		if rc.status != nil {
			code = rc.status(n, r)
		}
		w.WriteHeader(code)
		io.WriteString(w, "answer "+strconv.Itoa(code))
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.got...)
}

func always(code int) func(int, *http.Request) int {
	return func(int, *http.Request) int { return code }
}

var secret = []byte("whsec_test")

func msg(id, url string) webhook.Message {
	return webhook.Message{ID: id, Tenant: "t1", URL: url, Secret: secret, EventType: "care.message",
		Body: []byte(`{"customer":"c-1","text":"Hello"}`)}
}

func TestDeliverySignsAndSetsHeaders(t *testing.T) {
	h := newHarness(t, webhook.Options{})
	rc := newReceiver(t, nil)
	h.enqueue(msg("m1", rc.srv.URL))
	h.run()
	if a := h.next(); a.State != webhook.Delivered || a.Status != 200 || a.Number != 1 {
		t.Fatalf("attempt: %+v", a)
	}
	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	ts := strconv.FormatInt(t0.Unix(), 10)
	for name, want := range map[string]string{
		"Content-Type":        "application/json",
		"X-Rapport-Event":     "care.message",
		"X-Rapport-Delivery":  "m1",
		"X-Rapport-Timestamp": ts,
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if string(r.body) != `{"customer":"c-1","text":"Hello"}` {
		t.Errorf("body %s", r.body)
	}
	// The scheme, computed here independently of the package.
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "." + string(r.body)))
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	sig := r.header.Get("X-Rapport-Signature")
	if sig != want {
		t.Errorf("signature %q, want %q", sig, want)
	}
	if !webhook.Verify(secret, r.header.Get("X-Rapport-Timestamp"), r.body, sig) {
		t.Error("Verify rejects the delivered request")
	}
	d := h.get("m1")
	if d.State != webhook.Delivered || d.Attempts != 1 || d.LastStatus != 200 || !d.DeliveredAt.Equal(t0) || !d.CreatedAt.Equal(t0) {
		t.Errorf("delivery record: %+v", d)
	}
	if n, m := h.bucketLen(webhook.OutboxBucket), h.bucketLen(webhook.DueBucket); n != 0 || m != 0 {
		t.Errorf("outbox keeps %d messages and %d due entries after delivery", n, m)
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"a":1}`)
	sig := webhook.Sign(secret, 1700000000, body)
	if !webhook.Verify(secret, "1700000000", body, sig) {
		t.Fatal("Verify rejects Sign's signature")
	}
	for name, c := range map[string]struct {
		secret []byte
		ts     string
		body   []byte
		sig    string
	}{
		"other secret":    {[]byte("other"), "1700000000", body, sig},
		"empty secret":    {nil, "1700000000", body, webhook.Sign(nil, 1700000000, body)},
		"other timestamp": {secret, "1700000001", body, sig},
		"missing time":    {secret, "", body, sig},
		"tampered body":   {secret, "1700000000", []byte(`{"a":2}`), sig},
		"no prefix":       {secret, "1700000000", body, sig[len("sha256="):]},
		"other scheme":    {secret, "1700000000", body, "sha1=" + sig[len("sha256="):]},
		"not hex":         {secret, "1700000000", body, "sha256=zz"},
		"truncated":       {secret, "1700000000", body, sig[:len(sig)-2]},
		"empty":           {secret, "1700000000", body, ""},
	} {
		if webhook.Verify(c.secret, c.ts, c.body, c.sig) {
			t.Errorf("%s: Verify accepted", name)
		}
	}
}

func TestRetriesBackOffOnTheClock(t *testing.T) {
	h := newHarness(t, webhook.Options{})
	codes := []int{500, 503, 200}
	rc := newReceiver(t, func(n int, _ *http.Request) int { return codes[n] })
	h.enqueue(msg("m1", rc.srv.URL))
	h.run()

	// DefaultBackoff for "m1": 1 s and 2 s less their jitter (see TestDefaultBackoff).
	due1 := t0.Add(934 * time.Millisecond)
	a := h.next()
	if a.State != webhook.Pending || a.Status != 500 || a.Number != 1 || !a.NextAttempt.Equal(due1) {
		t.Fatalf("first attempt: %+v, want retry at %v", a, due1)
	}
	if d := h.get("m1"); d.State != webhook.Pending || d.Attempts != 1 || d.LastStatus != 500 ||
		d.LastError != "HTTP 500: answer 500" || !d.NextAttempt.Equal(due1) {
		t.Fatalf("after first attempt: %+v", d)
	}

	h.clk.Set(due1)
	due2 := due1.Add(1551 * time.Millisecond)
	if a := h.next(); a.State != webhook.Pending || a.Status != 503 || a.Number != 2 || !a.NextAttempt.Equal(due2) {
		t.Fatalf("second attempt: %+v, want retry at %v", a, due2)
	}

	h.clk.Set(due2)
	if a := h.next(); a.State != webhook.Delivered || a.Number != 3 {
		t.Fatalf("third attempt: %+v", a)
	}
	if d := h.get("m1"); d.State != webhook.Delivered || d.Attempts != 3 || d.LastStatus != 200 || !d.DeliveredAt.Equal(due2) {
		t.Fatalf("after delivery: %+v", d)
	}
	// Each attempt was sent at its due time, with the same delivery id and a
	// fresh signature.
	reqs := rc.requests()
	for i, at := range []time.Time{t0, due1, due2} {
		r := reqs[i]
		if got := r.header.Get("X-Rapport-Timestamp"); got != strconv.FormatInt(at.Unix(), 10) {
			t.Errorf("attempt %d sent at %s, want %d", i+1, got, at.Unix())
		}
		if r.header.Get("X-Rapport-Delivery") != "m1" {
			t.Errorf("attempt %d delivery id %q", i+1, r.header.Get("X-Rapport-Delivery"))
		}
		if !webhook.Verify(secret, r.header.Get("X-Rapport-Timestamp"), r.body, r.header.Get("X-Rapport-Signature")) {
			t.Errorf("attempt %d signature does not verify", i+1)
		}
	}
}

func TestStatusClasses(t *testing.T) {
	for _, c := range []struct {
		status int
		want   webhook.State
	}{
		{200, webhook.Delivered}, {202, webhook.Delivered}, {204, webhook.Delivered},
		{400, webhook.Dead}, {401, webhook.Dead}, {404, webhook.Dead}, {410, webhook.Dead}, {422, webhook.Dead},
		{301, webhook.Dead}, // not followed: the endpoint moved, the tenant must fix it
		{408, webhook.Pending}, {429, webhook.Pending},
		{500, webhook.Pending}, {502, webhook.Pending}, {503, webhook.Pending},
	} {
		t.Run(strconv.Itoa(c.status), func(t *testing.T) {
			h := newHarness(t, webhook.Options{})
			rc := newReceiver(t, func(int, *http.Request) int { return c.status })
			h.enqueue(msg("m1", rc.srv.URL))
			h.run()
			if a := h.next(); a.State != c.want || a.Status != c.status {
				t.Fatalf("attempt: %+v, want %v", a, c.want)
			}
			if d := h.get("m1"); d.State != c.want {
				t.Fatalf("stored state %v, want %v", d.State, c.want)
			}
			dead, err := h.ob.DeadLetters("t1")
			if err != nil {
				t.Fatal(err)
			}
			if c.want != webhook.Dead {
				if len(dead) != 0 {
					t.Fatalf("dead letters: %+v", dead)
				}
				return
			}
			// Dead at once: one attempt, no retry scheduled.
			if len(dead) != 1 || dead[0].Message.ID != "m1" || dead[0].Attempts != 1 || dead[0].LastStatus != c.status ||
				!dead[0].DiedAt.Equal(t0) || dead[0].Message.Secret != nil || string(dead[0].Message.Body) != string(msg("m1", "").Body) {
				t.Fatalf("dead letters: %+v", dead)
			}
			if h.bucketLen(webhook.DueBucket) != 0 || h.bucketLen(webhook.OutboxBucket) != 0 {
				t.Fatal("a dead letter is still in the outbox")
			}
		})
	}
}

func TestNoResponseIsRetried(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close() // connection refused from now on
	hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the server notices a client gone only after the body
		<-r.Context().Done()        // until the client gives up
	}))
	defer hang.Close()
	for name, url := range map[string]string{"connection refused": gone.URL, "timeout": hang.URL} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, webhook.Options{RequestTimeout: 50 * time.Millisecond})
			h.enqueue(msg("m1", url))
			h.run()
			a := h.next()
			if a.State != webhook.Pending || a.Status != 0 || a.Error == "" || !a.NextAttempt.Equal(t0.Add(934*time.Millisecond)) {
				t.Fatalf("attempt: %+v", a)
			}
		})
	}
}

func TestMaxAttemptsDeadLetters(t *testing.T) {
	h := newHarness(t, webhook.Options{MaxAttempts: 3})
	rc := newReceiver(t, always(500))
	h.enqueue(msg("m1", rc.srv.URL))
	h.run()
	for i := 1; i <= 2; i++ {
		a := h.next()
		if a.State != webhook.Pending || a.Number != i {
			t.Fatalf("attempt %d: %+v", i, a)
		}
		h.clk.Set(a.NextAttempt)
	}
	a := h.next()
	if a.State != webhook.Dead || a.Number != 3 || !a.NextAttempt.IsZero() {
		t.Fatalf("last attempt: %+v", a)
	}
	dead, err := h.ob.DeadLetters("t1")
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || dead[0].Attempts != 3 || dead[0].LastStatus != 500 || dead[0].LastError != "HTTP 500: answer 500" {
		t.Fatalf("dead letters: %+v", dead)
	}
	if len(rc.requests()) != 3 {
		t.Fatalf("%d requests, want 3", len(rc.requests()))
	}
	if other, _ := h.ob.DeadLetters("t2"); len(other) != 0 {
		t.Fatalf("another tenant sees %+v", other)
	}
}

func TestReplayDelivers(t *testing.T) {
	h := newHarness(t, webhook.Options{})
	// The endpoint refuses the first request (a misconfiguration), then is fixed.
	rc := newReceiver(t, func(n int, _ *http.Request) int { return []int{404, 200}[n] })
	h.enqueue(msg("m1", rc.srv.URL))
	h.run()
	if a := h.next(); a.State != webhook.Dead {
		t.Fatalf("first attempt: %+v", a)
	}
	ctx := context.Background()
	if err := h.ob.Replay(ctx, "t1", "m1"); err != nil {
		t.Fatal(err)
	}
	// Attempts were reset: this is attempt 1 again, and it is delivered.
	if a := h.next(); a.State != webhook.Delivered || a.Number != 1 {
		t.Fatalf("replayed attempt: %+v", a)
	}
	if dead, _ := h.ob.DeadLetters("t1"); len(dead) != 0 {
		t.Fatalf("dead letters after replay: %+v", dead)
	}
	reqs := rc.requests()
	if len(reqs) != 2 || reqs[1].header.Get("X-Rapport-Delivery") != "m1" ||
		!webhook.Verify(secret, reqs[1].header.Get("X-Rapport-Timestamp"), reqs[1].body, reqs[1].header.Get("X-Rapport-Signature")) {
		t.Fatalf("replayed request: %+v", reqs)
	}
	if err := h.ob.Replay(ctx, "t1", "m1"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("replaying a delivered message: %v", err)
	}
	if err := h.ob.Replay(ctx, "t1", "nope"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("replaying an unknown message: %v", err)
	}
}

func TestDuplicateEnqueueIsNoOp(t *testing.T) {
	// One request at a time, oldest due first: a duplicate of m1 enqueued
	// before m2 would be sent before m2 is recorded.
	h := newHarness(t, webhook.Options{MaxInFlight: 1})
	rc := newReceiver(t, nil)
	first := msg("m1", rc.srv.URL)
	again := first
	again.Body = []byte(`{"different":true}`)
	h.enqueue(first, again) // in one transaction
	h.enqueue(again)        // in another, still pending
	h.run()
	if a := h.next(); a.ID != "m1" || a.State != webhook.Delivered {
		t.Fatalf("attempt: %+v", a)
	}
	h.enqueue(again, msg("m2", rc.srv.URL)) // after delivery, then a new message
	if a := h.next(); a.ID != "m2" {
		t.Fatalf("attempt: %+v, want m2", a)
	}
	reqs := rc.requests()
	if len(reqs) != 2 || reqs[0].header.Get("X-Rapport-Delivery") != "m1" || string(reqs[0].body) != string(first.Body) ||
		reqs[1].header.Get("X-Rapport-Delivery") != "m2" {
		t.Fatalf("requests: %d, first %s", len(reqs), reqs[0].body)
	}
	// The same id in another tenant is another message.
	other := msg("m1", rc.srv.URL)
	other.Tenant = "t2"
	h.enqueue(other)
	if a := h.next(); a.Tenant != "t2" || a.ID != "m1" || a.State != webhook.Delivered {
		t.Fatalf("attempt: %+v", a)
	}
}

func TestEnqueueIsAtomicWithTheCaller(t *testing.T) {
	h := newHarness(t, webhook.Options{})
	boom := errors.New("the caller's change failed")
	err := h.db.Update(context.Background(), func(tx *bolt.Tx) error {
		if err := h.ob.Enqueue(tx, msg("m1", "http://example.invalid/hook")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if _, err := h.ob.Get("t1", "m1"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("message of a rolled-back transaction: %v", err)
	}
	if n := h.bucketLen(webhook.DueBucket); n != 0 {
		t.Fatalf("%d due entries", n)
	}
}

func TestEnqueueValidates(t *testing.T) {
	h := newHarness(t, webhook.Options{})
	for name, edit := range map[string]func(*webhook.Message){
		"tenant":     func(m *webhook.Message) { m.Tenant = "" },
		"id":         func(m *webhook.Message) { m.ID = "a\x00b" },
		"event type": func(m *webhook.Message) { m.EventType = "" },
		"url":        func(m *webhook.Message) { m.URL = "ftp://example.com/" },
		"relative":   func(m *webhook.Message) { m.URL = "/hook" },
		"secret":     func(m *webhook.Message) { m.Secret = nil },
		"body":       func(m *webhook.Message) { m.Body = []byte("{not json") },
	} {
		m := msg("m1", "https://example.com/hook")
		edit(&m)
		err := h.db.Update(context.Background(), func(tx *bolt.Tx) error { return h.ob.Enqueue(tx, m) })
		if !errors.Is(err, fault.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if n := h.bucketLen(webhook.OutboxBucket); n != 0 {
		t.Fatalf("%d invalid messages stored", n)
	}
}

// reopen closes h's database and opens the same file again, as a restart.
func reopen(t *testing.T, h *harness) *harness {
	t.Helper()
	path := h.db.Path()
	if err := h.db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := boltdb.Open(path, boltdb.Options{Schema: 1, Buckets: webhook.Buckets})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return attach(t, db, h.clk, webhook.Options{})
}

func TestPendingSurvivesRestart(t *testing.T) {
	h := newHarness(t, webhook.Options{})
	rc := newReceiver(t, nil)
	h.enqueue(msg("m1", rc.srv.URL))
	h = reopen(t, h)
	h.run()
	if a := h.next(); a.ID != "m1" || a.State != webhook.Delivered {
		t.Fatalf("attempt after restart: %+v", a)
	}
	if n := len(rc.requests()); n != 1 {
		t.Fatalf("%d requests", n)
	}
}

func TestRetryScheduleSurvivesRestart(t *testing.T) {
	h := newHarness(t, webhook.Options{})
	rc := newReceiver(t, func(n int, _ *http.Request) int { return []int{500, 200}[n] })
	h.enqueue(msg("m1", rc.srv.URL))
	stop := h.run()
	a := h.next()
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	h = reopen(t, h)
	if d := h.get("m1"); d.State != webhook.Pending || d.Attempts != 1 || !d.NextAttempt.Equal(a.NextAttempt) {
		t.Fatalf("after restart: %+v, want due at %v", d, a.NextAttempt)
	}
	h.run()
	h.clk.Set(a.NextAttempt)
	if a := h.next(); a.State != webhook.Delivered || a.Number != 2 {
		t.Fatalf("attempt after restart: %+v", a)
	}
}

// A receiver got the message, but the process stopped before the outbox
// committed the 2xx: after the restart the message is sent again with the
// same delivery id (at least once).
func TestDeliveredButUnrecordedIsSentAgain(t *testing.T) {
	h := newHarness(t, webhook.Options{})
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if n == 0 {
			arrived <- struct{}{}
			select { // answer only once the database is gone
			case <-release:
			case <-r.Context().Done():
			}
		}
		return 200
	})
	h.enqueue(msg("m1", rc.srv.URL))
	ran := make(chan error, 1)
	go func() { ran <- h.ob.Run(context.Background()) }()
	recv(t, arrived)
	path := h.db.Path()
	if err := h.db.Close(); err != nil { // the crash: nothing more reaches the file
		t.Fatal(err)
	}
	close(release)
	// The 200 cannot be recorded, and the loop stops rather than send again.
	if err := recv(t, ran); !errors.Is(err, boltdb.ErrClosed) {
		t.Fatalf("Run: %v, want it stopped by the closed database", err)
	}

	db, err := boltdb.Open(path, boltdb.Options{Schema: 1, Buckets: webhook.Buckets})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h = attach(t, db, h.clk, webhook.Options{})
	if d := h.get("m1"); d.State != webhook.Pending || d.Attempts != 0 {
		t.Fatalf("after restart: %+v, want still pending", d)
	}
	h.run()
	if a := h.next(); a.State != webhook.Delivered || a.Number != 1 {
		t.Fatalf("attempt after restart: %+v", a)
	}
	reqs := rc.requests()
	if len(reqs) != 2 || reqs[0].header.Get("X-Rapport-Delivery") != "m1" || reqs[1].header.Get("X-Rapport-Delivery") != "m1" {
		t.Fatalf("requests: %+v", reqs)
	}
}

// Stopping Run while a request is in flight does not count as an attempt.
func TestShutdownDoesNotCountAnAttempt(t *testing.T) {
	h := newHarness(t, webhook.Options{})
	arrived := make(chan struct{}, 1)
	rc := newReceiver(t, func(_ int, r *http.Request) int {
		arrived <- struct{}{}
		<-r.Context().Done()
		return 200
	})
	h.enqueue(msg("m1", rc.srv.URL))
	stop := h.run()
	recv(t, arrived)
	if err := h.ob.Run(context.Background()); !errors.Is(err, webhook.ErrRunning) {
		t.Fatalf("a second Run: %v, want ErrRunning", err)
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	if d := h.get("m1"); d.State != webhook.Pending || d.Attempts != 0 || !d.NextAttempt.Equal(t0) {
		t.Fatalf("after shutdown: %+v", d)
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	const total, limit = 20, 3
	h := newHarness(t, webhook.Options{MaxInFlight: limit})
	var mu sync.Mutex
	current, peak, claimed := 0, 0, 0
	arrived := make(chan string, total)
	release := make(chan struct{})
	rc := newReceiver(t, func(_ int, r *http.Request) int {
		mu.Lock()
		current++
		peak = max(peak, current)
		// The loop claims a message before its request starts and frees
		// the slot after the outcome commits, so this bounds the requests
		// at any time, including those not arrived yet.
		claimed = max(claimed, h.ob.InFlight())
		mu.Unlock()
		arrived <- r.Header.Get("X-Rapport-Delivery")
		select {
		case <-release:
		case <-r.Context().Done(): // the test gave up
		}
		mu.Lock()
		current--
		mu.Unlock()
		return 200
	})
	var msgs []webhook.Message
	for i := range total {
		msgs = append(msgs, msg("m"+strconv.Itoa(i), rc.srv.URL))
	}
	h.enqueue(msgs...)
	h.run()
	seen := map[string]int{}
	// The first `limit` requests arrive with none answered; from then on each
	// answer lets one more in.
	for range limit {
		seen[recv(t, arrived)]++
	}
	for range total - limit {
		send(t, release)
		seen[recv(t, arrived)]++
	}
	for range limit {
		send(t, release)
	}
	for range total {
		if a := h.next(); a.State != webhook.Delivered {
			t.Fatalf("attempt: %+v", a)
		}
	}
	if peak != limit || claimed != limit {
		t.Errorf("peak concurrency %d, claimed at once %d; want %d", peak, claimed, limit)
	}
	if len(seen) != total {
		t.Errorf("%d distinct deliveries, want %d", len(seen), total)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s sent %d times", id, n)
		}
	}
}

func TestPruneDelivered(t *testing.T) {
	h := newHarness(t, webhook.Options{})
	rc := newReceiver(t, nil)
	h.enqueue(msg("m1", rc.srv.URL))
	h.run()
	h.next()
	ctx := context.Background()
	if n, err := h.ob.PruneDelivered(ctx, t0); err != nil || n != 0 {
		t.Fatalf("prune before delivery time: %d, %v", n, err)
	}
	if n, err := h.ob.PruneDelivered(ctx, t0.Add(time.Nanosecond)); err != nil || n != 1 {
		t.Fatalf("prune after delivery time: %d, %v", n, err)
	}
	// Forgotten: the id may be used again.
	h.enqueue(msg("m1", rc.srv.URL))
	if a := h.next(); a.ID != "m1" || a.State != webhook.Delivered {
		t.Fatalf("attempt: %+v", a)
	}
	if n := len(rc.requests()); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

func TestDefaultBackoff(t *testing.T) {
	// Pinned: a change to the schedule must be deliberate.
	want := map[int]time.Duration{
		1: 934 * time.Millisecond, 2: 1551 * time.Millisecond, 3: 3314 * time.Millisecond,
		7: 55520 * time.Millisecond, 10: 7*time.Minute + 46944*time.Millisecond,
	}
	for attempt, d := range want {
		if got := webhook.DefaultBackoff("m1", attempt); got != d {
			t.Errorf("DefaultBackoff(m1, %d) = %v, want %v", attempt, got, d)
		}
	}
	differs := false
	for attempt := 1; attempt <= 40; attempt++ {
		base := min(time.Second<<min(attempt-1, 20), 10*time.Minute)
		for _, id := range []string{"m1", "m2", "care:c-1:welcome"} {
			got := webhook.DefaultBackoff(id, attempt)
			if got <= base*3/4 || got > base || got != webhook.DefaultBackoff(id, attempt) {
				t.Errorf("DefaultBackoff(%s, %d) = %v, want in (%v, %v] and stable", id, attempt, got, base*3/4, base)
			}
		}
		differs = differs || webhook.DefaultBackoff("m1", attempt) != webhook.DefaultBackoff("m2", attempt)
	}
	if !differs {
		t.Error("the jitter does not depend on the id")
	}
}
