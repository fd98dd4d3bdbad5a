package access

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	accessv1 "rapport.dev/gen/go/rapport/access/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
)

func TestKeysLifecycle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.db")
	db, err := boltdb.Open(path, Options())
	if err != nil {
		t.Fatal(err)
	}
	fake := clock.NewFake(time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC))
	keys, err := OpenKeys(db, fake)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	desc := &accessv1.ApiKey{KeyId: "pos-1", Tenant: "acme", Scopes: []string{"customers:write"}, RateLimit: 2, Burst: 3}
	k, secret, err := keys.Create(ctx, desc)
	if err != nil || !strings.HasPrefix(secret, "rk_pos-1.") {
		t.Fatalf("create: %v %q %v", k, secret, err)
	}
	// A retry returns the key without its secret; other content conflicts.
	if again, s, err := keys.Create(ctx, &accessv1.ApiKey{KeyId: "pos-1", Tenant: "acme", Scopes: []string{"customers:write"}, RateLimit: 2, Burst: 3}); err != nil || s != "" || again.KeyId != "pos-1" {
		t.Fatalf("retry: %v %q %v", again, s, err)
	}
	if _, _, err := keys.Create(ctx, &accessv1.ApiKey{KeyId: "pos-1", Tenant: "globex", Scopes: []string{"admin"}, RateLimit: 2, Burst: 3}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("conflicting create: %v", err)
	}

	authn := func(key string) codes.Code {
		_, err := keys.Authenticate(key)
		return status.Code(err)
	}
	for name, key := range map[string]string{"wrong secret": "rk_pos-1.AAAA", "unknown id": "rk_nope." + strings.Split(secret, ".")[1],
		"no prefix": strings.TrimPrefix(secret, "rk_"), "empty": ""} {
		if c := authn(key); c != codes.Unauthenticated {
			t.Errorf("%s: %v", name, c)
		}
	}
	// The burst of 3, then the rate (2/s) on the injected clock.
	for i := range 3 {
		if c := authn(secret); c != codes.OK {
			t.Fatalf("call %d of the burst: %v", i, c)
		}
	}
	if c := authn(secret); c != codes.ResourceExhausted {
		t.Fatalf("over the burst: %v", c)
	}
	fake.Advance(500 * time.Millisecond)
	if c := authn(secret); c != codes.OK {
		t.Fatalf("after one token refilled: %v", c)
	}
	if c := authn(secret); c != codes.ResourceExhausted {
		t.Fatalf("the refill was one token: %v", c)
	}

	// Revocation is immediate and survives a reopen; the file never holds the secret.
	if _, err := keys.Revoke(ctx, "pos-1", "key:admin"); err != nil {
		t.Fatal(err)
	}
	fake.Advance(time.Hour)
	if c := authn(secret); c != codes.Unauthenticated {
		t.Fatalf("revoked key: %v", c)
	}
	_, other, err := keys.Create(ctx, &accessv1.ApiKey{Tenant: "acme", Scopes: []string{"admin"}, RateLimit: 100, Burst: 100})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = boltdb.Open(path, Options())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, err = OpenKeys(db, fake)
	if err != nil {
		t.Fatal(err)
	}
	if c := authn(secret); c != codes.Unauthenticated {
		t.Errorf("revoked key after reopen: %v", c)
	}
	if c := authn(other); c != codes.OK {
		t.Errorf("live key after reopen: %v", c)
	}
	if got := keys.List("acme", false); len(got) != 1 {
		t.Errorf("live keys of acme: %v", got)
	}
	if got := keys.List("acme", true); len(got) != 2 || got[1].RevokedBy != "key:admin" {
		t.Errorf("all keys of acme: %v", got)
	}
}
