package store_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/timestamppb"

	carev1 "rapport.dev/gen/go/rapport/care/v1"
	loyaltyv1 "rapport.dev/gen/go/rapport/loyalty/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/webhook"
	"rapport.dev/services/care/domain"
	"rapport.dev/services/care/store"
)

func TestSurveyDueDaysAfterPurchaseAtLocalHourInWorkingHours(t *testing.T) {
	e := newEnv(t)
	e.plan(domain.Plan{Target: allCustomers, Survey: &domain.Survey{DaysAfterPurchase: 2}, At: domain.Clock{Hour: 10}})
	e.customer(&profilev1.Customer{CustomerId: "c1", TimeZone: "Asia/Shanghai", Owner: "alice", DisplayName: "Li Lei"})
	e.customer(&profilev1.Customer{CustomerId: "c2", TimeZone: "Asia/Shanghai", Owner: "alice"})

	// Monday 20:00 in Shanghai: due Wednesday 10:00 local.
	e.purchase("c1", "p1", local(shanghai, 2026, 3, 2, 20, 0))
	// Thursday: two days later is Saturday; the task waits for Monday 09:00.
	e.purchase("c2", "p2", local(shanghai, 2026, 3, 5, 11, 0))

	wed := local(shanghai, 2026, 3, 4, 10, 0)
	if n := e.fire(wed.Add(-time.Nanosecond)); n != 0 || len(e.tasks()) != 0 {
		t.Fatalf("before due: fired %d, tasks %v", n, e.tasks())
	}
	e.fire(wed)
	tasks := e.tasks()
	if len(tasks) != 1 {
		t.Fatalf("at due: %d tasks, want 1", len(tasks))
	}
	got := tasks[0]
	if got.State != domain.TaskDue || !got.Due.Equal(wed) || got.LocalDue != "2026-03-04 10:00 Asia/Shanghai" ||
		got.Owner != "alice" || got.Title != "Call Li Lei" || got.ID != store.TaskID("plan-1", "c1", "profile:event:p1") {
		t.Fatalf("survey task: %+v", got)
	}

	sat := local(shanghai, 2026, 3, 7, 10, 0)
	mon := local(shanghai, 2026, 3, 9, 9, 0)
	e.fire(sat)
	c2 := e.tasks()[1]
	if c2.CustomerID != "c2" || c2.State != domain.TaskScheduled || !c2.Due.Equal(mon) {
		t.Fatalf("weekend survey: %+v, want scheduled for %v", c2, mon)
	}
	e.fire(mon.Add(-time.Nanosecond))
	if s := e.tasks()[1].State; s != domain.TaskScheduled {
		t.Fatalf("before Monday 09:00: %v", s)
	}
	e.fire(mon)
	if s := e.tasks()[1].State; s != domain.TaskDue {
		t.Fatalf("at Monday 09:00: %v", s)
	}
	if n := len(e.events(store.TypeTaskDue)); n != 2 {
		t.Fatalf("%d task.due events, want 2", n)
	}
}

// Two purchases on one local day plan their surveys for the same instant:
// once the first fires, the customer's plan timer stays at that instant
// for the second, which must fire too, and must not stop the scheduler
// for everyone else.
func TestSurveysOfTwoPurchasesOnOneDayBothFire(t *testing.T) {
	e := newEnv(t)
	e.plan(domain.Plan{Target: allCustomers, Survey: &domain.Survey{DaysAfterPurchase: 1}, At: domain.Clock{Hour: 10}})
	e.customer(&profilev1.Customer{CustomerId: "c1", TimeZone: "Asia/Shanghai"})
	e.customer(&profilev1.Customer{CustomerId: "c2", TimeZone: "Asia/Shanghai"})
	e.purchase("c1", "p1", local(shanghai, 2026, 3, 2, 11, 0))
	e.purchase("c1", "p2", local(shanghai, 2026, 3, 2, 15, 0))
	e.purchase("c2", "p3", local(shanghai, 2026, 3, 2, 16, 0))

	due := local(shanghai, 2026, 3, 3, 10, 0)
	if n := e.fire(due); n != 3 {
		t.Fatalf("fired %d, want 3", n)
	}
	want := map[string]bool{
		store.TaskID("plan-1", "c1", "profile:event:p1"): true,
		store.TaskID("plan-1", "c1", "profile:event:p2"): true,
		store.TaskID("plan-1", "c2", "profile:event:p3"): true,
	}
	tasks := e.tasks()
	for _, task := range tasks {
		if !want[task.ID] || task.State != domain.TaskDue || !task.Due.Equal(due) {
			t.Errorf("task %+v", task)
		}
		delete(want, task.ID)
	}
	if len(want) != 0 || len(tasks) != 3 {
		t.Fatalf("%d tasks, missing %v", len(tasks), want)
	}
	if n := e.fire(due.Add(day)); n != 0 {
		t.Fatalf("fired %d again a day later", n)
	}
}

func TestComplaintEscalatesExactlyWhenSLAPasses(t *testing.T) {
	e := newEnv(t)
	if err := e.st.SetManager(ctx, tenant, "alice", "bob"); err != nil {
		t.Fatal(err)
	}
	e.plan(domain.Plan{Target: allCustomers, Complaint: &domain.Complaint{SLAHours: 24}})
	e.customer(&profilev1.Customer{CustomerId: "c1", TimeZone: "Asia/Shanghai", Owner: "alice"})
	recorded := local(shanghai, 2026, 3, 2, 10, 30)
	e.apply(e.st.ApplyProfileEvent, e.event("event.recorded", "c1", &profilev1.Event{EventId: "k1", CustomerId: "c1",
		OccurTime: timestamppb.New(recorded.Add(-time.Hour)), RecordTime: timestamppb.New(recorded),
		Kind: &profilev1.Event_Complaint{Complaint: &profilev1.Complaint{ComplaintId: "k1"}}}))

	e.fire(recorded)
	tasks := e.tasks()
	sla := recorded.Add(24 * time.Hour)
	if len(tasks) != 1 || tasks[0].State != domain.TaskDue || !tasks[0].SLA.Equal(sla) {
		t.Fatalf("follow-up: %+v", tasks)
	}
	if n := e.fire(sla.Add(-time.Nanosecond)); n != 0 {
		t.Fatalf("a nanosecond before the SLA %d timers fired", n)
	}
	if s := e.tasks()[0].State; s != domain.TaskDue {
		t.Fatalf("before the SLA: %v", s)
	}
	if n := e.fire(sla); n != 1 {
		t.Fatalf("at the SLA %d timers fired, want 1", n)
	}
	got := e.tasks()[0]
	if got.State != domain.TaskEscalated || got.EscalatedTo != "bob" {
		t.Fatalf("at the SLA: %+v", got)
	}
	// The manager sees it in their queue; the listing of every queue has it once.
	if bobs, _, err := e.st.Queue(ctx, tenant, store.QueueQuery{Owner: "bob"}); err != nil || len(bobs) != 1 || bobs[0].ID != got.ID {
		t.Fatalf("bob's queue: %+v, %v", bobs, err)
	}
	if all, _, err := e.st.Queue(ctx, tenant, store.QueueQuery{}); err != nil || len(all) != 1 {
		t.Fatalf("every queue: %+v, %v", all, err)
	}
	e.fire(sla.Add(time.Hour))
	e.reopen()
	e.fire(sla.Add(2 * time.Hour))
	evs := e.events(store.TypeTaskEscalated)
	if len(evs) != 1 || taskOf(t, evs[0]).EscalatedTo != "bob" || taskOf(t, evs[0]).State != carev1.TaskState_TASK_STATE_ESCALATED {
		t.Fatalf("escalation events: %v", evs)
	}
}

func TestBirthdayGreetingAtLocalHourAcrossDST(t *testing.T) {
	e := newEnv(t)
	e.plan(domain.Plan{Target: allCustomers, Birthday: &domain.BirthdayCare{}, At: domain.Clock{Hour: 10}})
	// New York moves to daylight time on 8 March 2026; the birthday is the 10th (a Tuesday).
	e.customer(&profilev1.Customer{CustomerId: "c1", TimeZone: "America/New_York", Owner: "alice",
		Person: &profilev1.Person{Birthday: &typev1.Date{Year: 1990, Month: 3, Day: 10}}})
	want := local(newYork, 2026, 3, 10, 10, 0)
	if want.UTC().Hour() != 14 {
		t.Fatalf("test premise: 10:00 EDT is 14:00 UTC, got %v", want.UTC())
	}
	times, zone, err := e.st.Preview(ctx, tenant, "plan-1", "c1", 2)
	if err != nil || zone != "America/New_York" || len(times) != 2 || !times[0].Equal(want) ||
		!times[1].Equal(local(newYork, 2027, 3, 10, 10, 0)) {
		t.Fatalf("preview: %v %q %v", times, zone, err)
	}
	e.fire(want.Add(-time.Nanosecond))
	if len(e.tasks()) != 0 {
		t.Fatal("greeting before its time")
	}
	e.fire(want)
	tasks := e.tasks()
	if len(tasks) != 1 || !tasks[0].Due.Equal(want) || tasks[0].LocalDue != "2026-03-10 10:00 America/New_York" {
		t.Fatalf("greeting: %+v", tasks)
	}
	// Next year's is planned, in standard time again (15:00 UTC).
	times, _, _ = e.st.Preview(ctx, tenant, "plan-1", "c1", 1)
	if len(times) != 1 || !times[0].Equal(time.Date(2027, 3, 10, 15, 0, 0, 0, time.UTC)) {
		t.Fatalf("next greeting: %v", times)
	}
}

func TestRevisitEvery14DaysWhilePlatinum(t *testing.T) {
	e := newEnv(t)
	e.plan(domain.Plan{Target: domain.Target{Tiers: []string{"platinum"}}, At: domain.Clock{Hour: 10},
		Revisit: &domain.Revisit{ByTier: []domain.TierRecurrence{{Tier: "*", Recurrence: "FREQ=DAILY"}, {Tier: "platinum", Recurrence: "FREQ=WEEKLY;INTERVAL=2"}}}})
	e.customer(&profilev1.Customer{CustomerId: "c1", TimeZone: "Asia/Shanghai", Owner: "alice"})
	e.tier("c1", segmentationv1.Tier_TIER_PLATINUM) // at 09:00 Monday in Shanghai

	first := local(shanghai, 2026, 3, 2, 10, 0)
	for i := range 3 {
		at := first.Add(time.Duration(i) * 14 * day)
		e.fire(at.Add(-time.Nanosecond))
		if n := len(e.tasks()); n != i {
			t.Fatalf("before revisit %d: %d tasks", i, n)
		}
		e.fire(at)
		tasks := e.tasks()
		if len(tasks) != i+1 || !tasks[i].Due.Equal(at) {
			t.Fatalf("revisit %d: %+v, want due %v", i, tasks, at)
		}
	}
	e.tier("c1", segmentationv1.Tier_TIER_GOLD)
	if times, _, _ := e.st.Preview(ctx, tenant, "plan-1", "c1", 5); len(times) != 0 {
		t.Fatalf("gold customer still planned: %v", times)
	}
	if n := e.fire(first.Add(100 * day)); n != 0 || len(e.tasks()) != 3 {
		t.Fatalf("after leaving the tier: fired %d, %d tasks", n, len(e.tasks()))
	}
}

func TestDoNotContactSuppresses(t *testing.T) {
	e := newEnv(t)
	e.plan(domain.Plan{Target: allCustomers, Survey: &domain.Survey{DaysAfterPurchase: 1}, At: domain.Clock{Hour: 10}})
	e.customer(&profilev1.Customer{CustomerId: "c1", TimeZone: "Asia/Shanghai"})
	e.customer(&profilev1.Customer{CustomerId: "c2", TimeZone: "Asia/Shanghai", DoNotContact: true})
	if _, err := e.st.SetConsent(ctx, tenant, store.Consent{CustomerID: "c1", DoNotContact: true}); err != nil {
		t.Fatal(err)
	}
	e.purchase("c1", "p1", t0)
	e.purchase("c2", "p2", t0)
	if n := e.fire(t0.Add(30 * day)); n != 2 {
		t.Fatalf("fired %d, want the two occurrences", n)
	}
	if tasks := e.tasks(); len(tasks) != 0 {
		t.Fatalf("tasks for customers who refused contact: %+v", tasks)
	}
}

func TestOptedOutChannelAndQuietHoursForMessages(t *testing.T) {
	e := newEnv(t)
	e.plan(domain.Plan{Target: allCustomers, Birthday: &domain.BirthdayCare{}, At: domain.Clock{Hour: 7},
		Message: &domain.MessageAction{WebhookURL: "https://hooks.example.com/care", Channel: "sms", Template: "Happy birthday, {name}!"}})
	bday := &profilev1.Person{Birthday: &typev1.Date{Month: 3, Day: 4}}
	e.customer(&profilev1.Customer{CustomerId: "c1", TimeZone: "Asia/Shanghai", DisplayName: "Mei", Person: bday})
	e.customer(&profilev1.Customer{CustomerId: "c2", TimeZone: "Asia/Shanghai", Person: bday,
		Consents: []*profilev1.Consent{{Channel: profilev1.ContactChannel_CONTACT_CHANNEL_SMS, Granted: false}}})
	if _, err := e.st.SetConsent(ctx, tenant, store.Consent{CustomerID: "c1",
		QuietHours: &store.QuietHours{Start: domain.Clock{Hour: 22}, End: domain.Clock{Hour: 8}}}); err != nil {
		t.Fatal(err)
	}
	e.fire(local(shanghai, 2026, 3, 4, 7, 0))
	if n := len(e.events(store.TypeMessageSent)); n != 0 {
		t.Fatalf("%d messages sent in quiet hours", n)
	}
	e.fire(local(shanghai, 2026, 3, 4, 8, 0).Add(-time.Nanosecond))
	if n := len(e.events(store.TypeMessageSent)); n != 0 {
		t.Fatalf("%d messages before quiet hours end", n)
	}
	e.fire(local(shanghai, 2026, 3, 4, 8, 0))
	evs := e.events(store.TypeMessageSent)
	if len(evs) != 1 {
		t.Fatalf("%d messages when quiet hours end, want 1 (c2 opted out of sms)", len(evs))
	}
	d := &carev1.Delivery{}
	if err := evs[0].Payload.UnmarshalTo(d); err != nil || d.CustomerId != "c1" {
		t.Fatalf("delivery %v: %v", d, err)
	}
	got, err := e.outbox.Get(tenant, d.DeliveryId)
	if err != nil || got.State != webhook.Pending || got.EventType != store.MessageEventType {
		t.Fatalf("outbox: %+v, %v", got, err)
	}
}

func TestWeeklyCapDefers(t *testing.T) {
	e := newEnv(t)
	e.plan(domain.Plan{ID: "survey-1", Target: allCustomers, Survey: &domain.Survey{DaysAfterPurchase: 1}, At: domain.Clock{Hour: 10}})
	e.plan(domain.Plan{ID: "survey-2", Target: allCustomers, Survey: &domain.Survey{DaysAfterPurchase: 2}, At: domain.Clock{Hour: 10}})
	e.customer(&profilev1.Customer{CustomerId: "c1", TimeZone: "Asia/Shanghai"})
	if _, err := e.st.SetConsent(ctx, tenant, store.Consent{CustomerID: "c1", MaxTouchesPerWeek: 1}); err != nil {
		t.Fatal(err)
	}
	e.purchase("c1", "p1", t0) // Monday
	tue, wed := local(shanghai, 2026, 3, 3, 10, 0), local(shanghai, 2026, 3, 4, 10, 0)
	e.fire(tue)
	e.fire(wed)
	if tasks := e.tasks(); len(tasks) != 1 || tasks[0].PlanID != "survey-1" {
		t.Fatalf("over the cap: %+v", tasks)
	}
	// The first touch leaves the window a week after it was made.
	e.fire(tue.Add(7 * day).Add(-time.Nanosecond))
	if n := len(e.tasks()); n != 1 {
		t.Fatalf("deferred task made early: %d tasks", n)
	}
	e.fire(tue.Add(7 * day))
	tasks := e.tasks()
	if len(tasks) != 2 || tasks[1].PlanID != "survey-2" || !tasks[1].Due.Equal(tue.Add(7*day)) {
		t.Fatalf("deferred task: %+v", tasks)
	}
}

func TestRestartKeepsTimersAndFiresOnce(t *testing.T) {
	e := newEnv(t)
	e.plan(domain.Plan{Target: allCustomers, Survey: &domain.Survey{DaysAfterPurchase: 3}, At: domain.Clock{Hour: 10}})
	e.customer(&profilev1.Customer{CustomerId: "c1", TimeZone: "Asia/Shanghai"})
	e.purchase("c1", "p1", t0)
	e.reopen()
	due := local(shanghai, 2026, 3, 5, 10, 0)
	e.fire(due.Add(-time.Minute))
	e.reopen()
	if n := e.fire(due); n != 1 {
		t.Fatalf("fired %d after restart, want 1", n)
	}
	e.reopen()
	if n := e.fire(due.Add(day)); n != 0 {
		t.Fatalf("fired %d again after another restart", n)
	}
	if n := len(e.events(store.TypeTaskScheduled)); n != 1 || len(e.tasks()) != 1 {
		t.Fatalf("%d task.scheduled events, %d tasks; want 1", n, len(e.tasks()))
	}
}

func TestCatchUpAfterClockJumpFiresInOrder(t *testing.T) {
	e := newEnv(t)
	e.plan(domain.Plan{Target: allCustomers, Survey: &domain.Survey{DaysAfterPurchase: 1}, At: domain.Clock{Hour: 10},
		WorkingHours: &domain.PlanHours{Start: domain.Clock{Hour: 8}, End: domain.Clock{Hour: 20}, Weekdays: []int{1, 2, 3, 4, 5, 6, 7}}})
	// Customer ids sort opposite to their due order.
	for i, id := range []string{"c-z", "c-m", "c-a"} {
		e.customer(&profilev1.Customer{CustomerId: id, TimeZone: "Asia/Shanghai"})
		e.purchase(id, "p-"+id, t0.Add(time.Duration(i)*day))
	}
	if n := e.fire(t0.Add(40 * day)); n != 3 {
		t.Fatalf("catch-up fired %d, want 3", n)
	}
	evs := e.events(store.TypeTaskScheduled)
	if len(evs) != 3 {
		t.Fatalf("%d tasks scheduled", len(evs))
	}
	for i, id := range []string{"c-z", "c-m", "c-a"} {
		if got := taskOf(t, evs[i]).CustomerId; got != id {
			t.Fatalf("catch-up order: event %d is %s, want %s", i, got, id)
		}
	}
}

func TestCompleteTwice(t *testing.T) {
	e := newEnv(t)
	e.plan(domain.Plan{Target: allCustomers, Survey: &domain.Survey{DaysAfterPurchase: 1}, At: domain.Clock{Hour: 10}})
	e.customer(&profilev1.Customer{CustomerId: "c1", TimeZone: "Asia/Shanghai", Owner: "alice"})
	e.purchase("c1", "p1", t0)
	e.fire(t0.Add(2 * day))
	id := e.tasks()[0].ID

	first, err := e.st.CompleteTask(ctx, tenant, id, domain.OutcomeSatisfied, "happy", 5)
	if err != nil || first.Replayed || first.Task.State != domain.TaskDone {
		t.Fatalf("complete: %+v, %v", first, err)
	}
	if len(first.Timeline) != 2 || first.Timeline[0].EventId != "care.contact."+id || first.Timeline[1].EventId != "care.survey."+id ||
		first.Timeline[0].GetContactLog().GetOutcome() != profilev1.ContactOutcome_CONTACT_OUTCOME_SATISFIED ||
		first.Timeline[0].GetContactLog().GetTaskId() != id || first.Timeline[1].GetSurvey().GetCsat() != 5 {
		t.Fatalf("timeline: %v", first.Timeline)
	}
	e.clk.Advance(time.Hour)
	again, err := e.st.CompleteTask(ctx, tenant, id, domain.OutcomeSatisfied, "happy", 5)
	if err != nil || !again.Replayed || !again.Task.Completed.Equal(first.Task.Completed) ||
		again.Timeline[0].EventId != first.Timeline[0].EventId || !again.Timeline[0].OccurTime.AsTime().Equal(first.Timeline[0].OccurTime.AsTime()) {
		t.Fatalf("retry: %+v, %v", again, err)
	}
	if _, err := e.st.CompleteTask(ctx, tenant, id, domain.OutcomeNotReached, "", 0); !errors.Is(err, fault.ErrFailedPrecondition) {
		t.Fatalf("another outcome: %v, want failed precondition", err)
	}
	if _, err := e.st.SkipTask(ctx, tenant, id, "busy"); !errors.Is(err, fault.ErrFailedPrecondition) {
		t.Fatalf("skip a completed task: %v", err)
	}
	if _, err := e.st.CompleteTask(ctx, tenant, id, 0, "", 9); err == nil {
		t.Fatal("bad outcome and csat accepted")
	} else {
		wantField(t, err, "outcome")
		wantField(t, err, "csat")
	}
	if n := len(e.events(store.TypeTaskCompleted)); n != 1 {
		t.Fatalf("%d task.completed events, want 1", n)
	}
}

func TestPlanValidationNamesFields(t *testing.T) {
	e := newEnv(t)
	valid := func() domain.Plan {
		return domain.Plan{ID: "p", Enabled: true, Target: allCustomers, Survey: &domain.Survey{DaysAfterPurchase: 1},
			Task: &domain.TaskAction{Title: "Ask"}}
	}
	for _, tc := range []struct {
		field string
		edit  func(*domain.Plan)
	}{
		{"plan.plan_id", func(p *domain.Plan) { p.ID = "a b" }},
		{"plan.target", func(p *domain.Plan) { p.Target = domain.Target{} }},
		{"plan.target.tiers[0]", func(p *domain.Plan) { p.Target.Tiers = []string{"diamond"} }},
		{"plan.target.loyalty_tiers[0]", func(p *domain.Plan) { p.Target.LoyaltyTiers = []string{"club"} }},
		{"plan.trigger", func(p *domain.Plan) { p.Survey = nil }},
		{"plan.trigger", func(p *domain.Plan) { p.Birthday = &domain.BirthdayCare{} }},
		{"plan.action", func(p *domain.Plan) { p.Task = nil }},
		{"plan.action", func(p *domain.Plan) {
			p.Message = &domain.MessageAction{WebhookURL: "https://x.example", Channel: "sms", Template: "hi"}
		}},
		{"plan.revisit.by_tier[1].recurrence", func(p *domain.Plan) {
			p.Survey = nil
			p.Revisit = &domain.Revisit{ByTier: []domain.TierRecurrence{{Tier: "gold", Recurrence: "FREQ=MONTHLY"}, {Tier: "*", Recurrence: "FREQ=HOURLY"}}}
		}},
		{"plan.survey.days_after_purchase", func(p *domain.Plan) { p.Survey.DaysAfterPurchase = 0 }},
		{"plan.complaint_follow_up.sla_hours", func(p *domain.Plan) { p.Survey, p.Complaint = nil, &domain.Complaint{} }},
		{"plan.message.webhook_url", func(p *domain.Plan) {
			p.Task, p.Message = nil, &domain.MessageAction{WebhookURL: "ftp://x.example", Channel: "sms", Template: "hi"}
		}},
		{"plan.at.hour", func(p *domain.Plan) { p.At.Hour = 24 }},
		{"plan.working_hours.end", func(p *domain.Plan) {
			p.WorkingHours = &domain.PlanHours{Start: domain.Clock{Hour: 18}, End: domain.Clock{Hour: 9}}
		}},
		{"plan.working_hours.weekdays[0]", func(p *domain.Plan) {
			p.WorkingHours = &domain.PlanHours{Start: domain.Clock{Hour: 9}, End: domain.Clock{Hour: 18}, Weekdays: []int{0}}
		}},
		{"plan.holidays.fixed_dates[0].day", func(p *domain.Plan) {
			p.Survey, p.Holidays = nil, &domain.Holidays{FixedDates: []domain.NamedHoliday{{Month: 2, Day: 29}}}
		}},
	} {
		p := valid()
		tc.edit(&p)
		_, _, err := e.st.CreatePlan(ctx, tenant, &p)
		wantField(t, err, tc.field)
	}
	if plans, _ := e.st.ListPlans(ctx, tenant); len(plans) != 0 {
		t.Fatalf("invalid plans stored: %v", plans)
	}

	p := valid()
	stored, created, err := e.st.CreatePlan(ctx, tenant, &p)
	if err != nil || !created {
		t.Fatal(created, err)
	}
	if again, created, err := e.st.CreatePlan(ctx, tenant, &p); err != nil || created || again.Etag != stored.Etag {
		t.Fatalf("retry: %v %v", created, err)
	}
	other := valid()
	other.Survey.DaysAfterPurchase = 5
	if _, _, err := e.st.CreatePlan(ctx, tenant, &other); !errors.Is(err, fault.ErrAlreadyExists) {
		t.Fatalf("other content: %v", err)
	}
	other.Etag = "stale"
	if _, err := e.st.UpdatePlan(ctx, tenant, &other); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("stale etag: %v", err)
	}
	other.Etag = stored.Etag
	if up, err := e.st.UpdatePlan(ctx, tenant, &other); err != nil || up.Etag == stored.Etag || up.Survey.DaysAfterPurchase != 5 {
		t.Fatalf("update: %+v %v", up, err)
	}
}

func TestPlanUpdateReschedules(t *testing.T) {
	e := newEnv(t)
	p := e.plan(domain.Plan{Target: allCustomers, At: domain.Clock{Hour: 10},
		Revisit: &domain.Revisit{ByTier: []domain.TierRecurrence{{Tier: "*", Recurrence: "FREQ=WEEKLY"}}}})
	e.customer(&profilev1.Customer{CustomerId: "c1", TimeZone: "Asia/Shanghai"})
	times, _, _ := e.st.Preview(ctx, tenant, p.ID, "c1", 2)
	if len(times) != 2 || !times[0].Equal(local(shanghai, 2026, 3, 2, 10, 0)) || !times[1].Equal(local(shanghai, 2026, 3, 9, 10, 0)) {
		t.Fatalf("preview: %v", times)
	}
	p.At = domain.Clock{Hour: 15}
	p.Revisit.ByTier[0].Recurrence = "FREQ=WEEKLY;INTERVAL=2"
	if _, err := e.st.UpdatePlan(ctx, tenant, p); err != nil {
		t.Fatal(err)
	}
	times, _, _ = e.st.Preview(ctx, tenant, p.ID, "c1", 2)
	if len(times) != 2 || !times[0].Equal(local(shanghai, 2026, 3, 2, 15, 0)) || !times[1].Equal(local(shanghai, 2026, 3, 16, 15, 0)) {
		t.Fatalf("preview after update: %v", times)
	}
	e.fire(local(shanghai, 2026, 3, 2, 10, 0))
	if n := len(e.tasks()); n != 0 {
		t.Fatalf("old rhythm fired: %d tasks", n)
	}
	e.fire(local(shanghai, 2026, 3, 2, 15, 0))
	if n := len(e.tasks()); n != 1 {
		t.Fatalf("new rhythm: %d tasks", n)
	}
}

func TestReactionsAppliedTwiceChangeNothing(t *testing.T) {
	e := newEnv(t)
	e.plan(domain.Plan{ID: "survey", Target: allCustomers, Survey: &domain.Survey{DaysAfterPurchase: 1}, At: domain.Clock{Hour: 10}})
	e.plan(domain.Plan{ID: "complaint", Target: allCustomers, Complaint: &domain.Complaint{SLAHours: 4}})
	e.plan(domain.Plan{ID: "winback", Target: allCustomers, WinBack: &domain.WinBack{DaysAfterDormant: 3}, At: domain.Clock{Hour: 10}})
	e.plan(domain.Plan{ID: "silence", Target: allCustomers, NotContacted: &domain.NotContacted{Days: 30}, At: domain.Clock{Hour: 10}})
	e.plan(domain.Plan{ID: "vip", Target: domain.Target{SegmentIDs: []string{"vip"}, LoyaltyTiers: []string{"club/gold"}},
		Birthday: &domain.BirthdayCare{}, At: domain.Clock{Hour: 10}})
	e.plan(domain.Plan{ID: "rec", Target: allCustomers, Recommendation: &domain.Recommendation{Categories: []string{"tea"}, Product: "Oolong"}})

	at := timestamppb.New(t0)
	evs := []struct {
		name  string
		apply func() func()
	}{
		{"customer.created", func() func() {
			ev := e.event("customer.created", "c1", &profilev1.Customer{CustomerId: "c1", TimeZone: "Asia/Shanghai", Owner: "alice",
				Person: &profilev1.Person{Birthday: &typev1.Date{Month: 6, Day: 1}}})
			return func() { e.apply(e.st.ApplyProfileEvent, ev) }
		}},
		{"purchase", func() func() {
			ev := e.event("event.recorded", "c1", &profilev1.Event{EventId: "p1", CustomerId: "c1", OccurTime: at, RecordTime: at,
				Kind: &profilev1.Event_Purchase{Purchase: &profilev1.Purchase{OrderId: "o1",
					Items: []*profilev1.LineItem{{Sku: "s", Category: "tea", Quantity: 1}}}}})
			return func() { e.apply(e.st.ApplyProfileEvent, ev) }
		}},
		{"complaint", func() func() {
			ev := e.event("event.recorded", "c1", &profilev1.Event{EventId: "k1", CustomerId: "c1", OccurTime: at, RecordTime: at,
				Kind: &profilev1.Event_Complaint{Complaint: &profilev1.Complaint{ComplaintId: "k1"}}})
			return func() { e.apply(e.st.ApplyProfileEvent, ev) }
		}},
		{"contact log", func() func() {
			ev := e.event("event.recorded", "c1", &profilev1.Event{EventId: "l1", CustomerId: "c1", OccurTime: at, RecordTime: at,
				Kind: &profilev1.Event_ContactLog{ContactLog: &profilev1.ContactLog{Outcome: profilev1.ContactOutcome_CONTACT_OUTCOME_REACHED}}})
			return func() { e.apply(e.st.ApplyProfileEvent, ev) }
		}},
		{"segment.entered", func() func() {
			ev := e.event("segment.entered", "c1", &segmentationv1.MembershipChange{SegmentId: "vip", CustomerId: "c1", Entered: true, Time: at})
			return func() { e.apply(e.st.ApplySegmentationEvent, ev) }
		}},
		{"scores.changed", func() func() {
			ev := e.event("scores.changed", "c1", &segmentationv1.ScoresChange{CustomerId: "c1", After: &segmentationv1.Scores{Tier: segmentationv1.Tier_TIER_GOLD}})
			return func() { e.apply(e.st.ApplySegmentationEvent, ev) }
		}},
		{"activity.changed", func() func() {
			ev := e.event("activity.changed", "c1", &segmentationv1.ActivityChange{CustomerId: "c1",
				Before: segmentationv1.Activity_ACTIVITY_ACTIVE, After: segmentationv1.Activity_ACTIVITY_DORMANT, Time: at})
			return func() { e.apply(e.st.ApplySegmentationEvent, ev) }
		}},
		{"tier.changed", func() func() {
			ev := e.event("tier.changed", "c1", &loyaltyv1.TierChange{ProgramId: "club", CustomerId: "c1", After: "gold", Time: at})
			return func() { e.apply(e.st.ApplyLoyaltyEvent, ev) }
		}},
		{"segment.left", func() func() {
			ev := e.event("segment.left", "c1", &segmentationv1.MembershipChange{SegmentId: "other", CustomerId: "c1", Time: at})
			return func() { e.apply(e.st.ApplySegmentationEvent, ev) }
		}},
	}
	var applies []func()
	for _, s := range evs {
		apply := s.apply()
		applies = append(applies, apply)
		apply()
		before := e.snapshot()
		e.clk.Advance(time.Minute) // a retry comes later
		apply()
		if after := e.snapshot(); after != before {
			t.Fatalf("%s applied twice changed the database:\n%s\n---\n%s", s.name, before, after)
		}
	}
	// The reactions did plan: a survey, a complaint follow-up, a win-back,
	// a recommendation, the silence and the VIP birthday.
	times := map[string]int{}
	for _, id := range []string{"survey", "complaint", "winback", "silence", "vip", "rec"} {
		ts, _, err := e.st.Preview(ctx, tenant, id, "c1", 1)
		if err != nil {
			t.Fatal(err)
		}
		times[id] = len(ts)
	}
	for id, n := range times {
		if n != 1 {
			t.Errorf("plan %s: %d planned fires, want 1", id, n)
		}
	}
	if _, err := e.st.SetConsent(ctx, tenant, store.Consent{CustomerID: "c1", MaxTouchesPerWeek: 10}); err != nil {
		t.Fatal(err)
	}
	e.fire(t0.Add(100 * day)) // past the birthday, 1 June
	if n := len(e.tasks()); n != 6 {
		t.Fatalf("%d tasks after firing, want 6: %v", n, e.tasks())
	}
	// Delivered again after what they planned has fired, they plan nothing.
	before := e.snapshot()
	for _, apply := range applies {
		apply()
	}
	if after := e.snapshot(); after != before {
		t.Fatalf("events applied again after firing changed the database:\n%s\n---\n%s", before, after)
	}
}

func TestQueueAndCounts(t *testing.T) {
	e := newEnv(t)
	e.plan(domain.Plan{Target: allCustomers, Survey: &domain.Survey{DaysAfterPurchase: 1}, At: domain.Clock{Hour: 10}})
	e.customer(&profilev1.Customer{CustomerId: "c1", TimeZone: "Asia/Shanghai", Owner: "alice"})
	e.customer(&profilev1.Customer{CustomerId: "c2", TimeZone: "Asia/Shanghai", Owner: "alice"})
	e.customer(&profilev1.Customer{CustomerId: "c3", TimeZone: "Asia/Shanghai", Owner: "bob"})
	e.purchase("c1", "p1", t0)          // due Tuesday 10:00
	e.purchase("c2", "p2", t0.Add(day)) // due Wednesday 10:00
	e.purchase("c3", "p3", t0.Add(day))
	e.fire(local(shanghai, 2026, 3, 4, 10, 0))
	e.clk.Set(local(shanghai, 2026, 3, 4, 12, 0))

	alice, next, err := e.st.Queue(ctx, tenant, store.QueueQuery{Owner: "alice", PageSize: 1})
	if err != nil || len(alice) != 1 || alice[0].CustomerID != "c1" || next == "" {
		t.Fatalf("page 1: %v %q %v", alice, next, err)
	}
	page2, next, err := e.st.Queue(ctx, tenant, store.QueueQuery{Owner: "alice", PageSize: 1, PageToken: next})
	if err != nil || len(page2) != 1 || page2[0].CustomerID != "c2" || next != "" {
		t.Fatalf("page 2: %v %q %v", page2, next, err)
	}
	counts, err := e.st.Counts(ctx, tenant, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.QueueCounts{{Owner: "alice", DueToday: 1, Overdue: 1}, {Owner: "bob", DueToday: 1}}
	if len(counts) != 2 || counts[0] != want[0] || counts[1] != want[1] {
		t.Fatalf("counts: %+v, want %+v", counts, want)
	}
}

// TestPlanDefaultZoneForCustomersWithoutOne: a customer whose profile has no
// time zone is planned in the plan's default zone, not in UTC; one with a
// zone keeps theirs.
func TestPlanDefaultZoneForCustomersWithoutOne(t *testing.T) {
	e := newEnv(t)
	e.plan(domain.Plan{Target: allCustomers, Survey: &domain.Survey{DaysAfterPurchase: 2}, At: domain.Clock{Hour: 10},
		DefaultTimeZone: "Asia/Shanghai"})
	e.customer(&profilev1.Customer{CustomerId: "c1", Owner: "alice"})
	e.purchase("c1", "p1", local(shanghai, 2026, 3, 2, 12, 0))
	wed := local(shanghai, 2026, 3, 4, 10, 0) // 02:00 UTC; in UTC it would be 10:00 UTC
	e.fire(wed)
	tasks := e.tasks()
	if len(tasks) != 1 || !tasks[0].Due.Equal(wed) || tasks[0].LocalDue != "2026-03-04 10:00 Asia/Shanghai" {
		t.Fatalf("survey for a customer without a zone: %+v, want due %v in Shanghai", tasks, wed)
	}
}

// TestQueueOfOneCustomer: ListTasks with a customer lists that customer's
// tasks through customer_tasks, with the filters and paging of the queues.
func TestQueueOfOneCustomer(t *testing.T) {
	e := newEnv(t)
	if err := e.st.SetManager(ctx, tenant, "alice", "bob"); err != nil {
		t.Fatal(err)
	}
	e.plan(domain.Plan{ID: "survey", Target: allCustomers, Survey: &domain.Survey{DaysAfterPurchase: 1}, At: domain.Clock{Hour: 10}})
	e.plan(domain.Plan{ID: "complaints", Target: allCustomers, Complaint: &domain.Complaint{SLAHours: 1}})
	e.customer(&profilev1.Customer{CustomerId: "c1", TimeZone: "Asia/Shanghai", Owner: "alice"})
	e.customer(&profilev1.Customer{CustomerId: "c2", TimeZone: "Asia/Shanghai", Owner: "alice"})
	e.purchase("c1", "p1", t0) // survey due Tuesday 10:00
	e.purchase("c2", "p2", t0)
	complaint := func(customer, id string) {
		e.apply(e.st.ApplyProfileEvent, e.event("event.recorded", customer, &profilev1.Event{EventId: id, CustomerId: customer,
			OccurTime: timestamppb.New(t0), RecordTime: timestamppb.New(t0),
			Kind: &profilev1.Event_Complaint{Complaint: &profilev1.Complaint{ComplaintId: id}}}))
	}
	complaint("c1", "k1")
	complaint("c2", "k2")
	surveyDue := local(shanghai, 2026, 3, 3, 10, 0)
	e.fire(t0)        // the follow-ups fall due
	e.fire(surveyDue) // they have escalated to bob; the surveys fall due

	ids := func(tasks []*domain.Task) (out []string) {
		for _, task := range tasks {
			out = append(out, task.CustomerID+"/"+task.PlanID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		q    store.QueueQuery
		want []string
	}{
		{"open", store.QueueQuery{Customer: "c1"}, []string{"c1/complaints", "c1/survey"}},
		{"other customer", store.QueueQuery{Customer: "c2"}, []string{"c2/complaints", "c2/survey"}},
		{"unknown customer", store.QueueQuery{Customer: "c9"}, nil},
		{"state", store.QueueQuery{Customer: "c1", States: []domain.TaskState{domain.TaskEscalated}}, []string{"c1/complaints"}},
		{"due before", store.QueueQuery{Customer: "c1", DueBefore: surveyDue}, []string{"c1/complaints"}},
		{"owner", store.QueueQuery{Customer: "c1", Owner: "alice"}, []string{"c1/complaints", "c1/survey"}},
		{"escalated to", store.QueueQuery{Customer: "c1", Owner: "bob"}, []string{"c1/complaints"}},
		{"someone else's", store.QueueQuery{Customer: "c1", Owner: "carol"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, next, err := e.st.Queue(ctx, tenant, tc.q)
			if err != nil || !slices.Equal(ids(got), tc.want) || next != "" {
				t.Fatalf("Queue(%+v) = %v %q %v, want %v", tc.q, ids(got), next, err, tc.want)
			}
		})
	}
	page1, next, err := e.st.Queue(ctx, tenant, store.QueueQuery{Customer: "c1", PageSize: 1})
	if err != nil || !slices.Equal(ids(page1), []string{"c1/complaints"}) || next == "" {
		t.Fatalf("page 1: %v %q %v", ids(page1), next, err)
	}
	page2, next, err := e.st.Queue(ctx, tenant, store.QueueQuery{Customer: "c1", PageSize: 1, PageToken: next})
	if err != nil || !slices.Equal(ids(page2), []string{"c1/survey"}) || next != "" {
		t.Fatalf("page 2: %v %q %v", ids(page2), next, err)
	}
	// A completed task leaves the open listing and stays in the full one.
	if _, err := e.st.CompleteTask(ctx, tenant, page1[0].ID, domain.OutcomeReached, "called back", 0); err != nil {
		t.Fatal(err)
	}
	if got, _, err := e.st.Queue(ctx, tenant, store.QueueQuery{Customer: "c1"}); err != nil || !slices.Equal(ids(got), []string{"c1/survey"}) {
		t.Fatalf("open after completing the follow-up: %v %v", ids(got), err)
	}
	all := []domain.TaskState{domain.TaskScheduled, domain.TaskDue, domain.TaskDone, domain.TaskSkipped, domain.TaskOverdue, domain.TaskEscalated}
	if got, _, err := e.st.Queue(ctx, tenant, store.QueueQuery{Customer: "c1", States: all}); err != nil || len(got) != 2 {
		t.Fatalf("every task of c1: %v %v", ids(got), err)
	}
}

// TestMigrationAddsCustomerTasks opens a file laid out as schema 1 (tasks
// without customer_tasks): the migration indexes the tasks written before.
func TestMigrationAddsCustomerTasks(t *testing.T) {
	e := newEnv(t)
	e.plan(domain.Plan{Target: allCustomers, Survey: &domain.Survey{DaysAfterPurchase: 1}, At: domain.Clock{Hour: 10}})
	for _, c := range []string{"c1", "c2"} {
		e.customer(&profilev1.Customer{CustomerId: c, TimeZone: "Asia/Shanghai", Owner: "alice"})
		e.purchase(c, "p-"+c, t0)
	}
	e.fire(local(shanghai, 2026, 3, 3, 10, 0))
	before := e.tasks()
	if len(before) != 2 {
		t.Fatalf("tasks before: %+v", before)
	}
	// Back to schema 1: no customer_tasks.
	err := e.db.Update(ctx, func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte("customer_tasks")); err != nil {
			return err
		}
		return tx.Bucket(boltdb.MetaBucket).Put([]byte("schema_version"), boltdb.U64(1))
	})
	if err != nil {
		t.Fatal(err)
	}
	e.reopen()
	if v, err := e.db.SchemaVersion(); err != nil || v != store.SchemaVersion {
		t.Fatalf("schema version %d, %v; want %d", v, err, store.SchemaVersion)
	}
	for _, c := range []string{"c1", "c2"} {
		got, _, err := e.st.Queue(ctx, tenant, store.QueueQuery{Customer: c})
		if err != nil || len(got) != 1 || got[0].CustomerID != c {
			t.Fatalf("%s's tasks after the migration: %+v %v", c, got, err)
		}
	}
}
