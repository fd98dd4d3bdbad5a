package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	carev1 "rapport.dev/gen/go/rapport/care/v1"
	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/grpcserver"
	"rapport.dev/platform/ident"
	"rapport.dev/platform/tenancy"
	"rapport.dev/platform/webhook"
	"rapport.dev/services/care/domain"
	"rapport.dev/services/care/store"
)

// CrossTenantMethods may be called with the tenancy.All wildcard.
var CrossTenantMethods = []string{carev1.CareService_FollowChanges_FullMethodName}

// ProfileClient is the part of the profile service CompleteTask writes to.
type ProfileClient interface {
	RecordEvent(ctx context.Context, in *profilev1.RecordEventRequest, opts ...grpc.CallOption) (*profilev1.RecordEventResponse, error)
}

// Server implements carev1.CareServiceServer.
type Server struct {
	carev1.UnimplementedCareServiceServer
	store  *store.Store
	feed   *feed.Log
	outbox *webhook.Outbox
	log    *slog.Logger

	// Profile receives the contact logs and survey answers of completed
	// tasks; nil writes none (tests of the store alone).
	Profile ProfileClient
}

// New returns the gRPC API over the store, its feed and its webhook outbox
// (nil: no dead letters to list).
func New(st *store.Store, log *feed.Log, outbox *webhook.Outbox, logger *slog.Logger) *Server {
	return &Server{store: st, feed: log, outbox: outbox, log: logger}
}

func (s *Server) fail(ctx context.Context, err error) error {
	return grpcserver.Status(ctx, err, s.log)
}

// maxText bounds the free text of a request (notes, reasons, names).
const maxText = 2000

// plan validates the plan of a create or update request.
func (s *Server) plan(ctx context.Context, in *carev1.Plan) (*domain.Plan, string, error) {
	tenant, err := tenancy.Single(ctx)
	if err != nil {
		return nil, "", err
	}
	if in == nil {
		return nil, "", fault.InvalidField("plan", "is required")
	}
	if r := in.GetRecommendation(); r != nil && r.GetStartTime() != nil && r.GetStartTime().CheckValid() != nil {
		return nil, "", fault.InvalidField("plan.recommendation.start_time", "is not a valid timestamp")
	}
	p := planFromProto(in)
	var v fault.Violations
	v.Text("plan.display_name", p.DisplayName, maxText, false)
	v.Merge("", p.Validate())
	return p, tenant, v.Err()
}

// CreatePlan implements carev1.CareServiceServer.
func (s *Server) CreatePlan(ctx context.Context, req *carev1.CreatePlanRequest) (*carev1.CreatePlanResponse, error) {
	p, tenant, err := s.plan(ctx, req.GetPlan())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out, created, err := s.store.CreatePlan(ctx, tenant, p)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &carev1.CreatePlanResponse{Plan: planToProto(out), Created: created}, nil
}

// GetPlan implements carev1.CareServiceServer.
func (s *Server) GetPlan(ctx context.Context, req *carev1.GetPlanRequest) (*carev1.GetPlanResponse, error) {
	var v fault.Violations
	tenant, err := ident.Scope(ctx, &v, ident.Field{Name: "plan_id", ID: req.GetPlanId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	p, err := s.store.GetPlan(ctx, tenant, req.GetPlanId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &carev1.GetPlanResponse{Plan: planToProto(p)}, nil
}

// UpdatePlan implements carev1.CareServiceServer.
func (s *Server) UpdatePlan(ctx context.Context, req *carev1.UpdatePlanRequest) (*carev1.UpdatePlanResponse, error) {
	p, tenant, err := s.plan(ctx, req.GetPlan())
	if err == nil && p.Etag == "" {
		err = fault.InvalidField("plan.etag", "is required: read the plan first")
	}
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out, err := s.store.UpdatePlan(ctx, tenant, p)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &carev1.UpdatePlanResponse{Plan: planToProto(out)}, nil
}

// ListPlans implements carev1.CareServiceServer.
func (s *Server) ListPlans(ctx context.Context, _ *carev1.ListPlansRequest) (*carev1.ListPlansResponse, error) {
	tenant, err := tenancy.Single(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	ps, err := s.store.ListPlans(ctx, tenant)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &carev1.ListPlansResponse{}
	for _, p := range ps {
		out.Plans = append(out.Plans, planToProto(p))
	}
	return out, nil
}

// PreviewPlan implements carev1.CareServiceServer.
func (s *Server) PreviewPlan(ctx context.Context, req *carev1.PreviewPlanRequest) (*carev1.PreviewPlanResponse, error) {
	var v fault.Violations
	if n := req.GetCount(); n < 0 || n > store.MaxPreview {
		v.Add("count", "must be 0 to %d, got %d", store.MaxPreview, n)
	}
	tenant, err := ident.Scope(ctx, &v, ident.Field{Name: "plan_id", ID: req.GetPlanId()}, ident.Field{Name: "customer_id", ID: req.GetCustomerId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	times, zone, err := s.store.Preview(ctx, tenant, req.GetPlanId(), req.GetCustomerId(), int(req.GetCount()))
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &carev1.PreviewPlanResponse{TimeZone: zone}
	for _, t := range times {
		out.FireTimes = append(out.FireTimes, ts(t))
	}
	return out, nil
}

// ListTasks implements carev1.CareServiceServer.
func (s *Server) ListTasks(ctx context.Context, req *carev1.ListTasksRequest) (*carev1.ListTasksResponse, error) {
	var v fault.Violations
	ident.Check(&v, "owner", req.GetOwner(), false)
	ident.Check(&v, "customer_id", req.GetCustomerId(), false)
	q := store.QueueQuery{Owner: req.GetOwner(), Customer: req.GetCustomerId(), DueBefore: timeOf(req.GetDueBefore()),
		PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()}
	for i, st := range req.GetStates() {
		if st <= carev1.TaskState_TASK_STATE_UNSPECIFIED || st > carev1.TaskState_TASK_STATE_ESCALATED {
			v.Add(fmt.Sprintf("states[%d]", i), "is not a task state: %d", int32(st))
		}
		q.States = append(q.States, domain.TaskState(st))
	}
	if t := req.GetDueBefore(); t != nil && t.CheckValid() != nil {
		v.Add("due_before", "is not a valid timestamp")
	}
	if n := req.GetPageSize(); n < 0 || n > 500 {
		v.Add("page_size", "must be 0 to 500, got %d", n)
	}
	tenant, err := ident.Scope(ctx, &v)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	tasks, next, err := s.store.Queue(ctx, tenant, q)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &carev1.ListTasksResponse{NextPageToken: next}
	for _, t := range tasks {
		out.Tasks = append(out.Tasks, store.TaskToProto(t))
	}
	return out, nil
}

// GetTask implements carev1.CareServiceServer.
func (s *Server) GetTask(ctx context.Context, req *carev1.GetTaskRequest) (*carev1.GetTaskResponse, error) {
	var v fault.Violations
	tenant, err := ident.Scope(ctx, &v, ident.Field{Name: "task_id", ID: req.GetTaskId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	t, err := s.store.GetTask(ctx, tenant, req.GetTaskId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &carev1.GetTaskResponse{Task: store.TaskToProto(t)}, nil
}

// CompleteTask implements carev1.CareServiceServer. The store's completion
// commits first and is idempotent; the timeline events go to the profile
// service after it, on every call, under ids derived from the task. A call
// that fails between the two (crash, profile down) is retried by the
// client, finds the task completed with the same outcome and sends the
// same events again: the profile keeps one of each.
func (s *Server) CompleteTask(ctx context.Context, req *carev1.CompleteTaskRequest) (*carev1.CompleteTaskResponse, error) {
	var v fault.Violations
	v.Text("note", req.GetNote(), maxText, false)
	if o := req.GetOutcome(); o <= carev1.Outcome_OUTCOME_UNSPECIFIED || o > carev1.Outcome_OUTCOME_DECLINED {
		v.Add("outcome", "is required: reached, not reached, satisfied, complaint raised or declined")
	}
	if c := req.GetCsat(); c < 0 || c > 5 {
		v.Add("csat", "must be 1 to 5, or 0 when not asked; got %d", c)
	}
	tenant, err := ident.Scope(ctx, &v, ident.Field{Name: "task_id", ID: req.GetTaskId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	done, err := s.store.CompleteTask(ctx, tenant, req.GetTaskId(), domain.TaskOutcome(req.GetOutcome()), req.GetNote(), int(req.GetCsat()))
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := s.writeTimeline(ctx, tenant, done.Timeline); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &carev1.CompleteTaskResponse{Task: store.TaskToProto(done.Task)}, nil
}

// writeTimeline records events on the profile timeline; an event the
// profile already holds counts as written.
func (s *Server) writeTimeline(ctx context.Context, tenant string, events []*profilev1.Event) error {
	if s.Profile == nil {
		return nil
	}
	pctx := tenancy.WithTenant(ctx, tenant)
	for _, ev := range events {
		_, err := s.Profile.RecordEvent(pctx, &profilev1.RecordEventRequest{Event: ev})
		if err == nil || status.Code(err) == codes.AlreadyExists {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.log.ErrorContext(ctx, "writing the contact log to the profile failed; a retry writes it",
			"tenant", tenant, "event", ev.GetEventId(), "error", err)
		return fmt.Errorf("the task is completed but its contact log could not be written to the profile yet; retry: %w", fault.ErrUnavailable)
	}
	return nil
}

// SkipTask implements carev1.CareServiceServer.
func (s *Server) SkipTask(ctx context.Context, req *carev1.SkipTaskRequest) (*carev1.SkipTaskResponse, error) {
	var v fault.Violations
	v.Text("reason", req.GetReason(), maxText, true)
	tenant, err := ident.Scope(ctx, &v, ident.Field{Name: "task_id", ID: req.GetTaskId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	t, err := s.store.SkipTask(ctx, tenant, req.GetTaskId(), req.GetReason())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &carev1.SkipTaskResponse{Task: store.TaskToProto(t)}, nil
}

// SetManager implements carev1.CareServiceServer.
func (s *Server) SetManager(ctx context.Context, req *carev1.SetManagerRequest) (*carev1.SetManagerResponse, error) {
	var v fault.Violations
	tenant, err := ident.Scope(ctx, &v)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := s.store.SetManager(ctx, tenant, req.GetOwner(), req.GetManager()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &carev1.SetManagerResponse{Owner: req.GetOwner(), Manager: req.GetManager()}, nil
}

// GetQueueCounts implements carev1.CareServiceServer.
func (s *Server) GetQueueCounts(ctx context.Context, req *carev1.GetQueueCountsRequest) (*carev1.GetQueueCountsResponse, error) {
	var v fault.Violations
	for i, o := range req.GetOwners() {
		ident.Check(&v, fmt.Sprintf("owners[%d]", i), o, true)
	}
	tenant, err := ident.Scope(ctx, &v)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	counts, err := s.store.Counts(ctx, tenant, req.GetOwners())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &carev1.GetQueueCountsResponse{}
	for _, c := range counts {
		out.Queues = append(out.Queues, &carev1.QueueCounts{Owner: c.Owner, DueToday: c.DueToday, Overdue: c.Overdue, Upcoming: c.Upcoming})
	}
	return out, nil
}

// SetConsent implements carev1.CareServiceServer.
func (s *Server) SetConsent(ctx context.Context, req *carev1.SetConsentRequest) (*carev1.SetConsentResponse, error) {
	tenant, err := tenancy.Single(ctx)
	if err == nil && req.GetConsent() == nil {
		err = fault.InvalidField("consent", "is required")
	}
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	c := consentFromProto(req.GetConsent())
	var v fault.Violations
	if q := req.GetConsent().GetQuietHours(); q != nil && (q.GetStart() == nil || q.GetEnd() == nil) {
		v.Add("consent.quiet_hours", "needs both start and end")
	}
	v.Merge("", c.Validate())
	if err := v.Err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	out, err := s.store.SetConsent(ctx, tenant, c)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &carev1.SetConsentResponse{Consent: consentToProto(out)}, nil
}

// GetConsent implements carev1.CareServiceServer.
func (s *Server) GetConsent(ctx context.Context, req *carev1.GetConsentRequest) (*carev1.GetConsentResponse, error) {
	var v fault.Violations
	tenant, err := ident.Scope(ctx, &v, ident.Field{Name: "customer_id", ID: req.GetCustomerId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	c, err := s.store.GetConsent(ctx, tenant, req.GetCustomerId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &carev1.GetConsentResponse{Consent: consentToProto(c)}, nil
}

// messageBody is the part of an automatic message's body a dead letter shows.
type messageBody struct {
	PlanID     string `json:"plan_id"`
	CustomerID string `json:"customer_id"`
}

func deliveryOf(m webhook.Message, attempts int, lastError string) *carev1.Delivery {
	var b messageBody
	_ = json.Unmarshal(m.Body, &b) // care wrote it; a body it cannot read still lists
	return &carev1.Delivery{DeliveryId: m.ID, PlanId: b.PlanID, CustomerId: b.CustomerID, Attempts: int32(attempts),
		LastError: lastError, CreateTime: ts(m.CreatedAt)}
}

// ListDeadLetters implements carev1.CareServiceServer.
func (s *Server) ListDeadLetters(ctx context.Context, _ *carev1.ListDeadLettersRequest) (*carev1.ListDeadLettersResponse, error) {
	tenant, err := tenancy.Single(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &carev1.ListDeadLettersResponse{}
	if s.outbox == nil {
		return out, nil
	}
	dls, err := s.outbox.DeadLetters(tenant)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	for _, d := range dls {
		out.Deliveries = append(out.Deliveries, deliveryOf(d.Message, d.Attempts, d.LastError))
	}
	return out, nil
}

// ReplayDeadLetter implements carev1.CareServiceServer.
func (s *Server) ReplayDeadLetter(ctx context.Context, req *carev1.ReplayDeadLetterRequest) (*carev1.ReplayDeadLetterResponse, error) {
	var v fault.Violations
	tenant, err := ident.Scope(ctx, &v, ident.Field{Name: "delivery_id", ID: req.GetDeliveryId()})
	if err == nil && s.outbox == nil {
		err = fmt.Errorf("dead letter %q: %w", req.GetDeliveryId(), fault.ErrNotFound)
	}
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	dls, err := s.outbox.DeadLetters(tenant)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	for _, d := range dls {
		if d.Message.ID != req.GetDeliveryId() {
			continue
		}
		if err := s.outbox.Replay(ctx, tenant, d.Message.ID); err != nil {
			return nil, s.fail(ctx, err)
		}
		// Replay resets the attempts: the delivery is queued afresh.
		return &carev1.ReplayDeadLetterResponse{Delivery: deliveryOf(d.Message, 0, d.LastError)}, nil
	}
	return nil, s.fail(ctx, fmt.Errorf("dead letter %q: %w", req.GetDeliveryId(), fault.ErrNotFound))
}

// FollowChanges implements carev1.CareServiceServer.
func (s *Server) FollowChanges(req *carev1.FollowChangesRequest, stream carev1.CareService_FollowChangesServer) error {
	ctx := stream.Context()
	tenant, err := tenancy.FromContext(ctx)
	if err != nil {
		return s.fail(ctx, fault.InvalidField(tenancy.MetadataKey, "is required"))
	}
	err = s.feed.Serve(ctx, tenant, req.GetAfterSequence(), req.GetWait(), func(ev *feedv1.Event) error {
		return stream.Send(&carev1.FollowChangesResponse{Event: ev})
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return s.fail(ctx, err)
}
