package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	carev1 "rapport.dev/gen/go/rapport/care/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	testingv1 "rapport.dev/gen/go/rapport/testing/v1"
	"rapport.dev/platform/grpcclient"
	"rapport.dev/platform/webhook"
)

// careMessage is the part of a care message's JSON body the test checks.
type careMessage struct {
	DeliveryID string `json:"delivery_id"`
	Tenant     string `json:"tenant"`
	PlanID     string `json:"plan_id"`
	CustomerID string `json:"customer_id"`
	Occurrence string `json:"occurrence"`
}

// receiver is a tenant's webhook endpoint that deduplicates on
// X-Rapport-Delivery. Before the kill it answers the first attempt of
// every tenth customer's message with a 500 (so those wait in the outbox
// for a retry), answers okBeforeKill others with a 200, and then holds
// every further request open until release is closed, so that deliveries
// are in flight when the process is killed.
type receiver struct {
	t            *testing.T
	secret       []byte
	okBeforeKill int
	want         int // distinct customers expected to get a message

	mu        sync.Mutex
	attempts  map[string]int    // delivery id → requests
	delivered map[string]int    // delivery id → requests answered 200
	customer  map[string]string // delivery id → customer in the body
	perCust   map[string]map[string]bool
	failed    int // answered 500
	held      int // held open until the kill
	bad       []string
	ok        int
	killed    bool

	saturated chan struct{} // closed when the first request is held open
	release   chan struct{} // closed after the kill
	all       chan struct{} // closed when every customer's message was delivered
	satOnce   sync.Once
	allOnce   sync.Once
}

func newReceiver(t *testing.T, secret string, okBeforeKill, want int) *receiver {
	return &receiver{t: t, secret: []byte(secret), okBeforeKill: okBeforeKill, want: want,
		attempts: map[string]int{}, delivered: map[string]int{}, customer: map[string]string{}, perCust: map[string]map[string]bool{},
		saturated: make(chan struct{}), release: make(chan struct{}), all: make(chan struct{})}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id := r.Header.Get(webhook.HeaderDelivery)
	var m careMessage
	jsonErr := json.Unmarshal(raw, &m)
	rc.mu.Lock()
	switch {
	case !webhook.Verify(rc.secret, r.Header.Get(webhook.HeaderTimestamp), raw, r.Header.Get(webhook.HeaderSignature)):
		rc.bad = append(rc.bad, fmt.Sprintf("%s: bad signature", id))
	case r.Header.Get(webhook.HeaderEvent) != "care.message":
		rc.bad = append(rc.bad, fmt.Sprintf("%s: event %q", id, r.Header.Get(webhook.HeaderEvent)))
	case jsonErr != nil || id == "" || m.DeliveryID != id:
		rc.bad = append(rc.bad, fmt.Sprintf("%s: body %s (%v)", id, raw, jsonErr))
	case rc.customer[id] != "" && rc.customer[id] != m.CustomerID:
		rc.bad = append(rc.bad, fmt.Sprintf("%s: for customer %s, earlier for %s", id, m.CustomerID, rc.customer[id]))
	default:
		rc.mu.Unlock()
		rc.accept(w, id, m)
		return
	}
	rc.mu.Unlock()
	// Rejected for good: the test fails on rc.bad.
	http.Error(w, "bad delivery", http.StatusBadRequest)
}

func (rc *receiver) accept(w http.ResponseWriter, id string, m careMessage) {
	rc.mu.Lock()
	rc.attempts[id]++
	rc.customer[id] = m.CustomerID
	if !rc.killed {
		var n int
		fmt.Sscanf(m.CustomerID, "c%d", &n)
		switch {
		case rc.attempts[id] == 1 && n%10 == 0:
			rc.failed++
			rc.mu.Unlock()
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		case rc.ok >= rc.okBeforeKill:
			rc.held++
			rc.mu.Unlock()
			rc.satOnce.Do(func() { close(rc.saturated) })
			<-rc.release
			// The sender is gone: nobody reads this.
			http.Error(w, "too late", http.StatusServiceUnavailable)
			return
		}
	}
	rc.ok++
	rc.delivered[id]++
	if rc.perCust[m.CustomerID] == nil {
		rc.perCust[m.CustomerID] = map[string]bool{}
	}
	rc.perCust[m.CustomerID][id] = true
	if len(rc.perCust) == rc.want {
		rc.allOnce.Do(func() { close(rc.all) })
	}
	rc.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// kill marks the sending process gone and releases the held requests.
func (rc *receiver) kill() {
	rc.mu.Lock()
	rc.killed = true
	rc.mu.Unlock()
	close(rc.release)
}

func (rc *receiver) deliveredCount() (distinct int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.delivered)
}

func dialCare(t *testing.T, addr string) (carev1.CareServiceClient, testingv1.ClockServiceClient) {
	t.Helper()
	cc, err := grpcclient.Dial(addr, grpcclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return carev1.NewCareServiceClient(cc), testingv1.NewClockServiceClient(cc)
}

// listTasks returns every task of owner's queue.
func listTasks(t *testing.T, ctx context.Context, client carev1.CareServiceClient, owner string) []*carev1.Task {
	t.Helper()
	var out []*carev1.Task
	token := ""
	for {
		page, err := client.ListTasks(ctx, &carev1.ListTasksRequest{Owner: owner, PageSize: 500, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Tasks...)
		if token = page.NextPageToken; token == "" {
			return out
		}
	}
}

// TestCareDurabilitySIGKILL kills the care process with SIGKILL while a
// few hundred survey timers fire at one instant, each making a task and an
// automatic message, and while those messages are being delivered (some
// held open by the receiver, some waiting for a retry after a 500). After
// a restart on the same data, with the clock moved to the same instant,
// every message reaches the receiver, which deduplicates on
// X-Rapport-Delivery: each customer's message is delivered under exactly
// one id (redeliveries of that id are allowed and counted), none is lost,
// and every task exists exactly once.
func TestCareDurabilitySIGKILL(t *testing.T) {
	const (
		customers    = 600
		okBeforeKill = 8
		secret       = "durability-secret"
	)
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)  // a Monday
	due := time.Date(2026, 3, 5, 10, 0, 0, 0, time.UTC) // three days later at 10:00, a working hour
	rc := newReceiver(t, secret, okBeforeKill, customers)
	hook := httptest.NewServer(rc)
	// Released before Close, which waits for the held requests.
	t.Cleanup(hook.Close)
	t.Cleanup(func() {
		select {
		case <-rc.release:
		default:
			rc.kill()
		}
	})

	dir := t.TempDir()
	args := []string{"--target=profile,care", "--data-dir", dir, "--fake-clock", t0.Format(time.RFC3339),
		"--care-webhook-secret", secret, "--profile-addr", "127.0.0.1:0", "--care-addr", "127.0.0.1:0",
		"--segmentation-addr", "", "--loyalty-addr", ""}
	p := start(t, args...)
	ctx := p.ctx("acme")
	care, _ := dialCare(t, p.grpcAddr("care"))
	profiles := dial(t, p.grpcAddr("profile"))

	// "greet" (a message) sorts before "survey" (a task): the messages of the
	// first timer batches are delivered while the later batches still fire.
	plans := []*carev1.Plan{
		{PlanId: "greet", Enabled: true, Target: &carev1.Target{AllCustomers: true},
			Trigger: &carev1.Plan_Survey{Survey: &carev1.Survey{DaysAfterPurchase: 3}}, At: &carev1.LocalTime{Hour: 10},
			Action: &carev1.Plan_Message{Message: &carev1.MessageAction{WebhookUrl: hook.URL + "/care", Channel: "sms", Template: "Thank you, {name}"}}},
		{PlanId: "survey", Enabled: true, Target: &carev1.Target{AllCustomers: true},
			Trigger: &carev1.Plan_Survey{Survey: &carev1.Survey{DaysAfterPurchase: 3}}, At: &carev1.LocalTime{Hour: 10},
			Action: &carev1.Plan_Task{Task: &carev1.TaskAction{Title: "Ask {name} how the tea was"}}},
		// The sentinel: a complaint follow-up falls due at once, which tells
		// the test that care has read the profile feed up to that complaint.
		{PlanId: "complaints", Enabled: true, Target: &carev1.Target{AllCustomers: true},
			Trigger: &carev1.Plan_ComplaintFollowUp{ComplaintFollowUp: &carev1.ComplaintFollowUp{SlaHours: 240}},
			Action:  &carev1.Plan_Task{Task: &carev1.TaskAction{Title: "Call {name} back"}}},
	}
	for _, pl := range plans {
		if _, err := care.CreatePlan(ctx, &carev1.CreatePlanRequest{Plan: pl}); err != nil {
			t.Fatalf("create plan %s: %v", pl.PlanId, err)
		}
	}
	feed := watchTasks(t, p.grpcAddr("care"), p.ctx("acme"))

	// A few hundred customers, each with one purchase: at `due` every one
	// has a message and a task due (two touches, within the weekly cap).
	ids := make(chan int)
	errs := make(chan error, customers)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range ids {
				c := fmt.Sprintf("c%03d", i)
				if _, err := profiles.CreateCustomer(ctx, &profilev1.CreateCustomerRequest{Customer: &profilev1.Customer{
					CustomerId: c, Kind: profilev1.CustomerKind_CUSTOMER_KIND_PERSON, DisplayName: "Customer " + c, TimeZone: "UTC", Owner: "li"}}); err != nil {
					errs <- fmt.Errorf("create %s: %w", c, err)
					continue
				}
				if _, err := profiles.RecordEvent(ctx, &profilev1.RecordEventRequest{Event: purchase("pos-"+c, c, "SO-"+c, 25900, t0)}); err != nil {
					errs <- fmt.Errorf("purchase of %s: %w", c, err)
				}
			}
		})
	}
	for i := range customers {
		ids <- i
	}
	close(ids)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := profiles.CreateCustomer(ctx, &profilev1.CreateCustomerRequest{Customer: &profilev1.Customer{
		CustomerId: "sentinel", Kind: profilev1.CustomerKind_CUSTOMER_KIND_PERSON, DisplayName: "Sentinel", TimeZone: "UTC", Owner: "ops"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := profiles.RecordEvent(ctx, &profilev1.RecordEventRequest{Event: &profilev1.Event{EventId: "cmp-sentinel", CustomerId: "sentinel",
		OccurTime: timestamppb.New(t0), Kind: &profilev1.Event_Complaint{Complaint: &profilev1.Complaint{ComplaintId: "K-1",
			Severity: profilev1.ComplaintSeverity_COMPLAINT_SEVERITY_LOW, Status: profilev1.ComplaintStatus_COMPLAINT_STATUS_OPEN, Category: "test"}}}}); err != nil {
		t.Fatal(err)
	}
	nextTask(t, feed, "task.due", "complaints")
	if n := rc.deliveredCount(); n != 0 {
		t.Fatalf("%d messages delivered before their instant", n)
	}

	// Every survey falls due at once; kill the process once the receiver
	// has acknowledged some messages and holds others open.
	_, clk := dialCare(t, p.grpcAddr("care"))
	if _, err := clk.SetTime(ctx, &testingv1.SetTimeRequest{Time: timestamppb.New(due)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rc.saturated:
	case <-time.After(20 * time.Second):
		t.Fatalf("the receiver saw only %d deliveries", rc.deliveredCount())
	}
	p.kill()
	rc.kill()
	rc.mu.Lock()
	beforeKill, held, failed := len(rc.delivered), rc.held, rc.failed
	rc.mu.Unlock()
	t.Logf("at SIGKILL: %d messages acknowledged, %d requests held open, %d answered 500", beforeKill, held, failed)

	// Restart on the same data; the fake clock starts at t0 again.
	p2 := start(t, args...)
	care, clk = dialCare(t, p2.grpcAddr("care"))
	madeBeforeKill := len(listTasks(t, ctx, care, "li"))
	t.Logf("%d of %d tasks were made before SIGKILL", madeBeforeKill, customers)
	if madeBeforeKill == customers {
		t.Logf("every timer had fired before SIGKILL: only deliveries were interrupted")
	}
	feed = watchTasks(t, p2.grpcAddr("care"), p2.ctx("acme"))
	// The same instant again, then a minute on for the retries of the 500s
	// (the first backoff is under a second).
	for _, at := range []time.Time{due, due.Add(time.Minute)} {
		if _, err := clk.SetTime(ctx, &testingv1.SetTimeRequest{Time: timestamppb.New(at)}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-rc.all:
	case <-time.After(20 * time.Second):
		rc.mu.Lock()
		n := len(rc.perCust)
		rc.mu.Unlock()
		t.Fatalf("after the restart only %d of %d customers got their message", n, customers)
	}
	// Every task's task.due is on the feed (replayed from the start).
	dueTasks := map[string]bool{}
	timeout := time.After(20 * time.Second)
	for len(dueTasks) < customers {
		select {
		case e, ok := <-feed:
			if !ok {
				t.Fatal("care feed closed")
			}
			if e.typ == "task.due" && e.task.PlanId == "survey" {
				dueTasks[e.task.TaskId] = true
			}
		case <-timeout:
			t.Fatalf("only %d of %d survey tasks fell due on the feed", len(dueTasks), customers)
		}
	}

	// Messages: one id per customer, delivered at least once; nothing else.
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, b := range rc.bad {
		t.Errorf("bad delivery: %s", b)
	}
	redelivered, extra := 0, 0
	for id, n := range rc.delivered {
		if n > 1 {
			redelivered++
			extra += n - 1
		}
		if _, ok := rc.customer[id]; !ok {
			t.Errorf("delivery %s has no customer", id)
		}
	}
	for i := range customers {
		c := fmt.Sprintf("c%03d", i)
		if got := len(rc.perCust[c]); got != 1 {
			t.Errorf("customer %s got messages under %d delivery ids, want 1: %v", c, got, rc.perCust[c])
		}
	}
	if len(rc.perCust) != customers || len(rc.delivered) != customers {
		t.Errorf("%d customers got messages under %d ids, want %d and %d", len(rc.perCust), len(rc.delivered), customers, customers)
	}
	for id, n := range rc.attempts {
		if rc.delivered[id] == 0 {
			t.Errorf("delivery %s was attempted %d times and never acknowledged", id, n)
		}
	}
	t.Logf("%d distinct messages delivered; %d ids redelivered after an acknowledged attempt (%d extra deliveries)", len(rc.delivered), redelivered, extra)

	// Tasks: exactly one per customer, under distinct ids.
	perCust := map[string][]string{}
	seen := map[string]int{}
	for _, task := range listTasks(t, ctx, care, "li") {
		seen[task.TaskId]++
		if task.PlanId != "survey" {
			t.Errorf("unexpected task %v", task)
			continue
		}
		perCust[task.CustomerId] = append(perCust[task.CustomerId], task.TaskId)
		if task.State != carev1.TaskState_TASK_STATE_DUE || !task.DueTime.AsTime().Equal(due) {
			t.Errorf("task %s: state %v due %v, want due at %v", task.TaskId, task.State, task.DueTime.AsTime(), due)
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("task %s is in li's queue %d times", id, n)
		}
	}
	for i := range customers {
		c := fmt.Sprintf("c%03d", i)
		if len(perCust[c]) != 1 {
			t.Errorf("customer %s has %d survey tasks, want 1: %v", c, len(perCust[c]), perCust[c])
		}
	}
	if len(seen) != customers || len(dueTasks) != customers {
		t.Errorf("%d tasks in the queue, %d fell due on the feed, want %d", len(seen), len(dueTasks), customers)
	}
}
