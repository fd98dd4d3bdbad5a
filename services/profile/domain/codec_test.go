package domain_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"rapport.dev/platform/binrec"
	"rapport.dev/services/profile/domain"
)

// fullStats sets every field of Stats to a value that is not its zero.
func fullStats() *domain.Stats {
	return &domain.Stats{
		Purchases: 12, Refunds: 2, DiscountedPurchases: 3,
		Complaints: map[string]bool{"cp-2": true, "cp-1": true},
		CSATSum:    17, CSATCount: 4, NPSCount: 5, Promoters: 2, Passives: 1, Detractors: 2,
		LastNPS: 6, LastNPSTime: time.Date(2025, 5, 3, 1, 2, 3, 4, time.UTC),
		Totals: map[string]*domain.Totals{
			"EUR": {Purchased: 10_000, Refunded: 500, Discount: 300},
			"CNY": {Purchased: 25_900, Refunded: -1},
		},
		// Before 1970 and beyond what UnixNano can hold.
		FirstPurchase: time.Date(1969, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		LastPurchase:  time.Date(2300, 1, 1, 0, 0, 0, 1, time.UTC),
		Referrals:     7,
		LastContact:   time.Date(2025, 5, 9, 0, 0, 0, 0, time.UTC),
	}
}

func TestStatsBinaryRoundTrip(t *testing.T) {
	full := fullStats()
	// Every field must be set, so that the round trip tests them all.
	v := reflect.ValueOf(full).Elem()
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("fixture leaves Stats.%s zero", v.Type().Field(i).Name)
		}
	}
	for name, s := range map[string]*domain.Stats{
		"full":     full,
		"zero":     {},
		"negative": {Purchases: -1, LastNPS: -2, Totals: map[string]*domain.Totals{"USD": {Purchased: -9}}},
	} {
		t.Run(name, func(t *testing.T) {
			raw, err := s.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got domain.Stats
			if err := got.UnmarshalBinary(raw); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(s, &got); diff != "" {
				t.Errorf("after the round trip (-want +got):\n%s", diff)
			}
			// The JSON encoding the store used before reads back the same.
			js, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			var fromJSON domain.Stats
			if err := json.Unmarshal(js, &fromJSON); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&fromJSON, &got); diff != "" {
				t.Errorf("binary and JSON round trips differ (-json +binary):\n%s", diff)
			}
		})
	}
}

func TestStatsBinaryIsDeterministic(t *testing.T) {
	a, _ := fullStats().MarshalBinary()
	for range 20 { // map order varies from run to run
		b, _ := fullStats().MarshalBinary()
		if string(a) != string(b) {
			t.Fatal("two encodings of the same stats differ")
		}
	}
}

func TestOrderBinaryRoundTrip(t *testing.T) {
	for name, o := range map[string]*domain.Order{
		"full": {OrderID: "SO-778812", EventID: "pos-778812", Amount: domain.Money{Minor: 25_900, Currency: "CNY"}, Refunded: 5_900},
		"zero": {},
	} {
		t.Run(name, func(t *testing.T) {
			raw, err := o.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got domain.Order
			if err := got.UnmarshalBinary(raw); err != nil {
				t.Fatal(err)
			}
			if got != *o {
				t.Errorf("after the round trip: %+v, want %+v", got, *o)
			}
		})
	}
}

// TestBinaryMalformed checks that damaged input is an error: every
// truncation, a trailing byte, an unknown version or flag.
func TestBinaryMalformed(t *testing.T) {
	stats, _ := fullStats().MarshalBinary()
	order, _ := (&domain.Order{OrderID: "o", EventID: "e", Amount: domain.Money{Minor: 1, Currency: "EUR"}, Refunded: 1}).MarshalBinary()
	decoders := map[string]struct {
		raw    []byte
		decode func([]byte) error
	}{
		"stats": {stats, func(b []byte) error { return new(domain.Stats).UnmarshalBinary(b) }},
		"order": {order, func(b []byte) error { return new(domain.Order).UnmarshalBinary(b) }},
	}
	for name, d := range decoders {
		t.Run(name, func(t *testing.T) {
			if err := d.decode(d.raw); err != nil {
				t.Fatalf("valid input: %v", err)
			}
			for n := range len(d.raw) {
				if err := d.decode(d.raw[:n]); !isDecodeError(err) {
					t.Errorf("truncated to %d of %d bytes: %v", n, len(d.raw), err)
				}
			}
			if err := d.decode(append(append([]byte(nil), d.raw...), 0)); !isDecodeError(err) {
				t.Errorf("trailing byte: %v", err)
			}
			bad := append([]byte(nil), d.raw...)
			bad[0] = 2
			if err := d.decode(bad); err == nil {
				t.Error("format version 2: no error")
			}
		})
	}
	bad := append([]byte(nil), stats...)
	bad[1] |= 0x80
	if err := new(domain.Stats).UnmarshalBinary(bad); err == nil {
		t.Error("unknown stats flag: no error")
	}
}

// isDecodeError reports whether err is a malformed-record error that says
// what failed to decode.
func isDecodeError(err error) bool {
	return errors.Is(err, binrec.ErrMalformed) && strings.HasPrefix(err.Error(), "domain: decode ")
}

// binaryRecord is a record type with a binary encoding: *T encodes and
// decodes.
type binaryRecord[T any] interface {
	*T
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

// fuzzRoundTrip fuzzes a record decoder from encodings of seeds: whatever
// decodes must encode to bytes that decode to the same record. Malformed
// input may fail, never panic.
func fuzzRoundTrip[T any, P binaryRecord[T]](f *testing.F, seeds ...*T) {
	for _, r := range seeds {
		raw, err := P(r).MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var first T
		if P(&first).UnmarshalBinary(data) != nil {
			return
		}
		raw, err := P(&first).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var again T
		if err := P(&again).UnmarshalBinary(raw); err != nil {
			t.Fatalf("a decoded %T, encoded again, does not decode: %v", first, err)
		}
		if diff := cmp.Diff(&first, &again); diff != "" {
			t.Fatalf("decode, encode, decode changed the %T (-first +second):\n%s", first, diff)
		}
	})
}

func FuzzStatsUnmarshalBinary(f *testing.F) {
	fuzzRoundTrip(f, fullStats(), &domain.Stats{})
}

func FuzzOrderUnmarshalBinary(f *testing.F) {
	fuzzRoundTrip(f, &domain.Order{OrderID: "o", EventID: "e", Amount: domain.Money{Minor: 1, Currency: "EUR"}})
}
