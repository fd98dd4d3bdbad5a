package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/ident"
	"rapport.dev/services/care/domain"
)

// GetTask reads a task.
func (s *Store) GetTask(ctx context.Context, tenant, id string) (*domain.Task, error) {
	var out *domain.Task
	err := s.db.View(func(btx *bolt.Tx) error {
		var err error
		out, err = tx{Tx: btx, tenant: tenant}.task(id)
		return err
	})
	return out, err
}

// Completion is a completed task and what must be written back to the
// customer's profile timeline: a contact log, and a survey answer when a
// CSAT was given. The events' ids derive from the task id, so the API can
// send them to the profile service as often as it must: the profile keeps
// one of each.
type Completion struct {
	Task     *domain.Task
	Replayed bool
	Timeline []*profilev1.Event
}

// CompleteTask records a task's outcome. Completing it again with the same
// outcome returns the stored task (Replayed) and the same timeline events;
// with another outcome, or completing a skipped task, fails with
// fault.ErrFailedPrecondition. An owner who hears OutcomeDeclined records
// the customer's wish: care stops contacting them.
func (s *Store) CompleteTask(ctx context.Context, tenant, id string, outcome domain.TaskOutcome, note string, csat int) (*Completion, error) {
	var v fault.Violations
	ident.Check(&v, "task_id", id, true)
	if !outcome.Valid() {
		v.Add("outcome", "is required: reached, not reached, satisfied, complaint raised or declined")
	}
	if csat < 0 || csat > 5 {
		v.Add("csat", "must be 1 to 5, or 0 when not asked; got %d", csat)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	now := s.clock.Now().UTC()
	out := &Completion{}
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		task, err := t.task(id)
		if err != nil {
			return err
		}
		switch {
		case task.State == domain.TaskDone && task.Outcome == outcome:
			out.Task, out.Replayed = task, true
			return nil
		case task.State == domain.TaskDone:
			return fmt.Errorf("task %q already completed with another outcome: %w", id, fault.ErrFailedPrecondition)
		case task.State == domain.TaskSkipped:
			return fmt.Errorf("task %q was skipped: %w", id, fault.ErrFailedPrecondition)
		}
		task.State, task.Outcome, task.ResultNote, task.CSAT, task.Completed = domain.TaskDone, outcome, note, csat, now
		if err := s.putTask(t, nil, task); err != nil {
			return err
		}
		if err := s.scheduleTask(t, task); err != nil {
			return err
		}
		if outcome == domain.OutcomeDeclined {
			c, _, err := t.customer(task.CustomerID)
			if err != nil {
				return err
			}
			c.Consent.DoNotContact, c.Consent.Updated = true, now
			if err := t.putCustomer(c); err != nil {
				return err
			}
		}
		out.Task = task
		return s.publishTask(ctx, t, TypeTaskCompleted, task)
	})
	if err != nil {
		return nil, err
	}
	out.Timeline = timelineOf(out.Task)
	return out, nil
}

var contactOutcomes = map[domain.TaskOutcome]profilev1.ContactOutcome{
	domain.OutcomeReached:         profilev1.ContactOutcome_CONTACT_OUTCOME_REACHED,
	domain.OutcomeNotReached:      profilev1.ContactOutcome_CONTACT_OUTCOME_NOT_REACHED,
	domain.OutcomeSatisfied:       profilev1.ContactOutcome_CONTACT_OUTCOME_SATISFIED,
	domain.OutcomeComplaintRaised: profilev1.ContactOutcome_CONTACT_OUTCOME_COMPLAINT_RAISED,
	domain.OutcomeDeclined:        profilev1.ContactOutcome_CONTACT_OUTCOME_DECLINED,
}

// timelineOf is what a completed task writes to the profile timeline.
func timelineOf(task *domain.Task) []*profilev1.Event {
	at := timestamppb.New(task.Completed)
	out := []*profilev1.Event{{
		EventId: "care.contact." + task.ID, CustomerId: task.CustomerID, OccurTime: at, Source: "care",
		Kind: &profilev1.Event_ContactLog{ContactLog: &profilev1.ContactLog{
			Method: profilev1.ContactMethod_CONTACT_METHOD_CALL, Outcome: contactOutcomes[task.Outcome],
			Staff: task.Owner, Notes: task.ResultNote, TaskId: task.ID}},
	}}
	if task.CSAT > 0 {
		out = append(out, &profilev1.Event{
			EventId: "care.survey." + task.ID, CustomerId: task.CustomerID, OccurTime: at, Source: "care",
			Kind: &profilev1.Event_Survey{Survey: &profilev1.SurveyResponse{
				SurveyId: task.ID, Csat: proto.Int32(int32(task.CSAT)), Text: task.ResultNote}},
		})
	}
	return out
}

// SkipTask closes a task without contact. Skipping it again returns it;
// skipping a completed task fails with fault.ErrFailedPrecondition.
func (s *Store) SkipTask(ctx context.Context, tenant, id, reason string) (*domain.Task, error) {
	var v fault.Violations
	ident.Check(&v, "task_id", id, true)
	if strings.TrimSpace(reason) == "" {
		v.Add("reason", "is required")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	now := s.clock.Now().UTC()
	var out *domain.Task
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		task, err := t.task(id)
		if err != nil {
			return err
		}
		switch task.State {
		case domain.TaskSkipped:
			out = task
			return nil
		case domain.TaskDone:
			return fmt.Errorf("task %q already completed: %w", id, fault.ErrFailedPrecondition)
		}
		task.State, task.ResultNote, task.Completed = domain.TaskSkipped, reason, now
		if err := s.putTask(t, nil, task); err != nil {
			return err
		}
		if err := s.scheduleTask(t, task); err != nil {
			return err
		}
		out = task
		return s.publishTask(ctx, t, TypeTaskSkipped, task)
	})
	return out, err
}

// QueueQuery selects a work queue.
type QueueQuery struct {
	// Owner is whose queue; "" lists every owner's.
	Owner string
	// Customer, when set, keeps one customer's tasks.
	Customer string
	// States filter; empty means scheduled, due, overdue and escalated.
	States []domain.TaskState
	// DueBefore, when set, keeps tasks due before it.
	DueBefore time.Time
	// PageSize is at most 500; 0 means 50.
	PageSize  int
	PageToken string
}

// Queue lists tasks soonest due first (ties by id), a page at a time.
func (s *Store) Queue(ctx context.Context, tenant string, q QueueQuery) ([]*domain.Task, string, error) {
	switch {
	case q.PageSize < 0 || q.PageSize > 500:
		return nil, "", fault.InvalidField("page_size", "must be between 0 and 500, got %d", q.PageSize)
	case q.PageSize == 0:
		q.PageSize = 50
	}
	states := q.States
	if len(states) == 0 {
		states = []domain.TaskState{domain.TaskScheduled, domain.TaskDue, domain.TaskOverdue, domain.TaskEscalated}
	}
	var after []byte // due(8) ‖ task id of the last task returned
	if q.PageToken != "" {
		raw, err := base64.RawURLEncoding.DecodeString(q.PageToken)
		if err != nil || len(raw) < 9 {
			return nil, "", fault.InvalidField("page_token", "is not a token returned by this listing")
		}
		after = raw
	}
	var found []queueEntry
	seen := map[string]bool{}
	err := s.db.View(func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		if q.Customer != "" {
			var err error
			found, err = t.customerQueue(q, states, after)
			return err
		}
		prefix := boltdb.Prefix(tenant)
		if q.Owner != "" {
			prefix = boltdb.Prefix(tenant, q.Owner)
		}
		c := btx.Bucket(bucketQueue).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			rest := k[len(boltdb.Prefix(tenant)):]
			sep := bytes.IndexByte(rest, boltdb.Sep)
			if sep < 0 || len(rest) < sep+1+8+1 {
				return fmt.Errorf("store: malformed queue key %q", k)
			}
			dueB, id := rest[sep+1:sep+9], rest[sep+10:]
			pos := append(bytes.Clone(dueB), id...)
			if after != nil && bytes.Compare(pos, after) <= 0 {
				continue
			}
			if !q.DueBefore.IsZero() && int64(bytesU64(dueB)) >= q.DueBefore.UnixNano() {
				if q.Owner != "" {
					break // one owner's entries are in due order
				}
				continue
			}
			if q.Owner == "" && seen[string(id)] {
				continue // an escalated task is in its owner's and its manager's queues
			}
			task, err := t.task(string(id))
			if err != nil {
				return err
			}
			if !slices.Contains(states, task.State) {
				continue
			}
			seen[string(id)] = true
			found = append(found, queueEntry{pos, task})
			if q.Owner != "" && len(found) > q.PageSize {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	slices.SortFunc(found, func(a, b queueEntry) int { return bytes.Compare(a.pos, b.pos) })
	var next string
	if len(found) > q.PageSize {
		found = found[:q.PageSize]
		next = base64.RawURLEncoding.EncodeToString(found[len(found)-1].pos)
	}
	out := make([]*domain.Task, len(found))
	for i, e := range found {
		out[i] = e.task
	}
	return out, next, nil
}

// queueEntry is a task listed by Queue at its position: due(8) ‖ task id,
// the order of the listing and of its page tokens.
type queueEntry struct {
	pos  []byte
	task *domain.Task
}

// customerQueue is Queue for one customer: it reads the customer's tasks
// through customer_tasks instead of every owner's queue, and applies the
// same filters.
func (t tx) customerQueue(q QueueQuery, states []domain.TaskState, after []byte) ([]queueEntry, error) {
	var found []queueEntry
	prefix := boltdb.Prefix(t.tenant, q.Customer)
	c := t.b(bucketCustTasks).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		task, err := t.task(string(k[len(prefix):]))
		if err != nil {
			return nil, err
		}
		due := task.Due.UnixNano()
		pos := append(boltdb.U64(uint64(due)), task.ID...)
		switch {
		case after != nil && bytes.Compare(pos, after) <= 0,
			!q.DueBefore.IsZero() && due >= q.DueBefore.UnixNano(),
			q.Owner != "" && !slices.Contains(queueOwners(task), q.Owner),
			!slices.Contains(states, task.State):
			continue
		}
		found = append(found, queueEntry{pos, task})
	}
	return found, nil
}

func bytesU64(b []byte) uint64 {
	v, _ := boltdb.ReadU64(b)
	return v
}

// QueueCounts are an owner's open tasks.
type QueueCounts struct {
	Owner                       string
	DueToday, Overdue, Upcoming int64
}

// Counts counts each owner's open tasks at now, on each task's customer's
// local calendar: overdue are escalated or overdue tasks and those due
// before today; due today are the rest due before today ends; upcoming
// are due on a later day. owners empty means every owner with open tasks.
func (s *Store) Counts(ctx context.Context, tenant string, owners []string) ([]QueueCounts, error) {
	now := s.clock.Now().UTC()
	counts := map[string]*QueueCounts{}
	for _, o := range owners {
		counts[o] = &QueueCounts{Owner: o}
	}
	err := s.db.View(func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		zones := map[string]*time.Location{}
		prefix := boltdb.Prefix(tenant)
		c := btx.Bucket(bucketQueue).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			rest := k[len(prefix):]
			sep := bytes.IndexByte(rest, boltdb.Sep)
			if sep < 0 || len(rest) < sep+10 {
				return fmt.Errorf("store: malformed queue key %q", k)
			}
			owner := string(rest[:sep])
			qc := counts[owner]
			if qc == nil && len(owners) > 0 {
				continue
			}
			task, err := t.task(string(rest[sep+10:]))
			if err != nil {
				return err
			}
			if !task.State.Open() {
				continue
			}
			if qc == nil {
				qc = &QueueCounts{Owner: owner}
				counts[owner] = qc
			}
			loc, ok := zones[task.CustomerID]
			if !ok {
				cust, _, err := t.customer(task.CustomerID)
				if err != nil {
					return err
				}
				loc = s.location(cust.TimeZone)
				zones[task.CustomerID] = loc
			}
			l := now.In(loc)
			today := domain.CivilDate{Year: l.Year(), Month: l.Month(), Day: l.Day()}
			start := domain.LocalAt(today, 0, 0, loc)
			end := domain.LocalAt(domain.CivilDate{Year: today.Year, Month: today.Month, Day: today.Day + 1}, 0, 0, loc)
			switch {
			case task.State == domain.TaskOverdue || task.State == domain.TaskEscalated || task.Due.Before(start):
				qc.Overdue++
			case task.Due.Before(end):
				qc.DueToday++
			default:
				qc.Upcoming++
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]QueueCounts, 0, len(counts))
	for _, qc := range counts {
		out = append(out, *qc)
	}
	slices.SortFunc(out, func(a, b QueueCounts) int { return strings.Compare(a.Owner, b.Owner) })
	return out, nil
}
