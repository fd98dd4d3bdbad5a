package access

import (
	"context"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	accessv1 "rapport.dev/gen/go/rapport/access/v1"
	"rapport.dev/platform/audit"
	"rapport.dev/platform/auth"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/tenancy"
)

// CrossTenantMethods may be called with the tenancy.All wildcard.
var CrossTenantMethods = []string{accessv1.AccessService_Authenticate_FullMethodName}

// API implements accessv1.AccessServiceServer.
type API struct {
	accessv1.UnimplementedAccessServiceServer
	Keys *Keys
}

// caller is the principal of the call; the server's verifier put it there.
func caller(ctx context.Context) (auth.Principal, error) {
	p, ok := auth.FromContext(ctx)
	if !ok {
		return auth.Principal{}, status.Error(codes.Unauthenticated, "no credential")
	}
	return p, nil
}

// tenantFor is the tenant a key-management call acts on: the caller's own,
// or, for the operator key, the one the request names.
func tenantFor(p auth.Principal, requested string) (string, error) {
	switch {
	case p.Tenant == tenancy.All && requested == "":
		return "", fault.InvalidField("tenant", "the operator key must name the tenant")
	case p.Tenant == tenancy.All:
		if err := tenancy.Validate(requested); err != nil {
			return "", fault.InvalidField("tenant", "%v", err)
		}
		return requested, nil
	case requested != "" && requested != p.Tenant:
		return "", status.Errorf(codes.PermissionDenied, "a key of tenant %q manages only its own tenant's keys", p.Tenant)
	}
	return p.Tenant, nil
}

// CreateApiKey implements accessv1.AccessServiceServer.
func (a *API) CreateApiKey(ctx context.Context, req *accessv1.CreateApiKeyRequest) (*accessv1.CreateApiKeyResponse, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	var v fault.Violations
	if req.KeyId != "" && !keyIDPattern.MatchString(req.KeyId) {
		v.Add("key_id", "must be 1-40 of a-z 0-9 - _, starting with a letter or digit")
	}
	if len(req.Scopes) == 0 {
		v.Add("scopes", "at least one scope is required (%v)", auth.Scopes())
	}
	for i, s := range req.Scopes {
		if !auth.ValidScope(s) {
			v.Add("scopes", "scopes[%d]: %q is not a scope (%v)", i, s, auth.Scopes())
		}
	}
	if req.RateLimit < 0 || req.RateLimit > maxRateLimit {
		v.Add("rate_limit", "must be 0-%d requests per second", maxRateLimit)
	}
	if req.Burst < 0 || req.Burst > maxRateLimit {
		v.Add("burst", "must be 0-%d", maxRateLimit)
	}
	if len(req.Name) > 200 {
		v.Add("name", "must be at most 200 bytes")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	tenant, err := tenantFor(p, req.Tenant)
	if err != nil {
		return nil, err
	}
	forTenant(ctx, tenant)
	rate, burst := req.RateLimit, req.Burst
	if rate == 0 {
		rate = DefaultRateLimit
	}
	if burst == 0 {
		burst = int32(min(2*rate, maxRateLimit))
	}
	scopes := slices.Clone(req.Scopes)
	slices.Sort(scopes)
	key, secret, err := a.Keys.Create(ctx, &accessv1.ApiKey{KeyId: req.KeyId, Tenant: tenant, Name: req.Name,
		Scopes: slices.Compact(scopes), RateLimit: rate, Burst: max(burst, 1), CreatedBy: p.Actor()})
	if err != nil {
		return nil, err
	}
	return &accessv1.CreateApiKeyResponse{ApiKey: key, Key: secret}, nil
}

// ListApiKeys implements accessv1.AccessServiceServer.
func (a *API) ListApiKeys(ctx context.Context, req *accessv1.ListApiKeysRequest) (*accessv1.ListApiKeysResponse, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	tenant, err := tenantFor(p, req.Tenant)
	if err != nil {
		return nil, err
	}
	return &accessv1.ListApiKeysResponse{ApiKeys: a.Keys.List(tenant, req.IncludeRevoked)}, nil
}

// RevokeApiKey implements accessv1.AccessServiceServer.
func (a *API) RevokeApiKey(ctx context.Context, req *accessv1.RevokeApiKeyRequest) (*accessv1.RevokeApiKeyResponse, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if req.KeyId == "" {
		return nil, fault.InvalidField("key_id", "is required")
	}
	// Another tenant's key is "not found": its existence is not revealed.
	if k, ok := a.Keys.Get(req.KeyId); !ok || (p.Tenant != tenancy.All && k.Tenant != p.Tenant) {
		return nil, status.Errorf(codes.NotFound, "key %q not found", req.KeyId)
	}
	if k, _ := a.Keys.Get(req.KeyId); k != nil {
		forTenant(ctx, k.Tenant)
	}
	key, err := a.Keys.Revoke(ctx, req.KeyId, p.Actor())
	if err != nil {
		return nil, err
	}
	return &accessv1.RevokeApiKeyResponse{ApiKey: key}, nil
}

// Authenticate implements accessv1.AccessServiceServer.
func (a *API) Authenticate(_ context.Context, req *accessv1.AuthenticateRequest) (*accessv1.AuthenticateResponse, error) {
	key, err := a.Keys.Authenticate(req.Key)
	if err != nil {
		return nil, err
	}
	return &accessv1.AuthenticateResponse{ApiKey: key}, nil
}

// forTenant files the call's audit entry under the tenant whose keys it
// changes: the operator's changes to a tenant's keys are in that tenant's
// audit log, not under "*" where no tenant can read them.
func forTenant(ctx context.Context, tenant string) {
	if rec := audit.FromContext(ctx); rec != nil {
		rec.Tenant = tenant
	}
}
