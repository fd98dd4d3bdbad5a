package tenancy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"rapport.dev/platform/tenancy"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"acme", true},
		{"a", true},
		{"0", true},
		{"acme-eu_2", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"Acme", false},
		{"-acme", false},
		{"_acme", false},
		{"acme corp", false},
		{"acme.eu", false},
		{"acme\x00", false},
		{"ácme", false},
		{tenancy.All, false}, // only cross-tenant RPCs accept it, and they check it first
	} {
		err := tenancy.Validate(tc.id)
		if (err == nil) != tc.ok {
			t.Errorf("Validate(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
	}
	if err := tenancy.Validate(""); !errors.Is(err, tenancy.ErrMissing) {
		t.Errorf("Validate(\"\") = %v, want ErrMissing", err)
	}
}

func TestContext(t *testing.T) {
	if _, err := tenancy.FromContext(context.Background()); !errors.Is(err, tenancy.ErrMissing) {
		t.Errorf("FromContext of a bare context: %v, want ErrMissing", err)
	}
	ctx := tenancy.WithTenant(context.Background(), "acme")
	if got, err := tenancy.FromContext(ctx); err != nil || got != "acme" {
		t.Errorf("FromContext = %q, %v", got, err)
	}
	// The innermost tenant wins; an empty one counts as missing.
	if got, _ := tenancy.FromContext(tenancy.WithTenant(ctx, "globex")); got != "globex" {
		t.Errorf("overridden tenant = %q", got)
	}
	if _, err := tenancy.FromContext(tenancy.WithTenant(ctx, "")); !errors.Is(err, tenancy.ErrMissing) {
		t.Errorf("empty tenant: %v, want ErrMissing", err)
	}
}
