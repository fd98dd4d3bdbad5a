// Package fault declares the domain errors every Rapport service returns, so
// that one table (grpcserver.Status) maps them to gRPC codes. Domain code
// wraps them with %w to add context: fmt.Errorf("customer %q: %w", id, fault.ErrNotFound).
package fault

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

var (
	// ErrNotFound: the addressed record does not exist in the caller's tenant.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: a create reused an id with different content.
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: an optimistic-concurrency check (etag) failed; re-read and retry.
	ErrConflict = errors.New("conflict")
	// ErrFailedPrecondition: the request is well formed but the stored state
	// does not allow it (a refund larger than what is left of its purchase).
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrInvalid: the request is malformed; see *Invalid for the fields.
	ErrInvalid = errors.New("invalid argument")
	// ErrUnavailable: a dependency is not reachable; the call may be retried.
	ErrUnavailable = errors.New("unavailable")
)

// Violation names one bad field and says what is wrong with it.
type Violation struct {
	// Field is the path of the field in the request, e.g. "event.purchase.amount.currency".
	Field string
	// Description says what is wrong, for a person.
	Description string
}

// Invalid is a validation error listing every bad field. It matches ErrInvalid.
type Invalid struct {
	Violations []Violation
}

func (e *Invalid) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.Field + ": " + v.Description
	}
	return "invalid argument: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Invalid) Is(target error) bool { return target == ErrInvalid }

// Violations collects field violations while a request is checked.
// The zero value is ready to use.
type Violations struct {
	list []Violation
}

// Add records that field is bad.
func (v *Violations) Add(field, format string, args ...any) {
	v.list = append(v.list, Violation{Field: field, Description: fmt.Sprintf(format, args...)})
}

// Merge adds the violations of a nested check under a prefix.
func (v *Violations) Merge(prefix string, err error) {
	var inv *Invalid
	if !errors.As(err, &inv) {
		if err != nil {
			v.Add(prefix, "%v", err)
		}
		return
	}
	for _, x := range inv.Violations {
		f := x.Field
		if prefix != "" {
			f = prefix + "." + f
		}
		v.list = append(v.list, Violation{Field: f, Description: x.Description})
	}
}

// Text records a violation on field when s is blank but required, or
// longer than max characters.
func (v *Violations) Text(field, s string, max int, required bool) {
	switch {
	case required && strings.TrimSpace(s) == "":
		v.Add(field, "is required")
	case utf8.RuneCountInString(s) > max:
		v.Add(field, "must be at most %d characters", max)
	}
}

// Empty reports whether nothing was recorded.
func (v *Violations) Empty() bool { return len(v.list) == 0 }

// Err returns an *Invalid with the recorded violations in field order, or nil.
func (v *Violations) Err() error {
	if len(v.list) == 0 {
		return nil
	}
	out := append([]Violation(nil), v.list...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return &Invalid{Violations: out}
}

// InvalidField is a shorthand for a single violation.
func InvalidField(field, format string, args ...any) error {
	var v Violations
	v.Add(field, format, args...)
	return v.Err()
}

// Prefix puts prefix before the field paths of an *Invalid error, so a
// violation found on an entity ("amount") is reported at its place in the
// request ("events[3].purchase.amount"). Other errors are returned unchanged.
func Prefix(prefix string, err error) error {
	var inv *Invalid
	if !errors.As(err, &inv) {
		return err
	}
	var v Violations
	v.Merge(prefix, inv)
	return v.Err()
}
