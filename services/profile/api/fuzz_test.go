package api_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/services/profile/store"
)

// FuzzRecordEventDecode sends whatever decodes as a RecordEventRequest, as
// JSON (what the gateway receives) and as protobuf (what a gRPC client
// sends), to the real server. Bad input must get a clear error, never
// Internal or Unknown (which is also what a recovered panic becomes).
func FuzzRecordEventDecode(f *testing.F) {
	opts := store.Options()
	opts.NoSync = true // durability is not under test here; iterations are
	h := startWith(f, opts)
	h.create(f, acme, person("c1"), person("c2"))
	h.record(f, acme, purchase("seed", "c1", "o-seed", 10_000, day(1)))

	for _, s := range []string{
		`{"event":{"eventId":"e1","customerId":"c1","occurTime":"2025-05-01T10:00:00Z","purchase":{"orderId":"o1","amount":{"amountMinor":"12800","currency":"CNY"},"discount":{"amountMinor":"800","currency":"CNY"},"items":[{"sku":"tea","quantity":"2"}]}}}`,
		`{"event":{"event_id":"e2","customer_id":"c1","occur_time":"2025-05-02T10:00:00Z","refund":{"order_id":"o-seed","amount":{"amount_minor":500,"currency":"CNY"},"reason":"broken"}}}`,
		`{"event":{"eventId":"e3","customerId":"c1","occurTime":"2025-05-03T10:00:00+08:00","survey":{"csat":5,"nps":0,"text":"好"}}}`,
		`{"event":{"eventId":"e4","customerId":"c2","occurTime":"2025-05-04T10:00:00Z","complaint":{"complaintId":"k1","severity":"COMPLAINT_SEVERITY_HIGH","status":"COMPLAINT_STATUS_OPEN"}}}`,
		`{"event":{"eventId":"e5","customerId":"c1","occurTime":"2025-05-05T10:00:00Z","contactLog":{"method":1,"outcome":3}}}`,
		`{"event":{"eventId":"e6","customerId":"c1","occurTime":"2025-05-06T10:00:00Z","referral":{"referredCustomerId":"c1"}}}`,
		`{"event":{"eventId":"e7","customerId":"c1","occurTime":"2025-05-07T10:00:00Z","purchase":{"orderId":"o7","amount":{"amountMinor":"-1","currency":"cny"}}}}`,
		`{"event":{"eventId":"e8","customerId":"ghost","occurTime":"2025-05-08T10:00:00Z","afterSales":{"kind":99}}}`,
		`{"event":{"eventId":"e9","customerId":"c1","occurTime":"0001-01-01T00:00:00Z","consultation":{}}}`,
		`{"event":{"eventId":"e10","customerId":"c1","occurTime":"9999-12-31T23:59:59Z","purchase":{"orderId":"o10","amount":{"amountMinor":"9223372036854775807","currency":"CNY"}}}}`,
		`{"event":{"eventId":"e11","customerId":"c1","occurTime":"2025-05-11T10:00:00Z","refund":{"orderId":"o-seed","amount":{"amountMinor":"9223372036854775807","currency":"CNY"}}}}`,
		`{"event":{"eventId":"","customerId":"","purchase":null}}`,
		`{"event":{}}`,
		`{}`,
		`{"event":{"eventId":"e\u0000","customerId":"c1"}}`,
		`not json`,
	} {
		f.Add([]byte(s))
	}
	for _, e := range []*profilev1.Event{
		purchase("b1", "c1", "o-b1", 100, day(2)),
		refund("b2", "c1", "o-seed", 20_000, day(3)),
		survey("b3", "c2", ptr[int32](7), ptr[int32](-1), &timestamppb.Timestamp{Seconds: 1 << 40, Nanos: -5}),
	} {
		raw, err := proto.Marshal(&profilev1.RecordEventRequest{Event: e})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		var reqs []*profilev1.RecordEventRequest
		if r := new(profilev1.RecordEventRequest); protojson.Unmarshal(data, r) == nil {
			reqs = append(reqs, r)
		}
		if r := new(profilev1.RecordEventRequest); proto.Unmarshal(data, r) == nil {
			reqs = append(reqs, r)
		}
		if len(reqs) == 0 {
			t.Skip("decodes neither as JSON nor as protobuf")
		}
		for _, req := range reqs {
			_, err := h.client.RecordEvent(acme, req)
			switch status.Code(err) {
			case codes.Internal, codes.Unknown:
				t.Fatalf("RecordEvent(%v) = %v", req, err)
			case codes.InvalidArgument:
				if len(violations(err)) == 0 {
					t.Errorf("RecordEvent(%v) = %v: InvalidArgument must name the field", req, err)
				}
			}
		}
	})
}
