package domain

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"

	"rapport.dev/platform/binrec"
)

// randomState builds a state with every field exercised: zero and non-zero
// times, nil and filled slices, several currencies, unsorted and equal
// purchase times, extreme integers, and now and then times outside the
// UnixNano range.
func randomState(rng *rand.Rand) State {
	randTime := func() time.Time {
		switch rng.Intn(12) {
		case 0:
			return time.Time{}
		case 1:
			return time.Unix(rng.Int63n(maxStateUnix-minStateUnix)+minStateUnix, rng.Int63n(1e9)).UTC()
		case 2:
			return time.Unix(0, 0).UTC() // the epoch, not the zero time
		}
		return t0.Add(time.Duration(rng.Int63n(int64(2000*Day))) - 1000*Day).Truncate(time.Duration(1 + rng.Intn(3)*int(time.Millisecond)))
	}
	randInt := func() int64 {
		switch rng.Intn(6) {
		case 0:
			return 0
		case 1:
			return math.MinInt64 + rng.Int63n(3)
		case 2:
			return math.MaxInt64 - rng.Int63n(3)
		}
		return rng.Int63n(200000) - 1000
	}
	s := State{CustomerID: []string{"", "c-1", "客户-λ"}[rng.Intn(3)]}
	s.FirstSeen, s.LastContact, s.NPSAt = randTime(), randTime(), randTime()
	s.CSATSum, s.CSATCount, s.Referrals, s.Refunds = randInt(), randInt(), randInt(), randInt()
	s.NPS = []int32{0, -1, 10, math.MinInt32, math.MaxInt32}[rng.Intn(5)]
	s.HasNPS = rng.Intn(2) == 0
	if n := rng.Intn(4); n > 0 {
		for i := range n {
			s.ComplaintIDs = append(s.ComplaintIDs, []string{"", "k", "complaint-x"}[i%3])
		}
	}
	currencies := []string{"CNY", "USD", "", "EUR"}
	n := []int{0, 1, 2, 5, 40}[rng.Intn(5)]
	sorted := rng.Intn(3) > 0
	at := t0.Add(-time.Duration(rng.Int63n(int64(900 * Day))))
	for i := range n {
		p := Purchase{OrderID: []string{"", "o-" + string(rune('a'+i%26)), "order-long-identifier"}[rng.Intn(3)],
			Amount: randInt(), Currency: currencies[rng.Intn(len(currencies))], Refunded: randInt()}
		if sorted {
			if rng.Intn(5) > 0 { // else an equal time
				at = at.Add(time.Duration(rng.Int63n(int64(40 * Day))))
			}
			p.At = at
		} else {
			p.At = randTime()
		}
		s.Purchases = append(s.Purchases, p)
	}
	return s
}

func TestStateCodecRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(42))
	now := t0.Add(30 * Day)
	for i := range 5000 {
		s := randomState(rng)
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatalf("state %d: %v", i, err)
		}
		if b[0] != 1 {
			t.Fatalf("version byte %d", b[0])
		}
		var back State
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatalf("state %d: decode: %v\n%+v", i, err, s)
		}
		if !reflect.DeepEqual(back, s) {
			t.Fatalf("state %d: round trip\n got %+v\nwant %+v", i, back, s)
		}
		for _, cur := range []string{"", "CNY", "USD"} {
			if got, want := back.Features(now, cur), s.Features(now, cur); !reflect.DeepEqual(got, want) {
				t.Fatalf("state %d: features(%q)\n got %+v\nwant %+v", i, cur, got, want)
			}
		}
		// The binary form decodes to what the JSON form decoded to.
		js, err := json.Marshal(&s)
		if err != nil {
			t.Fatalf("state %d: json: %v", i, err)
		}
		var fromJSON State
		if err := json.Unmarshal(js, &fromJSON); err != nil {
			t.Fatal(err)
		}
		if !statesEqual(back, fromJSON) {
			t.Fatalf("state %d: binary and JSON decode differently\nbinary %+v\n  json %+v", i, back, fromJSON)
		}
		// Encoding is deterministic.
		if b2, _ := back.MarshalBinary(); string(b2) != string(b) {
			t.Fatalf("state %d: re-encoding differs", i)
		}
	}
}

func TestStateCodecEdges(t *testing.T) {
	for _, s := range []State{
		{},
		{CustomerID: "x", Purchases: []Purchase{}, ComplaintIDs: []string{}},
		{CustomerID: "x", FirstSeen: time.Unix(0, 0).UTC()},
		{CustomerID: "x", Purchases: []Purchase{{OrderID: "o", Currency: "CNY"}}}, // zero At
		{CustomerID: "x", Purchases: []Purchase{{At: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}, {At: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)}}},
	} {
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back State
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		want := s
		if len(want.Purchases) == 0 {
			want.Purchases = nil // as JSON's omitempty did
		}
		if len(want.ComplaintIDs) == 0 {
			want.ComplaintIDs = nil
		}
		if !reflect.DeepEqual(back, want) {
			t.Errorf("round trip\n got %+v\nwant %+v", back, want)
		}
	}
	if _, err := (&State{FirstSeen: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}).MarshalBinary(); err == nil {
		t.Error("year 10000 encoded")
	}
	good, _ := (&State{CustomerID: "c", Purchases: []Purchase{{OrderID: "o", At: t0, Amount: 5, Currency: "CNY"}}}).MarshalBinary()
	for name, bad := range map[string][]byte{
		"empty":    nil,
		"version":  append([]byte{2}, good[1:]...),
		"flags":    append([]byte{1, 0x80}, good[2:]...),
		"trailing": append(append([]byte{}, good...), 0),
		"short":    good[:len(good)-1],
	} {
		var s State
		err := s.UnmarshalBinary(bad)
		if err == nil {
			t.Errorf("%s: decoded %+v", name, s)
			continue
		}
		if !strings.HasPrefix(err.Error(), "domain: decode state: ") {
			t.Errorf("%s: %v does not say what failed to decode", name, err)
		}
		if malformed := name != "version" && name != "flags"; malformed != errors.Is(err, binrec.ErrMalformed) {
			t.Errorf("%s: %v wraps binrec.ErrMalformed: %v", name, err, !malformed)
		}
	}
	// Every truncation of a state with each kind of field is malformed.
	for name, s := range goldenStates() {
		b, _ := s.MarshalBinary()
		for n := range len(b) {
			if err := new(State).UnmarshalBinary(b[:n]); !errors.Is(err, binrec.ErrMalformed) {
				t.Errorf("%s truncated to %d of %d bytes: %v", name, n, len(b), err)
			}
		}
	}
}

// statesEqual compares states with times by instant.
func statesEqual(a, b State) bool {
	if !a.FirstSeen.Equal(b.FirstSeen) || !a.LastContact.Equal(b.LastContact) || !a.NPSAt.Equal(b.NPSAt) ||
		len(a.Purchases) != len(b.Purchases) {
		return false
	}
	for i := range a.Purchases {
		p, q := a.Purchases[i], b.Purchases[i]
		if !p.At.Equal(q.At) {
			return false
		}
		p.At, q.At = time.Time{}, time.Time{}
		if p != q {
			return false
		}
	}
	a.FirstSeen, a.LastContact, a.NPSAt, a.Purchases = time.Time{}, time.Time{}, time.Time{}, nil
	b.FirstSeen, b.LastContact, b.NPSAt, b.Purchases = time.Time{}, time.Time{}, time.Time{}, nil
	return reflect.DeepEqual(a, b)
}

func FuzzStateCodec(f *testing.F) {
	rng := rand.New(rand.NewSource(1))
	for range 20 {
		s := randomState(rng)
		b, err := s.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var s State
		if err := s.UnmarshalBinary(data); err != nil {
			return
		}
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encode of a decoded state: %v", err)
		}
		var back State
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatalf("decode of a re-encoded state: %v", err)
		}
		if !statesEqual(back, s) {
			t.Fatalf("round trip\n got %+v\nwant %+v", back, s)
		}
	})
}
