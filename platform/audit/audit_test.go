package audit_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	auditv1 "rapport.dev/gen/go/rapport/audit/v1"
	"rapport.dev/platform/audit"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/tenancy"
)

// A change's audit entry is written in the change's transaction: with it
// when it commits, not at all when it fails; and each tenant lists its own.
func TestAuditIsWrittenWithTheChange(t *testing.T) {
	db := boltdb.OpenTemp(t, boltdb.Options{Buckets: [][]byte{[]byte("data")}})
	at := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	write := func(tenant, key string, fail bool) error {
		ctx := audit.WithRecord(context.Background(), &audit.Record{Time: at, Tenant: tenant, Actor: "key:" + tenant, Method: "/m/Put" + key})
		return db.Update(ctx, func(tx *bolt.Tx) error {
			if err := tx.Bucket([]byte("data")).Put([]byte(key), []byte("v")); err != nil {
				return err
			}
			if fail {
				return errors.New("refused")
			}
			return nil
		})
	}
	for i := range 5 {
		if err := write("acme", fmt.Sprint(i), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := write("acme", "bad", true); err == nil {
		t.Fatal("failing write succeeded")
	}
	if err := write("globex", "g", false); err != nil {
		t.Fatal(err)
	}
	// A write without a record (a feed follower's) is not audited.
	if err := db.Update(context.Background(), func(tx *bolt.Tx) error { return tx.Bucket([]byte("data")).Put([]byte("f"), nil) }); err != nil {
		t.Fatal(err)
	}

	srv := &audit.Server{DB: db}
	list := func(tenant, token string, size int32) *auditv1.ListAuditEventsResponse {
		t.Helper()
		resp, err := srv.ListAuditEvents(tenancy.WithTenant(context.Background(), tenant), &auditv1.ListAuditEventsRequest{PageSize: size, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	var methods []string
	for token := ""; ; {
		page := list("acme", token, 2)
		for _, e := range page.AuditEvents {
			if e.Tenant != "acme" || e.Actor != "key:acme" || !e.Time.AsTime().Equal(at) {
				t.Errorf("entry %v", e)
			}
			methods = append(methods, e.Method)
		}
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	if fmt.Sprint(methods) != "[/m/Put4 /m/Put3 /m/Put2 /m/Put1 /m/Put0]" {
		t.Errorf("acme's entries, newest first: %v", methods)
	}
	if g := list("globex", "", 0).AuditEvents; len(g) != 1 || g[0].Method != "/m/Putg" {
		t.Errorf("globex's entries: %v", g)
	}
	if _, err := srv.ListAuditEvents(tenancy.WithTenant(context.Background(), "acme"), &auditv1.ListAuditEventsRequest{PageToken: "x"}); err == nil {
		t.Error("a bad page token was accepted")
	}
}
