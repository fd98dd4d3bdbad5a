package domain

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// pressureOf records touches in the order given.
func pressureOf(touches ...Touch) *Pressure {
	var p Pressure
	for _, t := range touches {
		p.Record(t)
	}
	return &p
}

func touchAt(t *testing.T, at, plan, key string) Touch {
	t.Helper()
	return Touch{At: instant(t, at), PlanID: plan, Kind: "revisit", Channel: ChannelCall, DedupKey: key}
}

func TestAdmitCapsTouchesPerRollingWeek(t *testing.T) {
	// Monday and Wednesday, 2 and 4 March 2026.
	p := pressureOf(
		touchAt(t, "2026-03-02T02:00:00Z", "revisit-gold", ""),
		touchAt(t, "2026-03-04T02:00:00Z", "survey", ""),
	)
	third := Touch{PlanID: "win-back", Kind: "win-back", Channel: ChannelSMS}
	for _, tc := range []struct {
		name      string
		now       string
		cap       int
		want      Outcome
		wantUntil string
	}{
		{"under the cap", "2026-03-05T02:00:00Z", 3, OutcomeAdmitted, ""},
		// The oldest touch leaves the window 7 days after it was made.
		{"the third of two a week waits for the oldest to leave", "2026-03-05T02:00:00Z", 2, OutcomeDeferred, "2026-03-09T02:00:00Z"},
		{"a second before the oldest leaves", "2026-03-09T01:59:59Z", 2, OutcomeDeferred, "2026-03-09T02:00:00Z"},
		{"the oldest has left", "2026-03-09T02:00:00Z", 2, OutcomeAdmitted, ""},
		{"a cap of one waits for both", "2026-03-05T02:00:00Z", 1, OutcomeDeferred, "2026-03-11T02:00:00Z"},
		{"no cap", "2026-03-05T02:00:00Z", 0, OutcomeAdmitted, ""},
		// With the clock set back before both touches, they still count.
		{"touches after now count", "2026-03-01T00:00:00Z", 2, OutcomeDeferred, "2026-03-09T02:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Admit(third, instant(t, tc.now), tc.cap)
			if d.Outcome != tc.want {
				t.Fatalf("Admit at %s, cap %d: %s (%s), want %s", tc.now, tc.cap, d.Outcome, d.Reason, tc.want)
			}
			if d.Admitted() != (tc.want == OutcomeAdmitted) {
				t.Errorf("Admitted() = %v for %s", d.Admitted(), d.Outcome)
			}
			if tc.wantUntil == "" {
				if !d.Until.IsZero() {
					t.Errorf("Until = %v, want none", d.Until)
				}
				return
			}
			if !d.Until.Equal(instant(t, tc.wantUntil)) {
				t.Errorf("Until = %v, want %s", d.Until, tc.wantUntil)
			}
			if d.Reason == "" {
				t.Error("a deferral must say why")
			}
		})
	}
	if len(p.Touches) != 2 {
		t.Errorf("Admit changed the record: %v", p.Touches)
	}
}

func TestAdmitDropsDuplicates(t *testing.T) {
	// A birthday on Spring Festival (17 February 2026): the birthday plan
	// greeted first, the festival plan must not greet again.
	birthday := Touch{At: instant(t, "2026-02-17T01:00:00Z"), PlanID: "birthday", Kind: "birthday", Channel: ChannelWeChat, DedupKey: "greeting"}
	p := pressureOf(birthday, touchAt(t, "2026-02-16T01:00:00Z", "revisit-gold", ""))
	festival := Touch{PlanID: "spring-festival", Kind: "holiday", Channel: ChannelSMS, DedupKey: "greeting"}

	for _, tc := range []struct {
		name  string
		touch Touch
		now   string
		cap   int
		want  Outcome
	}{
		{"same key an hour later", festival, "2026-02-17T02:00:00Z", 0, OutcomeDuplicate},
		{"same key just under 24 h later", festival, "2026-02-18T00:59:59Z", 0, OutcomeDuplicate},
		{"same key 24 h later", festival, "2026-02-18T01:00:00Z", 0, OutcomeAdmitted},
		{"same key just under 24 h before", festival, "2026-02-16T01:00:01Z", 0, OutcomeDuplicate},
		{"same key two days before", festival, "2026-02-15T01:00:00Z", 0, OutcomeAdmitted},
		{"another key", Touch{PlanID: "survey", DedupKey: "survey:order-17"}, "2026-02-17T02:00:00Z", 0, OutcomeAdmitted},
		// The revisit above has no key either: empty keys never match.
		{"no key", Touch{PlanID: "revisit-gold"}, "2026-02-16T02:00:00Z", 0, OutcomeAdmitted},
		// Dropped, not deferred, even though the cap is reached too.
		{"a duplicate over the cap", festival, "2026-02-17T02:00:00Z", 1, OutcomeDuplicate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Admit(tc.touch, instant(t, tc.now), tc.cap)
			if d.Outcome != tc.want {
				t.Fatalf("Admit: %s (%s), want %s", d.Outcome, d.Reason, tc.want)
			}
			if tc.want != OutcomeDuplicate {
				return
			}
			if !reflect.DeepEqual(d.Earlier, birthday) {
				t.Errorf("Earlier = %+v, want the birthday greeting %+v", d.Earlier, birthday)
			}
			if !d.Until.IsZero() {
				t.Errorf("a duplicate has no retry time, got %v", d.Until)
			}
		})
	}
}

func TestConsentCheck(t *testing.T) {
	for _, tc := range []struct {
		name    string
		consent Consent
		channel string
		want    Outcome
	}{
		{"no answers recorded", Consent{}, ChannelSMS, OutcomeAdmitted},
		{"opted in", Consent{Channels: map[string]bool{ChannelEmail: true}}, ChannelEmail, OutcomeAdmitted},
		{"opted out", Consent{Channels: map[string]bool{ChannelSMS: false, ChannelEmail: true}}, ChannelSMS, OutcomeRefused},
		{"opted out of another channel", Consent{Channels: map[string]bool{ChannelSMS: false}}, ChannelCall, OutcomeAdmitted},
		{"no channel", Consent{Channels: map[string]bool{ChannelSMS: false}}, "", OutcomeAdmitted},
		{"do not contact, sms", Consent{DoNotContact: true}, ChannelSMS, OutcomeRefused},
		{"do not contact, opted-in email", Consent{DoNotContact: true, Channels: map[string]bool{ChannelEmail: true}}, ChannelEmail, OutcomeRefused},
		{"do not contact, wechat", Consent{DoNotContact: true}, ChannelWeChat, OutcomeRefused},
		{"do not contact, call", Consent{DoNotContact: true}, ChannelCall, OutcomeRefused},
		{"do not contact, no channel", Consent{DoNotContact: true}, "", OutcomeRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.consent.Check(tc.channel)
			if d.Outcome != tc.want {
				t.Fatalf("Check(%q) = %s (%s), want %s", tc.channel, d.Outcome, d.Reason, tc.want)
			}
			if tc.want == OutcomeRefused && d.Reason == "" {
				t.Error("a refusal must say why")
			}
		})
	}
}

func TestRecordKeepsOrderAndPrunes(t *testing.T) {
	var p Pressure
	// Thirty daily touches: only those after the latest minus 7 days stay.
	start := instant(t, "2026-04-01T09:00:00Z")
	for day := range 30 {
		p.Record(Touch{At: start.AddDate(0, 0, day), PlanID: "daily"})
	}
	want := []string{
		"2026-04-24T09:00:00Z", "2026-04-25T09:00:00Z", "2026-04-26T09:00:00Z", "2026-04-27T09:00:00Z",
		"2026-04-28T09:00:00Z", "2026-04-29T09:00:00Z", "2026-04-30T09:00:00Z",
	}
	if got := touchTimes(p.Touches); !sameInstants(got, instants(t, want...)) {
		t.Fatalf("after 30 daily touches, kept %v, want %v", got, want)
	}

	// A late record of an earlier touch goes into its place.
	p.Record(Touch{At: instant(t, "2026-04-26T12:00:00Z"), PlanID: "catch-up"})
	// One older than the window before the latest is no use to any decision.
	p.Record(Touch{At: instant(t, "2026-04-20T12:00:00Z"), PlanID: "very-late"})
	want = []string{
		"2026-04-24T09:00:00Z", "2026-04-25T09:00:00Z", "2026-04-26T09:00:00Z", "2026-04-26T12:00:00Z",
		"2026-04-27T09:00:00Z", "2026-04-28T09:00:00Z", "2026-04-29T09:00:00Z", "2026-04-30T09:00:00Z",
	}
	if got := touchTimes(p.Touches); !sameInstants(got, instants(t, want...)) {
		t.Errorf("after late records, kept %v, want %v", got, want)
	}
}

func TestRecordKeepsOrderOfEqualTimes(t *testing.T) {
	at := "2026-04-01T09:00:00Z"
	p := pressureOf(touchAt(t, at, "first", ""), touchAt(t, at, "second", ""), touchAt(t, "2026-04-01T08:00:00Z", "earlier", ""))
	var plans []string
	for _, x := range p.Touches {
		plans = append(plans, x.PlanID)
	}
	if want := []string{"earlier", "first", "second"}; !reflect.DeepEqual(plans, want) {
		t.Errorf("order %v, want %v", plans, want)
	}
}

func TestPressureJSON(t *testing.T) {
	p := pressureOf(Touch{At: instant(t, "2026-02-17T01:00:00Z"), PlanID: "birthday", Kind: "birthday", Channel: ChannelWeChat, DedupKey: "greeting"})
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"touches":[{"at":"2026-02-17T01:00:00Z","plan_id":"birthday","kind":"birthday","channel":"wechat","dedup_key":"greeting"}]}`
	if string(b) != want {
		t.Fatalf("Marshal = %s, want %s", b, want)
	}
	var back Pressure
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	// The decoded record must decide as the original does.
	if d := back.Admit(Touch{DedupKey: "greeting"}, instant(t, "2026-02-17T02:00:00Z"), 0); d.Outcome != OutcomeDuplicate {
		t.Errorf("decoded record: %s, want %s", d.Outcome, OutcomeDuplicate)
	}

	c := Consent{DoNotContact: true, Channels: map[string]bool{ChannelSMS: false}}
	b, err = json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"do_not_contact":true,"channels":{"sms":false}}`; string(b) != want {
		t.Errorf("Marshal(Consent) = %s, want %s", b, want)
	}
}

func touchTimes(touches []Touch) []time.Time {
	out := make([]time.Time, len(touches))
	for i, x := range touches {
		out[i] = x.At
	}
	return out
}
