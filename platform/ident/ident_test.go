package ident_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"rapport.dev/platform/fault"
	"rapport.dev/platform/ident"
	"rapport.dev/platform/tenancy"
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

func TestScope(t *testing.T) {
	ctx := tenancy.WithTenant(context.Background(), "acme")
	var v fault.Violations
	v.Add("note", "is too long")
	tenant, err := ident.Scope(ctx, &v, ident.Field{Name: "customer_id", ID: "c-1"}, ident.Field{Name: "plan_id", ID: "bad id"},
		ident.Field{Name: "task_id", ID: ""})
	if tenant != "acme" || err == nil {
		t.Fatalf("Scope: %q, %v", tenant, err)
	}
	for _, field := range []string{"note", "plan_id", "task_id"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
	if strings.Contains(err.Error(), "customer_id") {
		t.Errorf("a valid id was refused: %v", err)
	}
	var clean fault.Violations
	if tenant, err := ident.Scope(ctx, &clean, ident.Field{Name: "customer_id", ID: "c-1"}); tenant != "acme" || err != nil {
		t.Errorf("valid call: %q, %v", tenant, err)
	}
	if _, err := ident.Scope(tenancy.WithTenant(context.Background(), tenancy.All), &clean); err == nil {
		t.Error("the wildcard tenant was accepted")
	}
}
