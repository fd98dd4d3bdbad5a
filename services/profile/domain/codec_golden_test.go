package domain_test

import (
	"encoding/hex"
	"testing"
	"time"

	"rapport.dev/services/profile/domain"
)

// The stored byte format must never change: the store's bbolt files hold
// these records. The hex literals below were produced by the encoder as it
// stood before the codec moved onto platform/binrec; a change to the
// encoding fails here, and the literals must decode back to the values.
var (
	goldenStatsFull = "010f18040622080a0402040c0e96acab810d0401ff93ebdc0380ecaecb4d018096ea810d00020463702d310463702d320203434e59d89403010003455552a09c01e807d804"
	goldenStatsZero = "010000000000000000000000000000"
	goldenStatsNeg  = "010801000000000000000003d704ff8c96ae10f403020008e5aea2e8af892d31020000000003555344110000"
	goldenOrderFull = "0109534f2d3737383831320a706f732d373738383132d7940303434e59985c"
	goldenOrderZero = "010000000000"
)

// goldenNegativeStats exercises negative varints, a negative LastNPS and
// a time before 1970 on its own.
func goldenNegativeStats() *domain.Stats {
	return &domain.Stats{
		Purchases: -1, LastNPS: -2, Referrals: -300,
		LastContact: time.Date(1900, 6, 1, 12, 0, 0, 500, time.UTC),
		Complaints:  map[string]bool{"": true, "客诉-1": true},
		Totals:      map[string]*domain.Totals{"USD": {Purchased: -9}, "": nil},
	}
}

func goldenFullOrder() *domain.Order {
	return &domain.Order{OrderID: "SO-778812", EventID: "pos-778812", Amount: domain.Money{Minor: -25_900, Currency: "CNY"}, Refunded: 5_900}
}

func TestBinaryGolden(t *testing.T) {
	for name, c := range map[string]struct {
		golden string
		encode func() ([]byte, error)
		decode func([]byte) (func() ([]byte, error), error)
	}{
		"stats full":     {goldenStatsFull, fullStats().MarshalBinary, decodeStats},
		"stats zero":     {goldenStatsZero, new(domain.Stats).MarshalBinary, decodeStats},
		"stats negative": {goldenStatsNeg, goldenNegativeStats().MarshalBinary, decodeStats},
		"order full":     {goldenOrderFull, goldenFullOrder().MarshalBinary, decodeOrder},
		"order zero":     {goldenOrderZero, new(domain.Order).MarshalBinary, decodeOrder},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := c.encode()
			if err != nil {
				t.Fatal(err)
			}
			if h := hex.EncodeToString(got); h != c.golden {
				t.Fatalf("the encoding changed:\n got %s\nwant %s", h, c.golden)
			}
			// The stored bytes decode, and re-encode to themselves.
			want, _ := hex.DecodeString(c.golden)
			reencode, err := c.decode(want)
			if err != nil {
				t.Fatalf("golden bytes do not decode: %v", err)
			}
			again, err := reencode()
			if err != nil {
				t.Fatal(err)
			}
			if string(again) != string(want) {
				t.Fatalf("golden bytes re-encode differently:\n got %x\nwant %s", again, c.golden)
			}
		})
	}
}

func decodeStats(b []byte) (func() ([]byte, error), error) {
	var s domain.Stats
	err := s.UnmarshalBinary(b)
	return s.MarshalBinary, err
}

func decodeOrder(b []byte) (func() ([]byte, error), error) {
	var o domain.Order
	err := o.UnmarshalBinary(b)
	return o.MarshalBinary, err
}
