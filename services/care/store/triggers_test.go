package store_test

import (
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	"rapport.dev/services/care/domain"
	"rapport.dev/services/care/store"
)

// preview returns the next n fire times of plan for customer.
func (e *env) preview(plan, customer string, n int) []time.Time {
	e.t.Helper()
	times, _, err := e.st.Preview(ctx, tenant, plan, customer, n)
	if err != nil {
		e.t.Fatalf("preview %s for %s: %v", plan, customer, err)
	}
	return times
}

func sameInstants(got, want []time.Time) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if !got[i].Equal(want[i]) {
			return false
		}
	}
	return true
}

// contact records a contact log for customer at at, with the clock there.
func (e *env) contact(customer, id string, at time.Time) {
	e.t.Helper()
	e.clk.Set(at)
	e.apply(e.st.ApplyProfileEvent, e.event("event.recorded", customer, &profilev1.Event{EventId: id, CustomerId: customer,
		OccurTime: timestamppb.New(at), RecordTime: timestamppb.New(at),
		Kind: &profilev1.Event_ContactLog{ContactLog: &profilev1.ContactLog{Staff: "alice"}}}))
}

// activity announces a customer's activity change at at, with the clock there.
func (e *env) activity(customer string, after segmentationv1.Activity, at time.Time) {
	e.t.Helper()
	e.clk.Set(at)
	e.apply(e.st.ApplySegmentationEvent, e.event("activity.changed", customer,
		&segmentationv1.ActivityChange{CustomerId: customer, After: after, Time: timestamppb.New(at)}))
}

func recurringTaskID(plan, customer string, planned time.Time) string {
	return store.TaskID(plan, customer, "r:"+strconv.FormatInt(planned.Unix(), 10))
}

func TestHolidayGreetingsOnMidAutumnAndNationalDay(t *testing.T) {
	e := newEnv(t)
	e.plan(domain.Plan{Target: allCustomers, At: domain.Clock{Hour: 10}, Holidays: &domain.Holidays{
		Festivals:  []domain.Festival{domain.MidAutumnFestival},
		FixedDates: []domain.NamedHoliday{{Month: time.October, Day: 1, Name: "National Day"}},
	}})
	e.customer(&profilev1.Customer{CustomerId: "c1", TimeZone: "Asia/Shanghai", Owner: "alice"})

	// 10:00 in Shanghai (+08:00) is 02:00 UTC. Mid-Autumn 2026 is Friday
	// 25 September, National Day Thursday 1 October, Mid-Autumn 2027
	// Wednesday 15 September: all working days, so due as planned.
	midAutumn := time.Date(2026, 9, 25, 2, 0, 0, 0, time.UTC)
	nationalDay := time.Date(2026, 10, 1, 2, 0, 0, 0, time.UTC)
	midAutumn27 := time.Date(2027, 9, 15, 2, 0, 0, 0, time.UTC)

	times, zone, err := e.st.Preview(ctx, tenant, "plan-1", "c1", 3)
	if err != nil || zone != "Asia/Shanghai" || !sameInstants(times, []time.Time{midAutumn, nationalDay, midAutumn27}) {
		t.Fatalf("preview: %v %q %v", times, zone, err)
	}

	if n := e.fire(midAutumn.Add(-time.Nanosecond)); n != 0 || len(e.tasks()) != 0 {
		t.Fatalf("before Mid-Autumn: fired %d, tasks %+v", n, e.tasks())
	}
	if n := e.fire(midAutumn); n != 1 {
		t.Fatalf("at Mid-Autumn %d timers fired, want 1", n)
	}
	tasks := e.tasks()
	if len(tasks) != 1 {
		t.Fatalf("at Mid-Autumn: %d tasks, want 1", len(tasks))
	}
	if got := tasks[0]; got.State != domain.TaskDue || !got.Due.Equal(midAutumn) ||
		got.LocalDue != "2026-09-25 10:00 Asia/Shanghai" || got.Trigger != domain.TriggerHolidays ||
		got.ID != recurringTaskID("plan-1", "c1", midAutumn) {
		t.Fatalf("Mid-Autumn greeting: %+v", got)
	}
	if times := e.preview("plan-1", "c1", 2); !sameInstants(times, []time.Time{nationalDay, midAutumn27}) {
		t.Fatalf("preview after Mid-Autumn: %v", times)
	}

	if n := e.fire(nationalDay.Add(-time.Nanosecond)); n != 0 || len(e.tasks()) != 1 {
		t.Fatalf("before National Day: fired %d, tasks %+v", n, e.tasks())
	}
	e.fire(nationalDay)
	tasks = e.tasks()
	if len(tasks) != 2 {
		t.Fatalf("at National Day: %d tasks, want 2", len(tasks))
	}
	if got := tasks[1]; got.State != domain.TaskDue || !got.Due.Equal(nationalDay) ||
		got.LocalDue != "2026-10-01 10:00 Asia/Shanghai" || got.ID != recurringTaskID("plan-1", "c1", nationalDay) {
		t.Fatalf("National Day greeting: %+v", got)
	}
	// Next is next year's Mid-Autumn, which comes before next National Day.
	if times := e.preview("plan-1", "c1", 1); !sameInstants(times, []time.Time{midAutumn27}) {
		t.Fatalf("preview after National Day: %v, want %v", times, midAutumn27)
	}
	if n := e.fire(midAutumn27.Add(-time.Nanosecond)); n != 0 || len(e.tasks()) != 2 {
		t.Fatalf("before Mid-Autumn 2027: fired %d, %d tasks", n, len(e.tasks()))
	}
	e.fire(midAutumn27)
	if tasks := e.tasks(); len(tasks) != 3 || tasks[2].LocalDue != "2027-09-15 10:00 Asia/Shanghai" {
		t.Fatalf("Mid-Autumn 2027: %+v", tasks)
	}
}

func TestNotContactedCountsFromLastContact(t *testing.T) {
	e := newEnv(t)
	e.plan(domain.Plan{Target: allCustomers, At: domain.Clock{Hour: 10}, NotContacted: &domain.NotContacted{Days: 30}})
	e.customer(&profilev1.Customer{CustomerId: "c1", TimeZone: "Asia/Shanghai", Owner: "alice"})

	// Never contacted: the silence counts from when the plan met the
	// customer, Monday 2 March 09:00 local: Wednesday 1 April 10:00 local.
	if times := e.preview("plan-1", "c1", 1); !sameInstants(times, []time.Time{time.Date(2026, 4, 1, 2, 0, 0, 0, time.UTC)}) {
		t.Fatalf("preview without contact: %v", times)
	}

	// A contact on Wednesday 4 March 15:00 local: Friday 3 April 10:00 local.
	e.contact("c1", "log1", time.Date(2026, 3, 4, 7, 0, 0, 0, time.UTC))
	fri := time.Date(2026, 4, 3, 2, 0, 0, 0, time.UTC)
	if times := e.preview("plan-1", "c1", 1); !sameInstants(times, []time.Time{fri}) {
		t.Fatalf("preview after a contact on 4 March: %v, want %v", times, fri)
	}

	// Another on Friday 6 March 16:00 local moves it to Sunday 5 April
	// 10:00 local; the task waits for Monday 6 April 09:00.
	e.contact("c1", "log2", time.Date(2026, 3, 6, 8, 0, 0, 0, time.UTC))
	sun := time.Date(2026, 4, 5, 2, 0, 0, 0, time.UTC)
	mon := time.Date(2026, 4, 6, 1, 0, 0, 0, time.UTC)
	if times := e.preview("plan-1", "c1", 1); !sameInstants(times, []time.Time{sun}) {
		t.Fatalf("preview after a contact on 6 March: %v, want %v", times, sun)
	}
	// A contact log older than the last one changes nothing.
	old := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	e.apply(e.st.ApplyProfileEvent, e.event("event.recorded", "c1", &profilev1.Event{EventId: "log0", CustomerId: "c1",
		OccurTime: timestamppb.New(old), RecordTime: timestamppb.New(old),
		Kind: &profilev1.Event_ContactLog{ContactLog: &profilev1.ContactLog{Staff: "alice"}}}))
	if times := e.preview("plan-1", "c1", 1); !sameInstants(times, []time.Time{sun}) {
		t.Fatalf("preview after an older contact: %v, want %v", times, sun)
	}

	if n := e.fire(fri); n != 0 || len(e.tasks()) != 0 {
		t.Fatalf("at the moved-away 3 April: fired %d, tasks %+v", n, e.tasks())
	}
	if n := e.fire(sun.Add(-time.Nanosecond)); n != 0 || len(e.tasks()) != 0 {
		t.Fatalf("before 5 April 10:00 local: fired %d, tasks %+v", n, e.tasks())
	}
	e.fire(sun)
	tasks := e.tasks()
	if len(tasks) != 1 {
		t.Fatalf("at 5 April 10:00 local: %d tasks, want 1", len(tasks))
	}
	if got := tasks[0]; got.State != domain.TaskScheduled || !got.Due.Equal(mon) ||
		got.LocalDue != "2026-04-06 09:00 Asia/Shanghai" || got.Trigger != domain.TriggerNotContacted ||
		got.ID != recurringTaskID("plan-1", "c1", sun) {
		t.Fatalf("not-contacted task: %+v", got)
	}
	e.fire(mon.Add(-time.Nanosecond))
	if s := e.tasks()[0].State; s != domain.TaskScheduled {
		t.Fatalf("before Monday 09:00: %v", s)
	}
	e.fire(mon)
	if s := e.tasks()[0].State; s != domain.TaskDue {
		t.Fatalf("at Monday 09:00: %v", s)
	}
	// Still silent: the next is 30 days after the one that fired, 5 May 10:00 local.
	if times := e.preview("plan-1", "c1", 1); !sameInstants(times, []time.Time{time.Date(2026, 5, 5, 2, 0, 0, 0, time.UTC)}) {
		t.Fatalf("preview after the fire: %v", times)
	}
}

func TestWinBackWhenCustomerTurnsDormant(t *testing.T) {
	e := newEnv(t)
	e.plan(domain.Plan{ID: "now", Target: allCustomers, WinBack: &domain.WinBack{}})
	e.plan(domain.Plan{ID: "later", Target: allCustomers, WinBack: &domain.WinBack{DaysAfterDormant: 3}, At: domain.Clock{Hour: 10}})
	e.customer(&profilev1.Customer{CustomerId: "c1", TimeZone: "Asia/Shanghai", Owner: "alice"})
	e.customer(&profilev1.Customer{CustomerId: "c2", TimeZone: "Asia/Shanghai", Owner: "alice"})

	// Active first: nothing.
	e.activity("c1", segmentationv1.Activity_ACTIVITY_ACTIVE, t0)
	if p := e.preview("now", "c1", 5); len(p) != 0 {
		t.Fatalf("win-back planned for an active customer: %v", p)
	}

	// Dormant on Saturday 7 March 12:00 local (04:00 UTC).
	sat := time.Date(2026, 3, 7, 4, 0, 0, 0, time.UTC)
	e.activity("c1", segmentationv1.Activity_ACTIVITY_DORMANT, sat)
	if p := e.preview("now", "c1", 5); !sameInstants(p, []time.Time{sat}) {
		t.Fatalf("win-back at once: %v, want %v", p, sat)
	}
	// Three days later at 10:00 local: Tuesday 10 March 02:00 UTC.
	tue := time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC)
	if p := e.preview("later", "c1", 5); !sameInstants(p, []time.Time{tue}) {
		t.Fatalf("win-back after 3 days: %v, want %v", p, tue)
	}
	// Dormant again (another segmentation event) plans nothing more.
	e.activity("c1", segmentationv1.Activity_ACTIVITY_DORMANT, sat)
	if p := e.preview("now", "c1", 5); !sameInstants(p, []time.Time{sat}) {
		t.Fatalf("win-back after a second dormant event: %v", p)
	}

	if n := e.fire(sat.Add(-time.Nanosecond)); n != 0 || len(e.tasks()) != 0 {
		t.Fatalf("before dormant: fired %d, tasks %+v", n, e.tasks())
	}
	e.fire(sat)
	// Made at once, due when work starts: Monday 9 March 09:00 local.
	mon := time.Date(2026, 3, 9, 1, 0, 0, 0, time.UTC)
	tasks := e.tasks()
	if len(tasks) != 1 {
		t.Fatalf("at dormant: %d tasks, want 1", len(tasks))
	}
	if got := tasks[0]; got.PlanID != "now" || got.State != domain.TaskScheduled || !got.Due.Equal(mon) ||
		got.LocalDue != "2026-03-09 09:00 Asia/Shanghai" || got.Trigger != domain.TriggerWinBack {
		t.Fatalf("win-back task: %+v", got)
	}
	e.fire(tue.Add(-time.Nanosecond))
	if n := len(e.tasks()); n != 1 {
		t.Fatalf("before the 3-day win-back: %d tasks", n)
	}
	e.fire(tue)
	tasks = e.tasks()
	if len(tasks) != 2 || tasks[1].PlanID != "later" || !tasks[1].Due.Equal(tue) || tasks[1].State != domain.TaskDue ||
		tasks[1].LocalDue != "2026-03-10 10:00 Asia/Shanghai" {
		t.Fatalf("3-day win-back: %+v", tasks)
	}
	if n := e.fire(tue.Add(60 * day)); n != 0 || len(e.tasks()) != 2 {
		t.Fatalf("later: fired %d, %d tasks", n, len(e.tasks()))
	}
}

// TestWinBackCancelledWhenActiveAgain: a customer who comes back before
// the win-back fires is not won back.
func TestWinBackCancelledWhenActiveAgain(t *testing.T) {
	e := newEnv(t)
	e.plan(domain.Plan{Target: allCustomers, WinBack: &domain.WinBack{DaysAfterDormant: 3}, At: domain.Clock{Hour: 10}})
	e.customer(&profilev1.Customer{CustomerId: "c1", TimeZone: "Asia/Shanghai", Owner: "alice"})

	e.activity("c1", segmentationv1.Activity_ACTIVITY_DORMANT, t0)
	// Monday 2 March + 3 days: Thursday 5 March 10:00 local, 02:00 UTC.
	thu := time.Date(2026, 3, 5, 2, 0, 0, 0, time.UTC)
	if p := e.preview("plan-1", "c1", 5); !sameInstants(p, []time.Time{thu}) {
		t.Fatalf("win-back: %v, want %v", p, thu)
	}
	e.activity("c1", segmentationv1.Activity_ACTIVITY_ACTIVE, t0.Add(day))
	if p := e.preview("plan-1", "c1", 5); len(p) != 0 {
		t.Fatalf("win-back after turning active: %v, want none", p)
	}
	e.fire(thu)
	if tasks := e.tasks(); len(tasks) != 0 {
		t.Fatalf("win-back for an active customer: %+v", tasks)
	}
}

func TestRecommendationOncePerBuyerOfCategory(t *testing.T) {
	e := newEnv(t)
	// From Tuesday 10 March 10:00 in Shanghai, 02:00 UTC.
	start := time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC)
	e.plan(domain.Plan{Target: allCustomers, Recommendation: &domain.Recommendation{
		Categories: []string{"tea"}, Product: "longjing-2026", Start: start}})
	e.customer(&profilev1.Customer{CustomerId: "c1", TimeZone: "Asia/Shanghai", Owner: "alice"})
	e.customer(&profilev1.Customer{CustomerId: "c2", TimeZone: "Asia/Shanghai", Owner: "alice"})

	e.purchase("c1", "p1", t0, "cups", "tea")
	e.purchase("c2", "p2", t0, "coffee")
	if p := e.preview("plan-1", "c1", 5); !sameInstants(p, []time.Time{start}) {
		t.Fatalf("tea buyer: %v, want %v", p, start)
	}
	if p := e.preview("plan-1", "c2", 5); len(p) != 0 {
		t.Fatalf("coffee buyer: %v, want none", p)
	}
	// A second tea purchase plans nothing more.
	e.clk.Set(t0.Add(time.Hour))
	e.purchase("c1", "p3", t0.Add(time.Hour), "tea")
	if p := e.preview("plan-1", "c1", 5); !sameInstants(p, []time.Time{start}) {
		t.Fatalf("after a second tea purchase: %v", p)
	}

	if n := e.fire(start.Add(-time.Nanosecond)); n != 0 || len(e.tasks()) != 0 {
		t.Fatalf("before start: fired %d, tasks %+v", n, e.tasks())
	}
	if n := e.fire(start); n != 1 {
		t.Fatalf("at start %d timers fired, want 1", n)
	}
	tasks := e.tasks()
	if len(tasks) != 1 {
		t.Fatalf("at start: %d tasks, want 1", len(tasks))
	}
	if got := tasks[0]; got.CustomerID != "c1" || got.State != domain.TaskDue || !got.Due.Equal(start) ||
		got.LocalDue != "2026-03-10 10:00 Asia/Shanghai" || got.Trigger != domain.TriggerRecommendation ||
		got.ID != store.TaskID("plan-1", "c1", "recommendation") {
		t.Fatalf("recommendation: %+v", got)
	}

	// After it was told: another tea purchase by c1 makes nothing; c2's
	// first tea purchase (Wednesday 11 March 11:00 local) makes theirs at once.
	wed := time.Date(2026, 3, 11, 3, 0, 0, 0, time.UTC)
	e.clk.Set(wed)
	e.purchase("c1", "p4", wed, "tea")
	e.purchase("c2", "p5", wed, "tea")
	if p := e.preview("plan-1", "c1", 5); len(p) != 0 {
		t.Fatalf("told buyer: %v, want none", p)
	}
	if p := e.preview("plan-1", "c2", 5); !sameInstants(p, []time.Time{wed}) {
		t.Fatalf("new tea buyer: %v, want %v", p, wed)
	}
	e.fire(wed)
	e.fire(wed.Add(30 * day))
	tasks = e.tasks()
	if len(tasks) != 2 || tasks[0].CustomerID != "c1" || tasks[1].CustomerID != "c2" || !tasks[1].Due.Equal(wed) ||
		tasks[1].ID != store.TaskID("plan-1", "c2", "recommendation") {
		t.Fatalf("tasks: %+v", tasks)
	}
}
