package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	carev1 "rapport.dev/gen/go/rapport/care/v1"
	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
	"rapport.dev/platform/tenancy"
	"rapport.dev/platform/webhook"
)

// as is a context for tenant.
func as(tenant string) context.Context { return tenancy.WithTenant(context.Background(), tenant) }

var (
	tenantA = as("tenant-a")
	tenantB = as("tenant-b")
)

var allStates = []carev1.TaskState{carev1.TaskState_TASK_STATE_SCHEDULED, carev1.TaskState_TASK_STATE_DUE,
	carev1.TaskState_TASK_STATE_DONE, carev1.TaskState_TASK_STATE_SKIPPED, carev1.TaskState_TASK_STATE_OVERDUE,
	carev1.TaskState_TASK_STATE_ESCALATED}

// followUpPlan is a complaint follow-up task plan "follow".
func followUpPlan(slaHours int32) *carev1.Plan {
	return &carev1.Plan{PlanId: "follow", Enabled: true, Target: &carev1.Target{AllCustomers: true},
		Trigger: &carev1.Plan_ComplaintFollowUp{ComplaintFollowUp: &carev1.ComplaintFollowUp{SlaHours: slaHours}},
		Action:  &carev1.Plan_Task{Task: &carev1.TaskAction{Title: "Call {name}"}}}
}

// surveyPlan is a survey message plan "survey", sent a day after a purchase.
func surveyPlan() *carev1.Plan {
	return &carev1.Plan{PlanId: "survey", Enabled: true, Target: &carev1.Target{AllCustomers: true},
		Trigger: &carev1.Plan_Survey{Survey: &carev1.Survey{DaysAfterPurchase: 1}},
		Action: &carev1.Plan_Message{Message: &carev1.MessageAction{WebhookUrl: "https://hooks.example/b", Channel: "sms",
			Template: "How was it, {name}?"}},
		At: &carev1.LocalTime{Hour: 10}}
}

// seeded is what seedB made of tenant-b's that tenant-a's calls name.
type seeded struct {
	task        string // b-1's complaint follow-up, due, owned by alice
	deadLetter  string // b-2's survey message, refused by the receiver
	taskVersion *carev1.Task
}

// profileEvent applies one upstream profile event of tenant-b through the
// store's feed reaction, as the follower does.
func (h *harness) profileEvent(t *testing.T, seq uint64, typ, key string, payload proto.Message) {
	t.Helper()
	a, err := anypb.New(payload)
	if err != nil {
		t.Fatal(err)
	}
	ev := &feedv1.Event{Sequence: seq, Tenant: "tenant-b", Type: typ, Key: key, Time: timestamppb.New(h.clk.Now()), Payload: a}
	if err := h.db.Update(context.Background(), func(tx *bolt.Tx) error {
		return h.st.ApplyProfileEvent(context.Background(), tx, ev)
	}); err != nil {
		t.Fatalf("apply %s: %v", typ, err)
	}
}

// fire moves the clock to at and fires the timers due.
func (h *harness) fire(t *testing.T, at time.Time) {
	t.Helper()
	h.clk.Set(at)
	if _, _, err := h.st.FireDue(context.Background(), at); err != nil {
		t.Fatalf("FireDue at %v: %v", at, err)
	}
}

// deadLetter runs the outbox until the message id has been dead-lettered.
func (h *harness) deadLetter(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- h.outbox.Run(ctx) }()
	for a := range h.attempts {
		if a.ID == id && a.State == webhook.Dead {
			break
		}
	}
	cancel()
	if err := <-ran; !errors.Is(err, context.Canceled) {
		t.Fatalf("outbox run: %v", err)
	}
}

// seedB gives tenant-b two plans, two customers (b-1 with consent and a
// due complaint follow-up owned by alice, whose manager is bob; b-2 with
// a dead-lettered survey message); tenant-a has only its own "follow"
// plan, with another SLA (so another etag), and no customers.
func seedB(t *testing.T, h *harness) seeded {
	t.Helper()
	for _, p := range []*carev1.Plan{followUpPlan(48), surveyPlan()} {
		if _, err := h.client.CreatePlan(tenantB, &carev1.CreatePlanRequest{Plan: p}); err != nil {
			t.Fatalf("CreatePlan(%s): %v", p.PlanId, err)
		}
	}
	if _, err := h.client.CreatePlan(tenantA, &carev1.CreatePlanRequest{Plan: followUpPlan(72)}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.SetManager(tenantB, &carev1.SetManagerRequest{Owner: "alice", Manager: "bob"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.SetConsent(tenantB, &carev1.SetConsentRequest{Consent: &carev1.Consent{CustomerId: "b-1",
		OptedOutChannels: []string{"email"}, MaxTouchesPerWeek: 5}}); err != nil {
		t.Fatal(err)
	}
	h.profileEvent(t, 1, "customer.created", "b-1", &profilev1.Customer{CustomerId: "b-1", TimeZone: "UTC", Owner: "alice"})
	h.profileEvent(t, 2, "customer.created", "b-2", &profilev1.Customer{CustomerId: "b-2", TimeZone: "UTC", Owner: "alice"})
	h.profileEvent(t, 3, "event.recorded", "b-1", &profilev1.Event{EventId: "k1", CustomerId: "b-1",
		OccurTime: timestamppb.New(t0), RecordTime: timestamppb.New(t0),
		Kind: &profilev1.Event_Complaint{Complaint: &profilev1.Complaint{ComplaintId: "k1"}}})
	h.profileEvent(t, 4, "event.recorded", "b-2", &profilev1.Event{EventId: "p1", CustomerId: "b-2",
		OccurTime: timestamppb.New(t0), RecordTime: timestamppb.New(t0),
		Kind: &profilev1.Event_Purchase{Purchase: &profilev1.Purchase{OrderId: "o-1",
			Amount: &typev1.Money{AmountMinor: 1000, Currency: "CNY"}}}})
	h.fire(t, t0)
	h.fire(t, t0.Add(24*time.Hour))

	var s seeded
	tasks, err := h.client.ListTasks(tenantB, &carev1.ListTasksRequest{States: allStates})
	if err != nil || len(tasks.Tasks) != 1 || tasks.Tasks[0].CustomerId != "b-1" || tasks.Tasks[0].State != carev1.TaskState_TASK_STATE_DUE {
		t.Fatalf("tenant-b's tasks: %v, %v", tasks, err)
	}
	s.task, s.taskVersion = tasks.Tasks[0].TaskId, tasks.Tasks[0]
	s.deadLetter = messageOf(t, followAll(t, h, tenantB))
	h.deadLetter(t, s.deadLetter)
	dl, err := h.client.ListDeadLetters(tenantB, &carev1.ListDeadLettersRequest{})
	if err != nil || len(dl.Deliveries) != 1 || dl.Deliveries[0].DeliveryId != s.deadLetter || dl.Deliveries[0].CustomerId != "b-2" {
		t.Fatalf("tenant-b's dead letters: %v, %v", dl, err)
	}
	return s
}

// messageOf is the delivery id of the message.sent event among evs.
func messageOf(t *testing.T, evs []*feedv1.Event) string {
	t.Helper()
	for _, ev := range evs {
		if ev.Type != "message.sent" {
			continue
		}
		d := &carev1.Delivery{}
		if err := ev.Payload.UnmarshalTo(d); err != nil {
			t.Fatalf("message.sent payload: %v", err)
		}
		return d.DeliveryId
	}
	t.Fatalf("tenant-b's feed has no message.sent event")
	return ""
}

// snapshotB reads everything tenant-b can see of its own data.
func snapshotB(t *testing.T, h *harness, s seeded) []proto.Message {
	t.Helper()
	var out []proto.Message
	must := func(m proto.Message, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("tenant-b snapshot: %v", err)
		}
		out = append(out, m)
	}
	must(h.client.ListPlans(tenantB, &carev1.ListPlansRequest{}))
	must(h.client.GetPlan(tenantB, &carev1.GetPlanRequest{PlanId: "follow"}))
	must(h.client.GetPlan(tenantB, &carev1.GetPlanRequest{PlanId: "survey"}))
	must(h.client.PreviewPlan(tenantB, &carev1.PreviewPlanRequest{PlanId: "follow", CustomerId: "b-1"}))
	must(h.client.PreviewPlan(tenantB, &carev1.PreviewPlanRequest{PlanId: "survey", CustomerId: "b-2"}))
	must(h.client.GetConsent(tenantB, &carev1.GetConsentRequest{CustomerId: "b-1"}))
	must(h.client.GetConsent(tenantB, &carev1.GetConsentRequest{CustomerId: "b-2"}))
	must(h.client.ListTasks(tenantB, &carev1.ListTasksRequest{States: allStates}))
	must(h.client.ListTasks(tenantB, &carev1.ListTasksRequest{Owner: "alice", States: allStates}))
	must(h.client.ListTasks(tenantB, &carev1.ListTasksRequest{CustomerId: "b-1", States: allStates}))
	must(h.client.GetTask(tenantB, &carev1.GetTaskRequest{TaskId: s.task}))
	must(h.client.GetQueueCounts(tenantB, &carev1.GetQueueCountsRequest{}))
	must(h.client.ListDeadLetters(tenantB, &carev1.ListDeadLettersRequest{}))
	for _, e := range followAll(t, h, tenantB) {
		out = append(out, e)
	}
	return out
}

func followAll(t *testing.T, h *harness, ctx context.Context) []*feedv1.Event {
	t.Helper()
	s, err := h.client.FollowChanges(ctx, &carev1.FollowChangesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*feedv1.Event
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m.Event)
	}
}

// crossTenantCalls has, for every RPC of CareService, a call made as
// tenant-a with tenant-b's ids: it must answer NotFound or with tenant-a's
// own data. TestTenancyWalk fails when an RPC has no entry here.
var crossTenantCalls = map[string]func(t *testing.T, h *harness, s seeded){
	"CreatePlan": func(t *testing.T, h *harness, _ seeded) {
		// tenant-b's plan under tenant-a's id: tenant-a's own "follow" has another SLA.
		_, err := h.client.CreatePlan(tenantA, &carev1.CreatePlanRequest{Plan: followUpPlan(48)})
		wantCode(t, err, codes.AlreadyExists)
		// tenant-b's "survey" id is free in tenant-a; creating it plans nothing for tenant-b's customers.
		r, err := h.client.CreatePlan(tenantA, &carev1.CreatePlanRequest{Plan: surveyPlan()})
		if err != nil || !r.Created {
			t.Errorf("tenant-b's plan id is free in tenant-a: %v, %v", r, err)
		}
	},
	"GetPlan": func(t *testing.T, h *harness, _ seeded) {
		_, err := h.client.GetPlan(tenantA, &carev1.GetPlanRequest{PlanId: "survey"})
		wantCode(t, err, codes.NotFound)
		r, err := h.client.GetPlan(tenantA, &carev1.GetPlanRequest{PlanId: "follow"})
		if err != nil || r.Plan.GetComplaintFollowUp().GetSlaHours() != 72 {
			t.Errorf("tenant-a's own follow: %v, %v", r, err)
		}
	},
	"UpdatePlan": func(t *testing.T, h *harness, _ seeded) {
		for _, id := range []string{"follow", "survey"} {
			b, err := h.client.GetPlan(tenantB, &carev1.GetPlanRequest{PlanId: id})
			if err != nil {
				t.Fatal(err)
			}
			// tenant-b's etag does not open tenant-a's plan, and tenant-b's stays as it is.
			p := proto.Clone(b.Plan).(*carev1.Plan)
			p.DisplayName = "hijacked"
			p.Enabled = false
			_, err = h.client.UpdatePlan(tenantA, &carev1.UpdatePlanRequest{Plan: p})
			if id == "follow" {
				wantCode(t, err, codes.Aborted)
			} else {
				wantCode(t, err, codes.NotFound)
			}
		}
	},
	"ListPlans": func(t *testing.T, h *harness, _ seeded) {
		r, err := h.client.ListPlans(tenantA, &carev1.ListPlansRequest{})
		if err != nil || len(r.Plans) != 1 || r.Plans[0].GetComplaintFollowUp().GetSlaHours() != 72 {
			t.Errorf("tenant-a plans: %v, %v", r, err)
		}
	},
	"PreviewPlan": func(t *testing.T, h *harness, _ seeded) {
		_, err := h.client.PreviewPlan(tenantA, &carev1.PreviewPlanRequest{PlanId: "survey", CustomerId: "b-2"})
		wantCode(t, err, codes.NotFound)
		// tenant-a's own plan, tenant-b's customer.
		_, err = h.client.PreviewPlan(tenantA, &carev1.PreviewPlanRequest{PlanId: "follow", CustomerId: "b-1"})
		wantCode(t, err, codes.NotFound)
	},
	"ListTasks": func(t *testing.T, h *harness, _ seeded) {
		for _, owner := range []string{"", "alice"} {
			r, err := h.client.ListTasks(tenantA, &carev1.ListTasksRequest{Owner: owner, States: allStates})
			if err != nil || len(r.Tasks) != 0 || r.NextPageToken != "" {
				t.Errorf("tenant-a tasks of %q: %v, %v", owner, r, err)
			}
		}
		// tenant-b's customer, by id.
		r, err := h.client.ListTasks(tenantA, &carev1.ListTasksRequest{CustomerId: "b-1", States: allStates})
		if err != nil || len(r.Tasks) != 0 || r.NextPageToken != "" {
			t.Errorf("tenant-a tasks of customer b-1: %v, %v", r, err)
		}
	},
	"GetTask": func(t *testing.T, h *harness, s seeded) {
		_, err := h.client.GetTask(tenantA, &carev1.GetTaskRequest{TaskId: s.task})
		wantCode(t, err, codes.NotFound)
	},
	"CompleteTask": func(t *testing.T, h *harness, s seeded) {
		_, err := h.client.CompleteTask(tenantA, &carev1.CompleteTaskRequest{TaskId: s.task,
			Outcome: carev1.Outcome_OUTCOME_REACHED, Note: "done", Csat: 5})
		wantCode(t, err, codes.NotFound)
	},
	"SkipTask": func(t *testing.T, h *harness, s seeded) {
		_, err := h.client.SkipTask(tenantA, &carev1.SkipTaskRequest{TaskId: s.task, Reason: "not mine"})
		wantCode(t, err, codes.NotFound)
	},
	"SetManager": func(t *testing.T, h *harness, _ seeded) {
		// tenant-b's owner in tenant-a; TestManagersArePerTenant shows
		// tenant-b's escalations still go to bob.
		r, err := h.client.SetManager(tenantA, &carev1.SetManagerRequest{Owner: "alice", Manager: "mallory"})
		if err != nil || r.Manager != "mallory" {
			t.Errorf("SetManager in tenant-a: %v, %v", r, err)
		}
	},
	"GetQueueCounts": func(t *testing.T, h *harness, _ seeded) {
		r, err := h.client.GetQueueCounts(tenantA, &carev1.GetQueueCountsRequest{})
		if err != nil || len(r.Queues) != 0 {
			t.Errorf("tenant-a queues: %v, %v", r, err)
		}
		r, err = h.client.GetQueueCounts(tenantA, &carev1.GetQueueCountsRequest{Owners: []string{"alice"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range r.Queues {
			if q.DueToday != 0 || q.Overdue != 0 || q.Upcoming != 0 {
				t.Errorf("tenant-a's queue of alice counts tenant-b's tasks: %v", q)
			}
		}
	},
	"SetConsent": func(t *testing.T, h *harness, _ seeded) {
		r, err := h.client.SetConsent(tenantA, &carev1.SetConsentRequest{Consent: &carev1.Consent{CustomerId: "b-1", DoNotContact: true}})
		if err != nil || !r.Consent.DoNotContact {
			t.Errorf("SetConsent in tenant-a: %v, %v", r, err)
		}
	},
	"GetConsent": func(t *testing.T, h *harness, _ seeded) {
		r, err := h.client.GetConsent(tenantA, &carev1.GetConsentRequest{CustomerId: "b-1"})
		if err != nil || r.Consent.UpdateTime != nil || len(r.Consent.OptedOutChannels) != 0 || r.Consent.MaxTouchesPerWeek == 5 {
			t.Errorf("tenant-a sees tenant-b's consent of b-1: %v, %v", r, err)
		}
	},
	"ListDeadLetters": func(t *testing.T, h *harness, _ seeded) {
		r, err := h.client.ListDeadLetters(tenantA, &carev1.ListDeadLettersRequest{})
		if err != nil || len(r.Deliveries) != 0 {
			t.Errorf("tenant-a dead letters: %v, %v", r, err)
		}
	},
	"ReplayDeadLetter": func(t *testing.T, h *harness, s seeded) {
		_, err := h.client.ReplayDeadLetter(tenantA, &carev1.ReplayDeadLetterRequest{DeliveryId: s.deadLetter})
		wantCode(t, err, codes.NotFound)
	},
	"FollowChanges": func(t *testing.T, h *harness, _ seeded) {
		if evs := followAll(t, h, tenantA); len(evs) != 0 {
			t.Errorf("tenant-a's feed carries %d events: %v", len(evs), evs)
		}
	},
}

// TestTenancyWalk calls every RPC as tenant-a with tenant-b's ids and
// checks tenant-b's data is neither returned nor changed.
func TestTenancyWalk(t *testing.T) {
	desc := carev1.CareService_ServiceDesc
	var names []string
	for _, m := range desc.Methods {
		names = append(names, m.MethodName)
	}
	for _, s := range desc.Streams {
		names = append(names, s.StreamName)
	}
	for _, name := range names {
		call := crossTenantCalls[name]
		if call == nil {
			t.Errorf("RPC %s has no case in crossTenantCalls: add one", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			h := startHarness(t)
			s := seedB(t, h)
			before := snapshotB(t, h, s)
			call(t, h, s)
			after := snapshotB(t, h, s)
			if len(before) != len(after) {
				t.Fatalf("%s as tenant-a changed tenant-b's data: %d messages before, %d after", name, len(before), len(after))
			}
			for i := range before {
				if !proto.Equal(before[i], after[i]) {
					t.Errorf("%s as tenant-a changed tenant-b's data:\nbefore %v\nafter  %v", name, before[i], after[i])
				}
			}
		})
	}
	if len(crossTenantCalls) != len(names) {
		t.Errorf("crossTenantCalls has %d cases for %d RPCs", len(crossTenantCalls), len(names))
	}
}

// TestManagersArePerTenant: tenant-a naming a manager for tenant-b's owner
// does not move tenant-b's escalations.
func TestManagersArePerTenant(t *testing.T) {
	h := startHarness(t)
	s := seedB(t, h)
	if _, err := h.client.SetManager(tenantA, &carev1.SetManagerRequest{Owner: "alice", Manager: "mallory"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.SetManager(tenantA, &carev1.SetManagerRequest{Owner: "bob", Manager: "mallory"}); err != nil {
		t.Fatal(err)
	}
	h.fire(t, s.taskVersion.SlaTime.AsTime())
	r, err := h.client.GetTask(tenantB, &carev1.GetTaskRequest{TaskId: s.task})
	if err != nil || r.Task.State != carev1.TaskState_TASK_STATE_ESCALATED || r.Task.EscalatedTo != "bob" {
		t.Fatalf("tenant-b's task at its SLA: %v, %v", r, err)
	}
}

// TestEveryRPCNeedsATenant walks the service descriptor: a call without a
// tenant, with a malformed one, or with the wildcard on anything but the
// feed is refused before it reaches a handler.
func TestEveryRPCNeedsATenant(t *testing.T) {
	h := startHarness(t)
	sd := carev1.File_rapport_care_v1_care_proto.Services().ByName("CareService")
	if sd == nil {
		t.Fatal("no CareService in care.proto")
	}
	if n := sd.Methods().Len(); n != len(carev1.CareService_ServiceDesc.Methods)+len(carev1.CareService_ServiceDesc.Streams) {
		t.Fatalf("the descriptor has %d RPCs, the service description %d", n,
			len(carev1.CareService_ServiceDesc.Methods)+len(carev1.CareService_ServiceDesc.Streams))
	}
	for i := range sd.Methods().Len() {
		md := sd.Methods().Get(i)
		full := fmt.Sprintf("/%s/%s", sd.FullName(), md.Name())
		t.Run(string(md.Name()), func(t *testing.T) {
			call := func(ctx context.Context) error {
				in, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
				if err != nil {
					t.Fatal(err)
				}
				out, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
				if err != nil {
					t.Fatal(err)
				}
				if !md.IsStreamingServer() {
					return h.conn.Invoke(ctx, full, in.New().Interface(), out.New().Interface())
				}
				s, err := h.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, full)
				if err != nil {
					return err
				}
				if err := s.SendMsg(in.New().Interface()); err != nil {
					return err
				}
				if err := s.CloseSend(); err != nil {
					return err
				}
				for {
					if err := s.RecvMsg(out.New().Interface()); err != nil {
						if errors.Is(err, io.EOF) {
							return nil
						}
						return err
					}
				}
			}
			wantCode(t, call(context.Background()), codes.InvalidArgument, tenancy.MetadataKey)
			bad := metadata.AppendToOutgoingContext(context.Background(), tenancy.MetadataKey, "Tenant B")
			wantCode(t, call(bad), codes.InvalidArgument, tenancy.MetadataKey)
			err := call(as(tenancy.All))
			if full == carev1.CareService_FollowChanges_FullMethodName {
				if err != nil {
					t.Errorf("the feed refused the wildcard: %v", err)
				}
				return
			}
			wantCode(t, err, codes.InvalidArgument, tenancy.MetadataKey)
		})
	}
}
