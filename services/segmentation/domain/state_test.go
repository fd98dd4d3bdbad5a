package domain

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)

func day(n int) time.Time { return t0.Add(time.Duration(n) * Day) }

func i32(v int32) *int32 { return &v }

func buy(order string, at time.Time, amount int64, currency string) ProfileEvent {
	return ProfileEvent{ID: "e-" + order, At: at, Kind: EventPurchase, OrderID: order, Amount: amount, Currency: currency}
}

func refund(order string, at time.Time, amount int64) ProfileEvent {
	return ProfileEvent{ID: "r-" + order, At: at, Kind: EventRefund, OrderID: order, Amount: amount, Currency: "CNY"}
}

func TestStateApply(t *testing.T) {
	tests := []struct {
		name   string
		seen   time.Time
		events []ProfileEvent
		want   State
	}{
		{
			name: "purchases are kept sorted, equal times in insertion order",
			events: []ProfileEvent{
				buy("o1", day(2), 100, "CNY"), buy("o2", day(0), 200, "CNY"),
				buy("o3", day(2), 300, "USD"), buy("o4", day(1), 400, "CNY"), buy("o5", day(2), 500, "CNY"),
			},
			want: State{FirstSeen: day(0), Purchases: []Purchase{
				{OrderID: "o2", At: day(0), Amount: 200, Currency: "CNY"},
				{OrderID: "o4", At: day(1), Amount: 400, Currency: "CNY"},
				{OrderID: "o1", At: day(2), Amount: 100, Currency: "CNY"},
				{OrderID: "o3", At: day(2), Amount: 300, Currency: "USD"},
				{OrderID: "o5", At: day(2), Amount: 500, Currency: "CNY"},
			}},
		},
		{
			name:   "partial refunds add up on their own order",
			events: []ProfileEvent{buy("o1", day(0), 1000, "CNY"), buy("o2", day(1), 500, "CNY"), refund("o1", day(2), 300), refund("o1", day(3), 200)},
			want: State{FirstSeen: day(0), Refunds: 2, Purchases: []Purchase{
				{OrderID: "o1", At: day(0), Amount: 1000, Currency: "CNY", Refunded: 500},
				{OrderID: "o2", At: day(1), Amount: 500, Currency: "CNY"},
			}},
		},
		{
			name:   "refunds are capped at the purchase amount",
			events: []ProfileEvent{buy("o1", day(0), 1000, "CNY"), refund("o1", day(1), 800), refund("o1", day(2), 800)},
			want: State{FirstSeen: day(0), Refunds: 2, Purchases: []Purchase{
				{OrderID: "o1", At: day(0), Amount: 1000, Currency: "CNY", Refunded: 1000},
			}},
		},
		{
			name:   "a full refund leaves the purchase counted at zero",
			events: []ProfileEvent{buy("o1", day(0), 1000, "CNY"), refund("o1", day(1), 1000)},
			want: State{FirstSeen: day(0), Refunds: 1, Purchases: []Purchase{
				{OrderID: "o1", At: day(0), Amount: 1000, Currency: "CNY", Refunded: 1000},
			}},
		},
		{
			name:   "a refund of an unknown order only counts",
			events: []ProfileEvent{buy("o1", day(1), 1000, "CNY"), refund("zz", day(0), 100)},
			want: State{FirstSeen: day(0), Refunds: 1, Purchases: []Purchase{
				{OrderID: "o1", At: day(1), Amount: 1000, Currency: "CNY"},
			}},
		},
		{
			name:   "zero and negative refunds change no money",
			events: []ProfileEvent{buy("o1", day(0), 1000, "CNY"), refund("o1", day(1), 0), refund("o1", day(1), -5)},
			want: State{FirstSeen: day(0), Refunds: 2, Purchases: []Purchase{
				{OrderID: "o1", At: day(0), Amount: 1000, Currency: "CNY"},
			}},
		},
		{
			name: "a repeated order id: refunds fill the first purchase with room",
			events: []ProfileEvent{
				buy("o1", day(1), 100, "CNY"), buy("o1", day(0), 100, "CNY"),
				refund("o1", day(2), 100), refund("o1", day(2), 40),
			},
			want: State{FirstSeen: day(0), Refunds: 2, Purchases: []Purchase{
				{OrderID: "o1", At: day(0), Amount: 100, Currency: "CNY", Refunded: 100},
				{OrderID: "o1", At: day(1), Amount: 100, Currency: "CNY", Refunded: 40},
			}},
		},
		{
			name: "complaints are distinct and sorted; the record id stands in for a missing complaint id",
			events: []ProfileEvent{
				{ID: "x1", At: day(1), Kind: EventComplaint, ComplaintID: "b"},
				{ID: "x2", At: day(2), Kind: EventComplaint, ComplaintID: "a"},
				{ID: "x3", At: day(3), Kind: EventComplaint, ComplaintID: "b"},
				{ID: "e9", At: day(4), Kind: EventComplaint},
				{At: day(4), Kind: EventComplaint},
			},
			want: State{FirstSeen: day(1), ComplaintIDs: []string{"a", "b", "e9"}},
		},
		{
			name: "surveys: CSAT sums, NPS is the latest answer, the later applied on equal times",
			events: []ProfileEvent{
				{At: day(1), Kind: EventSurvey, CSAT: i32(4)},
				{At: day(3), Kind: EventSurvey, CSAT: i32(5), NPS: i32(9)},
				{At: day(2), Kind: EventSurvey, NPS: i32(3)},
				{At: day(3), Kind: EventSurvey, NPS: i32(6)},
				{At: day(0), Kind: EventSurvey},
			},
			want: State{FirstSeen: day(0), CSATSum: 9, CSATCount: 2, NPS: 6, NPSAt: day(3), HasNPS: true},
		},
		{
			name: "an NPS of 0 is an answer",
			events: []ProfileEvent{
				{At: day(1), Kind: EventSurvey, NPS: i32(0)},
			},
			want: State{FirstSeen: day(1), NPS: 0, NPSAt: day(1), HasNPS: true},
		},
		{
			name: "contact logs keep the latest; referrals count; other kinds only count as seen",
			events: []ProfileEvent{
				{At: day(5), Kind: EventContactLog},
				{At: day(3), Kind: EventContactLog},
				{At: day(4), Kind: EventReferral},
				{At: day(6), Kind: EventReferral},
				{At: day(2), Kind: EventOther},
				{At: day(1), Kind: EventKind(3)},
			},
			want: State{FirstSeen: day(1), LastContact: day(5), Referrals: 2},
		},
		{
			name:   "first seen is the minimum of Seen and event times",
			seen:   day(5),
			events: []ProfileEvent{{At: day(7), Kind: EventReferral}, {At: day(3), Kind: EventReferral}, {Kind: EventReferral}},
			want:   State{FirstSeen: day(3), Referrals: 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s State
			s.Seen(tt.seen)
			for _, e := range tt.events {
				s.Apply(e)
			}
			if !reflect.DeepEqual(s, tt.want) {
				t.Errorf("state\n got %+v\nwant %+v", s, tt.want)
			}
		})
	}
}

func TestStateSeen(t *testing.T) {
	var s State
	s.Seen(time.Time{})
	if !s.FirstSeen.IsZero() {
		t.Fatalf("zero time set FirstSeen to %v", s.FirstSeen)
	}
	for _, d := range []int{4, 6, 2, 3} {
		s.Seen(day(d))
	}
	if !s.FirstSeen.Equal(day(2)) {
		t.Fatalf("FirstSeen = %v, want %v", s.FirstSeen, day(2))
	}
}

func TestStateMergeFrom(t *testing.T) {
	a := State{CustomerID: "a"}
	a.Seen(day(1))
	for _, e := range []ProfileEvent{
		buy("o1", day(1), 100, "CNY"), buy("o3", day(3), 300, "CNY"), refund("o1", day(4), 30),
		{At: day(1), Kind: EventComplaint, ComplaintID: "c"}, {At: day(1), Kind: EventComplaint, ComplaintID: "a"},
		{At: day(2), Kind: EventSurvey, CSAT: i32(4), NPS: i32(5)},
		{At: day(1), Kind: EventContactLog}, {At: day(1), Kind: EventReferral},
	} {
		a.Apply(e)
	}
	b := State{CustomerID: "b"}
	b.Seen(day(0))
	for _, e := range []ProfileEvent{
		buy("o2", day(2), 200, "USD"), buy("o4", day(1), 400, "CNY"), refund("o2", day(3), 500),
		{At: day(1), Kind: EventComplaint, ComplaintID: "c"}, {At: day(1), Kind: EventComplaint, ComplaintID: "b"},
		{At: day(4), Kind: EventSurvey, CSAT: i32(3), NPS: i32(8)}, {At: day(4), Kind: EventSurvey, CSAT: i32(5)},
		{At: day(5), Kind: EventContactLog}, {At: day(1), Kind: EventReferral}, {At: day(1), Kind: EventReferral},
		refund("o4", day(5), 10), refund("o4", day(5), 10),
	} {
		b.Apply(e)
	}
	a.MergeFrom(&b)
	want := State{
		CustomerID: "a",
		FirstSeen:  day(0),
		Purchases: []Purchase{
			{OrderID: "o1", At: day(1), Amount: 100, Currency: "CNY", Refunded: 30},
			{OrderID: "o4", At: day(1), Amount: 400, Currency: "CNY", Refunded: 20},
			{OrderID: "o2", At: day(2), Amount: 200, Currency: "USD", Refunded: 200},
			{OrderID: "o3", At: day(3), Amount: 300, Currency: "CNY"},
		},
		ComplaintIDs: []string{"a", "b", "c"},
		LastContact:  day(5),
		CSATSum:      12, CSATCount: 3,
		NPS: 8, NPSAt: day(4), HasNPS: true,
		Referrals: 3,
		Refunds:   4,
	}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("merged\n got %+v\nwant %+v", a, want)
	}
	// A refund after the merge finds the merged-in purchase.
	a.Apply(refund("o4", day(6), 1000))
	if got := a.Purchases[1].Refunded; got != 400 {
		t.Fatalf("o4 refunded %d after merge, want 400", got)
	}

	// An older NPS does not replace a newer one; an empty state changes nothing.
	c := State{HasNPS: true, NPS: 10, NPSAt: day(9)}
	c.MergeFrom(&State{HasNPS: true, NPS: 1, NPSAt: day(8)})
	c.MergeFrom(&State{})
	c.MergeFrom(nil)
	if want := (State{HasNPS: true, NPS: 10, NPSAt: day(9)}); !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v, want %+v", c, want)
	}
}

func TestStateJSONRoundTrip(t *testing.T) {
	var s State
	s.CustomerID = "cust-1"
	for _, e := range []ProfileEvent{
		buy("o1", day(1), 100, "CNY"), refund("o1", day(2), 40),
		{At: day(2), Kind: EventComplaint, ComplaintID: "k"},
		{At: day(3), Kind: EventSurvey, CSAT: i32(4), NPS: i32(0)},
		{At: day(4), Kind: EventContactLog}, {At: day(4), Kind: EventReferral},
	} {
		s.Apply(e)
	}
	b, err := json.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	for _, long := range []string{"CustomerID", "Purchases", "Refunded", "OrderID"} {
		if strings.Contains(string(b), long) {
			t.Errorf("encoding %s uses the long name %s", b, long)
		}
	}
	var back State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, s) {
		t.Fatalf("round trip\n got %+v\nwant %+v", back, s)
	}
	if b, _ := json.Marshal(&State{CustomerID: "x"}); string(b) != `{"id":"x"}` {
		t.Errorf("empty state encodes as %s", b)
	}
}
