package store

import (
	"context"
	"encoding/json"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	carev1 "rapport.dev/gen/go/rapport/care/v1"
	"rapport.dev/services/care/domain"
)

// TaskToProto is a task as the API and the change feed show it.
func TaskToProto(t *domain.Task) *carev1.Task {
	return &carev1.Task{TaskId: t.ID, PlanId: t.PlanID, CustomerId: t.CustomerID, Owner: t.Owner, Title: t.Title,
		Note: t.Note, State: carev1.TaskState(t.State), DueTime: ts(t.Due), LocalDue: t.LocalDue, SlaTime: ts(t.SLA),
		EscalatedTo: t.EscalatedTo, Outcome: carev1.Outcome(t.Outcome), ResultNote: t.ResultNote,
		CompleteTime: ts(t.Completed), CreateTime: ts(t.Created)}
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func (s *Store) publishTask(ctx context.Context, t tx, typ string, task *domain.Task) error {
	_, err := s.feed.Append(ctx, t.Tx, t.tenant, typ, task.CustomerID, TaskToProto(task))
	return err
}

func (s *Store) publishDelivery(ctx context.Context, t tx, id, plan, cust string, now time.Time) error {
	_, err := s.feed.Append(ctx, t.Tx, t.tenant, TypeMessageSent, cust,
		&carev1.Delivery{DeliveryId: id, PlanId: plan, CustomerId: cust, CreateTime: ts(now)})
	return err
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
