package domain

import (
	"fmt"
	"slices"
	"time"
)

// Contact pressure keeps care humane: a customer is not contacted against
// their wishes, not more than a tenant's cap per week, and not twice for the
// same reason on the same day by two plans. A touch that may be made is
// checked in this order:
//
//  1. Consent.Check: do-not-contact and per-channel opt-outs refuse it.
//  2. Pressure.Admit: a duplicate is dropped; over the cap it is deferred.
//  3. Once made, Pressure.Record adds it, and the caller stores Pressure
//     with the customer in the same transaction as the task's new state.
//
// Quiet hours, the third part of consent, move a time rather than refuse a
// touch; they are calendar.go's (QuietHours, OutOfQuietHours).

const (
	// PressureWindow is the span over which the cap counts touches: the
	// rolling seven days (168 hours) ending at the moment of the decision,
	// not a calendar week, so that a cap of two cannot become four across a
	// Sunday night, and no time zone is involved.
	PressureWindow = 7 * 24 * time.Hour
	// DedupWindow is how close two touches with the same dedup key must be
	// for the later to be a duplicate.
	DedupWindow = 24 * time.Hour
)

// Channels a touch can use. Consent.Channels is keyed by these; other
// names are allowed, as a tenant may add its own channels.
const (
	ChannelSMS    = "sms"
	ChannelEmail  = "email"
	ChannelCall   = "call"
	ChannelWeChat = "wechat"
)

// Touch is one contact with a customer, made or proposed by a care plan.
type Touch struct {
	// At is when the touch was made.
	At time.Time `json:"at"`
	// PlanID is the care plan that made it.
	PlanID string `json:"plan_id"`
	// Kind says what the touch was: "revisit", "birthday", "holiday", ...
	Kind string `json:"kind,omitempty"`
	// Channel is how the customer was reached: ChannelSMS, ChannelCall, ...
	Channel string `json:"channel,omitempty"`
	// DedupKey names what the touch is for, across plans: two touches with
	// the same non-empty key within DedupWindow of each other say the same
	// thing, and only the first is made. Plans that greet give "greeting",
	// so that a birthday falling on a festival gets one greeting, not two.
	// An empty key is never a duplicate.
	DedupKey string `json:"dedup_key,omitempty"`
}

// Pressure is the record, stored with each customer, of their recent
// touches: those of the PressureWindow before the latest one, oldest first.
// The zero value is an empty record.
type Pressure struct {
	Touches []Touch `json:"touches,omitempty"`
}

// Outcome is what a contact check decided.
type Outcome string

// Outcomes.
const (
	// OutcomeAdmitted: the touch may be made now.
	OutcomeAdmitted Outcome = "admitted"
	// OutcomeDeferred: the weekly cap is reached; try again at Decision.Until.
	OutcomeDeferred Outcome = "deferred"
	// OutcomeDuplicate: an earlier touch said the same; drop this one.
	OutcomeDuplicate Outcome = "duplicate"
	// OutcomeRefused: the customer does not consent; do not make the touch.
	OutcomeRefused Outcome = "refused"
)

// Decision is the answer to "may this touch be made now?".
type Decision struct {
	Outcome Outcome
	// Until is, for OutcomeDeferred, the first instant at which the touch
	// fits under the cap, should nothing else be recorded meanwhile. The
	// caller then moves it into working hours and out of quiet hours.
	Until time.Time
	// Earlier is, for OutcomeDuplicate, the touch this one repeats.
	Earlier Touch
	// Reason says why, for a person reading a task's history.
	Reason string
}

// Admitted reports whether the touch may be made.
func (d Decision) Admitted() bool { return d.Outcome == OutcomeAdmitted }

// Admit decides whether t may be made at now (t.At is not consulted: the
// touch is judged as made at now). It is:
//   - a duplicate when a recorded touch has t's non-empty DedupKey and was
//     made less than DedupWindow before or after now;
//   - deferred when capPerWeek touches or more were made in the
//     PressureWindow ending at now, until enough of the oldest have left it
//     (a touch made at x leaves the window at x + PressureWindow); touches
//     recorded after now count too, so a clock set back never admits more;
//   - admitted otherwise.
//
// A duplicate is dropped rather than deferred: the same greeting later is
// no better. capPerWeek < 1 means no cap. Admit does not change p.
func (p *Pressure) Admit(t Touch, now time.Time, capPerWeek int) Decision {
	if t.DedupKey != "" {
		for _, old := range p.Touches {
			if old.DedupKey == t.DedupKey && absDuration(now.Sub(old.At)) < DedupWindow {
				return Decision{
					Outcome: OutcomeDuplicate,
					Earlier: old,
					Reason:  fmt.Sprintf("plan %q made a %q touch at %s", old.PlanID, old.DedupKey, old.At.UTC().Format(time.RFC3339)),
				}
			}
		}
	}
	if capPerWeek < 1 {
		return Decision{Outcome: OutcomeAdmitted}
	}
	start := now.Add(-PressureWindow)
	var inWindow []time.Time
	for _, old := range p.Touches {
		if old.At.After(start) {
			inWindow = append(inWindow, old.At)
		}
	}
	if len(inWindow) < capPerWeek {
		return Decision{Outcome: OutcomeAdmitted}
	}
	// Below the cap once the oldest len-cap+1 of them have left the window.
	slices.SortFunc(inWindow, func(a, b time.Time) int { return a.Compare(b) })
	leaving := inWindow[len(inWindow)-capPerWeek]
	return Decision{
		Outcome: OutcomeDeferred,
		Until:   leaving.Add(PressureWindow),
		Reason:  fmt.Sprintf("%d touches in the 7 days before %s reach the cap of %d a week", len(inWindow), now.UTC().Format(time.RFC3339), capPerWeek),
	}
}

// Record adds a touch that was made, keeping Touches in time order, and
// forgets the touches made PressureWindow or more before the latest: no
// decision at or after the latest touch can count them, since the cap's
// window ends at the decision's now and DedupWindow is shorter. That keeps
// the record to about a week of touches, at most the cap's worth when every
// touch goes through Admit.
func (p *Pressure) Record(t Touch) {
	i, _ := slices.BinarySearchFunc(p.Touches, t.At, func(x Touch, at time.Time) int {
		if x.At.After(at) {
			return 1
		}
		return -1 // equal times keep the order of recording
	})
	p.Touches = slices.Insert(p.Touches, i, t)
	cutoff := p.Touches[len(p.Touches)-1].At.Add(-PressureWindow)
	p.Touches = slices.DeleteFunc(p.Touches, func(x Touch) bool { return !x.At.After(cutoff) })
}

// Consent is what a customer allows: stored with the customer, checked
// before every touch. Quiet hours are calendar.go's QuietHours.
type Consent struct {
	// DoNotContact refuses every touch, on every channel.
	DoNotContact bool `json:"do_not_contact,omitempty"`
	// Channels holds the customer's answer per channel (ChannelSMS, ...):
	// false is an opt-out. A channel not listed has no objection recorded
	// and is allowed; a tenant that needs opt-in records false for each
	// channel until the customer agrees.
	Channels map[string]bool `json:"channels,omitempty"`
	// QuietHours are when messages wait (OutOfQuietHours); zero means none.
	QuietHours QuietHours `json:"quiet_hours,omitzero"`
}

// Check decides whether a touch on channel may be made at all: refused
// under do-not-contact or when the customer opted out of the channel,
// admitted otherwise. A touch with no channel (an owner's task that does
// not reach the customer yet) is refused only by do-not-contact.
func (c Consent) Check(channel string) Decision {
	if c.DoNotContact {
		return Decision{Outcome: OutcomeRefused, Reason: "the customer asked not to be contacted"}
	}
	if allowed, ok := c.Channels[channel]; ok && !allowed && channel != "" {
		return Decision{Outcome: OutcomeRefused, Reason: fmt.Sprintf("the customer opted out of %s", channel)}
	}
	return Decision{Outcome: OutcomeAdmitted}
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
