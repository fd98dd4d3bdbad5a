package ident_test

import (
	"errors"
	"strings"
	"testing"

	"rapport.dev/platform/fault"
	"rapport.dev/platform/ident"
)

func TestValid(t *testing.T) {
	for _, ok := range []string{"c-1", "ORDER.2026:17_a", strings.Repeat("x", 128)} {
		if !ident.Valid(ok) {
			t.Errorf("%q should be valid", ok)
		}
	}
	for _, bad := range []string{"", "a b", "a/b", "a\x00b", "中文", strings.Repeat("x", 129)} {
		if ident.Valid(bad) {
			t.Errorf("%q should be invalid", bad)
		}
	}
}

func TestCheck(t *testing.T) {
	var v fault.Violations
	ident.Check(&v, "a", "", false)
	ident.Check(&v, "b", "", true)
	ident.Check(&v, "c", "x y", false)
	var inv *fault.Invalid
	if !errors.As(v.Err(), &inv) || len(inv.Violations) != 2 || inv.Violations[0].Field != "b" || inv.Violations[1].Field != "c" {
		t.Fatalf("violations: %v", v.Err())
	}
}
