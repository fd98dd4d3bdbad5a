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

	// The customer literals were produced by the encoder when customers
	// moved from JSON to it (schema 6), from fullCustomer, orgCustomer and
	// the zero Customer.
	goldenCustomerFull = "017f07632de78e8b2d310ee78e8be5b08fe6988e20f09f8db50206e5b08fe6988e03e78e8b04881f043a881f021a010c746561206d" +
		"65726368616e74080c0841636d65204c74640672657461696ce01204020463742d31045a6fc3ab0343544f04112b38362031333820303030" +
		"302030303030107a6f654061636d652e6578616d706c6504616d2d370e7072656665727320e5beaee4bfa10463742d3203416e6e00000000" +
		"0000112b383620313338203132333420353637380e786d406578616d706c652e636f6d02434e06e6b599e6b19f06e69dade5b79e03037669" +
		"7003e88cb603766970040130047a65726f03612e6200047469657204676f6c64067a5f6c61737403e69cab010d6561726c792061646f7074" +
		"65720d417369612f5368616e67686169057a682d434e020203e0cae1830d959aef3a06000606737072696e6703632d3901ff93ebdc030e02" +
		"04616d2d37ffdb8ff9ce0301fe85a2ffdf0eff93ebdc0380808080802007632de78e8b2d32"
	goldenCustomerOrg = "01320461636d651141434d4520e69c89e99990e585ace58fb8041141434d4520e69c89e99990e585ace58fb80050060204626f73" +
		"7306e69d8ee680bb0002000004616d2d310005627579657206c3896d696c650a50757263686173696e67060012656d696c654061636d652e" +
		"6578616d706c65000000000246520000000000000000000000000000cad6b9950d00c2d7b9950d000300"
	goldenCustomerZero = "010000000000000000000000000000000000000000000000"
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
		"customer full":  {goldenCustomerFull, fullCustomer().MarshalBinary, decodeCustomer},
		"customer org":   {goldenCustomerOrg, orgCustomer().MarshalBinary, decodeCustomer},
		"customer zero":  {goldenCustomerZero, new(domain.Customer).MarshalBinary, decodeCustomer},
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

func decodeCustomer(b []byte) (func() ([]byte, error), error) {
	var c domain.Customer
	err := c.UnmarshalBinary(b)
	return c.MarshalBinary, err
}
