package store_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/feed"
	"rapport.dev/services/profile/domain"
	"rapport.dev/services/profile/store"
)

// TestMigrationFromSchema1 opens a file laid out as schema 1 (no
// customer_meta) with the current code and records an event for a customer
// written before the upgrade: the migration must have built its meta record.
func TestMigrationFromSchema1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "profile.db")
	v1 := [][]byte{[]byte("customers"), []byte("stats"), []byte("tenant_stats"), []byte("events"),
		[]byte("event_ids"), []byte("orders"), []byte("dup_index")}
	old, err := boltdb.Open(path, boltdb.Options{Schema: 1, Buckets: append(v1, feed.Buckets...)})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	merged := &domain.Customer{ID: "gone", Kind: domain.KindPerson, DisplayName: "x", MergedInto: "kept", CreateTime: t0, UpdateTime: t0, Revision: 2}
	kept := &domain.Customer{ID: "kept", Kind: domain.KindPerson, DisplayName: "y", CreateTime: t0, UpdateTime: t0, Revision: 1,
		Acquisition: domain.Acquisition{Channel: domain.ChannelReferral}}
	if err := old.Update(context.Background(), func(tx *bolt.Tx) error {
		for _, c := range []*domain.Customer{merged, kept} {
			raw, _ := json.Marshal(c)
			if err := tx.Bucket([]byte("customers")).Put(boltdb.Key("acme", c.ID), raw); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db := reopenMigrated(t, old, path)
	clk := clock.NewFake(t0)
	svc := domain.NewService(store.New(db, feed.NewLog(db, clk)), clk)
	ev := &domain.Event{ID: "e1", CustomerID: "kept", OccurTime: t0,
		Purchase: &domain.Purchase{OrderID: "o1", Amount: domain.Money{Minor: 100, Currency: "CNY"}}}
	if _, created, err := svc.RecordEvent(context.Background(), "acme", ev); err != nil || !created {
		t.Fatalf("record on a customer written before the upgrade: created=%v err=%v", created, err)
	}
	onMerged := &domain.Event{ID: "e2", CustomerID: "gone", OccurTime: t0,
		Purchase: &domain.Purchase{OrderID: "o2", Amount: domain.Money{Minor: 100, Currency: "CNY"}}}
	if _, _, err := svc.RecordEvent(context.Background(), "acme", onMerged); err == nil {
		t.Fatal("recording on a customer merged before the upgrade succeeded; the migrated meta lost merged_into")
	}
}

// TestMigrationFromSchema2 opens a file laid out as schema 2 (events, orders
// and stats in buckets of their own) with the current code: the timeline,
// the orders, the counters and the idempotency index must all be found in
// their new places, and new events must not reuse a sequence number.
func TestMigrationFromSchema2(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "profile.db")
	v2 := [][]byte{[]byte("customers"), []byte("customer_meta"), []byte("stats"), []byte("tenant_stats"), []byte("events"),
		[]byte("event_ids"), []byte("orders"), []byte("dup_index")}
	old, err := boltdb.Open(path, boltdb.Options{Schema: 2, Buckets: append(v2, feed.Buckets...)})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	eur := func(minor int64) domain.Money { return domain.Money{Minor: minor, Currency: "EUR"} }
	kept := &domain.Customer{ID: "kept", Kind: domain.KindPerson, DisplayName: "y", CreateTime: t0, UpdateTime: t0, Revision: 1}
	other := &domain.Customer{ID: "other", Kind: domain.KindPerson, DisplayName: "z", CreateTime: t0, UpdateTime: t0, Revision: 1}
	// Occur times straddle 1970 and one byte of the encoded time is NUL, as
	// in a key the migration must cut from its end.
	at1 := time.Unix(0, -5).UTC()
	at2 := time.Unix(0, 0x00ff).UTC()
	type v2Event struct {
		e   *domain.Event
		seq uint64
	}
	evs := []v2Event{
		{&domain.Event{ID: "e2", CustomerID: "kept", OccurTime: at2, Purchase: &domain.Purchase{OrderID: "o2", Amount: eur(300)}}, 1},
		{&domain.Event{ID: "e1", CustomerID: "kept", OccurTime: at1, Purchase: &domain.Purchase{OrderID: "o1", Amount: eur(100)}}, 2},
		{&domain.Event{ID: "e9", CustomerID: "other", OccurTime: at2, Purchase: &domain.Purchase{OrderID: "o9", Amount: eur(900)}}, 3},
	}
	if err := old.Update(ctx, func(tx *bolt.Tx) error {
		b := func(name string) *bolt.Bucket { return tx.Bucket([]byte(name)) }
		stats := map[string]*domain.Stats{"kept": {}, "other": {}}
		for _, ev := range evs {
			e := ev.e
			if err := e.Validate(t0); err != nil {
				return err
			}
			raw, _ := json.Marshal(e)
			at := make([]byte, 8)
			binary.BigEndian.PutUint64(at, uint64(e.OccurTime.UnixNano())^(1<<63))
			key := boltdb.Key("acme", e.CustomerID, at, boltdb.U64(ev.seq))
			if err := b("events").Put(key, raw); err != nil {
				return err
			}
			if err := b("event_ids").Put(boltdb.Key("acme", e.ID), key); err != nil {
				return err
			}
			o, _ := json.Marshal(&domain.Order{OrderID: e.Purchase.OrderID, EventID: e.ID, Amount: e.Purchase.Amount})
			if err := b("orders").Put(boltdb.Key("acme", e.CustomerID, e.Purchase.OrderID), o); err != nil {
				return err
			}
			stats[e.CustomerID].Apply(e)
		}
		if err := b("events").SetSequence(3); err != nil {
			return err
		}
		ts := &domain.TenantStats{}
		for _, c := range []*domain.Customer{kept, other} {
			raw, _ := json.Marshal(c)
			if err := b("customers").Put(boltdb.Key("acme", c.ID), raw); err != nil {
				return err
			}
			if err := b("customer_meta").Put(boltdb.Key("acme", c.ID), []byte{0}); err != nil {
				return err
			}
			raw, _ = json.Marshal(stats[c.ID])
			if err := b("stats").Put(boltdb.Key("acme", c.ID), raw); err != nil {
				return err
			}
			ts.Add(c, stats[c.ID], 1)
		}
		raw, _ := json.Marshal(ts)
		return b("tenant_stats").Put([]byte("acme"), raw)
	}); err != nil {
		t.Fatal(err)
	}
	db := reopenMigrated(t, old, path)
	if err := db.View(func(tx *bolt.Tx) error {
		for _, name := range []string{"events", "orders", "stats"} {
			if tx.Bucket([]byte(name)) != nil {
				t.Errorf("bucket %s is still there after the migration", name)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(t0)
	st := store.New(db, feed.NewLog(db, clk))
	svc := domain.NewService(st, clk)
	ids := func(customer string) []string {
		t.Helper()
		var out []string
		token := ""
		for {
			page, next, err := svc.ListEvents(ctx, "acme", customer, domain.EventUnspecified, domain.Page{Size: 1, Token: token})
			if err != nil {
				t.Fatalf("ListEvents(%s): %v", customer, err)
			}
			for _, e := range page {
				out = append(out, e.ID)
			}
			if next == "" {
				return out
			}
			token = next
		}
	}
	if got := ids("kept"); !slices.Equal(got, []string{"e1", "e2"}) {
		t.Fatalf("timeline after migration: %v, want [e1 e2] (time order)", got)
	}
	if e, err := svc.GetEvent(ctx, "acme", "e9"); err != nil || e.CustomerID != "other" {
		t.Fatalf("GetEvent(e9) after migration: %+v, %v", e, err)
	}
	if s, err := st.Stats(ctx, "acme", "kept"); err != nil || s.Purchases != 2 {
		t.Fatalf("stats of kept after migration: %+v, %v", s, err)
	}
	if ts, err := st.TenantStats(ctx, "acme"); err != nil || ts.Customers != 2 || ts.Purchases != 3 {
		t.Fatalf("tenant stats after migration: %+v, %v", ts, err)
	}
	// A retry of a migrated event is acknowledged; its order id is taken.
	retry := &domain.Event{ID: "e1", CustomerID: "kept", OccurTime: at1, Purchase: &domain.Purchase{OrderID: "o1", Amount: eur(100)}}
	if _, created, err := svc.RecordEvent(ctx, "acme", retry); err != nil || created {
		t.Fatalf("retry of a migrated event: created=%v err=%v", created, err)
	}
	reuse := &domain.Event{ID: "e3", CustomerID: "kept", OccurTime: at1, Purchase: &domain.Purchase{OrderID: "o2", Amount: eur(1)}}
	if _, _, err := svc.RecordEvent(ctx, "acme", reuse); !errors.Is(err, fault.ErrAlreadyExists) {
		t.Fatalf("purchase reusing a migrated order id: %v, want ErrAlreadyExists", err)
	}
	// Refunds find the migrated order and its amount.
	refund := &domain.Event{ID: "r1", CustomerID: "kept", OccurTime: at2, Refund: &domain.Refund{OrderID: "o2", Amount: eur(300)}}
	if _, created, err := svc.RecordEvent(ctx, "acme", refund); err != nil || !created {
		t.Fatalf("refund of a migrated order: created=%v err=%v", created, err)
	}
	// Same customer and time as e1: with a restarted sequence it would take
	// e1's key.
	same := &domain.Event{ID: "e4", CustomerID: "kept", OccurTime: at1, Purchase: &domain.Purchase{OrderID: "o4", Amount: eur(5)}}
	if _, created, err := svc.RecordEvent(ctx, "acme", same); err != nil || !created {
		t.Fatalf("record after migration: created=%v err=%v", created, err)
	}
	if got := ids("kept"); !slices.Equal(got, []string{"e1", "e4", "e2", "r1"}) {
		t.Fatalf("timeline after recording: %v, want [e1 e4 e2 r1]", got)
	}
	// A merge moves the migrated timeline, orders and counters.
	if _, moved, err := svc.MergeCustomers(ctx, "acme", "kept", "other"); err != nil || moved != 1 {
		t.Fatalf("merge after migration: moved %d, %v", moved, err)
	}
	if s, err := st.Stats(ctx, "acme", "kept"); err != nil || s.Purchases != 4 || s.Refunds != 1 {
		t.Fatalf("stats of kept after the merge: %+v, %v", s, err)
	}
	refund9 := &domain.Event{ID: "r9", CustomerID: "kept", OccurTime: at2, Refund: &domain.Refund{OrderID: "o9", Amount: eur(900)}}
	if _, created, err := svc.RecordEvent(ctx, "acme", refund9); err != nil || !created {
		t.Fatalf("refund of a migrated order moved by the merge: created=%v err=%v", created, err)
	}
}

// TestMigrationFromSchema4 opens a file laid out as schema 4 (timeline
// entries, orders and counters as JSON in customer_data) with the current
// code: every record must read back as it was written, with the retry,
// refund and order-id rules working on the migrated records, and nothing
// of customer_data may still be JSON.
func TestMigrationFromSchema4(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "profile.db")
	v4 := [][]byte{[]byte("customers"), []byte("customer_meta"), []byte("customer_data"), []byte("tenant_stats"),
		[]byte("event_ids"), []byte("dup_index"), []byte("feed_scrubs")}
	old, err := boltdb.Open(path, boltdb.Options{Schema: 4, Buckets: append(v4, feed.Buckets...)})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	eur := func(minor int64) domain.Money { return domain.Money{Minor: minor, Currency: "EUR"} }
	kept := &domain.Customer{ID: "kept", Kind: domain.KindPerson, DisplayName: "y", CreateTime: t0, UpdateTime: t0, Revision: 1}
	csat, nps := int32(4), int32(9)
	evs := []*domain.Event{
		{ID: "e1", CustomerID: "kept", OccurTime: time.Unix(0, -5).UTC(), Source: "pos",
			Purchase: &domain.Purchase{OrderID: "o1", Amount: eur(300), Discount: eur(20), StoreID: "s1",
				Items: []domain.LineItem{{SKU: "TEA-01", Name: "tea", Category: "tea", Quantity: 2, UnitPrice: eur(150)}}}},
		{ID: "e2", CustomerID: "kept", OccurTime: t0.Add(-time.Hour), Refund: &domain.Refund{OrderID: "o1", Amount: eur(100), Reason: "damaged"}},
		{ID: "e3", CustomerID: "kept", OccurTime: t0.Add(-time.Minute), Survey: &domain.Survey{SurveyID: "post", CSAT: &csat, NPS: &nps}},
	}
	stats := &domain.Stats{}
	if err := old.Update(ctx, func(tx *bolt.Tx) error {
		b := func(name string) *bolt.Bucket { return tx.Bucket([]byte(name)) }
		for i, e := range evs {
			if err := e.Validate(t0); err != nil {
				return err
			}
			e.RecordTime = t0.Add(time.Duration(i) * time.Second)
			raw, _ := json.Marshal(e)
			at := make([]byte, 8)
			binary.BigEndian.PutUint64(at, uint64(e.OccurTime.UnixNano())^(1<<63))
			key := boltdb.Key("acme", e.CustomerID, append(append([]byte{'e'}, at...), boltdb.U64(uint64(i+1))...))
			if err := b("customer_data").Put(key, raw); err != nil {
				return err
			}
			if err := b("event_ids").Put(boltdb.Key("acme", e.ID), key); err != nil {
				return err
			}
			stats.Apply(e)
		}
		if err := b("customer_data").SetSequence(uint64(len(evs))); err != nil {
			return err
		}
		o, _ := json.Marshal(&domain.Order{OrderID: "o1", EventID: "e1", Amount: eur(300), Refunded: 100})
		if err := b("customer_data").Put(append(boltdb.Prefix("acme", "kept"), append([]byte{'o'}, "o1"...)...), o); err != nil {
			return err
		}
		raw, _ := json.Marshal(stats)
		if err := b("customer_data").Put(append(boltdb.Prefix("acme", "kept"), 's'), raw); err != nil {
			return err
		}
		raw, _ = json.Marshal(kept)
		if err := b("customers").Put(boltdb.Key("acme", "kept"), raw); err != nil {
			return err
		}
		if err := b("customer_meta").Put(boltdb.Key("acme", "kept"), []byte{0}); err != nil {
			return err
		}
		ts := &domain.TenantStats{}
		ts.Add(kept, stats, 1)
		raw, _ = json.Marshal(ts)
		return b("tenant_stats").Put([]byte("acme"), raw)
	}); err != nil {
		t.Fatal(err)
	}
	// Five records in chunks of two: the walk resumes after each chunk.
	defer store.SetMigrateChunk(2)()
	db := reopenMigrated(t, old, path)
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("customer_data")).ForEach(func(k, v []byte) error {
			if json.Valid(v) {
				t.Errorf("customer_data %q is still JSON: %s", k, v)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(t0)
	st := store.New(db, feed.NewLog(db, clk))
	svc := domain.NewService(st, clk)
	for _, want := range evs {
		got, err := svc.GetEvent(ctx, "acme", want.ID)
		if err != nil {
			t.Fatalf("GetEvent(%s) after migration: %v", want.ID, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("event %s after migration (-want +got):\n%s", want.ID, diff)
		}
	}
	page, _, err := svc.ListEvents(ctx, "acme", "kept", domain.EventUnspecified, domain.Page{Size: 10})
	if err != nil || len(page) != 3 || page[0].ID != "e1" || page[2].ID != "e3" {
		t.Fatalf("timeline after migration: %v, %v", page, err)
	}
	if s, err := st.Stats(ctx, "acme", "kept"); err != nil || !cmp.Equal(s, stats) {
		t.Fatalf("stats after migration: %+v, %v; want %+v", s, err, stats)
	}
	// A retry of a migrated event is acknowledged; its order id is taken.
	retry := *evs[0]
	retry.RecordTime = time.Time{}
	if _, created, err := svc.RecordEvent(ctx, "acme", &retry); err != nil || created {
		t.Fatalf("retry of a migrated event: created=%v err=%v", created, err)
	}
	reuse := &domain.Event{ID: "e4", CustomerID: "kept", OccurTime: t0, Purchase: &domain.Purchase{OrderID: "o1", Amount: eur(1)}}
	if _, _, err := svc.RecordEvent(ctx, "acme", reuse); !errors.Is(err, fault.ErrAlreadyExists) {
		t.Fatalf("purchase reusing a migrated order id: %v, want ErrAlreadyExists", err)
	}
	// The migrated order kept what was refunded: 200 of 300 is left.
	over := &domain.Event{ID: "r2", CustomerID: "kept", OccurTime: t0, Refund: &domain.Refund{OrderID: "o1", Amount: eur(201)}}
	if _, _, err := svc.RecordEvent(ctx, "acme", over); !errors.Is(err, fault.ErrInvalid) {
		t.Fatalf("refund above what is left of a migrated order: %v, want ErrInvalid", err)
	}
	rest := &domain.Event{ID: "r3", CustomerID: "kept", OccurTime: t0, Refund: &domain.Refund{OrderID: "o1", Amount: eur(200)}}
	if _, created, err := svc.RecordEvent(ctx, "acme", rest); err != nil || !created {
		t.Fatalf("refund of the rest of a migrated order: created=%v err=%v", created, err)
	}
	if s, err := st.Stats(ctx, "acme", "kept"); err != nil || s.Refunds != 2 || s.Totals["EUR"].Refunded != 300 {
		t.Fatalf("stats after a refund on migrated counters: %+v, %v", s, err)
	}
	if ts, err := st.TenantStats(ctx, "acme"); err != nil || ts.Customers != 1 || ts.Purchases != 1 {
		t.Fatalf("tenant stats after migration: %+v, %v", ts, err)
	}
}

// TestMigrationFromSchema5 opens a file laid out as schema 5 (customers as
// JSON) with the current code: every customer, more than a chunk of them,
// must read back as it was written, in the binary encoding, and the
// migrated records must serve the reads and writes that decode them.
func TestMigrationFromSchema5(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "profile.db")
	v5 := [][]byte{[]byte("customers"), []byte("customer_meta"), []byte("customer_data"), []byte("tenant_stats"),
		[]byte("event_ids"), []byte("dup_index"), []byte("feed_scrubs")}
	old, err := boltdb.Open(path, boltdb.Options{Schema: 5, Buckets: append(v5, feed.Buckets...)})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	customers := map[string][]*domain.Customer{
		"acme": {
			{ID: "rich", Kind: domain.KindPerson, DisplayName: "王小明 🍵",
				Person: &domain.Person{GivenName: "小明", FamilyName: "王", Gender: 2,
					Birthday:      domain.Date{Year: 1988, Month: 2, Day: 29},
					LunarBirthday: domain.LunarDate{Month: 1, Day: 13, LeapMonth: true},
					Occupation:    "tea merchant", IncomeBand: 4, Education: 6},
				Phone: "+86 138 1234 5678", Email: "xm@example.com",
				Region:     domain.Region{Country: "CN", Province: "浙江", City: "杭州"},
				Tags:       []string{"vip", "茶"},
				Attributes: map[string]string{"tier": "gold", "a.b": "", "z": "末"},
				Traits:     []string{"early adopter"}, TimeZone: "Asia/Shanghai", Language: "zh-CN",
				Consents:     []domain.Consent{{Channel: 1, Granted: true, UpdateTime: at(-time.Hour)}, {Channel: 3}},
				DoNotContact: true,
				Acquisition:  domain.Acquisition{Channel: domain.ChannelReferral, Campaign: "spring", ReferredBy: "org", AcquireTime: at(-48 * time.Hour)},
				Stage:        3, Intent: 1, Owner: "am-7", CreateTime: at(-72 * time.Hour), UpdateTime: at(-time.Minute), Revision: 4},
			{ID: "org", Kind: domain.KindOrganization, DisplayName: "ACME 有限公司",
				Organization: &domain.Organization{LegalName: "ACME 有限公司", Industry: "retail", EmployeeCount: 40, RelationshipType: 2,
					Contacts: []domain.Contact{
						{ID: "boss", Name: "李总", Title: "CEO", Role: domain.RoleDecisionMaker, Phone: "+86 21 5555 0000", Counterpart: "am-1", Note: "tea"},
						{ID: "buyer", Name: "Émile", Role: domain.RolePurchaser, Email: "emile@acme.example"},
					}},
				CreateTime: t0, UpdateTime: t0, Revision: 1},
			{ID: "bare", Kind: domain.KindPerson, DisplayName: "x", CreateTime: t0, UpdateTime: t0, Revision: 1},
			{ID: "empty-person", Kind: domain.KindPerson, DisplayName: "y", Person: &domain.Person{}, CreateTime: t0, UpdateTime: t0, Revision: 1},
			{ID: "gone", Kind: domain.KindPerson, DisplayName: "z", MergedInto: "bare", CreateTime: t0, UpdateTime: at(time.Hour), Revision: 2},
			{ID: "erased", Kind: domain.KindPerson, DisplayName: domain.Erased, Person: &domain.Person{IncomeBand: 2},
				Region: domain.Region{Country: "FR"}, Erased: true, CreateTime: t0, UpdateTime: at(time.Hour), Revision: 2},
		},
		"other": {{ID: "rich", Kind: domain.KindPerson, DisplayName: "another tenant's", Email: "xm@example.com", CreateTime: t0, UpdateTime: t0, Revision: 1}},
	}
	if err := old.Update(ctx, func(tx *bolt.Tx) error {
		b := func(name string) *bolt.Bucket { return tx.Bucket([]byte(name)) }
		for tenant, cs := range customers {
			ts := &domain.TenantStats{}
			for _, c := range cs {
				if c.MergedInto == "" && !c.Erased {
					if err := c.Validate(); err != nil {
						return fmt.Errorf("fixture %s: %w", c.ID, err)
					}
				}
				raw, err := json.Marshal(c)
				if err != nil {
					return err
				}
				key := boltdb.Key(tenant, c.ID)
				if err := b("customers").Put(key, raw); err != nil {
					return err
				}
				var flags byte
				if c.Referred() {
					flags = 1
				}
				if err := b("customer_meta").Put(key, append([]byte{flags}, c.MergedInto...)); err != nil {
					return err
				}
				for _, k := range c.DuplicateKeys() {
					if err := b("dup_index").Put(boltdb.Key(tenant, k, c.ID), nil); err != nil {
						return err
					}
				}
				ts.Add(c, nil, 1)
			}
			raw, _ := json.Marshal(ts)
			if err := b("tenant_stats").Put([]byte(tenant), raw); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if store.SchemaVersion != 6 {
		t.Fatalf("this build's schema is %d: the test migrates from 5 to 6", store.SchemaVersion)
	}
	// Seven customers in chunks of two: the walk resumes after each chunk.
	defer store.SetMigrateChunk(2)()
	db := reopenMigrated(t, old, path)
	n := 0
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("customers")).ForEach(func(k, v []byte) error {
			n++
			if json.Valid(v) || len(v) == 0 || v[0] != 1 {
				t.Errorf("customer %q is not in the binary encoding: %q", k, v)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if n != 7 {
		t.Fatalf("%d customers after the migration, want 7", n)
	}
	clk := clock.NewFake(t0.Add(2 * time.Hour))
	st := store.New(db, feed.NewLog(db, clk))
	svc := domain.NewService(st, clk)
	for tenant, cs := range customers {
		for _, want := range cs {
			got, err := svc.GetCustomer(ctx, tenant, want.ID)
			if err != nil {
				t.Fatalf("GetCustomer(%s, %s) after migration: %v", tenant, want.ID, err)
			}
			if !reflect.DeepEqual(want, got) {
				t.Errorf("customer %s/%s after migration (-want +got):\n%s", tenant, want.ID, cmp.Diff(want, got))
			}
		}
	}
	list, next, err := svc.ListCustomers(ctx, "acme", domain.Filter{Tag: "茶"}, domain.Page{})
	if err != nil || next != "" || len(list) != 1 || list[0].ID != "rich" {
		t.Fatalf("listing by tag after migration: %v, %q, %v", customerIDs(list), next, err)
	}

	// A create retry with the content stored is acknowledged, a different
	// one refused.
	retry := *customers["acme"][0]
	retry.CreateTime, retry.UpdateTime, retry.Revision = time.Time{}, time.Time{}, 0
	if got, created, err := svc.CreateCustomer(ctx, "acme", &retry); err != nil || created || got.Revision != 4 {
		t.Fatalf("create retry of a migrated customer: %+v, created=%v, %v", got, created, err)
	}
	retry.Tags = []string{"vip"}
	if _, _, err := svc.CreateCustomer(ctx, "acme", &retry); !errors.Is(err, fault.ErrAlreadyExists) {
		t.Fatalf("create with other content over a migrated customer: %v, want ErrAlreadyExists", err)
	}
	// Updates read the migrated record, check its etag and write it back.
	up, err := svc.UpdateCustomer(ctx, "acme", "rich", domain.Etag(4), func(c *domain.Customer) error {
		c.Tags = append(c.Tags, "new")
		return nil
	})
	if err != nil || up.Revision != 5 || !slices.Equal(up.Tags, []string{"vip", "茶", "new"}) {
		t.Fatalf("update of a migrated customer: %+v, %v", up, err)
	}
	if got, err := svc.GetCustomer(ctx, "acme", "rich"); err != nil || !reflect.DeepEqual(got, up) {
		t.Fatalf("customer after the update: %v (-updated +read):\n%s", err, cmp.Diff(up, got))
	}
	if _, err := svc.UpsertContact(ctx, "acme", "org", domain.Contact{ID: "user", Name: "Ann", Role: domain.RoleUser}); err != nil {
		t.Fatalf("contact added to a migrated organization: %v", err)
	}
	if got, _ := svc.GetCustomer(ctx, "acme", "org"); len(got.Organization.Contacts) != 3 || got.Organization.Contacts[0].Name != "李总" {
		t.Fatalf("contacts after the upsert: %+v", got.Organization)
	}
	// The duplicate index and merges still see the migrated customers.
	if gs, _, err := svc.ListDuplicates(ctx, "other", "rich", domain.Page{}); err != nil || len(gs) != 0 {
		t.Fatalf("duplicates of another tenant's customer: %+v, %v", gs, err)
	}
	if _, _, err := svc.MergeCustomers(ctx, "acme", "rich", "gone"); err == nil {
		t.Fatal("merging a customer merged before the upgrade into another succeeded")
	}
	if _, _, err := svc.MergeCustomers(ctx, "acme", "bare", "empty-person"); err != nil {
		t.Fatalf("merge of migrated customers: %v", err)
	}
	if got, _ := svc.GetCustomer(ctx, "acme", "bare"); got.Person == nil || got.Revision != 2 {
		t.Fatalf("merge target after the merge: %+v", got)
	}
	if _, err := svc.EraseCustomer(ctx, "acme", "rich"); err != nil {
		t.Fatalf("erase of a migrated customer: %v", err)
	}
	if got, _ := svc.GetCustomer(ctx, "acme", "rich"); !got.Erased || got.Phone != "" || got.Person.GivenName != "" {
		t.Fatalf("customer after the erase: %+v", got)
	}
}

// reopenMigrated closes old, the file an older version wrote at path, opens
// it as this version does (migrating it) and checks the schema it ends at.
// The database is closed when the test ends.
func reopenMigrated(t *testing.T, old io.Closer, path string) *boltdb.DB {
	t.Helper()
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := boltdb.Open(path, store.Options())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if v, _ := db.SchemaVersion(); v != store.SchemaVersion {
		t.Fatalf("schema %d after open, want %d", v, store.SchemaVersion)
	}
	return db
}
