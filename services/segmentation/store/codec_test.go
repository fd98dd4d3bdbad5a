package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"rapport.dev/platform/binrec"
	"rapport.dev/services/segmentation/domain"
)

var codecTimes = []time.Time{
	time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2026, 11, 23, 7, 15, 42, 123456789, time.UTC),
	time.Date(1601, 1, 1, 0, 0, 0, 1, time.UTC),
}

var codecScores = []domain.Score{
	{},
	{R: 5, F: 1, M: 3, Group: domain.RfmGroup(4), Tier: domain.Tier(2), Quadrant: domain.Quadrant(3), Contribution: 123456789, Activity: domain.Activity(1)},
	{R: 1, F: 5, M: 5, Contribution: -4200},
	{Contribution: math.MaxInt64, Group: math.MaxInt32, Tier: math.MinInt32},
}

// The binary records decode to what was encoded, and the JSON records of
// files written before decode to the same values.
func TestRecordCodecsRoundTrip(t *testing.T) {
	for _, at := range codecTimes {
		for _, reason := range []string{"", "rule created", "timer: 天"} {
			m := membership{Since: at, Reason: reason}
			legacy, _ := json.Marshal(m)
			for name, raw := range map[string][]byte{"binary": m.appendTo(nil), "json": legacy} {
				got, err := decodeMembership(raw)
				if err != nil || !got.Since.Equal(m.Since) || got.Reason != m.Reason {
					t.Errorf("%s membership %+v decoded as %+v, %v", name, m, got, err)
				}
			}
			for _, in := range []bool{true, false} {
				h := historyEntry{Entered: in, Time: at, Reason: reason}
				legacy, _ := json.Marshal(h)
				for name, raw := range map[string][]byte{"binary": h.appendTo(nil), "json": legacy} {
					got, err := decodeHistory(raw)
					if err != nil || got.Entered != h.Entered || !got.Time.Equal(h.Time) || got.Reason != h.Reason {
						t.Errorf("%s history %+v decoded as %+v, %v", name, h, got, err)
					}
				}
			}
		}
	}
	for _, sc := range codecScores {
		legacy, _ := json.Marshal(sc)
		for name, raw := range map[string][]byte{"binary": appendScore(nil, sc), "json": legacy} {
			if got, err := decodeScore(raw); err != nil || got != sc {
				t.Errorf("%s score %+v decoded as %+v, %v", name, sc, got, err)
			}
		}
	}
	if got, err := decodeScore(nil); err != nil || got != (domain.Score{}) {
		t.Errorf("no scores record decoded as %+v, %v; want the zero score", got, err)
	}
}

// The encoding is the one the file keeps: a change to it breaks files
// already written, so it fails here first.
func TestRecordCodecsGolden(t *testing.T) {
	at := time.Date(2026, 3, 1, 0, 0, 0, 5, time.UTC) // Unix 1772323200
	for _, c := range []struct {
		name      string
		got, want []byte
	}{
		{"membership", membership{Since: at, Reason: "x"}.appendTo(nil),
			[]byte{1, 0x80, 0x86, 0x9c, 0x9a, 0x0d, 5, 1, 'x'}},
		{"history", historyEntry{Entered: true, Time: at, Reason: ""}.appendTo(nil),
			[]byte{1, 1, 0x80, 0x86, 0x9c, 0x9a, 0x0d, 5, 0}},
		{"score", appendScore(nil, domain.Score{R: 5, F: 1, M: 3, Group: 2, Tier: 1, Quadrant: 4, Contribution: -3, Activity: 1}),
			[]byte{1, 10, 2, 6, 4, 2, 8, 5, 2}},
	} {
		if string(c.got) != string(c.want) {
			t.Errorf("%s encodes as % x, want % x", c.name, c.got, c.want)
		}
	}
}

// Every cut of a record, and records with a wrong version, trailing bytes
// or out-of-range fields, are errors wrapping binrec.ErrMalformed, never a
// panic or a wrong value.
func TestRecordCodecsMalformed(t *testing.T) {
	at := codecTimes[1]
	valid := map[string][]byte{
		"membership": membership{Since: at, Reason: "rule created"}.appendTo(nil),
		"history":    historyEntry{Entered: true, Time: at, Reason: "rule created"}.appendTo(nil),
		"score":      appendScore(nil, codecScores[1]),
	}
	decoders := map[string]func([]byte) error{
		"membership": func(b []byte) error { _, err := decodeMembership(b); return err },
		"history":    func(b []byte) error { _, err := decodeHistory(b); return err },
		"score":      func(b []byte) error { _, err := decodeScore(b); return err },
	}
	for name, raw := range valid {
		dec := decoders[name]
		if err := dec(raw); err != nil {
			t.Fatalf("%s: valid record refused: %v", name, err)
		}
		bad := map[string][]byte{
			"version 2": append([]byte{2}, raw[1:]...),
			"trailing":  append(append([]byte{}, raw...), 0),
		}
		for n := 1; n < len(raw); n++ {
			bad[fmt.Sprintf("cut at %d", n)] = raw[:n]
		}
		if name == "history" {
			bad["entered byte 2"] = append([]byte{1, 2}, raw[2:]...)
		}
		if name == "score" {
			bad["R beyond int32"] = append([]byte{1}, append(binary.AppendVarint(nil, math.MaxInt32+1), raw[2:]...)...)
		}
		for what, b := range bad {
			if err := dec(b); !errors.Is(err, binrec.ErrMalformed) {
				t.Errorf("%s, %s (% x): %v, want binrec.ErrMalformed", name, what, b, err)
			}
		}
	}
}
