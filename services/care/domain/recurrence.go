package domain

import (
	"fmt"
	"iter"
	"strconv"
	"strings"
	"time"

	"github.com/teambition/rrule-go"

	"rapport.dev/platform/fault"
)

// recurrenceField is the field named by every error ParseRecurrence returns.
const recurrenceField = "recurrence"

// Recurrence is a periodic revisit cadence: an RFC 5545 recurrence rule
// (the body of an RRULE line, e.g. "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO").
//
// A rule chooses local calendar days only. The time of day is the plan's
// (Next's hour and minute) and the series start is the customer's (Next's
// anchor), so a rule may not carry DTSTART, BYHOUR, BYMINUTE or BYSECOND.
// Care work is at most daily: FREQ is required and must be YEARLY, MONTHLY,
// WEEKLY or DAILY.
//
// The rule is evaluated on the customer's local calendar:
//   - The series starts on the anchor's local day. WEEKLY, MONTHLY and
//     YEARLY rules without BYxxx parts take their weekday, month day and
//     month from that day, as RFC 5545 takes them from DTSTART.
//   - Each chosen day is an occurrence at hour:minute local time, the
//     instant LocalAt gives, so a recurrence crosses daylight-saving changes
//     as every other plan does (a skipped time moves to the end of the gap,
//     a repeated one is the first of the two).
//   - An occurrence before the anchor instant (the anchor day's time had
//     already passed when the series started) is not part of the series
//     and is not counted by COUNT.
//   - Days a rule names but a month lacks do not occur: BYMONTHDAY=31 skips
//     the months without a 31st (RFC 5545 §3.3.10).
//   - UNTIL is inclusive. As a date (20261231) it is the last local day; as
//     a local date-time (20261231T100000) it is compared with the local
//     occurrence; as UTC (20261231T020000Z) with the instant.
//
// Recurrence marshals to and from its rule text, so plans can store it.
// Make one with ParseRecurrence or UnmarshalText; the zero value is no rule.
type Recurrence struct {
	rule  string        // normalised body, as String returns it
	opt   rrule.ROption // the rule without COUNT and UNTIL, which occurrences applies
	count int           // COUNT, 0 when absent
	until recurrenceUntil
}

// recurrenceUntil is a parsed UNTIL. civil holds a local wall time written
// as if it were UTC, the form occurrences works in.
type recurrenceUntil struct {
	kind    untilKind
	civil   time.Time // untilDate (the day's last instant), untilLocal
	instant time.Time // untilUTC
}

type untilKind int

const (
	untilNone untilKind = iota
	untilDate
	untilLocal
	untilUTC
)

// recurrenceProbeStart is the series start ParseRecurrence uses to refuse
// rules that can never fire. A first of the month makes every default a
// rule takes from its start exist in every month.
var recurrenceProbeStart = time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC)

// ParseRecurrence parses an RRULE body, with or without the "RRULE:"
// prefix and in any letter case. It returns a *fault.Invalid naming the
// field "recurrence" when the rule is not valid RFC 5545, fires more often
// than daily, sets a start or a time of day (see Recurrence), or can never
// fire.
func ParseRecurrence(rule string) (*Recurrence, error) {
	r, problem := parseRecurrence(rule)
	if problem != "" {
		return nil, fault.InvalidField(recurrenceField, "%s", problem)
	}
	return r, nil
}

// parseRecurrence returns the rule, or a description of its first problem.
func parseRecurrence(rule string) (*Recurrence, string) {
	body := strings.ToUpper(strings.TrimSpace(rule))
	body = strings.TrimPrefix(body, "RRULE:")
	if body == "" {
		return nil, "is empty; want an RFC 5545 rule such as FREQ=WEEKLY;BYDAY=MO"
	}
	if strings.ContainsAny(body, "\r\n") {
		return nil, "must be a single RRULE line; the series start is the plan's anchor, not a DTSTART"
	}

	parts := make(map[string]string)
	var kept []string // what rrule-go evaluates: everything but COUNT and UNTIL
	for part := range strings.SplitSeq(body, ";") {
		key, value, ok := strings.Cut(part, "=")
		if !ok || key == "" || value == "" {
			return nil, fmt.Sprintf("rule part %q is not NAME=VALUE", part)
		}
		if _, dup := parts[key]; dup {
			return nil, fmt.Sprintf("%s appears more than once", key)
		}
		parts[key] = value
		switch key {
		case "FREQ", "INTERVAL", "WKST", "BYSETPOS", "BYMONTH", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYDAY":
			kept = append(kept, part)
		case "COUNT", "UNTIL":
		case "DTSTART":
			return nil, "DTSTART is not allowed: the series starts at the plan's anchor"
		case "BYHOUR", "BYMINUTE", "BYSECOND":
			return nil, fmt.Sprintf("%s is not allowed: the time of day is the plan's, and care work is at most daily", key)
		default:
			return nil, fmt.Sprintf("%s is not an RFC 5545 rule part", key)
		}
	}

	switch freq := parts["FREQ"]; freq {
	case "YEARLY", "MONTHLY", "WEEKLY", "DAILY":
	case "HOURLY", "MINUTELY", "SECONDLY":
		return nil, fmt.Sprintf("FREQ=%s fires more often than daily; care work is at most daily", freq)
	case "":
		return nil, "FREQ is required (YEARLY, MONTHLY, WEEKLY or DAILY)"
	default:
		return nil, fmt.Sprintf("FREQ=%s is not a frequency; want YEARLY, MONTHLY, WEEKLY or DAILY", freq)
	}

	r := &Recurrence{rule: body}
	for _, key := range []string{"INTERVAL", "COUNT"} {
		value, ok := parts[key]
		if !ok {
			continue
		}
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 {
			return nil, fmt.Sprintf("%s=%s must be a positive whole number", key, value)
		}
		if key == "COUNT" {
			r.count = n
		}
	}
	if until, ok := parts["UNTIL"]; ok {
		if r.count > 0 {
			return nil, "COUNT and UNTIL cannot both be set"
		}
		u, err := parseRecurrenceUntil(until)
		if err != nil {
			return nil, fmt.Sprintf("UNTIL=%s is not a date (20261231), a local date-time (20261231T100000) or a UTC date-time (20261231T020000Z)", until)
		}
		r.until = u
	}
	if problem := checkRulePartCombinations(parts); problem != "" {
		return nil, problem
	}

	opt, err := rrule.StrToROption(strings.Join(kept, ";"))
	if err != nil {
		return nil, fmt.Sprintf("not a valid RFC 5545 rule: %v", err)
	}
	r.opt = *opt
	probe := r.opt
	probe.Dtstart = recurrenceProbeStart
	set, err := rrule.NewRRule(probe)
	if err != nil {
		return nil, fmt.Sprintf("not a valid RFC 5545 rule: %v", err)
	}
	// A rule that picks no day (BYMONTH=2;BYMONTHDAY=30) would make every
	// evaluation search to the year 9999; refuse it once, here.
	if _, ok := set.Iterator()(); !ok {
		return nil, "never fires: no calendar day satisfies all its parts"
	}
	return r, ""
}

// checkRulePartCombinations enforces the RFC 5545 §3.3.10 table of which
// BYxxx parts each frequency may use; rrule-go silently ignores some misuse.
func checkRulePartCombinations(parts map[string]string) string {
	freq := parts["FREQ"]
	has := func(key string) bool { _, ok := parts[key]; return ok }
	switch {
	case has("BYWEEKNO") && freq != "YEARLY":
		return "BYWEEKNO is only allowed with FREQ=YEARLY"
	case has("BYYEARDAY") && freq != "YEARLY":
		return "BYYEARDAY is only allowed with FREQ=YEARLY"
	case has("BYMONTHDAY") && freq == "WEEKLY":
		return "BYMONTHDAY is not allowed with FREQ=WEEKLY"
	case has("BYSETPOS") && !(has("BYMONTH") || has("BYMONTHDAY") || has("BYYEARDAY") || has("BYWEEKNO") || has("BYDAY")):
		return "BYSETPOS needs another BYxxx part to select from"
	}
	if days, ok := parts["BYDAY"]; ok {
		for day := range strings.SplitSeq(days, ",") {
			if len(day) <= 2 { // a plain weekday, MO..SU
				continue
			}
			if freq != "MONTHLY" && freq != "YEARLY" {
				return fmt.Sprintf("BYDAY=%s: a numbered weekday is only allowed with FREQ=MONTHLY or FREQ=YEARLY", day)
			}
			if has("BYWEEKNO") {
				return fmt.Sprintf("BYDAY=%s: a numbered weekday is not allowed with BYWEEKNO", day)
			}
		}
	}
	return ""
}

func parseRecurrenceUntil(s string) (recurrenceUntil, error) {
	switch len(s) {
	case len(rrule.DateFormat):
		t, err := time.Parse(rrule.DateFormat, s)
		return recurrenceUntil{kind: untilDate, civil: t.AddDate(0, 0, 1).Add(-time.Nanosecond)}, err
	case len(rrule.LocalDateTimeFormat):
		t, err := time.Parse(rrule.LocalDateTimeFormat, s)
		return recurrenceUntil{kind: untilLocal, civil: t}, err
	default:
		t, err := time.Parse(rrule.DateTimeFormat, s)
		return recurrenceUntil{kind: untilUTC, instant: t}, err
	}
}

// String returns the rule as parsed: upper case, without "RRULE:".
func (r *Recurrence) String() string { return r.rule }

// MarshalText returns the rule text.
func (r *Recurrence) MarshalText() ([]byte, error) { return []byte(r.rule), nil }

// UnmarshalText parses rule text as ParseRecurrence does.
func (r *Recurrence) UnmarshalText(text []byte) error {
	parsed, err := ParseRecurrence(string(text))
	if err != nil {
		return err
	}
	*r = *parsed
	return nil
}

// Next returns the first occurrence strictly after after of the series
// that starts at anchor (e.g. when the customer entered the tier), with
// occurrences at hour:minute in loc, the customer's time zone. It returns
// the zero time when the series has ended (COUNT, UNTIL) before after, or
// cannot fire for this anchor (FREQ=YEARLY;BYMONTH=2 anchored on the
// 30th), and, like the planning functions of calendar.go, when loc is nil
// or hour:minute is not a time of day (see ValidateClock). As there,
// instants are expressed in loc: compare them with Equal, store them in UTC.
func (r *Recurrence) Next(anchor, after time.Time, loc *time.Location, hour, minute int) time.Time {
	for at := range r.occurrences(anchor, loc, hour, minute) {
		if at.After(after) {
			return at
		}
	}
	return time.Time{}
}

// Preview returns the next n occurrences strictly after after, as Next
// defines them, for showing a customer's upcoming care. It returns fewer
// when the series ends first, and none when n < 1.
func (r *Recurrence) Preview(anchor, after time.Time, loc *time.Location, hour, minute, n int) []time.Time {
	if n < 1 {
		return nil
	}
	out := make([]time.Time, 0, min(n, 64))
	for at := range r.occurrences(anchor, loc, hour, minute) {
		if !at.After(after) {
			continue
		}
		out = append(out, at)
		if len(out) == n {
			break
		}
	}
	return out
}

// occurrences yields the series' instants, in loc, in order. rrule-go runs
// on local wall times written as UTC, so that its day arithmetic never
// meets a daylight-saving change; LocalAt turns each chosen day into an
// instant only at the end.
func (r *Recurrence) occurrences(anchor time.Time, loc *time.Location, hour, minute int) iter.Seq[time.Time] {
	return func(yield func(time.Time) bool) {
		if loc == nil || ValidateClock(hour, minute) != nil {
			return
		}
		y, m, d := anchor.In(loc).Date()
		opt := r.opt
		opt.Dtstart = time.Date(y, m, d, hour, minute, 0, 0, time.UTC)
		rule, err := rrule.NewRRule(opt)
		if err != nil {
			return // unreachable: ParseRecurrence checked the same options
		}
		next := rule.Iterator()
		counted := 0
		for {
			wall, ok := next()
			if !ok {
				return
			}
			at := LocalAt(CivilDate{Year: wall.Year(), Month: wall.Month(), Day: wall.Day()}, hour, minute, loc)
			switch r.until.kind {
			case untilDate, untilLocal:
				if wall.After(r.until.civil) {
					return
				}
			case untilUTC:
				if at.After(r.until.instant) {
					return
				}
			}
			if at.Before(anchor) {
				continue
			}
			if !yield(at) {
				return
			}
			counted++
			if r.count > 0 && counted == r.count {
				return
			}
		}
	}
}
