package domain

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the zones below must not depend on the host's zoneinfo

	"rapport.dev/platform/fault"
)

func mustRecurrence(t *testing.T, rule string) *Recurrence {
	t.Helper()
	r, err := ParseRecurrence(rule)
	if err != nil {
		t.Fatalf("ParseRecurrence(%q): %v", rule, err)
	}
	return r
}

// instants parses RFC 3339 instants, the expected values of the tests.
func instants(t *testing.T, ss ...string) []time.Time {
	t.Helper()
	out := make([]time.Time, len(ss))
	for i, s := range ss {
		out[i] = instant(t, s)
	}
	return out
}

func sameInstants(got, want []time.Time) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if !got[i].Equal(want[i]) {
			return false
		}
	}
	return true
}

func TestRecurrencePreview(t *testing.T) {
	shanghai := zone(t, "Asia/Shanghai")
	newYork := zone(t, "America/New_York")
	for _, tc := range []struct {
		name          string
		rule          string
		anchor, after string
		loc           *time.Location
		hour, minute  int
		n             int
		want          []string
	}{
		{
			name: "weekly Monday 10:00 in Shanghai is 02:00Z",
			rule: "FREQ=WEEKLY;BYDAY=MO", loc: shanghai, hour: 10,
			anchor: "2026-03-01T00:00:00Z", after: "2026-03-01T00:00:00Z", n: 3,
			want: []string{"2026-03-02T02:00:00Z", "2026-03-09T02:00:00Z", "2026-03-16T02:00:00Z"},
		},
		{
			// 07:00 Monday in Shanghai is 23:00 on Sunday in UTC: the
			// weekday is the customer's, not UTC's.
			name: "weekday is the local one",
			rule: "FREQ=WEEKLY;BYDAY=MO", loc: shanghai, hour: 7,
			anchor: "2026-03-01T00:00:00Z", after: "2026-03-01T00:00:00Z", n: 2,
			want: []string{"2026-03-01T23:00:00Z", "2026-03-08T23:00:00Z"},
		},
		{
			// 2026-03-01T20:00Z is Monday 2 March 04:00 in Shanghai (Sunday in
			// UTC), so a weekly rule without BYDAY repeats on Mondays.
			name: "weekly without BYDAY takes the anchor's local weekday",
			rule: "FREQ=WEEKLY", loc: shanghai, hour: 9, minute: 30,
			anchor: "2026-03-01T20:00:00Z", after: "2026-03-01T20:00:00Z", n: 2,
			want: []string{"2026-03-02T01:30:00Z", "2026-03-09T01:30:00Z"},
		},
		{
			// Clocks go forward on Sunday 2026-03-08: 10:00 EST is 15:00Z,
			// 10:00 EDT is 14:00Z.
			name: "New York stays at 10:00 local across spring forward",
			rule: "RRULE:FREQ=WEEKLY;BYDAY=MO", loc: newYork, hour: 10,
			anchor: "2026-02-23T12:00:00Z", after: "2026-02-23T12:00:00Z", n: 3,
			want: []string{"2026-02-23T15:00:00Z", "2026-03-02T15:00:00Z", "2026-03-09T14:00:00Z"},
		},
		{
			// Clocks go back on Sunday 2026-11-01.
			name: "New York stays at 10:00 local across fall back",
			rule: "FREQ=DAILY", loc: newYork, hour: 10,
			anchor: "2026-10-31T00:00:00Z", after: "2026-10-31T00:00:00Z", n: 3,
			want: []string{"2026-10-31T14:00:00Z", "2026-11-01T15:00:00Z", "2026-11-02T15:00:00Z"},
		},
		{
			// 02:30 does not exist on 2026-03-08 in New York; like every
			// plan (LocalAt) it moves to the end of the gap, 03:00 EDT.
			name: "a skipped local time moves to the end of the gap",
			rule: "FREQ=DAILY", loc: newYork, hour: 2, minute: 30,
			anchor: "2026-03-07T00:00:00Z", after: "2026-03-07T00:00:00Z", n: 3,
			want: []string{"2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"},
		},
		{
			// 01:30 happens twice on 2026-11-01 in New York (EDT, then EST);
			// the plan takes the first.
			name: "a repeated local time is the first one",
			rule: "FREQ=DAILY", loc: newYork, hour: 1, minute: 30,
			anchor: "2026-10-31T00:00:00Z", after: "2026-10-31T00:00:00Z", n: 3,
			want: []string{"2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"},
		},
		{
			// The anchor is Wednesday 7 January; its week (from Monday 5th)
			// is the first of the series, so Mondays fall on the 19th, then
			// every second week.
			name: "every second Monday counts weeks from the anchor's week",
			rule: "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO", loc: time.UTC, hour: 9,
			anchor: "2026-01-07T00:00:00Z", after: "2026-01-07T00:00:00Z", n: 3,
			want: []string{"2026-01-19T09:00:00Z", "2026-02-02T09:00:00Z", "2026-02-16T09:00:00Z"},
		},
		{
			name: "the 31st skips the months without one",
			rule: "FREQ=MONTHLY;BYMONTHDAY=31", loc: shanghai, hour: 10,
			anchor: "2026-01-01T00:00:00Z", after: "2026-01-01T00:00:00Z", n: 5,
			want: []string{"2026-01-31T02:00:00Z", "2026-03-31T02:00:00Z", "2026-05-31T02:00:00Z", "2026-07-31T02:00:00Z", "2026-08-31T02:00:00Z"},
		},
		{
			name: "COUNT ends the series",
			rule: "FREQ=DAILY;COUNT=3", loc: time.UTC, hour: 9,
			anchor: "2026-05-01T00:00:00Z", after: "2026-05-01T00:00:00Z", n: 10,
			want: []string{"2026-05-01T09:00:00Z", "2026-05-02T09:00:00Z", "2026-05-03T09:00:00Z"},
		},
		{
			// The anchor day's 09:00 had passed when the series started at
			// 15:00, so it is not an occurrence and COUNT does not count it.
			name: "an occurrence before the anchor instant is not in the series",
			rule: "FREQ=DAILY;COUNT=2", loc: time.UTC, hour: 9,
			anchor: "2026-05-01T15:00:00Z", after: "2026-04-01T00:00:00Z", n: 10,
			want: []string{"2026-05-02T09:00:00Z", "2026-05-03T09:00:00Z"},
		},
		{
			name: "COUNT counts from the anchor, not from after",
			rule: "FREQ=DAILY;COUNT=3", loc: time.UTC, hour: 9,
			anchor: "2026-05-01T00:00:00Z", after: "2026-05-02T09:00:00Z", n: 10,
			want: []string{"2026-05-03T09:00:00Z"},
		},
		{
			name: "a date UNTIL includes its local day",
			rule: "FREQ=DAILY;UNTIL=20260503", loc: shanghai, hour: 20,
			anchor: "2026-05-01T00:00:00Z", after: "2026-05-01T00:00:00Z", n: 10,
			want: []string{"2026-05-01T12:00:00Z", "2026-05-02T12:00:00Z", "2026-05-03T12:00:00Z"},
		},
		{
			name: "a local date-time UNTIL is compared with local time",
			rule: "FREQ=DAILY;UNTIL=20260503T195959", loc: shanghai, hour: 20,
			anchor: "2026-05-01T00:00:00Z", after: "2026-05-01T00:00:00Z", n: 10,
			want: []string{"2026-05-01T12:00:00Z", "2026-05-02T12:00:00Z"},
		},
		{
			name: "a UTC UNTIL is compared with the instant, inclusively",
			rule: "FREQ=DAILY;UNTIL=20260503T120000Z", loc: shanghai, hour: 20,
			anchor: "2026-05-01T00:00:00Z", after: "2026-05-01T00:00:00Z", n: 10,
			want: []string{"2026-05-01T12:00:00Z", "2026-05-02T12:00:00Z", "2026-05-03T12:00:00Z"},
		},
		{
			name: "after an occurrence, the next one",
			rule: "FREQ=WEEKLY;BYDAY=MO", loc: shanghai, hour: 10,
			anchor: "2026-03-01T00:00:00Z", after: "2026-03-09T02:00:00Z", n: 1,
			want: []string{"2026-03-16T02:00:00Z"},
		},
		{
			name: "n below one previews nothing",
			rule: "FREQ=DAILY", loc: time.UTC, hour: 9,
			anchor: "2026-05-01T00:00:00Z", after: "2026-05-01T00:00:00Z", n: 0,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRecurrence(t, tc.rule)
			got := r.Preview(instant(t, tc.anchor), instant(t, tc.after), tc.loc, tc.hour, tc.minute, tc.n)
			if want := instants(t, tc.want...); !sameInstants(got, want) {
				t.Errorf("Preview = %v, want %v", got, want)
			}
			for _, at := range got {
				if at.Location() != tc.loc {
					t.Errorf("Preview returned %v, want it in %v", at, tc.loc)
				}
			}
		})
	}
}

func TestRecurrenceNext(t *testing.T) {
	shanghai := zone(t, "Asia/Shanghai")
	weekly := mustRecurrence(t, "FREQ=WEEKLY;BYDAY=MO")
	anchor := instant(t, "2026-03-01T00:00:00Z")
	for _, tc := range []struct {
		after, want string
	}{
		{"2026-03-01T00:00:00Z", "2026-03-02T02:00:00Z"},
		{"2026-03-02T01:59:59Z", "2026-03-02T02:00:00Z"},
		{"2026-03-02T02:00:00Z", "2026-03-09T02:00:00Z"}, // strictly after
		{"2027-01-01T00:00:00Z", "2027-01-04T02:00:00Z"},
	} {
		if got := weekly.Next(anchor, instant(t, tc.after), shanghai, 10, 0); !got.Equal(instant(t, tc.want)) {
			t.Errorf("Next(after %s) = %v, want %s", tc.after, got, tc.want)
		}
	}

	for rule, after := range map[string]string{
		"FREQ=DAILY;COUNT=3":        "2026-03-03T02:00:00Z", // the third and last
		"FREQ=DAILY;UNTIL=20260303": "2026-03-03T02:00:00Z",
	} {
		r := mustRecurrence(t, rule)
		if got := r.Next(anchor, instant(t, after), shanghai, 10, 0); !got.IsZero() {
			t.Errorf("%s: Next after the last occurrence = %v, want the zero time", rule, got)
		}
		// The same series has not ended a day earlier.
		if got := r.Next(anchor, instant(t, after).AddDate(0, 0, -1), shanghai, 10, 0); !got.Equal(instant(t, after)) {
			t.Errorf("%s: Next before the last occurrence = %v, want %s", rule, got, after)
		}
	}

	// Not a time of day, or no zone: nothing is planned.
	for _, clock := range [][2]int{{24, 0}, {-1, 0}, {9, 60}, {9, -1}} {
		if got := weekly.Next(anchor, anchor, shanghai, clock[0], clock[1]); !got.IsZero() {
			t.Errorf("Next at %02d:%02d = %v, want the zero time", clock[0], clock[1], got)
		}
		if got := weekly.Preview(anchor, anchor, shanghai, clock[0], clock[1], 3); len(got) != 0 {
			t.Errorf("Preview at %02d:%02d = %v, want none", clock[0], clock[1], got)
		}
	}
	if got := weekly.Next(anchor, anchor, nil, 10, 0); !got.IsZero() {
		t.Errorf("Next without a zone = %v, want the zero time", got)
	}

	// February has no 30th: with this anchor the rule can never fire.
	feb := mustRecurrence(t, "FREQ=YEARLY;BYMONTH=2")
	if got := feb.Next(instant(t, "2026-01-30T00:00:00Z"), anchor, time.UTC, 9, 0); !got.IsZero() {
		t.Errorf("yearly in February anchored on the 30th: Next = %v, want the zero time", got)
	}
	if got := feb.Next(instant(t, "2026-01-28T00:00:00Z"), anchor, time.UTC, 9, 0); !got.Equal(instant(t, "2027-02-28T09:00:00Z")) {
		t.Errorf("yearly in February anchored on the 28th: Next = %v, want 2027-02-28T09:00:00Z", got)
	}
}

func TestParseRecurrenceAccepts(t *testing.T) {
	for in, want := range map[string]string{
		"FREQ=WEEKLY;INTERVAL=2;BYDAY=MO":             "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO",
		"RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO":       "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO",
		"  rrule:freq=monthly;byday=-1fr  ":           "FREQ=MONTHLY;BYDAY=-1FR",
		"FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29":         "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
		"FREQ=DAILY;UNTIL=20261231T160000Z":           "FREQ=DAILY;UNTIL=20261231T160000Z",
		"FREQ=MONTHLY;BYDAY=MO,TU;BYSETPOS=1;COUNT=4": "FREQ=MONTHLY;BYDAY=MO,TU;BYSETPOS=1;COUNT=4",
	} {
		r, err := ParseRecurrence(in)
		if err != nil {
			t.Errorf("ParseRecurrence(%q): %v", in, err)
			continue
		}
		if r.String() != want {
			t.Errorf("ParseRecurrence(%q).String() = %q, want %q", in, r.String(), want)
		}
	}
}

func TestParseRecurrenceRefuses(t *testing.T) {
	for in, wantInDescription := range map[string]string{
		"":                                   "empty",
		"RRULE:":                             "empty",
		"INTERVAL=2;BYDAY=MO":                "FREQ is required",
		"FREQ=HOURLY":                        "more often than daily",
		"FREQ=MINUTELY;INTERVAL=30":          "more often than daily",
		"FREQ=SECONDLY":                      "more often than daily",
		"FREQ=FORTNIGHTLY":                   "not a frequency",
		"FREQ=DAILY;BYHOUR=9,15":             "BYHOUR is not allowed",
		"FREQ=DAILY;BYMINUTE=0":              "BYMINUTE is not allowed",
		"FREQ=DAILY;BYSECOND=0":              "BYSECOND is not allowed",
		"FREQ=DAILY;DTSTART=20260101T000000": "DTSTART is not allowed",
		"DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY": "single RRULE line",
		"FREQ=DAILY;X-NAME=1":                        "not an RFC 5545 rule part",
		"FREQ=DAILY;BYEASTER=0":                      "not an RFC 5545 rule part",
		"FREQ=DAILY;":                                "not NAME=VALUE",
		"FREQ=DAILY;INTERVAL":                        "not NAME=VALUE",
		"FREQ=DAILY;INTERVAL=":                       "not NAME=VALUE",
		"FREQ=DAILY;FREQ=WEEKLY":                     "more than once",
		"FREQ=DAILY;INTERVAL=0":                      "positive whole number",
		"FREQ=DAILY;INTERVAL=two":                    "positive whole number",
		"FREQ=DAILY;COUNT=0":                         "positive whole number",
		"FREQ=DAILY;COUNT=-3":                        "positive whole number",
		"FREQ=DAILY;COUNT=3;UNTIL=20261231":          "COUNT and UNTIL",
		"FREQ=DAILY;UNTIL=2026":                      "UNTIL=2026 is not a date",
		"FREQ=DAILY;UNTIL=20261399":                  "is not a date",
		"FREQ=WEEKLY;BYDAY=XX":                       "not a valid RFC 5545 rule",
		"FREQ=MONTHLY;BYMONTHDAY=32":                 "not a valid RFC 5545 rule",
		"FREQ=YEARLY;BYMONTH=13":                     "not a valid RFC 5545 rule",
		"FREQ=WEEKLY;WKST=XX":                        "not a valid RFC 5545 rule",
		"FREQ=DAILY;BYWEEKNO=1":                      "BYWEEKNO is only allowed with FREQ=YEARLY",
		"FREQ=MONTHLY;BYYEARDAY=100":                 "BYYEARDAY is only allowed with FREQ=YEARLY",
		"FREQ=WEEKLY;BYMONTHDAY=1":                   "BYMONTHDAY is not allowed with FREQ=WEEKLY",
		"FREQ=WEEKLY;BYDAY=1MO":                      "numbered weekday",
		"FREQ=YEARLY;BYWEEKNO=1;BYDAY=1MO":           "numbered weekday is not allowed with BYWEEKNO",
		"FREQ=MONTHLY;BYSETPOS=1":                    "BYSETPOS needs another",
		"FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30":        "never fires",
		"FREQ=DAILY;BYMONTH=4;BYMONTHDAY=31":         "never fires",
	} {
		r, err := ParseRecurrence(in)
		if r != nil || !errors.Is(err, fault.ErrInvalid) {
			t.Errorf("ParseRecurrence(%q) = %v, %v; want an invalid-argument error", in, r, err)
			continue
		}
		var inv *fault.Invalid
		if !errors.As(err, &inv) || len(inv.Violations) != 1 || inv.Violations[0].Field != "recurrence" {
			t.Errorf("ParseRecurrence(%q) error %v: want one violation of field recurrence", in, err)
			continue
		}
		if d := inv.Violations[0].Description; !strings.Contains(d, wantInDescription) {
			t.Errorf("ParseRecurrence(%q) says %q; want it to mention %q", in, d, wantInDescription)
		}
	}
}

func TestRecurrenceJSON(t *testing.T) {
	type plan struct {
		Cadence *Recurrence `json:"cadence"`
	}
	b, err := json.Marshal(plan{Cadence: mustRecurrence(t, "rrule:freq=weekly;interval=2;byday=mo")})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"cadence":"FREQ=WEEKLY;INTERVAL=2;BYDAY=MO"}`; string(b) != want {
		t.Fatalf("Marshal = %s, want %s", b, want)
	}
	var back plan
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	// The decoded rule must evaluate, not merely print, like the original.
	got := back.Cadence.Next(instant(t, "2026-01-05T00:00:00Z"), instant(t, "2026-01-05T12:00:00Z"), time.UTC, 9, 0)
	if want := instant(t, "2026-01-19T09:00:00Z"); !got.Equal(want) {
		t.Errorf("decoded Next = %v, want %v", got, want)
	}

	err = json.Unmarshal([]byte(`{"cadence":"FREQ=HOURLY"}`), &back)
	if !errors.Is(err, fault.ErrInvalid) {
		t.Errorf("Unmarshal of an hourly rule: %v, want an invalid-argument error", err)
	}
}
