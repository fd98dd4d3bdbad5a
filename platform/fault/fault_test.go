package fault_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"rapport.dev/platform/fault"
)

func violations(t *testing.T, err error) []fault.Violation {
	t.Helper()
	var inv *fault.Invalid
	if !errors.As(err, &inv) {
		t.Fatalf("%v is not an *Invalid", err)
	}
	return inv.Violations
}

func TestViolationsErr(t *testing.T) {
	var v fault.Violations
	if !v.Empty() || v.Err() != nil {
		t.Fatalf("zero Violations: Empty=%v Err=%v", v.Empty(), v.Err())
	}
	v.Add("customer.id", "required")
	v.Add("customer.email", "must contain @, got %q", "ada")
	v.Add("customer.attributes", "at most %d", 50)
	v.Add("customer.email", "too long")
	if v.Empty() {
		t.Fatal("Empty after Add")
	}

	err := v.Err()
	want := []fault.Violation{
		{"customer.attributes", "at most 50"},
		{"customer.email", `must contain @, got "ada"`},
		{"customer.email", "too long"}, // same field: the order they were added
		{"customer.id", "required"},
	}
	if got := violations(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("violations = %v, want %v (sorted by field)", got, want)
	}
	if !errors.Is(err, fault.ErrInvalid) || !errors.Is(fmt.Errorf("create: %w", err), fault.ErrInvalid) {
		t.Error("*Invalid does not match ErrInvalid")
	}
	if errors.Is(err, fault.ErrNotFound) {
		t.Error("*Invalid matches ErrNotFound")
	}
	if got, want := err.Error(), `invalid argument: customer.attributes: at most 50; customer.email: must contain @, got "ada"; customer.email: too long; customer.id: required`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}

	// Err does not hand out the collector's storage.
	violations(t, err)[0].Field = "changed"
	v.Add("a", "first")
	if got := violations(t, v.Err()); got[0].Field != "a" || got[1].Field != "customer.attributes" {
		t.Errorf("after changing an earlier result: %v", got)
	}
}

func TestViolationsMerge(t *testing.T) {
	var money fault.Violations
	money.Add("currency", "unknown code")
	money.Add("amount", "negative")
	nested := money.Err()

	var v fault.Violations
	v.Add("id", "required")
	v.Merge("event.purchase.amount", nested)
	v.Merge("event.tags", fmt.Errorf("wrapped: %w", fault.InvalidField("0", "empty")))
	v.Merge("event.when", errors.New("not a timestamp")) // a plain error becomes one violation
	v.Merge("event.ok", nil)                             // nothing to merge
	v.Merge("", fault.InvalidField("top", "bad"))        // no prefix

	want := []fault.Violation{
		{"event.purchase.amount.amount", "negative"},
		{"event.purchase.amount.currency", "unknown code"},
		{"event.tags.0", "empty"},
		{"event.when", "not a timestamp"},
		{"id", "required"},
		{"top", "bad"},
	}
	if got := violations(t, v.Err()); !reflect.DeepEqual(got, want) {
		t.Errorf("merged = %v\nwant %v", got, want)
	}
}

func TestInvalidField(t *testing.T) {
	err := fault.InvalidField("page_size", "must be at most %d", 1000)
	if got, want := violations(t, err), []fault.Violation{{"page_size", "must be at most 1000"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("violations = %v, want %v", got, want)
	}
}

func TestSentinelsAreDistinct(t *testing.T) {
	all := []error{fault.ErrNotFound, fault.ErrAlreadyExists, fault.ErrConflict, fault.ErrFailedPrecondition, fault.ErrInvalid, fault.ErrUnavailable}
	for i, a := range all {
		for j, b := range all {
			if (i == j) != errors.Is(fmt.Errorf("ctx: %w", a), b) {
				t.Errorf("errors.Is(wrapped %v, %v) = %v", a, b, i != j)
			}
		}
	}
}

func TestViolationsText(t *testing.T) {
	var v fault.Violations
	v.Text("reason", "  ", 10, true)
	v.Text("note", "", 10, false)
	v.Text("name", "五个字太长了吗", 5, false)
	v.Text("title", "五个字", 3, true)
	got := map[string]string{}
	for _, x := range violations(t, v.Err()) {
		got[x.Field] = x.Description
	}
	if len(got) != 2 || got["reason"] != "is required" || !strings.Contains(got["name"], "at most 5 characters") {
		t.Errorf("violations %v; want a blank required reason and a name over 5 characters (counted in runes)", got)
	}
}
