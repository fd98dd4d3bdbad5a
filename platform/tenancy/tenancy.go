// Package tenancy carries the tenant of a request. Every record in Rapport
// belongs to a tenant and every call is scoped to one: the gateway takes it
// from the X-Rapport-Tenant header, gRPC callers send it as the
// x-rapport-tenant metadata, and the server interceptor puts it in the
// context, where storage code reads it with FromContext.
package tenancy

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"rapport.dev/platform/fault"
)

const (
	// MetadataKey is the gRPC metadata key that names the tenant.
	MetadataKey = "x-rapport-tenant"
	// HeaderName is the HTTP header the gateway maps to MetadataKey.
	HeaderName = "X-Rapport-Tenant"
	// All is the wildcard a service follower uses to read every tenant's
	// change feed. Only RPCs registered as cross-tenant accept it; the
	// gateway never forwards it.
	All = "*"
)

// ErrMissing is returned when a request names no tenant.
var ErrMissing = errors.New("tenant: missing")

var valid = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Validate reports whether id is a well-formed tenant id: 1 to 63 of
// lower-case letters, digits, '-' and '_', starting with a letter or digit.
func Validate(id string) error {
	if id == "" {
		return ErrMissing
	}
	if !valid.MatchString(id) {
		return fmt.Errorf("tenant %q: must be 1-63 of a-z 0-9 - _, starting with a letter or digit", id)
	}
	return nil
}

type ctxKey struct{}

// WithTenant returns a context that carries the tenant id.
func WithTenant(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the tenant of the request, or ErrMissing.
func FromContext(ctx context.Context) (string, error) {
	id, _ := ctx.Value(ctxKey{}).(string)
	if id == "" {
		return "", ErrMissing
	}
	return id, nil
}

// Single returns the request's tenant for a call that works on one tenant's
// data: the wildcard is refused there, with a violation naming the metadata key.
func Single(ctx context.Context) (string, error) {
	t, err := FromContext(ctx)
	if err != nil || t == All {
		return "", fault.InvalidField(MetadataKey, "a single tenant is required")
	}
	return t, nil
}
