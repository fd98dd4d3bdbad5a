package domain

import "time"

// TaskState is a task's place in its lifecycle; the numbers are
// rapport.care.v1.TaskState's.
type TaskState int

// Task states.
const (
	TaskScheduled TaskState = iota + 1
	TaskDue
	TaskDone
	TaskSkipped
	TaskOverdue
	TaskEscalated
)

// Open reports whether the task still waits for its owner.
func (s TaskState) Open() bool {
	return s == TaskScheduled || s == TaskDue || s == TaskOverdue || s == TaskEscalated
}

// Outcome of a contact; the numbers are rapport.care.v1.Outcome's.
type TaskOutcome int

// Task outcomes.
const (
	OutcomeReached TaskOutcome = iota + 1
	OutcomeNotReached
	OutcomeSatisfied
	OutcomeComplaintRaised
	OutcomeDeclined
)

// Valid reports whether o is a known outcome.
func (o TaskOutcome) Valid() bool { return o >= OutcomeReached && o <= OutcomeDeclined }

// Task is work for an owner, made by a plan for a customer.
type Task struct {
	ID         string    `json:"id"`
	PlanID     string    `json:"plan_id"`
	CustomerID string    `json:"customer_id"`
	Owner      string    `json:"owner,omitempty"`
	Title      string    `json:"title"`
	Note       string    `json:"note,omitempty"`
	Trigger    string    `json:"trigger"`
	Occurrence string    `json:"occurrence"`
	State      TaskState `json:"state"`
	Due        time.Time `json:"due"`
	// LocalDue is Due in the customer's zone, "2026-09-25 10:00 Asia/Shanghai".
	LocalDue    string      `json:"local_due"`
	SLA         time.Time   `json:"sla,omitzero"`
	EscalatedTo string      `json:"escalated_to,omitempty"`
	Outcome     TaskOutcome `json:"outcome,omitempty"`
	ResultNote  string      `json:"result_note,omitempty"`
	CSAT        int         `json:"csat,omitempty"`
	Completed   time.Time   `json:"completed,omitzero"`
	Created     time.Time   `json:"created"`
}
