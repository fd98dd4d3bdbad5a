// Package ident is the one rule for client-supplied ids (customer, event,
// order, segment …): 1 to 128 of A-Z a-z 0-9 . _ : - . Ids are key parts in
// bbolt, joined by NUL bytes, and appear in URL paths; the rule keeps both safe.
package ident

import (
	"context"
	"regexp"

	"rapport.dev/platform/fault"
	"rapport.dev/platform/tenancy"
)

var pattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// Rule describes a valid id, for error messages.
const Rule = "must be 1-128 of A-Z a-z 0-9 . _ : -"

// Valid reports whether s is a well-formed id.
func Valid(s string) bool { return pattern.MatchString(s) }

// Check records a violation on field when s is not a well-formed id; an
// empty s is a violation only when required.
func Check(v *fault.Violations, field, s string, required bool) {
	switch {
	case s == "" && required:
		v.Add(field, "is required")
	case s != "" && !Valid(s):
		v.Add(field, Rule)
	}
}

// Field is an id a request names, with the field it came in.
type Field struct{ Name, ID string }

// Scope returns the tenant of a call on one tenant's data after checking
// the ids the request names, each required: the prologue the services'
// handlers share. The violations join those already in v.
func Scope(ctx context.Context, v *fault.Violations, ids ...Field) (string, error) {
	tenant, err := tenancy.Single(ctx)
	if err != nil {
		return "", err
	}
	for _, f := range ids {
		Check(v, f.Name, f.ID, true)
	}
	return tenant, v.Err()
}
