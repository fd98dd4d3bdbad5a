package store_test

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/services/loyalty/domain"
	"rapport.dev/services/loyalty/store"
)

func sampleMember() *store.Member {
	sh := time.FixedZone("CST", 8*3600)
	t0 := time.Date(2024, 2, 29, 23, 30, 0, 123456789, sh)
	return &store.Member{
		Customer: "c-1", Enrolled: t0, TimeZone: "Asia/Shanghai", BirthMonth: 2,
		Tier:       domain.TierState{Tier: "gold", GraceUntil: t0.AddDate(0, 1, 0)},
		Qualifiers: []domain.Qualifier{{At: t0, Points: 120, Spend: 12000}, {At: t0.Add(time.Hour), Points: -20, Spend: -2000}},
		Account: domain.Account{
			Lots: []domain.Lot{
				{ID: 1, Points: 100, Original: 120, Earned: t0, AvailableAt: t0.AddDate(0, 0, 14), Expires: t0.AddDate(2, 0, 0), Order: "SO-1"},
				{ID: 3, Points: 5, Original: 5, Earned: t0.Add(time.Minute)}, // an adjustment: no order, never expires
			},
			Debt: 7,
			Earned: map[string]*domain.Earned{
				"SO-1": {Entry: 1, Points: 120, Amount: 12000, Reversed: 20, Refunded: 2000},
				"SO-0": {Entry: 2, Points: 1, Amount: 100},
			},
			Seq: 4, TotalEarned: 125, TotalRedeemed: 3, TotalExpired: 1,
		},
	}
}

// utc is m with every time in UTC, what the codec reads back: instants are
// kept, zones are not (the member's zone is TimeZone).
func utc(m *store.Member) *store.Member {
	c := *m
	c.Enrolled = c.Enrolled.UTC()
	c.Tier.GraceUntil = c.Tier.GraceUntil.UTC()
	c.Qualifiers = append([]domain.Qualifier(nil), m.Qualifiers...)
	for i := range c.Qualifiers {
		c.Qualifiers[i].At = c.Qualifiers[i].At.UTC()
	}
	c.Account.Lots = append([]domain.Lot(nil), m.Account.Lots...)
	for i := range c.Account.Lots {
		l := &c.Account.Lots[i]
		l.Earned, l.AvailableAt, l.Expires = l.Earned.UTC(), l.AvailableAt.UTC(), l.Expires.UTC()
	}
	return &c
}

func TestMemberCodecRoundTrip(t *testing.T) {
	for name, m := range map[string]*store.Member{
		"full":  sampleMember(),
		"empty": {Customer: "c-2", Enrolled: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		raw := store.EncodeMember(m)
		got, err := store.DecodeMember(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := utc(m); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: decoded\n%+v\nwant\n%+v", name, got, want)
		}
		// The encoding is deterministic (the earned map in key order).
		for range 5 {
			if again := store.EncodeMember(got); string(again) != string(raw) {
				t.Fatalf("%s: encoding not stable", name)
			}
		}
	}
}

// TestMemberCodecMalformed: a record cut anywhere, with a byte too many or
// of another version is an error, never a panic.
func TestMemberCodecMalformed(t *testing.T) {
	raw := store.EncodeMember(sampleMember())
	for i := range len(raw) {
		if _, err := store.DecodeMember(raw[:i]); err == nil {
			t.Errorf("cut to %d of %d bytes: no error", i, len(raw))
		}
	}
	if _, err := store.DecodeMember(append(raw, 0)); err == nil {
		t.Error("trailing byte: no error")
	}
	bad := append([]byte{2}, raw[1:]...)
	if _, err := store.DecodeMember(bad); err == nil {
		t.Error("version 2: no error")
	}
	if _, err := store.DecodeMember([]byte(`{"customer":"c-1"}`)); err == nil {
		t.Error("a JSON record after the migration: no error")
	}
}

// TestMigrateMembersToBinary: a version 1 file's JSON members (more than a
// chunk of them) read the same after the store opens it at version 2.
func TestMigrateMembersToBinary(t *testing.T) {
	defer func(n int) { *store.MigrateChunk = n }(*store.MigrateChunk)
	*store.MigrateChunk = 3
	path := filepath.Join(t.TempDir(), "loyalty.db")
	v1 := store.Options()
	v1.Schema, v1.Migrations = 1, nil
	db, err := boltdb.Open(path, v1)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*store.Member{}
	err = db.Update(ctx, func(tx *bolt.Tx) error {
		for i := range 8 {
			m := sampleMember()
			m.Customer = "c-" + string(rune('a'+i))
			m.Account.Debt = int64(i)
			raw, err := json.Marshal(m)
			if err != nil {
				return err
			}
			if err := tx.Bucket([]byte("members")).Put(boltdb.Key(tenant, "club", m.Customer), raw); err != nil {
				return err
			}
			want[m.Customer] = utc(m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = boltdb.Open(path, store.Options())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, err := db.SchemaVersion(); err != nil || v != store.SchemaVersion {
		t.Fatalf("schema version %d (%v), want %d", v, err, store.SchemaVersion)
	}
	got := 0
	err = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("members")).ForEach(func(k, v []byte) error {
			m, err := store.DecodeMember(v)
			if err != nil {
				return err
			}
			got++
			if w := want[m.Customer]; !reflect.DeepEqual(m, w) {
				t.Errorf("%s after the migration:\n%+v\nwant\n%+v", k, m, w)
			}
			return nil
		})
	})
	if err != nil || got != len(want) {
		t.Fatalf("%d members read after the migration (%v), want %d", got, err, len(want))
	}
}
