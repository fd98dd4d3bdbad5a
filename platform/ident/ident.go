// Package ident is the one rule for client-supplied ids (customer, event,
// order, segment …): 1 to 128 of A-Z a-z 0-9 . _ : - . Ids are key parts in
// bbolt, joined by NUL bytes, and appear in URL paths; the rule keeps both safe.
package ident

import (
	"regexp"

	"rapport.dev/platform/fault"
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
