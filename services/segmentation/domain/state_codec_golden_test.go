package domain

import (
	"encoding/hex"
	"reflect"
	"testing"
	"time"
)

// The stored byte format must never change: the store's bbolt files hold
// these records. The hex literals below were produced by the encoder as it
// stood before the codec moved onto platform/binrec; a change to the
// encoding fails here, and the literals must decode back to the states.
var (
	goldenStateNarrow = "011e09e5aea2e688b72d34328cc8f1a580b9afb62e018080faf1dee9cdb82f2208050409020463702d31000303434e5903555344000404001501534f2d316f726465722d6c6f6e672d6964656e746966696572788080faf1dee9cdb82fd8940300880e89fedcead486f508010100000e000e8afe9afecdbcdb668080808080400200"
	goldenStateWide   = "010703632d31cdd2e4f4560a80ecaecb4d010000000000000203455552034a5059030603036f2d7a65726f6f2d326f2d33ffdb8ff9ce0300060000c0f89cd7db0305080002bf96e1981d00070100"
	goldenStateZero   = "0100000000000000000000"
)

// goldenStates are the fixtures of the golden literals: one whose times fit
// UnixNano (purchase deltas backwards and forwards, a repeated and an empty
// currency, an empty order id) and one that needs wide times (a zero
// purchase time, years 1600 and 2300).
func goldenStates() map[string]State {
	return map[string]State{
		"narrow": {
			CustomerID:  "客户-42",
			FirstSeen:   time.Date(2023, 1, 2, 3, 4, 5, 6, time.UTC),
			LastContact: time.Date(1969, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
			NPSAt:       time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC),
			CSATSum:     17, CSATCount: 4, NPS: -3, HasNPS: true, Referrals: 2, Refunds: -5,
			ComplaintIDs: []string{"cp-1", ""},
			Purchases: []Purchase{
				{OrderID: "SO-1", At: time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC), Amount: 25_900, Currency: "CNY", Refunded: 900},
				{OrderID: "", At: time.Date(2024, 2, 1, 9, 0, 0, 123, time.UTC), Amount: -1, Currency: "USD"},
				{OrderID: "order-long-identifier", At: time.Date(2024, 2, 1, 9, 0, 0, 123, time.UTC), Amount: 7, Currency: "CNY", Refunded: 7},
				{OrderID: "x", At: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Amount: 1 << 40, Currency: ""},
			},
		},
		"wide": {
			CustomerID:  "c-1",
			FirstSeen:   time.Date(1600, 5, 6, 7, 8, 9, 10, time.UTC),
			LastContact: time.Date(2300, 1, 1, 0, 0, 0, 1, time.UTC),
			Purchases: []Purchase{
				{OrderID: "o-zero", Amount: 3, Currency: "EUR"},
				{OrderID: "o-2", At: time.Date(2024, 3, 1, 10, 0, 0, 5, time.UTC), Amount: 4, Currency: "EUR", Refunded: 1},
				{OrderID: "o-3", At: time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), Amount: -4, Currency: "JPY"},
			},
		},
		"zero": {},
	}
}

func TestStateCodecGolden(t *testing.T) {
	golden := map[string]string{"narrow": goldenStateNarrow, "wide": goldenStateWide, "zero": goldenStateZero}
	for name, s := range goldenStates() {
		t.Run(name, func(t *testing.T) {
			b, err := s.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if h := hex.EncodeToString(b); h != golden[name] {
				t.Fatalf("the encoding changed:\n got %s\nwant %s", h, golden[name])
			}
			if wide := b[1]&stateWideTimes != 0; wide != (name == "wide") {
				t.Fatalf("wide times flag %v", wide)
			}
			raw, _ := hex.DecodeString(golden[name])
			var back State
			if err := back.UnmarshalBinary(raw); err != nil {
				t.Fatalf("golden bytes do not decode: %v", err)
			}
			if !reflect.DeepEqual(back, s) {
				t.Fatalf("golden bytes decode to\n%+v\nwant %+v", back, s)
			}
		})
	}
}
