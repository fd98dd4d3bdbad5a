package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/clock"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/tenancy"
	"rapport.dev/services/profile/domain"
	"rapport.dev/services/profile/store"
)

// The personal data of c1 in tenant acme that must leave the feed.
var c1Secrets = []string{"王小明", "小明", "Wang", "13812345678", "xm@example.com", "3301-secret",
	"杭州", "spring-campaign", "rude staff", "my name is", "did not fit", "call back at home"}

// openFixture is newFixture on a file at path, so a test can reopen it.
func openFixture(t *testing.T, path string) *fixture {
	t.Helper()
	db, err := boltdb.Open(path, store.Options())
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(t0)
	log := feed.NewLog(db, clk)
	return &fixture{t: t, db: db, log: log, st: store.New(db, log), clk: clk, ctx: context.Background()}
}

// erasable fills the store with c1 (personal data, an update, a timeline
// with texts), c2 in the same tenant and a c1 of another tenant holding the
// same data.
func (f *fixture) erasable() {
	f.t.Helper()
	c1 := func(c *domain.Customer) {
		c.DisplayName = "王小明"
		c.Person = &domain.Person{GivenName: "小明", FamilyName: "Wang", Birthday: domain.Date{Year: 1990, Month: 2, Day: 3}, IncomeBand: 2}
		c.Phone, c.Email = "13812345678", "xm@example.com"
		c.Region = domain.Region{Country: "CN", Province: "浙江", City: "杭州"}
		c.Attributes = map[string]string{"id_card": "3301-secret"}
		c.Acquisition = domain.Acquisition{Channel: domain.ChannelReferral, Campaign: "spring-campaign"}
	}
	f.create("acme", f.person("c1", c1), f.person("c2", func(c *domain.Customer) { c.Phone = "13900000000" }))
	f.create("other", f.person("c1", c1))
	if _, err := f.st.UpdateCustomer(f.ctx, "acme", "c1", func(c *domain.Customer) error {
		c.Email = "xm@example.com"
		c.Tags = []string{"vip"}
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	f.record("acme",
		purchase("e1", "c1", "o1", money(9_900, "CNY"), day(1)),
		purchase("e2", "c2", "o2", money(500, "CNY"), day(1)),
		refund("e3", "c1", "o1", money(1_000, "CNY"), day(2)),
		complaint("e4", "c2", "k2", day(2)),
		complaint("e5", "c1", "k1", day(3)),
		survey("e6", "c1", ptr[int32](4), ptr[int32](9), day(4)),
		&domain.Event{ID: "e7", CustomerID: "c1", OccurTime: day(5), ContactLog: &domain.ContactLog{Method: 1, Outcome: 1, Notes: "call back at home"}},
	)
	f.record("other", complaint("x1", "c1", "k9", day(3)))
}

// rawFeed is every feed entry as stored, by sequence.
func (f *fixture) rawFeed() map[uint64][]byte {
	f.t.Helper()
	out := map[uint64][]byte{}
	if err := f.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(feed.LogBucket).ForEach(func(k, v []byte) error {
			seq, err := boltdb.ReadU64(k)
			out[seq] = boltdb.Copy(v)
			return err
		})
	}); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// pendingScrubs counts the records in feed_scrubs.
func (f *fixture) pendingScrubs() int {
	f.t.Helper()
	n := 0
	if err := f.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket([]byte("feed_scrubs")).Stats().KeyN
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// scrubAll runs ScrubFeed until nothing is pending and returns how many
// calls that took.
func (f *fixture) scrubAll(maxEntries int) int {
	f.t.Helper()
	for calls := 1; ; calls++ {
		more, err := f.st.ScrubFeed(f.ctx, maxEntries)
		if err != nil {
			f.t.Fatalf("ScrubFeed: %v", err)
		}
		if !more {
			return calls
		}
		if calls > 10_000 {
			f.t.Fatal("ScrubFeed does not finish")
		}
	}
}

// about reports whether a feed entry is about the customer.
func about(t *testing.T, ev *feedv1.Event, tenant, id string) bool {
	t.Helper()
	if ev.GetTenant() != tenant {
		return false
	}
	if ev.GetType() == store.TypeEventRecorded {
		e := &profilev1.Event{}
		if err := ev.GetPayload().UnmarshalTo(e); err != nil {
			t.Fatal(err)
		}
		return e.GetCustomerId() == id
	}
	return ev.GetKey() == id
}

// checkScrubbed decodes every entry of the feed: those about acme/c1 must
// hold none of its personal data; every other must be byte for byte as in
// before; sequences, types, keys, times and trace contexts stay.
func (f *fixture) checkScrubbed(before map[uint64][]byte) {
	t := f.t
	t.Helper()
	after := f.rawFeed()
	if len(after) != len(before) {
		t.Fatalf("feed has %d entries after the scrub, %d before", len(after), len(before))
	}
	scrubbed := 0
	for seq, raw := range after {
		old, ok := before[seq]
		if !ok {
			t.Fatalf("feed entry %d appeared", seq)
		}
		ev, was := &feedv1.Event{}, &feedv1.Event{}
		if err := proto.Unmarshal(raw, ev); err != nil {
			t.Fatalf("entry %d: %v", seq, err)
		}
		if err := proto.Unmarshal(old, was); err != nil {
			t.Fatal(err)
		}
		if !about(t, was, "acme", "c1") {
			if !bytes.Equal(raw, old) {
				t.Errorf("entry %d (%s %s %s) of another customer changed", seq, was.GetTenant(), was.GetType(), was.GetKey())
			}
			continue
		}
		if diff := cmp.Diff(was, ev, protocmp.Transform(), protocmp.IgnoreFields(&feedv1.Event{}, "payload")); diff != "" {
			t.Errorf("entry %d: envelope changed (-before +after):\n%s", seq, diff)
		}
		for _, s := range c1Secrets {
			if bytes.Contains(raw, []byte(s)) {
				t.Errorf("entry %d (%s) still holds %q", seq, ev.GetType(), s)
			}
		}
		switch ev.GetType() {
		case store.TypeEventRecorded:
			e, we := &profilev1.Event{}, &profilev1.Event{}
			_ = ev.GetPayload().UnmarshalTo(e)
			_ = was.GetPayload().UnmarshalTo(we)
			if e.GetEventId() != we.GetEventId() || !proto.Equal(e.GetRecordTime(), we.GetRecordTime()) ||
				!proto.Equal(e.GetPurchase(), we.GetPurchase()) || !proto.Equal(e.GetRefund().GetAmount(), we.GetRefund().GetAmount()) {
				t.Errorf("entry %d: the scrub changed more than texts:\n%v\n%v", seq, we, e)
			}
		default:
			c, wc := &profilev1.Customer{}, &profilev1.Customer{}
			_ = ev.GetPayload().UnmarshalTo(c)
			_ = was.GetPayload().UnmarshalTo(wc)
			if c.GetPerson().GetBirthday() != nil || c.GetPhone() != "" || c.GetEmail() != "" || len(c.GetAttributes()) != 0 {
				t.Errorf("entry %d: customer snapshot keeps personal data: %v", seq, c)
			}
			if c.GetDisplayName() != domain.Erased || c.GetEtag() != wc.GetEtag() || c.GetErased() != wc.GetErased() ||
				!proto.Equal(c.GetUpdateTime(), wc.GetUpdateTime()) || c.GetRegion().GetProvince() != "浙江" ||
				c.GetPerson().GetIncomeBand() != wc.GetPerson().GetIncomeBand() || !slices.Equal(c.GetTags(), wc.GetTags()) {
				t.Errorf("entry %d: snapshot is not the erased form of the old one:\nbefore %v\nafter  %v", seq, wc, c)
			}
		}
		if !bytes.Equal(raw, old) {
			scrubbed++
		}
	}
	if scrubbed == 0 {
		t.Error("no entry was rewritten")
	}
	// Followers still read the feed from any cursor.
	var got []uint64
	if err := f.log.Serve(f.ctx, "acme", 0, false, func(ev *feedv1.Event) error {
		got = append(got, ev.GetSequence())
		return nil
	}); err != nil {
		t.Fatalf("Serve after the scrub: %v", err)
	}
	all, err := f.log.Read(tenancy.All, 0, 1<<20)
	if err != nil || len(all) != len(after) {
		t.Fatalf("Read after the scrub: %d entries, %v", len(all), err)
	}
	var want []uint64
	for _, ev := range all {
		if ev.GetTenant() == "acme" {
			want = append(want, ev.GetSequence())
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("Serve(acme) after the scrub: %v, want %v", got, want)
	}
}

func TestScrubFeed(t *testing.T) {
	f := newFixture(t)
	f.erasable()
	before := f.rawFeed()
	select {
	case <-f.st.ScrubSignal():
		t.Fatal("scrub signalled before any erase")
	default:
	}
	if more, err := f.st.ScrubFeed(f.ctx, 100); err != nil || more {
		t.Fatalf("ScrubFeed with nothing pending: more=%v err=%v", more, err)
	}
	if _, err := f.st.Erase(f.ctx, "acme", "c1", f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.st.ScrubSignal():
	default:
		t.Fatal("erase did not signal a scrub")
	}
	if f.pendingScrubs() != 1 {
		t.Fatalf("%d pending scrubs after the erase, want 1", f.pendingScrubs())
	}
	erased := f.rawFeed()
	if len(erased) != len(before)+1 {
		t.Fatalf("erase appended %d entries, want 1", len(erased)-len(before))
	}
	if calls := f.scrubAll(10_000); calls != 1 {
		t.Errorf("ScrubFeed took %d calls within one chunk", calls)
	}
	if f.pendingScrubs() != 0 {
		t.Error("the scrub is still pending when done")
	}
	f.checkScrubbed(erased)
	// The customer.erased entry itself was already scrubbed.
	last := uint64(len(erased))
	if !bytes.Equal(f.rawFeed()[last], erased[last]) {
		t.Error("the customer.erased entry was rewritten")
	}
	// Done means done: another pass changes nothing.
	done := f.rawFeed()
	if more, err := f.st.ScrubFeed(f.ctx, 100); err != nil || more {
		t.Fatalf("ScrubFeed after done: more=%v err=%v", more, err)
	}
	if diff := cmp.Diff(done, f.rawFeed()); diff != "" {
		t.Errorf("a pass with nothing pending changed the feed:\n%s", diff)
	}
	// A failed erase records nothing and does not signal.
	if _, err := f.st.Erase(f.ctx, "acme", "ghost", f.clk.Now()); err == nil {
		t.Fatal("erase of a missing customer succeeded")
	}
	select {
	case <-f.st.ScrubSignal():
		t.Error("a failed erase signalled a scrub")
	default:
	}
	if f.pendingScrubs() != 0 {
		t.Error("a failed erase recorded a scrub")
	}
}

// TestScrubFeedResumable scrubs one entry per transaction, closing and
// reopening the file halfway: the result is the same feed as one pass.
func TestScrubFeedResumable(t *testing.T) {
	once := newFixture(t)
	once.erasable()
	if _, err := once.st.Erase(once.ctx, "acme", "c1", once.clk.Now()); err != nil {
		t.Fatal(err)
	}
	once.scrubAll(10_000)
	want := once.rawFeed()

	path := filepath.Join(t.TempDir(), "profile.db")
	f := openFixture(t, path)
	f.erasable()
	if _, err := f.st.Erase(f.ctx, "acme", "c1", f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	erased := f.rawFeed()
	upto := len(erased) - 1 // the entries before customer.erased
	for i := 0; i < upto/2; i++ {
		if more, err := f.st.ScrubFeed(f.ctx, 1); err != nil || !more {
			t.Fatalf("ScrubFeed step %d of %d: more=%v err=%v", i+1, upto, more, err)
		}
	}
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
	f = openFixture(t, path)
	defer f.db.Close()
	if f.pendingScrubs() != 1 {
		t.Fatalf("%d pending scrubs after reopening, want 1", f.pendingScrubs())
	}
	if calls := f.scrubAll(1); calls != upto-upto/2 {
		t.Errorf("after reopening, ScrubFeed took %d steps, want %d: it did not resume where it stopped", calls, upto-upto/2)
	}
	f.checkScrubbed(erased)
	if diff := cmp.Diff(want, f.rawFeed()); diff != "" {
		t.Errorf("stepwise scrub differs from a single pass:\n%s", diff)
	}
}

// TestScrubFeedEraseWhilePending erases c1 again, after recording more text,
// while its first scrub is half done, and erases c2 too: everything before
// each erase ends up scrubbed.
func TestScrubFeedEraseWhilePending(t *testing.T) {
	f := newFixture(t)
	f.erasable()
	if _, err := f.st.Erase(f.ctx, "acme", "c1", f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	if more, err := f.st.ScrubFeed(f.ctx, 3); err != nil || !more {
		t.Fatalf("partial ScrubFeed: more=%v err=%v", more, err)
	}
	f.record("acme", &domain.Event{ID: "e8", CustomerID: "c1", OccurTime: day(6), Consultation: &domain.Consultation{Notes: "rude staff again"}})
	if _, err := f.st.Erase(f.ctx, "acme", "c1", f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Erase(f.ctx, "acme", "c2", f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	if f.pendingScrubs() != 2 {
		t.Fatalf("%d pending scrubs, want 2 (one per customer)", f.pendingScrubs())
	}
	f.scrubAll(4)
	for _, ev := range f.feedEntries() {
		raw, _ := proto.Marshal(ev)
		if about(t, ev, "acme", "c1") {
			for _, s := range c1Secrets {
				if bytes.Contains(raw, []byte(s)) {
					t.Errorf("entry %d (%s) of c1 still holds %q", ev.GetSequence(), ev.GetType(), s)
				}
			}
		}
		if about(t, ev, "acme", "c2") && (bytes.Contains(raw, []byte("13900000000")) || bytes.Contains(raw, []byte("rude staff"))) {
			t.Errorf("entry %d (%s) of c2 still holds its data", ev.GetSequence(), ev.GetType())
		}
		if ev.GetTenant() == "other" && ev.GetType() == store.TypeCustomerCreated && !bytes.Contains(raw, []byte("13812345678")) {
			t.Error("the scrub reached c1 of another tenant")
		}
	}
	if f.pendingScrubs() != 0 {
		t.Error("scrubs still pending when done")
	}
}

// TestMigrationFromSchema3 opens a schema 3 file: feed_scrubs is created,
// and an erase of a customer written before the upgrade scrubs its feed.
func TestMigrationFromSchema3(t *testing.T) {
	path := filepath.Join(t.TempDir(), "profile.db")
	v3 := [][]byte{[]byte("customers"), []byte("customer_meta"), []byte("customer_data"), []byte("tenant_stats"),
		[]byte("event_ids"), []byte("dup_index")}
	old, err := boltdb.Open(path, boltdb.Options{Schema: 3, Buckets: append(v3, feed.Buckets...)})
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(t0)
	st := store.New(old, feed.NewLog(old, clk))
	c := &domain.Customer{ID: "c1", Kind: domain.KindPerson, DisplayName: "王小明", Phone: "13812345678", CreateTime: t0, UpdateTime: t0, Revision: 1}
	// CreateCustomers writes what the schema 3 code wrote, but for the
	// customer record, which was JSON until schema 6.
	if rs, err := st.CreateCustomers(context.Background(), "acme", []*domain.Customer{c}); err != nil || rs[0].Err != nil {
		t.Fatalf("create: %v %+v", err, rs)
	}
	if err := old.Update(context.Background(), func(tx *bolt.Tx) error {
		raw, err := json.Marshal(c)
		if err != nil {
			return err
		}
		return tx.Bucket([]byte("customers")).Put(boltdb.Key("acme", c.ID), raw)
	}); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	f := openFixture(t, path)
	defer f.db.Close()
	if v, _ := f.db.SchemaVersion(); v != store.SchemaVersion {
		t.Fatalf("schema %d after open, want %d", v, store.SchemaVersion)
	}
	if f.pendingScrubs() != 0 {
		t.Fatal("the migration scheduled scrubs")
	}
	before := f.rawFeed()
	if _, err := f.st.Erase(f.ctx, "acme", "c1", f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	f.scrubAll(10)
	after := f.rawFeed()
	if len(after) != len(before)+1 || bytes.Contains(after[1], []byte("13812345678")) || bytes.Contains(after[1], []byte("王小明")) {
		t.Errorf("feed after erasing a customer written before the upgrade: %q", after[1])
	}
}
