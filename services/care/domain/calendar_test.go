package domain

import (
	"errors"
	"testing"
	"time"
	_ "time/tzdata" // the zones below must not depend on the host's tz database

	"rapport.dev/platform/fault"
)

// Every expected instant below is written out by hand in UTC, from the
// zone's offset on that day:
//   Asia/Shanghai    +08:00 all year
//   America/New_York -05:00 (EST); -04:00 (EDT) from 2026-03-08 02:00 EST
//                    to 2026-11-01 02:00 EDT
//   Pacific/Auckland +13:00 (NZDT) until 2026-04-05 03:00 NZDT, +12:00 (NZST)
//                    until 2026-09-27 02:00 NZST, then +13:00

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("LoadLocation(%q): %v", name, err)
	}
	return loc
}

func instant(t *testing.T, rfc3339 string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339, rfc3339)
	if err != nil {
		t.Fatalf("time.Parse(%q): %v", rfc3339, err)
	}
	return at
}

func checkInstant(t *testing.T, got time.Time, want string) {
	t.Helper()
	if want == "" {
		if !got.IsZero() {
			t.Errorf("got %s, want the zero Time", got.UTC().Format(time.RFC3339))
		}
		return
	}
	if w := instant(t, want); !got.Equal(w) {
		t.Errorf("got %s (%s local), want %s", got.UTC().Format(time.RFC3339), got.Format("2006-01-02 15:04 MST"), want)
	}
}

func TestLocalAt(t *testing.T) {
	tests := []struct {
		name         string
		zone         string
		day          CivilDate
		hour, minute int
		want         string
		wantLocal    string
	}{
		{"Shanghai", "Asia/Shanghai", CivilDate{2026, time.May, 20}, 9, 0, "2026-05-20T01:00:00Z", "2026-05-20 09:00 CST"},
		{"New York before spring forward", "America/New_York", CivilDate{2026, time.March, 7}, 9, 0, "2026-03-07T14:00:00Z", "2026-03-07 09:00 EST"},
		{"New York gap moves to 03:00 EDT", "America/New_York", CivilDate{2026, time.March, 8}, 2, 30, "2026-03-08T07:00:00Z", "2026-03-08 03:00 EDT"},
		{"New York gap start", "America/New_York", CivilDate{2026, time.March, 8}, 2, 0, "2026-03-08T07:00:00Z", "2026-03-08 03:00 EDT"},
		{"New York just before the gap", "America/New_York", CivilDate{2026, time.March, 8}, 1, 59, "2026-03-08T06:59:00Z", "2026-03-08 01:59 EST"},
		{"New York after spring forward", "America/New_York", CivilDate{2026, time.March, 8}, 9, 0, "2026-03-08T13:00:00Z", "2026-03-08 09:00 EDT"},
		{"New York overlap takes the first (EDT)", "America/New_York", CivilDate{2026, time.November, 1}, 1, 30, "2026-11-01T05:30:00Z", "2026-11-01 01:30 EDT"},
		{"New York overlap start", "America/New_York", CivilDate{2026, time.November, 1}, 1, 0, "2026-11-01T05:00:00Z", "2026-11-01 01:00 EDT"},
		{"New York after the overlap", "America/New_York", CivilDate{2026, time.November, 1}, 2, 0, "2026-11-01T07:00:00Z", "2026-11-01 02:00 EST"},
		{"Auckland winter", "Pacific/Auckland", CivilDate{2026, time.May, 20}, 9, 0, "2026-05-19T21:00:00Z", "2026-05-20 09:00 NZST"},
		{"Auckland overlap takes the first (NZDT)", "Pacific/Auckland", CivilDate{2026, time.April, 5}, 2, 30, "2026-04-04T13:30:00Z", "2026-04-05 02:30 NZDT"},
		{"Auckland gap moves to 03:00 NZDT", "Pacific/Auckland", CivilDate{2026, time.September, 27}, 2, 30, "2026-09-26T14:00:00Z", "2026-09-27 03:00 NZDT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := LocalAt(tt.day, tt.hour, tt.minute, zone(t, tt.zone))
			checkInstant(t, got, tt.want)
			if l := got.Format("2006-01-02 15:04 MST"); l != tt.wantLocal {
				t.Errorf("local %s, want %s", l, tt.wantLocal)
			}
		})
	}
}

func TestNextBirthday(t *testing.T) {
	tests := []struct {
		name         string
		zone         string
		birth        Birthday
		after        string
		hour, minute int
		want         string
	}{
		{"Shanghai", "Asia/Shanghai", Birthday{0, time.May, 20}, "2026-01-01T00:00:00Z", 9, 0, "2026-05-20T01:00:00Z"},
		{"Shanghai later the same year", "Asia/Shanghai", Birthday{0, time.May, 20}, "2026-05-19T00:00:00Z", 9, 0, "2026-05-20T01:00:00Z"},
		{"Shanghai greeting already sent goes to next year", "Asia/Shanghai", Birthday{0, time.May, 20}, "2026-05-20T01:00:00Z", 9, 0, "2027-05-20T01:00:00Z"},
		{"Shanghai 1 January from New Year's Eve", "Asia/Shanghai", Birthday{1985, time.January, 1}, "2026-12-31T16:00:00Z", 9, 0, "2027-01-01T01:00:00Z"},
		{"Auckland local day ahead of UTC", "Pacific/Auckland", Birthday{1990, time.May, 20}, "2026-01-01T00:00:00Z", 9, 0, "2026-05-19T21:00:00Z"},
		{"Auckland a minute before", "Pacific/Auckland", Birthday{1990, time.May, 20}, "2026-05-19T20:59:00Z", 9, 0, "2026-05-19T21:00:00Z"},
		{"Auckland strictly after", "Pacific/Auckland", Birthday{1990, time.May, 20}, "2026-05-19T21:00:00Z", 9, 0, "2027-05-19T21:00:00Z"},
		{"Auckland on the fall-back day", "Pacific/Auckland", Birthday{0, time.April, 5}, "2026-01-01T00:00:00Z", 9, 0, "2026-04-04T21:00:00Z"},
		{"Auckland on the spring-forward day", "Pacific/Auckland", Birthday{0, time.September, 27}, "2026-06-01T00:00:00Z", 9, 0, "2026-09-26T20:00:00Z"},
		{"Auckland summer", "Pacific/Auckland", Birthday{0, time.October, 15}, "2026-06-01T00:00:00Z", 9, 0, "2026-10-14T20:00:00Z"},
		{"New York the day before spring forward", "America/New_York", Birthday{0, time.March, 7}, "2026-01-01T00:00:00Z", 9, 0, "2026-03-07T14:00:00Z"},
		{"New York on spring-forward day", "America/New_York", Birthday{0, time.March, 8}, "2026-01-01T00:00:00Z", 9, 0, "2026-03-08T13:00:00Z"},
		{"New York planned in the gap", "America/New_York", Birthday{0, time.March, 8}, "2026-01-01T00:00:00Z", 2, 30, "2026-03-08T07:00:00Z"},
		{"New York the day before fall back", "America/New_York", Birthday{0, time.October, 31}, "2026-06-01T00:00:00Z", 9, 0, "2026-10-31T13:00:00Z"},
		{"New York on fall-back day", "America/New_York", Birthday{0, time.November, 1}, "2026-06-01T00:00:00Z", 9, 0, "2026-11-01T14:00:00Z"},
		{"New York planned in the overlap fires once, the first time", "America/New_York", Birthday{0, time.November, 1}, "2026-06-01T00:00:00Z", 1, 30, "2026-11-01T05:30:00Z"},
		{"New York overlap second pass is not a second greeting", "America/New_York", Birthday{0, time.November, 1}, "2026-11-01T05:30:00Z", 1, 30, "2027-11-01T05:30:00Z"},
		{"29 February in a common year is 28 February", "Asia/Shanghai", Birthday{2000, time.February, 29}, "2026-03-01T00:00:00Z", 9, 0, "2027-02-28T01:00:00Z"},
		{"29 February in a leap year", "Asia/Shanghai", Birthday{2000, time.February, 29}, "2027-02-28T01:00:00Z", 9, 0, "2028-02-29T01:00:00Z"},
		{"29 February after a leap year", "Asia/Shanghai", Birthday{2000, time.February, 29}, "2028-02-29T01:00:00Z", 9, 0, "2029-02-28T01:00:00Z"},
		{"29 February, year unknown", "America/New_York", Birthday{0, time.February, 29}, "2026-03-01T00:00:00Z", 9, 0, "2027-02-28T14:00:00Z"},
		{"no greeting before the first anniversary", "Asia/Shanghai", Birthday{2026, time.June, 1}, "2026-01-01T00:00:00Z", 9, 0, "2027-06-01T01:00:00Z"},
		{"invalid day", "Asia/Shanghai", Birthday{0, time.February, 30}, "2026-01-01T00:00:00Z", 9, 0, ""},
		{"invalid hour", "Asia/Shanghai", Birthday{0, time.May, 20}, "2026-01-01T00:00:00Z", 24, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NextBirthday(tt.birth, instant(t, tt.after), zone(t, tt.zone), tt.hour, tt.minute)
			checkInstant(t, got, tt.want)
		})
	}
}

// Lunar dates below are from the published Chinese calendar (e.g. 2025 has
// a leap sixth month, 闰六月, 2025-07-25 to 2025-08-22, after a 30-day sixth
// month 2025-06-25 to 2025-07-24; 2026 has no leap month and its sixth month
// runs 2026-07-14 to 2026-08-12; the twelfth month of Chinese 2025 runs
// 2026-01-19 to 2026-02-16, 29 days; 2020's fourth month runs 2020-04-23 to
// 2020-05-22 and its leap fourth month 2020-05-23 to 2020-06-20).
func TestNextLunarBirthday(t *testing.T) {
	tests := []struct {
		name       string
		zone       string
		month, day int
		leap       bool
		after      string
		want       string
	}{
		{"七月初七 2025", "Asia/Shanghai", 7, 7, false, "2025-01-01T00:00:00Z", "2025-08-29T01:00:00Z"},
		{"七月初七 2026", "Asia/Shanghai", 7, 7, false, "2025-08-29T01:00:00Z", "2026-08-19T01:00:00Z"},
		{"七月初七 in New York", "America/New_York", 7, 7, false, "2025-01-01T00:00:00Z", "2025-08-29T13:00:00Z"},
		{"七月初七 in Auckland", "Pacific/Auckland", 7, 7, false, "2025-01-01T00:00:00Z", "2025-08-28T21:00:00Z"},
		{"六月三十 in a 30-day sixth month", "Asia/Shanghai", 6, 30, false, "2025-01-01T00:00:00Z", "2025-07-24T01:00:00Z"},
		{"闰六月初十 in a year with that leap month", "Asia/Shanghai", 6, 10, true, "2025-01-01T00:00:00Z", "2025-08-03T01:00:00Z"},
		{"闰六月初十 in a year without it: 六月初十", "Asia/Shanghai", 6, 10, true, "2025-08-03T01:00:00Z", "2026-07-23T01:00:00Z"},
		{"闰六月三十 in a 29-day leap month: the 29th", "Asia/Shanghai", 6, 30, true, "2025-01-01T00:00:00Z", "2025-08-22T01:00:00Z"},
		{"闰六月三十 without the leap month: 六月三十", "Asia/Shanghai", 6, 30, true, "2025-08-22T01:00:00Z", "2026-08-12T01:00:00Z"},
		{"四月三十 2020, the month before 闰四月", "Asia/Shanghai", 4, 30, false, "2020-01-01T00:00:00Z", "2020-05-22T01:00:00Z"},
		{"闰四月三十 2020, a 29-day leap month", "Asia/Shanghai", 4, 30, true, "2020-01-01T00:00:00Z", "2020-06-20T01:00:00Z"},
		{"腊月三十 in a 29-day twelfth month: 腊月廿九", "Asia/Shanghai", 12, 30, false, "2025-06-01T00:00:00Z", "2026-02-16T01:00:00Z"},
		{"month out of range", "Asia/Shanghai", 13, 1, false, "2025-01-01T00:00:00Z", ""},
		{"day out of range", "Asia/Shanghai", 1, 31, false, "2025-01-01T00:00:00Z", ""},
		{"past the lunar table", "Asia/Shanghai", 1, 1, false, "2102-01-01T00:00:00Z", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NextLunarBirthday(tt.month, tt.day, tt.leap, instant(t, tt.after), zone(t, tt.zone), 9, 0)
			checkInstant(t, got, tt.want)
		})
	}
}

// TestNextHolidayFestivalDates walks each festival from one year to the next,
// as a scheduler would, against the published dates at 09:00 in Shanghai.
func TestNextHolidayFestivalDates(t *testing.T) {
	tests := []struct {
		festival Festival
		from     string
		want     []string
	}{
		{MidAutumnFestival, "2024-01-01T00:00:00Z", []string{
			"2024-09-17T01:00:00Z", "2025-10-06T01:00:00Z", "2026-09-25T01:00:00Z", "2027-09-15T01:00:00Z", "2028-10-03T01:00:00Z",
		}},
		{SpringFestival, "2024-06-01T00:00:00Z", []string{
			"2025-01-29T01:00:00Z", "2026-02-17T01:00:00Z", "2027-02-06T01:00:00Z", "2028-01-26T01:00:00Z",
		}},
		{DragonBoatFestival, "2025-01-01T00:00:00Z", []string{"2025-05-31T01:00:00Z", "2026-06-19T01:00:00Z"}},
		{LanternFestival, "2025-01-01T00:00:00Z", []string{"2025-02-12T01:00:00Z", "2026-03-03T01:00:00Z"}},
		{DoubleNinthFestival, "2025-01-01T00:00:00Z", []string{"2025-10-29T01:00:00Z"}},
	}
	shanghai := zone(t, "Asia/Shanghai")
	for _, tt := range tests {
		t.Run(tt.festival.String(), func(t *testing.T) {
			after := instant(t, tt.from)
			for _, want := range tt.want {
				got := NextHoliday(tt.festival, after, shanghai, 9, 0)
				checkInstant(t, got, want)
				after = instant(t, want)
			}
		})
	}
}

func TestNextHoliday(t *testing.T) {
	tests := []struct {
		name    string
		zone    string
		holiday Holiday
		after   string
		want    string
	}{
		{"Spring Festival in New York, same Gregorian date", "America/New_York", SpringFestival, "2026-01-01T00:00:00Z", "2026-02-17T14:00:00Z"},
		{"Mid-Autumn in Auckland before its spring forward", "Pacific/Auckland", MidAutumnFestival, "2026-06-01T00:00:00Z", "2026-09-24T21:00:00Z"},
		{"National Day", "Asia/Shanghai", FixedDate{time.October, 1}, "2026-06-01T00:00:00Z", "2026-10-01T01:00:00Z"},
		{"National Day already greeted", "Asia/Shanghai", FixedDate{time.October, 1}, "2026-10-01T01:00:00Z", "2027-10-01T01:00:00Z"},
		{"Christmas in New York", "America/New_York", FixedDate{time.December, 25}, "2026-06-01T00:00:00Z", "2026-12-25T14:00:00Z"},
		{"New Year's Day in Auckland, still 31 December in UTC", "Pacific/Auckland", FixedDate{time.January, 1}, "2026-06-01T00:00:00Z", "2026-12-31T20:00:00Z"},
		{"29 February is not a holiday date", "Asia/Shanghai", FixedDate{time.February, 29}, "2026-06-01T00:00:00Z", ""},
		{"unknown festival", "Asia/Shanghai", Festival(0), "2026-06-01T00:00:00Z", ""},
		{"no holiday", "Asia/Shanghai", nil, "2026-06-01T00:00:00Z", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NextHoliday(tt.holiday, instant(t, tt.after), zone(t, tt.zone), 9, 0)
			checkInstant(t, got, tt.want)
		})
	}
}

func TestNextWorkingTime(t *testing.T) {
	weekdays := []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}
	office := WorkingHours{Start: 9 * 60, End: 18 * 60, Days: weekdays}
	tests := []struct {
		name string
		zone string
		wh   WorkingHours
		t    string
		want string
	}{
		// 2026-05-20 is a Wednesday; 2026-05-23/24 a weekend.
		{"inside stays", "Asia/Shanghai", office, "2026-05-20T02:00:00Z", "2026-05-20T02:00:00Z"},
		{"at the start stays", "Asia/Shanghai", office, "2026-05-20T01:00:00Z", "2026-05-20T01:00:00Z"},
		{"before the start waits for it", "Asia/Shanghai", office, "2026-05-19T23:00:00Z", "2026-05-20T01:00:00Z"},
		{"at the end goes to the next day", "Asia/Shanghai", office, "2026-05-20T10:00:00Z", "2026-05-21T01:00:00Z"},
		{"Friday evening skips the weekend", "Asia/Shanghai", office, "2026-05-22T11:00:00Z", "2026-05-25T01:00:00Z"},
		{"Saturday goes to Monday", "Asia/Shanghai", office, "2026-05-23T02:00:00Z", "2026-05-25T01:00:00Z"},
		{"Sunday-only shop", "Asia/Shanghai", WorkingHours{Start: 10 * 60, End: 16 * 60, Days: []time.Weekday{time.Sunday}}, "2026-05-20T02:00:00Z", "2026-05-24T02:00:00Z"},
		// Saturday 2026-03-07 12:00 EST; Monday 09:00 is EDT.
		{"weekend across spring forward", "America/New_York", office, "2026-03-07T17:00:00Z", "2026-03-09T13:00:00Z"},
		// Saturday 2026-10-31 12:00 EDT; Monday 09:00 is EST.
		{"weekend across fall back", "America/New_York", office, "2026-10-31T16:00:00Z", "2026-11-02T14:00:00Z"},
		// Friday 2026-09-25 19:00 NZST; Monday 09:00 is NZDT.
		{"Auckland weekend across its spring forward", "Pacific/Auckland", office, "2026-09-25T07:00:00Z", "2026-09-27T20:00:00Z"},
		{"no working days", "Asia/Shanghai", WorkingHours{Start: 9 * 60, End: 18 * 60}, "2026-05-20T02:00:00Z", ""},
		{"end before start", "Asia/Shanghai", WorkingHours{Start: 18 * 60, End: 9 * 60, Days: weekdays}, "2026-05-20T02:00:00Z", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NextWorkingTime(instant(t, tt.t), zone(t, tt.zone), tt.wh)
			checkInstant(t, got, tt.want)
		})
	}
}

func TestOutOfQuietHours(t *testing.T) {
	night := QuietHours{Start: 21 * 60, End: 8 * 60}
	tests := []struct {
		name string
		zone string
		qh   QuietHours
		t    string
		want string
	}{
		{"evening waits for the next morning", "Asia/Shanghai", night, "2026-05-20T14:30:00Z", "2026-05-21T00:00:00Z"},
		{"at the start of quiet hours", "Asia/Shanghai", night, "2026-05-20T13:00:00Z", "2026-05-21T00:00:00Z"},
		{"just before quiet hours", "Asia/Shanghai", night, "2026-05-20T12:59:00Z", "2026-05-20T12:59:00Z"},
		{"early morning waits until 08:00 the same day", "Asia/Shanghai", night, "2026-05-19T22:00:00Z", "2026-05-20T00:00:00Z"},
		{"just after midnight", "Asia/Shanghai", night, "2026-05-19T16:05:00Z", "2026-05-20T00:00:00Z"},
		{"at the end is outside", "Asia/Shanghai", night, "2026-05-20T00:00:00Z", "2026-05-20T00:00:00Z"},
		{"midday is outside", "Asia/Shanghai", night, "2026-05-20T04:00:00Z", "2026-05-20T04:00:00Z"},
		{"lunch break inside", "Asia/Shanghai", QuietHours{Start: 12 * 60, End: 14 * 60}, "2026-05-20T05:00:00Z", "2026-05-20T06:00:00Z"},
		{"lunch break outside", "Asia/Shanghai", QuietHours{Start: 12 * 60, End: 14 * 60}, "2026-05-20T07:00:00Z", "2026-05-20T07:00:00Z"},
		{"no quiet hours", "Asia/Shanghai", QuietHours{Start: 8 * 60, End: 8 * 60}, "2026-05-20T14:30:00Z", "2026-05-20T14:30:00Z"},
		// 2026-03-07 22:00 EST; the night is an hour shorter, 08:00 is EDT.
		{"night across spring forward", "America/New_York", night, "2026-03-08T03:00:00Z", "2026-03-08T12:00:00Z"},
		// 2026-10-31 22:00 EDT; the night is an hour longer, 08:00 is EST.
		{"night across fall back", "America/New_York", night, "2026-11-01T02:00:00Z", "2026-11-01T13:00:00Z"},
		// 2026-09-26 22:00 NZST; 08:00 is NZDT.
		{"Auckland night across spring forward", "Pacific/Auckland", night, "2026-09-26T10:00:00Z", "2026-09-26T19:00:00Z"},
		// 01:10 happens twice on 2026-11-01; quiet hours end at the 01:30 that follows.
		{"first 01:10 ends at the first 01:30", "America/New_York", QuietHours{Start: 0, End: 90}, "2026-11-01T05:10:00Z", "2026-11-01T05:30:00Z"},
		{"second 01:10 ends at the second 01:30", "America/New_York", QuietHours{Start: 0, End: 90}, "2026-11-01T06:10:00Z", "2026-11-01T06:30:00Z"},
		{"invalid", "Asia/Shanghai", QuietHours{Start: -1, End: 8 * 60}, "2026-05-20T14:30:00Z", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := OutOfQuietHours(instant(t, tt.t), zone(t, tt.zone), tt.qh)
			checkInstant(t, got, tt.want)
		})
	}
}

func TestCalendarValidation(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantFields []string // nil: valid
	}{
		{"birthday", Birthday{1990, time.May, 20}.Validate(), nil},
		{"birthday on 29 February, year unknown", Birthday{0, time.February, 29}.Validate(), nil},
		{"birthday on 29 February of a leap year", Birthday{2000, time.February, 29}.Validate(), nil},
		{"birthday on 29 February of a common year", Birthday{2001, time.February, 29}.Validate(), []string{"day"}},
		{"birthday on 31 April", Birthday{0, time.April, 31}.Validate(), []string{"day"}},
		{"birthday month 13, negative year", Birthday{-1, 13, 1}.Validate(), []string{"month", "year"}},
		{"fixed date", FixedDate{time.December, 25}.Validate(), nil},
		{"fixed date on 29 February", FixedDate{time.February, 29}.Validate(), []string{"day"}},
		{"fixed date day 0", FixedDate{time.January, 0}.Validate(), []string{"day"}},
		{"clock", ValidateClock(23, 59), nil},
		{"clock 24:60", ValidateClock(24, 60), []string{"hour", "minute"}},
		{"lunar date", ValidateLunarDate(12, 30), nil},
		{"lunar date 0/31", ValidateLunarDate(0, 31), []string{"day", "month"}},
		{"working hours", WorkingHours{Start: 9 * 60, End: 24 * 60, Days: []time.Weekday{time.Monday}}.Validate(), nil},
		{"working hours empty", WorkingHours{Start: 9 * 60, End: 9 * 60}.Validate(), []string{"days", "end"}},
		{"working hours bad weekday", WorkingHours{Start: 0, End: 60, Days: []time.Weekday{time.Monday, 7}}.Validate(), []string{"days[1]"}},
		{"quiet hours", QuietHours{Start: 21 * 60, End: 8 * 60}.Validate(), nil},
		{"quiet hours out of the day", QuietHours{Start: -1, End: 24 * 60}.Validate(), []string{"end", "start"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantFields == nil {
				if tt.err != nil {
					t.Fatalf("got %v, want no error", tt.err)
				}
				return
			}
			if !errors.Is(tt.err, fault.ErrInvalid) {
				t.Fatalf("got %v, want an error matching fault.ErrInvalid", tt.err)
			}
			var inv *fault.Invalid
			if !errors.As(tt.err, &inv) {
				t.Fatalf("got %T, want *fault.Invalid", tt.err)
			}
			var got []string
			for _, v := range inv.Violations {
				got = append(got, v.Field)
			}
			if len(got) != len(tt.wantFields) {
				t.Fatalf("fields %v, want %v", got, tt.wantFields)
			}
			for i := range got {
				if got[i] != tt.wantFields[i] {
					t.Fatalf("fields %v, want %v", got, tt.wantFields)
				}
			}
		})
	}
}
