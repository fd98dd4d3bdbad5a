package auth_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "rapport.dev/gen/go/rapport/access/v1"
	_ "rapport.dev/gen/go/rapport/audit/v1"
	_ "rapport.dev/gen/go/rapport/care/v1"
	_ "rapport.dev/gen/go/rapport/loyalty/v1"
	_ "rapport.dev/gen/go/rapport/profile/v1"
	_ "rapport.dev/gen/go/rapport/segmentation/v1"
	"rapport.dev/platform/audit"
	"rapport.dev/platform/auth"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/tenancy"
)

// Every method of every Rapport service needs a scope, and the read/write
// split follows the method's verb.
func TestEveryMethodHasAScope(t *testing.T) {
	n := 0
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if !strings.HasPrefix(string(fd.Package()), "rapport.") || fd.Package() == "rapport.testing.v1" {
			return true
		}
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				m := "/" + string(sd.FullName()) + "/" + string(sd.Methods().Get(j).Name())
				scope, ok := auth.Required(m)
				if !ok {
					t.Errorf("%s has no scope", m)
				}
				n++
				if strings.HasSuffix(scope, ":read") == auth.IsChange(m) && scope != auth.ScopeAdmin && scope != auth.ScopeInternal {
					t.Errorf("%s: scope %s but IsChange = %v", m, scope, auth.IsChange(m))
				}
			}
		}
		return true
	})
	if n < 80 {
		t.Fatalf("found %d methods; the generated packages did not register", n)
	}
	for m, want := range map[string]string{
		"/rapport.profile.v1.ProfileService/RecordEvent":              "customers:write",
		"/rapport.profile.v1.ProfileService/GetCustomer":              "customers:read",
		"/rapport.segmentation.v1.SegmentationService/PreviewSegment": "segments:read",
		"/rapport.loyalty.v1.LoyaltyService/Redeem":                   "loyalty:write",
		"/rapport.care.v1.CareService/ListTasks":                      "care:read",
		"/rapport.access.v1.AccessService/CreateApiKey":               auth.ScopeAdmin,
		"/rapport.access.v1.AccessService/Authenticate":               auth.ScopeInternal,
		"/rapport.audit.v1.AuditService/ListAuditEvents":              auth.ScopeAdmin,
	} {
		if got, _ := auth.Required(m); got != want {
			t.Errorf("Required(%s) = %s, want %s", m, got, want)
		}
	}
	if _, ok := auth.Required("/other.Service/Get"); ok {
		t.Error("a method of an unknown service has a scope")
	}
}

func TestAllows(t *testing.T) {
	p := auth.Principal{Scopes: []string{"customers:write", "care:read"}}
	for scope, want := range map[string]bool{"customers:write": true, "customers:read": true, "care:read": true,
		"care:write": false, "loyalty:read": false, auth.ScopeAdmin: false, auth.ScopeInternal: false} {
		if p.Allows(scope) != want {
			t.Errorf("Allows(%s) = %v", scope, !want)
		}
	}
	if !(auth.Principal{Scopes: []string{auth.ScopeAdmin}}).Allows("loyalty:write") {
		t.Error("admin does not include loyalty:write")
	}
	if !(auth.Principal{Service: "care"}).Allows(auth.ScopeInternal) {
		t.Error("a service is refused an internal method")
	}
}

func TestServiceToken(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tok := auth.SignToken(secret, "segmentation", now.Add(5*time.Minute))
	if svc, err := auth.VerifyToken(secret, tok, now); err != nil || svc != "segmentation" {
		t.Fatalf("valid token: %q, %v", svc, err)
	}
	for name, c := range map[string]struct {
		secret []byte
		token  string
		at     time.Time
	}{
		"other secret":     {[]byte("another secret of thirty-two chars"), tok, now},
		"expired":          {secret, tok, now.Add(7 * time.Minute)},
		"tampered service": {secret, strings.Replace(tok, "segmentation", "loyalty", 1), now},
		"tampered expiry":  {secret, auth.SignToken(secret, "care", now.Add(time.Hour)), now},
		"no signature":     {secret, "v1.care.99999999999", now},
		"no secret":        {nil, tok, now},
	} {
		if svc, err := auth.VerifyToken(c.secret, c.token, c.at); err == nil {
			t.Errorf("%s: accepted as %q", name, svc)
		}
	}
	// Credentials renew the token before it expires, and leave a call that
	// carries a credential alone.
	fake := clock.NewFake(now)
	creds := &auth.ServiceCredentials{Secret: secret, Service: "care", Clock: fake}
	md, _ := creds.GetRequestMetadata(context.Background())
	fake.Advance(4 * time.Minute)
	md2, _ := creds.GetRequestMetadata(context.Background())
	if md[auth.MetadataKey] == md2[auth.MetadataKey] {
		t.Error("a token with a minute left was not renewed")
	}
	if _, err := auth.VerifyToken(secret, strings.TrimPrefix(md2[auth.MetadataKey], "Service "), fake.Now().Add(4*time.Minute)); err != nil {
		t.Errorf("renewed token: %v", err)
	}
	forwarded := auth.WithKey(context.Background(), "rk_a.b")
	if md, _ := creds.GetRequestMetadata(forwarded); len(md) != 0 {
		t.Errorf("a forwarded key got a service token too: %v", md)
	}
}

func TestLoadSecretAgreesUnderARace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "service.secret")
	if _, err := auth.LoadSecret(path, false); err == nil {
		t.Fatal("a missing secret was not an error without create")
	}
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Go(func() {
			s, err := auth.LoadSecret(path, true)
			if err != nil {
				t.Error(err)
			}
			got[i] = string(s)
		})
	}
	wg.Wait()
	for _, s := range got {
		if s != got[0] || len(s) < 32 {
			t.Fatalf("processes disagree on the secret: %q", got)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode %v", fi.Mode())
	}
	os.WriteFile(path, []byte("short\n"), 0o600)
	if _, err := auth.LoadSecret(path, true); err == nil {
		t.Error("a short secret was accepted")
	}
}

type keys map[string]auth.Principal

func (k keys) AuthenticateKey(_ context.Context, key string) (auth.Principal, error) {
	if p, ok := k[key]; ok {
		return p, nil
	}
	return auth.Principal{}, status.Error(codes.Unauthenticated, "unknown")
}

func TestAuthorize(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	v := &auth.Verifier{Secret: secret, Clock: clock.Real{}, CrossTenant: map[string]bool{"/rapport.profile.v1.ProfileService/FollowChanges": true},
		Keys: keys{"acme-reader": {Tenant: "acme", KeyID: "r", Scopes: []string{"customers:read"}},
			"op": {Tenant: tenancy.All, KeyID: "op", Scopes: []string{auth.ScopeAdmin}}}}
	svc := "Service " + auth.SignToken(secret, "segmentation", time.Now().Add(time.Minute))
	in := func(kv ...string) context.Context {
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs(kv...))
	}
	const (
		get    = "/rapport.profile.v1.ProfileService/GetCustomer"
		record = "/rapport.profile.v1.ProfileService/RecordEvent"
		follow = "/rapport.profile.v1.ProfileService/FollowChanges"
	)
	for _, c := range []struct {
		name   string
		ctx    context.Context
		method string
		code   codes.Code
		tenant string
	}{
		{"no credential", in("x-rapport-tenant", "acme"), get, codes.Unauthenticated, ""},
		{"unknown scheme", in("authorization", "Basic abc"), get, codes.Unauthenticated, ""},
		{"two credentials", in("authorization", "Bearer acme-reader", "authorization", svc), get, codes.Unauthenticated, ""},
		{"key", in("authorization", "Bearer acme-reader"), get, codes.OK, "acme"},
		{"key, own tenant named", in("authorization", "bearer acme-reader", "x-rapport-tenant", "acme"), get, codes.OK, "acme"},
		{"key, other tenant named", in("authorization", "Bearer acme-reader", "x-rapport-tenant", "globex"), get, codes.PermissionDenied, ""},
		{"key, wildcard", in("authorization", "Bearer acme-reader", "x-rapport-tenant", "*"), follow, codes.PermissionDenied, ""},
		{"key lacking the scope", in("authorization", "Bearer acme-reader"), record, codes.PermissionDenied, ""},
		{"operator on data", in("authorization", "Bearer op"), get, codes.PermissionDenied, ""},
		{"operator on keys", in("authorization", "Bearer op"), "/rapport.access.v1.AccessService/ListApiKeys", codes.OK, tenancy.All},
		{"key on an internal method", in("authorization", "Bearer op"), "/rapport.access.v1.AccessService/Authenticate", codes.PermissionDenied, ""},
		{"service", in("authorization", svc, "x-rapport-tenant", "globex"), record, codes.OK, "globex"},
		{"service, no tenant", in("authorization", svc), record, codes.InvalidArgument, ""},
		{"service, cross-tenant", in("authorization", svc, "x-rapport-tenant", "*"), follow, codes.OK, tenancy.All},
		{"service, wildcard elsewhere", in("authorization", svc, "x-rapport-tenant", "*"), record, codes.InvalidArgument, ""},
		{"health", in(), "/grpc.health.v1.Health/Check", codes.OK, ""},
	} {
		ctx, err := v.Authorize(c.ctx, c.method)
		if status.Code(err) != c.code {
			t.Errorf("%s: %v, want %v", c.name, err, c.code)
			continue
		}
		if err != nil || c.tenant == "" {
			continue
		}
		if got, _ := tenancy.FromContext(ctx); got != c.tenant {
			t.Errorf("%s: tenant %q, want %q", c.name, got, c.tenant)
		}
		rec := audit.FromContext(ctx)
		if (rec != nil) != auth.IsChange(c.method) {
			t.Errorf("%s: audit record %v for %s", c.name, rec, c.method)
		}
		if rec != nil && (rec.Tenant != c.tenant || rec.Actor == "" || rec.Method != c.method) {
			t.Errorf("%s: audit record %+v", c.name, rec)
		}
	}
}
