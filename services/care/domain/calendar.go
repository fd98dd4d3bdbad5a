package domain

import (
	"strconv"
	"time"

	"github.com/golang-module/carbon/v2/calendar/lunar"

	"rapport.dev/platform/fault"
)

// This file answers "when, in the customer's time zone": a wall-clock time on
// a local day, the next birthday (solar or lunar), the next holiday, and the
// moves into working hours and out of quiet hours. Every function is pure:
// the present is passed in as after or t, never read from a clock.
//
// Results are instants (time.Time) expressed in the customer's location;
// compare them with Equal, store them in UTC.
//
// Functions that plan something return the zero Time when their arguments
// are invalid (see the Validate methods, ValidateClock and ValidateLunarDate,
// which callers run at the edge to report the bad field) or when the date
// lies outside the lunar table (Chinese years 1900–2100).

// CivilDate is a day of the Gregorian calendar, without a time zone: the
// customer's "20 May", which starts at a different instant in every zone.
type CivilDate struct {
	Year  int
	Month time.Month
	Day   int
}

// dateOf is the local day of t in loc.
func dateOf(t time.Time, loc *time.Location) CivilDate {
	y, m, d := t.In(loc).Date()
	return CivilDate{Year: y, Month: m, Day: d}
}

func (d CivilDate) weekday() time.Weekday {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC).Weekday()
}

func (d CivilDate) addDays(n int) CivilDate {
	y, m, dd := time.Date(d.Year, d.Month, d.Day+n, 0, 0, 0, 0, time.UTC).Date()
	return CivilDate{Year: y, Month: m, Day: dd}
}

// LocalAt returns the instant at which clocks in loc show hour:minute on
// day. Out-of-range fields are normalized as by time.Date (24:00 is the next
// day's 00:00). loc must not be nil.
//
// Daylight-saving changes make some wall-clock times not exist and others
// happen twice; the rule, chosen so that a plan is never dropped and never
// sent twice, is:
//   - in a spring-forward gap (02:30 on 2026-03-08 in New York), the plan
//     moves forward to the first instant after the gap (03:00 EDT), the
//     earliest moment the customer's clock reaches the planned time;
//   - in a fall-back overlap (01:30 on 2026-11-01 in New York), the plan
//     takes the first of the two instants (01:30 EDT, not 01:30 EST).
//
// time.Date leaves both cases unspecified ("the choice of time zone, and
// therefore the time, is not guaranteed"), hence this function.
func LocalAt(day CivilDate, hour, minute int, loc *time.Location) time.Time {
	at, afterGap := instantsAt(wallTime(day, hour*60+minute), loc)
	if len(at) > 0 {
		return at[0]
	}
	return afterGap
}

// localAtOrAfter is like LocalAt but, in a fall-back overlap, takes the first
// of the two instants that is not before notBefore: the end of a quiet
// period that t lies in, or a working-day start still ahead of t.
func localAtOrAfter(day CivilDate, minuteOfDay int, loc *time.Location, notBefore time.Time) time.Time {
	at, afterGap := instantsAt(wallTime(day, minuteOfDay), loc)
	for _, x := range at {
		if !x.Before(notBefore) {
			return x
		}
	}
	if len(at) > 0 {
		return at[len(at)-1]
	}
	return afterGap
}

// wallTime carries a wall-clock reading in the fields of a UTC time, so that
// it can be compared with what the clocks of another zone show.
func wallTime(day CivilDate, minuteOfDay int) time.Time {
	return time.Date(day.Year, day.Month, day.Day, 0, minuteOfDay, 0, 0, time.UTC)
}

func wallOf(t time.Time) time.Time {
	y, m, d := t.Date()
	h, mi, s := t.Clock()
	return time.Date(y, m, d, h, mi, s, t.Nanosecond(), time.UTC)
}

// instantsAt returns the instants, earliest first, at which clocks in loc
// read wall: one normally, two in a fall-back overlap, none in a
// spring-forward gap, in which case afterGap is the instant the gap ends.
//
// The offsets in force a day before and a day after bracket any transition
// near wall (offsets stay within ±14 h); each is tried in turn. This
// assumes one offset change at most within those two days, as in every
// daylight-saving rule (and in whole skipped days, such as Samoa's
// 2011-12-30, which read as one long gap).
func instantsAt(wall time.Time, loc *time.Location) (at []time.Time, afterGap time.Time) {
	_, before := wall.Add(-24 * time.Hour).In(loc).Zone()
	_, after := wall.Add(24 * time.Hour).In(loc).Zone()
	offsets := []int{before}
	if after != before {
		offsets = append(offsets, after)
	}
	for _, off := range offsets {
		t := wall.Add(-time.Duration(off) * time.Second).In(loc)
		if wallOf(t).Equal(wall) {
			at = append(at, t)
		}
	}
	if len(at) == 2 && at[1].Before(at[0]) {
		at[0], at[1] = at[1], at[0]
	}
	if len(at) > 0 {
		return at, time.Time{}
	}
	if after <= before {
		// No instant yet no gap: two changes within the bracket. Rare
		// enough to leave the reading to time.Date.
		return nil, time.Date(wall.Year(), wall.Month(), wall.Day(), wall.Hour(), wall.Minute(), 0, 0, loc)
	}
	// Spring forward: read with the old offset, wall lands past the
	// transition, inside the new zone period, which starts where the gap ends.
	t := wall.Add(-time.Duration(before) * time.Second).In(loc)
	start, _ := t.ZoneBounds()
	if start.IsZero() {
		return nil, t
	}
	return nil, start.In(loc)
}

// ValidateClock checks a planned local time of day.
func ValidateClock(hour, minute int) error {
	var v fault.Violations
	checkClock(&v, hour, minute)
	return v.Err()
}

func checkClock(v *fault.Violations, hour, minute int) {
	if hour < 0 || hour > 23 {
		v.Add("hour", "must be between 0 and 23, got %d", hour)
	}
	if minute < 0 || minute > 59 {
		v.Add("minute", "must be between 0 and 59, got %d", minute)
	}
}

func validClock(hour, minute int) bool { return ValidateClock(hour, minute) == nil }

func isLeapYear(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// daysIn is the length of month m in Gregorian year y.
func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// nextOccurrence returns the first planned instant strictly after `after` of
// a yearly date. dateIn gives the date in year y of the date's own calendar
// (Gregorian or Chinese); years y-1 to y+2 around after's local year cover
// every case, since a Chinese year starts between 21 January and
// 20 February, and their dates come in order.
func nextOccurrence(dateIn func(y int) (CivilDate, bool), after time.Time, loc *time.Location, hour, minute int) time.Time {
	if loc == nil || !validClock(hour, minute) {
		return time.Time{}
	}
	y := dateOf(after, loc).Year
	for year := y - 1; year <= y+2; year++ {
		day, ok := dateIn(year)
		if !ok {
			continue
		}
		if at := LocalAt(day, hour, minute, loc); at.After(after) {
			return at
		}
	}
	return time.Time{}
}

// Birthday is a customer's date of birth in the Gregorian calendar. Year is
// 0 when unknown (many customers give only the day and month).
type Birthday struct {
	Year  int
	Month time.Month
	Day   int
}

// Validate reports the fields that do not make a date of birth.
func (b Birthday) Validate() error {
	var v fault.Violations
	if b.Year < 0 || b.Year > 9999 {
		v.Add("year", "must be between 1 and 9999, or 0 when unknown; got %d", b.Year)
	}
	checkMonthDay(&v, b.Month, b.Day)
	if b.Year > 0 && b.Month == time.February && b.Day == 29 && !isLeapYear(b.Year) {
		v.Add("day", "%d is not a leap year, it has no 29 February", b.Year)
	}
	return v.Err()
}

// checkMonthDay accepts any day that exists in some year, 29 February
// included.
func checkMonthDay(v *fault.Violations, m time.Month, d int) {
	if m < time.January || m > time.December {
		v.Add("month", "must be between 1 and 12, got %d", m)
		return
	}
	if max := daysIn(2000, m); d < 1 || d > max {
		v.Add("day", "must be between 1 and %d for %s, got %d", max, m, d)
	}
}

// observedIn is the day the birthday is celebrated in Gregorian year y.
//
// Someone born on 29 February is celebrated on 28 February in common years.
// That is the usual CRM convention, for two reasons: the greeting stays in
// the birth month, so the customer remains in February's birthday lists,
// campaigns and month-of-birth segments; and it comes the day before rather
// than the day after, and a wish a day early reads as attentive, a day late
// as forgotten. (Some laws count legal age from 1 March instead; this rule
// is about greetings, not age.)
func (b Birthday) observedIn(y int) CivilDate {
	d := CivilDate{Year: y, Month: b.Month, Day: b.Day}
	if b.Month == time.February && b.Day == 29 && !isLeapYear(y) {
		d.Day = 28
	}
	return d
}

// NextBirthday returns the first greeting instant strictly after `after`: the
// birthday's local day in loc at hour:minute (placed by LocalAt's rule), on
// 28 February in common years for a 29 February birthday. When the birth
// year is known, there is no greeting before the first anniversary.
func NextBirthday(birth Birthday, after time.Time, loc *time.Location, hour, minute int) time.Time {
	if birth.Validate() != nil {
		return time.Time{}
	}
	return nextOccurrence(func(y int) (CivilDate, bool) {
		return birth.observedIn(y), y > birth.Year
	}, after, loc, hour, minute)
}

// The Chinese lunisolar calendar is not arithmetic: a month starts on the
// day of an astronomical new moon (reckoned at UTC+8), and leap months are
// placed by the solar terms. Computing it needs ephemerides; programs use a
// published table instead. carbon's lunar package carries that table for
// Chinese years 1900–2100, so we use it rather than keep a copy of our own.
//
// carbon's ToGregorian builds its result from a day count at UTC+8 midnight,
// so the date is read back in that fixed zone. The conversion is a date to
// date mapping: a customer in New York celebrates Mid-Autumn on the same
// Gregorian date as Beijing, as the published calendar says.
var chinaTime = time.FixedZone("UTC+8", 8*60*60)

const minLunarYear, maxLunarYear = 1900, 2100

// leapMonthOf is the number of the month that year doubles, 0 if none.
func leapMonthOf(year int) int {
	if year < minLunarYear || year > maxLunarYear {
		return 0
	}
	return lunar.FromLunar(year, 1, 1, 0, 0, 0, false).LeapMonth()
}

// lunarMonthStart is the Gregorian date of the first day of a lunar month
// (the leap month when leap).
func lunarMonthStart(year, month int, leap bool) (CivilDate, bool) {
	if year < minLunarYear || year > maxLunarYear || (leap && leapMonthOf(year) != month) {
		return CivilDate{}, false
	}
	g := lunar.FromLunar(year, month, 1, 0, 0, 0, leap).ToGregorian()
	if g.Error != nil || g.Time.IsZero() {
		return CivilDate{}, false
	}
	return dateOf(g.Time, chinaTime), true
}

// lunarMonthDays is the length of a lunar month, 29 or 30 days: the distance
// to the start of the month that follows it (the leap month follows the
// ordinary month of its number).
func lunarMonthDays(year, month int, leap bool) (int, bool) {
	start, ok := lunarMonthStart(year, month, leap)
	if !ok {
		return 0, false
	}
	ny, nm, nleap := year, month+1, false
	switch {
	case !leap && leapMonthOf(year) == month:
		nm, nleap = month, true
	case month == 12:
		ny, nm = year+1, 1
	}
	next, ok := lunarMonthStart(ny, nm, nleap)
	if !ok {
		return 0, false
	}
	return int(civilMidnight(next).Sub(civilMidnight(start)).Hours() / 24), true
}

func civilMidnight(d CivilDate) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC)
}

// lunarToGregorian returns the Gregorian date of a Chinese date, and false
// when the date does not exist (a 30th in a 29-day month, a leap month the
// year does not have) or lies outside the table.
//
// carbon v2.3.12 converts this way correctly but checks neither case, and
// its Gregorian-to-lunar answer cannot settle them: Lunar.IsLeapMonth
// reports month == LeapMonth(), so the ordinary month before a leap month
// reads as leap too (2025-07-24, 六月三十, comes back as 闰六月). Hence the
// month lengths from month starts, and no round trip.
func lunarToGregorian(year, month, day int, leap bool) (CivilDate, bool) {
	n, ok := lunarMonthDays(year, month, leap)
	if !ok || day < 1 || day > n {
		return CivilDate{}, false
	}
	start, _ := lunarMonthStart(year, month, leap)
	return start.addDays(day - 1), true
}

// ValidateLunarDate checks a month and day of the Chinese calendar.
func ValidateLunarDate(month, day int) error {
	var v fault.Violations
	if month < 1 || month > 12 {
		v.Add("month", "must be between 1 and 12, got %d", month)
	}
	if day < 1 || day > 30 {
		v.Add("day", "must be between 1 and 30, got %d", day)
	}
	return v.Err()
}

// lunarObservedIn is the Gregorian day a lunar birthday is celebrated in
// Chinese year y. Two rules fill the calendar's holes:
//   - a birthday in a leap month (闰月) is celebrated in that leap month in
//     years that have it, and otherwise in the ordinary month of the same
//     number, which is the month the leap month repeats — most years have
//     no leap month at all, and the customer still has a birthday;
//   - a birthday on the 30th is celebrated on the 29th in years when that
//     month is short (lunar months have 29 or 30 days), the last day of the
//     month, just as a 29 February birthday moves to 28 February.
func lunarObservedIn(y, month, day int, leap bool) (CivilDate, bool) {
	inLeap := leap && leapMonthOf(y) == month
	if d, ok := lunarToGregorian(y, month, day, inLeap); ok {
		return d, true
	}
	if day == 30 {
		return lunarToGregorian(y, month, 29, inLeap)
	}
	return CivilDate{}, false
}

// NextLunarBirthday returns the first greeting instant strictly after
// `after` for a birthday kept in the Chinese calendar (农历生日): the next
// Gregorian day whose Chinese date is lunarMonth/lunarDay (leapMonth for a
// birth in a leap month), at hour:minute in loc. See lunarObservedIn for the
// leap-month and 30th-day rules. It is the zero Time past Chinese year 2100.
func NextLunarBirthday(lunarMonth, lunarDay int, leapMonth bool, after time.Time, loc *time.Location, hour, minute int) time.Time {
	if ValidateLunarDate(lunarMonth, lunarDay) != nil {
		return time.Time{}
	}
	return nextOccurrence(func(y int) (CivilDate, bool) {
		return lunarObservedIn(y, lunarMonth, lunarDay, leapMonth)
	}, after, loc, hour, minute)
}

// Holiday is a yearly greeting date: a Festival of the Chinese calendar or a
// FixedDate of the Gregorian one.
type Holiday interface {
	// dateIn is the holiday's Gregorian date in year y of its own calendar.
	dateIn(y int) (CivilDate, bool)
}

// Festival is a festival of the Chinese calendar, on a fixed day of an
// ordinary (never leap) lunar month.
type Festival int

// The festivals care plans greet. The zero value is no festival.
const (
	SpringFestival      Festival = iota + 1 // 春节, 1st day of the 1st month (正月初一)
	LanternFestival                         // 元宵节, 15th of the 1st month (正月十五)
	DragonBoatFestival                      // 端午节, 5th of the 5th month (五月初五)
	MidAutumnFestival                       // 中秋节, 15th of the 8th month (八月十五)
	DoubleNinthFestival                     // 重阳节, 9th of the 9th month (九月初九)
)

var festivalDates = map[Festival][2]int{
	SpringFestival:      {1, 1},
	LanternFestival:     {1, 15},
	DragonBoatFestival:  {5, 5},
	MidAutumnFestival:   {8, 15},
	DoubleNinthFestival: {9, 9},
}

var festivalNames = map[Festival]string{
	SpringFestival:      "spring_festival",
	LanternFestival:     "lantern_festival",
	DragonBoatFestival:  "dragon_boat_festival",
	MidAutumnFestival:   "mid_autumn_festival",
	DoubleNinthFestival: "double_ninth_festival",
}

// String names the festival in snake case, e.g. "mid_autumn_festival".
func (f Festival) String() string {
	if n, ok := festivalNames[f]; ok {
		return n
	}
	return "festival(" + strconv.Itoa(int(f)) + ")"
}

// LunarDate returns the festival's lunar month and day, ok false for an
// unknown Festival.
func (f Festival) LunarDate() (month, day int, ok bool) {
	md, ok := festivalDates[f]
	return md[0], md[1], ok
}

func (f Festival) dateIn(y int) (CivilDate, bool) {
	month, day, ok := f.LunarDate()
	if !ok {
		return CivilDate{}, false
	}
	return lunarToGregorian(y, month, day, false)
}

// FixedDate is a holiday on the same Gregorian day every year, such as New
// Year's Day (FixedDate{time.January, 1}), National Day (FixedDate{time.October, 1})
// or Christmas (FixedDate{time.December, 25}).
type FixedDate struct {
	Month time.Month
	Day   int
}

// Validate reports the fields that do not make a yearly date. 29 February
// is refused: it is not a yearly date, and a holiday has no owner to
// celebrate early as a birthday has.
func (f FixedDate) Validate() error {
	var v fault.Violations
	checkMonthDay(&v, f.Month, f.Day)
	if f.Month == time.February && f.Day == 29 {
		v.Add("day", "29 February is not a yearly date")
	}
	return v.Err()
}

func (f FixedDate) dateIn(y int) (CivilDate, bool) {
	return CivilDate{Year: y, Month: f.Month, Day: f.Day}, f.Validate() == nil
}

// NextHoliday returns the first greeting instant strictly after `after` for
// holiday h: its local day in loc at hour:minute. Lunar festivals fall on the
// Gregorian date the Chinese calendar gives, in every time zone.
func NextHoliday(h Holiday, after time.Time, loc *time.Location, hour, minute int) time.Time {
	if h == nil {
		return time.Time{}
	}
	return nextOccurrence(h.dateIn, after, loc, hour, minute)
}

// minutesPerDay bounds WorkingHours and QuietHours.
const minutesPerDay = 24 * 60

// WorkingHours is when an owner works, on the customer's local clock: from
// Start to End, in minutes after local midnight (End exclusive, Start before
// End, so no night shifts), on Days.
type WorkingHours struct {
	Start, End int
	Days       []time.Weekday
}

// Validate reports the fields that do not make working hours.
func (w WorkingHours) Validate() error {
	var v fault.Violations
	if w.Start < 0 || w.Start >= minutesPerDay {
		v.Add("start", "must be between 0 and %d minutes, got %d", minutesPerDay-1, w.Start)
	}
	if w.End <= w.Start || w.End > minutesPerDay {
		v.Add("end", "must be after start and at most %d minutes, got %d", minutesPerDay, w.End)
	}
	if len(w.Days) == 0 {
		v.Add("days", "must name at least one working day")
	}
	for i, d := range w.Days {
		if d < time.Sunday || d > time.Saturday {
			v.Add("days["+strconv.Itoa(i)+"]", "unknown weekday %d", d)
		}
	}
	return v.Err()
}

func (w WorkingHours) worksOn(d time.Weekday) bool {
	for _, x := range w.Days {
		if x == d {
			return true
		}
	}
	return false
}

func minuteOfDay(t time.Time) int { return t.Hour()*60 + t.Minute() }

// NextWorkingTime returns t itself when t falls inside working hours in loc,
// and otherwise the start of the next working period: the next working
// day's Start on the local clock, placed by LocalAt's daylight-saving rule
// (so a 09:00 start is 09:00 on both sides of a clock change). It is the
// zero Time for invalid working hours.
func NextWorkingTime(t time.Time, loc *time.Location, wh WorkingHours) time.Time {
	if loc == nil || wh.Validate() != nil {
		return time.Time{}
	}
	local := t.In(loc)
	today := dateOf(t, loc)
	if m := minuteOfDay(local); wh.worksOn(local.Weekday()) && m >= wh.Start && m < wh.End {
		return t
	}
	// Today's start, if still ahead, or one of the next seven days'.
	for i := 0; i <= 7; i++ {
		day := today.addDays(i)
		if !wh.worksOn(day.weekday()) {
			continue
		}
		if start := localAtOrAfter(day, wh.Start, loc, t); !start.Before(t) {
			return start
		}
	}
	return time.Time{}
}

// QuietHours is the nightly period in which a customer is not contacted, on
// their local clock: from Start to End, in minutes after local midnight,
// End exclusive. Start after End wraps midnight (21:00–08:00 is
// QuietHours{21 * 60, 8 * 60}); Start equal to End means no quiet hours.
type QuietHours struct {
	Start, End int
}

// Validate reports the fields that do not make quiet hours.
func (q QuietHours) Validate() error {
	var v fault.Violations
	if q.Start < 0 || q.Start >= minutesPerDay {
		v.Add("start", "must be between 0 and %d minutes, got %d", minutesPerDay-1, q.Start)
	}
	if q.End < 0 || q.End >= minutesPerDay {
		v.Add("end", "must be between 0 and %d minutes, got %d", minutesPerDay-1, q.End)
	}
	return v.Err()
}

// OutOfQuietHours returns t itself when t is outside quiet hours in loc, and
// otherwise the instant the quiet period containing t ends: End on the local
// clock, the same day or, for a period that wraps midnight and t before
// midnight, the next day. It is the zero Time for invalid quiet hours.
func OutOfQuietHours(t time.Time, loc *time.Location, qh QuietHours) time.Time {
	if loc == nil || qh.Validate() != nil {
		return time.Time{}
	}
	m := minuteOfDay(t.In(loc))
	today := dateOf(t, loc)
	switch {
	case qh.Start == qh.End:
		return t
	case qh.Start < qh.End && m >= qh.Start && m < qh.End,
		qh.Start > qh.End && m < qh.End:
		return localAtOrAfter(today, qh.End, loc, t)
	case qh.Start > qh.End && m >= qh.Start:
		return localAtOrAfter(today.addDays(1), qh.End, loc, t)
	}
	return t
}
