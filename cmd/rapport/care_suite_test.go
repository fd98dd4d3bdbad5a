package main

import (
	"context"
	"testing"
	"time"

	carev1 "rapport.dev/gen/go/rapport/care/v1"
	"rapport.dev/platform/grpcclient"
)

// watchTasks follows tenant's care feed and passes on the tasks of its
// task events, with the event type.
func watchTasks(t *testing.T, addr string, ctx context.Context) <-chan taskEvent {
	t.Helper()
	cc, err := grpcclient.Dial(addr, grpcclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(func() { cancel(); cc.Close() })
	stream, err := carev1.NewCareServiceClient(cc).FollowChanges(ctx, &carev1.FollowChangesRequest{Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan taskEvent, 100)
	go func() {
		defer close(out)
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			task := &carev1.Task{}
			if m.Event.Payload.UnmarshalTo(task) == nil {
				out <- taskEvent{m.Event.Type, task}
			}
		}
	}()
	return out
}

type taskEvent struct {
	typ  string
	task *carev1.Task
}

// nextTask waits for the next event of type typ for plan.
func nextTask(t *testing.T, ch <-chan taskEvent, typ, plan string) *carev1.Task {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatal("care feed closed")
			}
			if e.typ == typ && e.task.PlanId == plan {
				return e.task
			}
		case <-timeout:
			t.Fatalf("no %s of plan %s on the care feed", typ, plan)
		}
	}
}

// TestSuiteCare drives the care service through the gateway as an app
// would, on a fake clock: a purchase recorded in the profile schedules a
// satisfaction survey that falls due days later in the owner's queue; a
// complaint makes a follow-up with an SLA that is escalated to the owner's
// manager the moment the SLA passes; completing the survey writes the
// contact log and the answer to the customer's timeline, and completing it
// again with another outcome is refused and changes nothing.
func TestSuiteCare(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC) // a Monday; 18:00 in Shanghai
	p := start(t, "--target=all", "--data-dir", t.TempDir(), "--fake-clock", t0.Format(time.RFC3339),
		"--profile-addr", "127.0.0.1:0", "--segmentation-addr", "127.0.0.1:0", "--loyalty-addr", "127.0.0.1:0", "--care-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	api := p.rest("acme")
	tasks := watchTasks(t, p.grpcAddr("care"), p.ctx("acme"))

	api.must("POST", "/v1/care/plans", map[string]any{"planId": "survey", "displayName": "回访满意度", "enabled": true,
		"target": map[string]any{"allCustomers": true}, "survey": map[string]any{"daysAfterPurchase": 3},
		"task": map[string]any{"title": "Ask {name} how the tea was"}, "at": map[string]any{"hour": 10}}, 200)
	api.must("POST", "/v1/care/plans", map[string]any{"planId": "complaints", "enabled": true,
		"target": map[string]any{"allCustomers": true}, "complaintFollowUp": map[string]any{"slaHours": 24},
		"task": map[string]any{"title": "Call {name} back about the complaint"}}, 200)
	// A plan without a target is refused, naming the field.
	if code, out := api.do("POST", "/v1/care/plans", map[string]any{"planId": "nobody", "enabled": true,
		"survey": map[string]any{"daysAfterPurchase": 3}, "task": map[string]any{"title": "x"}}); code != 400 || !hasField(out, "plan.target") {
		t.Fatalf("a plan without a target: %d %v", code, out)
	}

	api.must("POST", "/v1/customers", map[string]any{"customerId": "c-1", "kind": "CUSTOMER_KIND_PERSON", "displayName": "王小明",
		"timeZone": "Asia/Shanghai", "owner": "li"}, 200)
	api.must("POST", "/v1/customers/c-1/events", map[string]any{"eventId": "pos-1", "occurTime": t0.Format(time.RFC3339),
		"purchase": map[string]any{"orderId": "SO-1", "amount": map[string]any{"amountMinor": "25900", "currency": "CNY"}}}, 200)

	// Three days later at 10:00 in Shanghai the survey falls due.
	surveyDue := time.Date(2026, 3, 5, 2, 0, 0, 0, time.UTC)
	api.must("POST", "/v1/testing/clock", map[string]any{"time": surveyDue.Format(time.RFC3339)}, 200)
	survey := nextTask(t, tasks, "task.due", "survey")
	if !survey.DueTime.AsTime().Equal(surveyDue) || survey.Owner != "li" || survey.Title != "Ask 王小明 how the tea was" {
		t.Fatalf("survey task due: %v", survey)
	}
	queue := api.must("GET", "/v1/care/tasks?owner=li", nil, 200)
	if ts, _ := queue["tasks"].([]any); len(ts) != 1 || ts[0].(map[string]any)["taskId"] != survey.TaskId ||
		ts[0].(map[string]any)["state"] != "TASK_STATE_DUE" || ts[0].(map[string]any)["localDue"] != "2026-03-05 10:00 Asia/Shanghai" {
		t.Fatalf("li's queue: %v", queue)
	}

	// A complaint: a follow-up due at once, escalating after 24 hours to li's manager.
	api.must("PUT", "/v1/care/owners/li/manager", map[string]any{"manager": "wang"}, 200)
	api.must("POST", "/v1/customers/c-1/events", map[string]any{"eventId": "cmp-1", "occurTime": surveyDue.Format(time.RFC3339),
		"complaint": map[string]any{"complaintId": "K-1", "severity": "COMPLAINT_SEVERITY_HIGH", "status": "COMPLAINT_STATUS_OPEN",
			"category": "delivery"}}, 200)
	followUp := nextTask(t, tasks, "task.due", "complaints")
	sla := followUp.SlaTime.AsTime()
	if followUp.Owner != "li" || sla.IsZero() || !sla.After(surveyDue) || sla.Sub(followUp.CreateTime.AsTime()) > 24*time.Hour {
		t.Fatalf("complaint follow-up: %v", followUp)
	}
	api.must("POST", "/v1/testing/clock", map[string]any{"time": sla.Add(-time.Second).Format(time.RFC3339)}, 200)
	api.must("POST", "/v1/testing/clock", map[string]any{"time": sla.Format(time.RFC3339)}, 200)
	escalated := nextTask(t, tasks, "task.escalated", "complaints")
	if escalated.TaskId != followUp.TaskId || escalated.State != carev1.TaskState_TASK_STATE_ESCALATED || escalated.EscalatedTo != "wang" {
		t.Fatalf("complaint follow-up at its SLA: %v", escalated)
	}

	// Completing the survey writes the contact log and the answer to the timeline.
	done := api.must("POST", "/v1/care/tasks/"+survey.TaskId+":complete",
		map[string]any{"outcome": "OUTCOME_SATISFIED", "note": "loves the oolong", "csat": 5}, 200)["task"].(map[string]any)
	if done["state"] != "TASK_STATE_DONE" || done["outcome"] != "OUTCOME_SATISFIED" {
		t.Fatalf("completed survey: %v", done)
	}
	timeline := func() (contact, answer map[string]any, n int) {
		evs, _ := api.must("GET", "/v1/customers/c-1/events", nil, 200)["events"].([]any)
		for _, e := range evs {
			e := e.(map[string]any)
			switch e["eventId"] {
			case "care.contact." + survey.TaskId:
				contact = e
			case "care.survey." + survey.TaskId:
				answer = e
			}
		}
		return contact, answer, len(evs)
	}
	contact, answer, n := timeline()
	if c, _ := contact["contactLog"].(map[string]any); c == nil || c["taskId"] != survey.TaskId || c["notes"] != "loves the oolong" ||
		c["outcome"] != "CONTACT_OUTCOME_SATISFIED" {
		t.Fatalf("contact log on the timeline: %v", contact)
	}
	if a, _ := answer["survey"].(map[string]any); a == nil || a["csat"] != float64(5) {
		t.Fatalf("survey answer on the timeline: %v", answer)
	}
	// The same completion again is a retry: the same task, nothing new on the timeline.
	api.must("POST", "/v1/care/tasks/"+survey.TaskId+":complete",
		map[string]any{"outcome": "OUTCOME_SATISFIED", "note": "loves the oolong", "csat": 5}, 200)
	// Another outcome is refused and changes nothing.
	if code, out := api.do("POST", "/v1/care/tasks/"+survey.TaskId+":complete", map[string]any{"outcome": "OUTCOME_NOT_REACHED"}); code != 400 {
		t.Fatalf("completing again with another outcome: %d %v", code, out)
	}
	if _, _, again := timeline(); again != n {
		t.Fatalf("timeline has %d events after the retries, want %d", again, n)
	}
	if got := api.must("GET", "/v1/care/tasks/"+survey.TaskId, nil, 200)["task"].(map[string]any); got["outcome"] != "OUTCOME_SATISFIED" {
		t.Fatalf("survey task after a refused completion: %v", got)
	}
}

// hasField reports whether a REST error names field in its violations.
func hasField(out map[string]any, field string) bool {
	e, _ := out["error"].(map[string]any)
	vs, _ := e["fieldViolations"].([]any)
	for _, v := range vs {
		if v.(map[string]any)["field"] == field {
			return true
		}
	}
	return false
}
