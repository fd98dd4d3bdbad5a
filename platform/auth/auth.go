// Package auth authenticates and authorizes every call to a Rapport service.
//
// A call carries one of two credentials in its "authorization" metadata
// (HTTP header "Authorization", which the gateway forwards):
//
//   - "Bearer <api key>": a tenant's API key, checked by the access service.
//     The call acts for the key's tenant, whatever tenant header it sends
//     (one that names another tenant is refused), and only within the key's
//     scopes.
//   - "Service <token>": a service of the suite calling another (feed
//     followers, reactions). The token is signed with the suite's shared
//     secret (HMAC-SHA256) and short-lived; a service is trusted to name the
//     tenant it acts for in the tenant metadata, as before.
//
// Health, reflection and the test clock need no credential.
package auth

import (
	"context"
	"errors"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"rapport.dev/platform/audit"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/tenancy"
)

// MetadataKey is the gRPC metadata key of the credential.
const MetadataKey = "authorization"

// Credential schemes.
const (
	bearer  = "Bearer "
	service = "Service "
)

// Principal is who makes a call.
type Principal struct {
	// Tenant the principal acts for: the key's tenant ("*" for the
	// operator key), or the tenant a service named.
	Tenant string
	// KeyID is the API key's id; empty for a service.
	KeyID string
	// Service is the calling service's name; empty for an API key.
	Service string
	// Scopes the API key holds.
	Scopes []string
}

// Actor names the principal in audit logs: "key:<id>" or "service:<name>".
func (p Principal) Actor() string {
	if p.Service != "" {
		return "service:" + p.Service
	}
	return "key:" + p.KeyID
}

// Allows reports whether the principal holds scope. Services hold every
// scope; "admin" includes every scope and "x:write" includes "x:read".
func (p Principal) Allows(scope string) bool {
	if p.Service != "" {
		return true
	}
	for _, s := range p.Scopes {
		if s == scope || s == ScopeAdmin {
			return true
		}
		if res, ok := strings.CutSuffix(scope, ":read"); ok && s == res+":write" {
			return true
		}
	}
	return false
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal of the call ctx belongs to.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// KeyAuthenticator checks API keys: the access service in-process, or a
// client of it. Its errors are gRPC statuses (Unauthenticated for an unknown
// or revoked key, ResourceExhausted over the rate limit).
type KeyAuthenticator interface {
	AuthenticateKey(ctx context.Context, key string) (Principal, error)
}

// Verifier authenticates and authorizes calls on a server.
type Verifier struct {
	// Keys checks API keys.
	Keys KeyAuthenticator
	// Secret verifies service tokens.
	Secret []byte
	// Clock is the time service tokens are checked against.
	Clock clock.Clock
	// CrossTenant methods may be called by services for every tenant ("*").
	CrossTenant map[string]bool
}

// Exempt reports whether a method needs no credential.
func Exempt(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.") || strings.HasPrefix(method, "/grpc.reflection.") ||
		strings.HasPrefix(method, "/rapport.testing.v1.ClockService/")
}

// Authorize authenticates the call ctx carries for method and returns the
// context the handler runs in: with the principal, the tenant and, for a
// change, the audit record the change's transaction writes.
func (v *Verifier) Authorize(ctx context.Context, method string) (context.Context, error) {
	if Exempt(method) {
		return ctx, nil
	}
	p, err := v.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	tenant, err := v.tenant(ctx, method, p)
	if err != nil {
		return nil, err
	}
	if p.Service == "" && p.Tenant == tenancy.All && !strings.HasPrefix(method, "/rapport.access.v1.") {
		return nil, status.Error(codes.PermissionDenied, "the operator key manages API keys only; use a tenant's key")
	}
	scope, ok := Required(method)
	if !ok {
		return nil, status.Errorf(codes.PermissionDenied, "%s is not open to callers", method)
	}
	if scope == ScopeInternal && p.Service == "" {
		return nil, status.Errorf(codes.PermissionDenied, "%s is for the suite's services only", method)
	}
	if !p.Allows(scope) {
		return nil, status.Errorf(codes.PermissionDenied, "the key %s lacks the scope %q that %s needs", p.KeyID, scope, method)
	}
	p.Tenant = tenant
	ctx = tenancy.WithTenant(WithPrincipal(ctx, p), tenant)
	if IsChange(method) {
		rec := &audit.Record{Time: v.Clock.Now(), Tenant: tenant, Actor: p.Actor(), Method: method}
		if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
			rec.TraceID = sc.TraceID().String()
		}
		ctx = audit.WithRecord(ctx, rec)
	}
	return ctx, nil
}

func (v *Verifier) authenticate(ctx context.Context) (Principal, error) {
	vals := metadata.ValueFromIncomingContext(ctx, MetadataKey)
	if len(vals) == 0 || vals[0] == "" {
		return Principal{}, status.Error(codes.Unauthenticated, "no credential: send \"authorization: Bearer <api key>\"")
	}
	if len(vals) > 1 {
		return Principal{}, status.Error(codes.Unauthenticated, "more than one authorization value")
	}
	cred := vals[0]
	switch {
	case hasPrefixFold(cred, bearer):
		if v.Keys == nil {
			return Principal{}, status.Error(codes.Unauthenticated, "API keys are not accepted here")
		}
		return v.Keys.AuthenticateKey(ctx, strings.TrimSpace(cred[len(bearer):]))
	case hasPrefixFold(cred, service):
		name, err := VerifyToken(v.Secret, strings.TrimSpace(cred[len(service):]), v.Clock.Now())
		if err != nil {
			return Principal{}, status.Errorf(codes.Unauthenticated, "service token: %v", err)
		}
		return Principal{Service: name}, nil
	}
	return Principal{}, status.Error(codes.Unauthenticated, "authorization: unknown scheme, want \"Bearer <api key>\"")
}

// tenant is the tenant the call acts for. A key's tenant is its own; a tenant
// header naming another one is refused rather than ignored, so a client
// that believes it acts for B learns at once that it does not.
func (v *Verifier) tenant(ctx context.Context, method string, p Principal) (string, error) {
	var header string
	if vals := metadata.ValueFromIncomingContext(ctx, tenancy.MetadataKey); len(vals) > 0 {
		header = vals[0]
	}
	if p.Service == "" {
		if header != "" && header != p.Tenant {
			return "", status.Errorf(codes.PermissionDenied,
				"%s names tenant %q but the key belongs to tenant %q", tenancy.MetadataKey, header, p.Tenant)
		}
		return p.Tenant, nil
	}
	if header == tenancy.All && v.CrossTenant[method] {
		return header, nil
	}
	if err := tenancy.Validate(header); err != nil {
		return "", status.Errorf(codes.InvalidArgument, "%s: %v", tenancy.MetadataKey, err)
	}
	return header, nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// Scopes.
const (
	ScopeAdmin = "admin"
	// ScopeInternal marks methods only services call.
	ScopeInternal = "internal"
)

// resources maps each service to the resource its scopes name.
var resources = map[string]string{
	"rapport.profile.v1.ProfileService":           "customers",
	"rapport.segmentation.v1.SegmentationService": "segments",
	"rapport.loyalty.v1.LoyaltyService":           "loyalty",
	"rapport.care.v1.CareService":                 "care",
}

// Scopes lists every scope a key may hold.
func Scopes() []string {
	var out []string
	for _, r := range resources {
		out = append(out, r+":read", r+":write")
	}
	slices.Sort(out)
	return append(out, ScopeAdmin)
}

// ValidScope reports whether s is a scope a key may hold.
func ValidScope(s string) bool { return slices.Contains(Scopes(), s) }

// readVerbs start the names of the methods that change nothing.
var readVerbs = []string{"Get", "List", "Preview", "Export", "Explain", "Follow", "Reconcile"}

// IsChange reports whether a method changes state (and so is audited).
func IsChange(method string) bool {
	_, name, _ := splitMethod(method)
	for _, v := range readVerbs {
		if strings.HasPrefix(name, v) {
			return false
		}
	}
	return name != "Authenticate"
}

// Required returns the scope a method needs; false for a method no key or
// service may call.
func Required(method string) (string, bool) {
	svc, name, ok := splitMethod(method)
	if !ok {
		return "", false
	}
	switch svc {
	case "rapport.access.v1.AccessService":
		if name == "Authenticate" {
			return ScopeInternal, true
		}
		return ScopeAdmin, true
	case "rapport.audit.v1.AuditService":
		return ScopeAdmin, true
	}
	res, ok := resources[svc]
	if !ok {
		return "", false
	}
	if IsChange(method) {
		return res + ":write", true
	}
	return res + ":read", true
}

func splitMethod(method string) (svc, name string, ok bool) {
	svc, name, ok = strings.Cut(strings.TrimPrefix(method, "/"), "/")
	return svc, name, ok && svc != "" && name != ""
}

// ErrMalformed is returned for a token that cannot be parsed.
var ErrMalformed = errors.New("malformed")
