package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	accessv1 "rapport.dev/gen/go/rapport/access/v1"
	auditv1 "rapport.dev/gen/go/rapport/audit/v1"
	carev1 "rapport.dev/gen/go/rapport/care/v1"
	loyaltyv1 "rapport.dev/gen/go/rapport/loyalty/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	"rapport.dev/platform/auth"
	"rapport.dev/platform/grpcclient"
	"rapport.dev/platform/tenancy"
)

// services are every gRPC service of the suite, by the component serving it.
var services = []struct {
	component string
	desc      protoreflect.ServiceDescriptor
}{
	{"profile", profilev1.File_rapport_profile_v1_profile_proto.Services().Get(0)},
	{"segmentation", segmentationv1.File_rapport_segmentation_v1_segmentation_proto.Services().Get(0)},
	{"loyalty", loyaltyv1.File_rapport_loyalty_v1_loyalty_proto.Services().Get(0)},
	{"care", carev1.File_rapport_care_v1_care_proto.Services().Get(0)},
	{"access", accessv1.File_rapport_access_v1_access_proto.Services().Get(0)},
	{"profile", auditv1.File_rapport_audit_v1_audit_proto.Services().Get(0)},
	{"care", auditv1.File_rapport_audit_v1_audit_proto.Services().Get(0)},
}

// call invokes a method with an empty request, unary or streaming, and
// returns the status the server answered with.
func call(ctx context.Context, cc *grpc.ClientConn, m protoreflect.MethodDescriptor) codes.Code {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	name := fmt.Sprintf("/%s/%s", m.Parent().FullName(), m.Name())
	in, out := dynamicpb.NewMessage(m.Input()), dynamicpb.NewMessage(m.Output())
	if !m.IsStreamingClient() && !m.IsStreamingServer() {
		return status.Code(cc.Invoke(ctx, name, in, out))
	}
	cs, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: m.IsStreamingClient(), ServerStreams: m.IsStreamingServer()}, name)
	if err != nil {
		return status.Code(err)
	}
	if !m.IsStreamingClient() {
		if err := cs.SendMsg(in); err != nil {
			return status.Code(err)
		}
	}
	cs.CloseSend()
	return status.Code(cs.RecvMsg(out))
}

// TestSecurity checks the suite's authentication and authorization on the
// real binary, over gRPC and REST: every RPC refuses a call without a key or
// with a key lacking the scope; a key acts for its own tenant only,
// whatever tenant it names; a revoked key stops at once; a key over its
// rate limit is refused; keys are stored hashed; changes are audited.
func TestSecurity(t *testing.T) {
	dir := t.TempDir()
	p := start(t, "--target=all", "--data-dir", dir, "--profile-addr", "127.0.0.1:0", "--segmentation-addr", "127.0.0.1:0",
		"--loyalty-addr", "127.0.0.1:0", "--care-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	bg := context.Background()
	conns := map[string]*grpc.ClientConn{}
	for _, c := range []string{"profile", "segmentation", "loyalty", "care", "access"} {
		cc, err := grpcclient.Dial(p.grpcAddr(c), grpcclient.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		conns[c] = cc
	}
	operator, err := operatorKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	newKey := func(tenant string, rate float64, scopes ...string) (id, key string) {
		t.Helper()
		key, err := createKey(bg, p.grpcAddr("access"), operator, &accessv1.CreateApiKeyRequest{Tenant: tenant, Scopes: scopes, RateLimit: rate})
		if err != nil {
			t.Fatal(err)
		}
		id, _, _ = strings.Cut(strings.TrimPrefix(key, "rk_"), ".")
		return id, key
	}
	acme, globex := p.rest("acme"), p.rest("globex")

	t.Run("no key: Unauthenticated on every RPC", func(t *testing.T) {
		for _, s := range services {
			for i := range s.desc.Methods().Len() {
				m := s.desc.Methods().Get(i)
				// Even a tenant header alone is no credential.
				ctx := metadata.AppendToOutgoingContext(bg, tenancy.MetadataKey, "acme")
				if code := call(ctx, conns[s.component], m); code != codes.Unauthenticated {
					t.Errorf("%s/%s without a key: %v, want Unauthenticated", s.desc.Name(), m.Name(), code)
				}
				bad := metadata.AppendToOutgoingContext(bg, auth.MetadataKey, "Bearer rk_nope.secret")
				if code := call(bad, conns[s.component], m); code != codes.Unauthenticated {
					t.Errorf("%s/%s with an unknown key: %v, want Unauthenticated", s.desc.Name(), m.Name(), code)
				}
				// A service token signed with another secret is no credential either.
				forged := auth.SignToken([]byte("a secret that is not the suite's secret"), "profile", time.Now().Add(time.Minute))
				svc := metadata.AppendToOutgoingContext(bg, auth.MetadataKey, "Service "+forged, tenancy.MetadataKey, "acme")
				if code := call(svc, conns[s.component], m); code != codes.Unauthenticated {
					t.Errorf("%s/%s with a forged service token: %v, want Unauthenticated", s.desc.Name(), m.Name(), code)
				}
			}
		}
	})

	routes := openAPIRoutes(t, p.urls["gateway"])
	if len(routes) < 60 {
		t.Fatalf("the OpenAPI document lists %d routes; want every service's", len(routes))
	}

	t.Run("no key: 401 on every REST route", func(t *testing.T) {
		anon := rest{t: t, base: p.urls["gateway"], tenant: "acme"}
		for _, r := range routes {
			if code, out := anon.do(r.method, r.path, map[string]any{}); code != http.StatusUnauthorized {
				t.Errorf("%s %s without a key: %d %v, want 401", r.method, r.path, code, out)
			}
		}
		// The gateway's own routes too (the audit log is not in the OpenAPI document).
		anon.must("GET", "/v1/audit/profile", nil, http.StatusUnauthorized)
		forged := rest{t: t, base: p.urls["gateway"], key: "x"}
		req, _ := http.NewRequest("GET", forged.base+"/v1/customers", nil)
		req.Header.Set("Authorization", "Service "+auth.SignToken([]byte("a secret that is not the suite's secret"), "profile", time.Now().Add(time.Minute)))
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("a service token through the gateway: %v %v, want 401", resp.Status, err)
		}
	})

	t.Run("missing scope: PermissionDenied / 403", func(t *testing.T) {
		// Two keys of acme, each lacking what the other holds.
		_, careReader := newKey("acme", 1e6, "care:read")
		_, customerWriter := newKey("acme", 1e6, "customers:write")
		for _, s := range services {
			for i := range s.desc.Methods().Len() {
				m := s.desc.Methods().Get(i)
				method := fmt.Sprintf("/%s/%s", s.desc.FullName(), m.Name())
				scope, _ := auth.Required(method)
				key := careReader
				if scope == "care:read" {
					key = customerWriter
				}
				ctx := auth.WithKey(bg, key)
				if code := call(ctx, conns[s.component], m); code != codes.PermissionDenied {
					t.Errorf("%s (needs %s) with a key lacking it: %v, want PermissionDenied", method, scope, code)
				}
			}
		}
		reader := rest{t: t, base: p.urls["gateway"], key: careReader}
		checked := 0
		for _, r := range routes {
			if r.method == "GET" && strings.HasPrefix(r.path, "/v1/care/") {
				continue // care:read holds these
			}
			checked++
			if code, out := reader.do(r.method, r.path, map[string]any{}); code != http.StatusForbidden {
				t.Errorf("%s %s with a care:read key: %d %v, want 403", r.method, r.path, code, out)
			}
		}
		// The scope lets its own calls through.
		reader.must("GET", "/v1/care/tasks", nil, 200)
		writer := rest{t: t, base: p.urls["gateway"], key: customerWriter}
		writer.must("POST", "/v1/customers", map[string]any{"customerId": "w-1", "kind": "CUSTOMER_KIND_PERSON", "displayName": "W"}, 200)
		writer.must("GET", "/v1/customers/w-1", nil, 200) // write includes read
		t.Logf("%d REST routes refused to a key lacking their scope", checked)
	})

	t.Run("a key reaches its own tenant only", func(t *testing.T) {
		globex.must("POST", "/v1/customers", map[string]any{"customerId": "g-1", "kind": "CUSTOMER_KIND_PERSON", "displayName": "Globex customer"}, 200)
		globex.must("GET", "/v1/customers/g-1", nil, 200)
		// acme's key naming globex is refused; without the header it acts for acme, where g-1 does not exist.
		acme.tenant = "globex"
		acme.must("GET", "/v1/customers/g-1", nil, 403)
		acme.tenant = ""
		acme.must("GET", "/v1/customers/g-1", nil, 404)
		acme.tenant = "acme"
		// Over gRPC, with the tenant metadata naming globex or every tenant.
		client := profilev1.NewProfileServiceClient(conns["profile"])
		for _, header := range []string{"globex", tenancy.All} {
			ctx := metadata.AppendToOutgoingContext(auth.WithKey(bg, p.key("acme")), tenancy.MetadataKey, header)
			if _, err := client.GetCustomer(ctx, &profilev1.GetCustomerRequest{CustomerId: "g-1"}); status.Code(err) != codes.PermissionDenied {
				t.Errorf("acme's key with tenant %q: %v, want PermissionDenied", header, err)
			}
			stream, err := client.FollowChanges(ctx, &profilev1.FollowChangesRequest{})
			if err == nil {
				_, err = stream.Recv()
			}
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("acme's key following the feed as %q: %v, want PermissionDenied", header, err)
			}
		}
		// The feed of acme's key holds none of globex's changes.
		if raw := acme.must("GET", "/v1/changes?wait=false", nil, 200)["_raw"]; strings.Contains(fmt.Sprint(raw), "g-1") {
			t.Errorf("acme's feed shows globex's customer: %v", raw)
		}
		// The operator key manages keys but reads no tenant's data.
		op := rest{t: t, base: p.urls["gateway"], key: operator, tenant: "globex"}
		op.must("GET", "/v1/customers/g-1", nil, 403)
		// A tenant's admin manages its own keys only.
		acme.must("POST", "/v1/keys", map[string]any{"tenant": "globex", "scopes": []string{"admin"}}, 403)
		op.tenant = ""
		globexKeys := op.must("GET", "/v1/keys?tenant=globex", nil, 200)["apiKeys"].([]any)
		globexID := globexKeys[0].(map[string]any)["keyId"].(string)
		acme.must("POST", "/v1/keys/"+globexID+":revoke", map[string]any{}, 404)
		globex.must("GET", "/v1/customers/g-1", nil, 200)
	})

	t.Run("a revoked key stops at once", func(t *testing.T) {
		id, key := newKey("acme", 1e6, "customers:read")
		r := rest{t: t, base: p.urls["gateway"], key: key}
		r.must("GET", "/v1/customers", nil, 200)
		acme.must("POST", "/v1/keys/"+id+":revoke", map[string]any{}, 200)
		r.must("GET", "/v1/customers", nil, 401)
		_, err := profilev1.NewProfileServiceClient(conns["profile"]).ListCustomers(auth.WithKey(bg, key), &profilev1.ListCustomersRequest{})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("revoked key over gRPC: %v, want Unauthenticated", err)
		}
	})

	t.Run("rate limit per key", func(t *testing.T) {
		// A burst of 1 (the default, twice the rate, at least one) and a
		// rate that refills it every 1,000 seconds.
		id, key := newKey("acme", 0.001, "customers:read")
		r := rest{t: t, base: p.urls["gateway"], key: key}
		r.must("GET", "/v1/customers", nil, 200)
		out := r.must("GET", "/v1/customers", nil, 429)
		if !strings.Contains(fmt.Sprint(out), id) {
			t.Errorf("429 does not name the key: %v", out)
		}
		// Other keys are not affected.
		acme.must("GET", "/v1/customers", nil, 200)
	})

	t.Run("audit log", func(t *testing.T) {
		acme.must("POST", "/v1/customers", map[string]any{"customerId": "a-9", "kind": "CUSTOMER_KIND_PERSON", "displayName": "Audited"}, 200)
		id, _, _ := strings.Cut(strings.TrimPrefix(p.key("acme"), "rk_"), ".")
		events := acme.must("GET", "/v1/audit/profile", nil, 200)["auditEvents"].([]any)
		last := events[0].(map[string]any)
		if last["actor"] != "key:"+id || last["tenant"] != "acme" || !strings.HasSuffix(last["method"].(string), "/CreateCustomer") || last["time"] == nil {
			t.Errorf("newest audit event %v; want acme's CreateCustomer by key:%s", last, id)
		}
		for _, e := range events {
			if e.(map[string]any)["tenant"] != "acme" {
				t.Errorf("acme's audit log shows %v", e)
			}
		}
		// Key management is audited by the access service: acme's revocation above.
		keyEvents := acme.must("GET", "/v1/audit/access", nil, 200)["auditEvents"].([]any)
		// and, filed under acme, the keys the operator made for it.
		revoked, byOperator := false, false
		for _, e := range keyEvents {
			e := e.(map[string]any)
			revoked = revoked || (e["actor"] == "key:"+id && strings.HasSuffix(e["method"].(string), "/RevokeApiKey"))
			byOperator = byOperator || (e["actor"] == "key:operator" && strings.HasSuffix(e["method"].(string), "/CreateApiKey"))
			if e["tenant"] != "acme" {
				t.Errorf("acme's access audit log shows %v", e)
			}
		}
		if !revoked || !byOperator {
			t.Errorf("access audit log of acme: %v; want acme's revocation and the operator's key creations", keyEvents)
		}
		// The log is an admin's: a key without the scope cannot read it.
		_, reader := newKey("acme", 1e6, "customers:read")
		(rest{t: t, base: p.urls["gateway"], key: reader}).must("GET", "/v1/audit/profile", nil, 403)
	})

	t.Run("keys are stored hashed", func(t *testing.T) {
		p.stop()
		var secrets []string
		for _, k := range append([]string{operator}, p.keys["acme"], p.keys["globex"]) {
			_, secret, _ := strings.Cut(k, ".")
			secrets = append(secrets, secret)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.db"))
		if len(files) < 5 {
			t.Fatalf("data files %v", files)
		}
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range secrets {
				if strings.Contains(string(raw), s) {
					t.Errorf("%s holds a key's secret in clear", f)
				}
			}
		}
		if fi, err := os.Stat(filepath.Join(dir, "operator.key")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("operator.key: %v, %v; want mode 0600", fi.Mode(), err)
		}
	})
}

type route struct{ method, path string }

// openAPIRoutes lists the gateway's routes from its OpenAPI document, with
// every path parameter filled in.
func openAPIRoutes(t *testing.T, base string) []route {
	t.Helper()
	resp, err := http.Get(base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`\{[^}]+\}`)
	var out []route
	for path, ops := range doc.Paths {
		if strings.HasPrefix(path, "/v1/testing/") {
			continue
		}
		for method := range ops {
			out = append(out, route{strings.ToUpper(method), param.ReplaceAllString(path, "x")})
		}
	}
	return out
}
