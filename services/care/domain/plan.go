package domain

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"rapport.dev/platform/fault"
	"rapport.dev/platform/ident"
)

// Plan is a care plan: who it is for (Target), when it fires (exactly one
// trigger), and what it does (exactly one action). It mirrors
// rapport.care.v1.Plan in plain Go; Validate names the fields by their
// path in that message ("plan.revisit.by_tier[0].recurrence").
type Plan struct {
	ID          string `json:"id"`
	DisplayName string `json:"display_name,omitempty"`
	// Enabled plans schedule work; disabled ones keep their tasks but add none.
	Enabled bool   `json:"enabled,omitempty"`
	Target  Target `json:"target"`

	// Triggers: exactly one is set.
	Revisit        *Revisit        `json:"revisit,omitempty"`
	Holidays       *Holidays       `json:"holidays,omitempty"`
	Birthday       *BirthdayCare   `json:"birthday,omitempty"`
	Survey         *Survey         `json:"survey,omitempty"`
	Complaint      *Complaint      `json:"complaint_follow_up,omitempty"`
	NotContacted   *NotContacted   `json:"not_contacted,omitempty"`
	WinBack        *WinBack        `json:"win_back,omitempty"`
	Recommendation *Recommendation `json:"recommendation,omitempty"`

	// Actions: exactly one is set.
	Task    *TaskAction    `json:"task,omitempty"`
	Message *MessageAction `json:"message,omitempty"`

	// At is the planned local time of day.
	At Clock `json:"at"`
	// WorkingHours bound task due times; nil means 09:00-18:00 Monday to Friday.
	WorkingHours *PlanHours `json:"working_hours,omitempty"`
	// DefaultTimeZone is for customers whose profile has no zone; empty means UTC.
	DefaultTimeZone string `json:"default_tz,omitempty"`

	Etag    string    `json:"etag,omitempty"`
	Created time.Time `json:"created,omitzero"`
	Updated time.Time `json:"updated,omitzero"`
}

// Target says which customers a plan is for. Non-empty fields each
// restrict (a customer must match every one, any value within one).
type Target struct {
	Tiers        []string `json:"tiers,omitempty"`
	SegmentIDs   []string `json:"segment_ids,omitempty"`
	LoyaltyTiers []string `json:"loyalty_tiers,omitempty"`
	AllCustomers bool     `json:"all_customers,omitempty"`
}

// Tiers of segmentation's value pyramid, as care names them.
var ValueTiers = []string{"platinum", "gold", "iron", "lead"}

// AnyTier is the TierRecurrence tier for every targeted customer.
const AnyTier = "*"

// Revisit is a periodic revisit with a rhythm per tier.
type Revisit struct {
	ByTier []TierRecurrence `json:"by_tier"`
}

// TierRecurrence is one tier's revisit rhythm, an RFC 5545 RRULE body.
type TierRecurrence struct {
	Tier       string `json:"tier"`
	Recurrence string `json:"recurrence"`
}

// Holidays are holiday greetings.
type Holidays struct {
	Festivals  []Festival     `json:"festivals,omitempty"`
	FixedDates []NamedHoliday `json:"fixed_dates,omitempty"`
}

// NamedHoliday is a Gregorian holiday with the name the greeting shows.
type NamedHoliday struct {
	Month time.Month `json:"month"`
	Day   int        `json:"day"`
	Name  string     `json:"name,omitempty"`
}

// BirthdayCare is a birthday greeting.
type BirthdayCare struct {
	PreferLunar bool `json:"prefer_lunar,omitempty"`
}

// Survey is a satisfaction survey DaysAfterPurchase days after a purchase.
type Survey struct {
	DaysAfterPurchase int `json:"days_after_purchase"`
}

// Complaint follows up a complaint within SLAHours.
type Complaint struct {
	SLAHours int `json:"sla_hours"`
}

// NotContacted fires for customers not contacted in Days days.
type NotContacted struct {
	Days int `json:"days"`
}

// WinBack fires DaysAfterDormant days after a customer turns dormant.
type WinBack struct {
	DaysAfterDormant int `json:"days_after_dormant,omitempty"`
}

// Recommendation tells buyers of Categories about Product, once, from Start.
type Recommendation struct {
	Categories []string  `json:"categories"`
	Product    string    `json:"product"`
	Start      time.Time `json:"start,omitzero"`
}

// TaskAction makes a task for the customer's owner.
type TaskAction struct {
	Title string `json:"title"`
	Note  string `json:"note,omitempty"`
}

// MessageAction sends a message through the tenant's webhook.
type MessageAction struct {
	WebhookURL string `json:"webhook_url"`
	Channel    string `json:"channel"`
	Template   string `json:"template"`
}

// Clock is a wall-clock time of day.
type Clock struct {
	Hour   int `json:"hour"`
	Minute int `json:"minute"`
}

// PlanHours are a plan's working hours as the API states them: weekdays 1
// (Monday) to 7 (Sunday), empty meaning Monday to Friday.
type PlanHours struct {
	Start    Clock `json:"start"`
	End      Clock `json:"end"`
	Weekdays []int `json:"weekdays,omitempty"`
}

// DefaultWorkingHours are 09:00-18:00 Monday to Friday.
var DefaultWorkingHours = WorkingHours{Start: 9 * 60, End: 18 * 60,
	Days: []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}}

// Hours returns the plan's working hours for NextWorkingTime.
func (p *Plan) Hours() WorkingHours {
	h := p.WorkingHours
	if h == nil {
		return DefaultWorkingHours
	}
	w := WorkingHours{Start: h.Start.Hour*60 + h.Start.Minute, End: h.End.Hour*60 + h.End.Minute}
	for _, d := range h.Weekdays {
		w.Days = append(w.Days, time.Weekday(d%7))
	}
	if len(w.Days) == 0 {
		w.Days = DefaultWorkingHours.Days
	}
	return w
}

// Trigger kinds, as Plan.Trigger names them.
const (
	TriggerRevisit        = "revisit"
	TriggerHolidays       = "holidays"
	TriggerBirthday       = "birthday"
	TriggerSurvey         = "survey"
	TriggerComplaint      = "complaint_follow_up"
	TriggerNotContacted   = "not_contacted"
	TriggerWinBack        = "win_back"
	TriggerRecommendation = "recommendation"
)

// Trigger names the plan's trigger; "" when none or several are set.
func (p *Plan) Trigger() string {
	set := p.triggers()
	if len(set) != 1 {
		return ""
	}
	return set[0]
}

func (p *Plan) triggers() []string {
	var out []string
	for _, x := range []struct {
		name string
		set  bool
	}{
		{TriggerRevisit, p.Revisit != nil}, {TriggerHolidays, p.Holidays != nil}, {TriggerBirthday, p.Birthday != nil},
		{TriggerSurvey, p.Survey != nil}, {TriggerComplaint, p.Complaint != nil}, {TriggerNotContacted, p.NotContacted != nil},
		{TriggerWinBack, p.WinBack != nil}, {TriggerRecommendation, p.Recommendation != nil},
	} {
		if x.set {
			out = append(out, x.name)
		}
	}
	return out
}

// Recurring reports whether the plan fires on a calendar of its own
// (revisits, holidays, birthdays, silences) rather than on events.
func (p *Plan) Recurring() bool {
	switch p.Trigger() {
	case TriggerRevisit, TriggerHolidays, TriggerBirthday, TriggerNotContacted:
		return true
	}
	return false
}

// DedupKey is what the plan's touches say, across plans: greetings share
// "greeting", so a birthday on a festival is greeted once.
func (p *Plan) DedupKey() string {
	switch p.Trigger() {
	case TriggerHolidays, TriggerBirthday:
		return "greeting"
	}
	return ""
}

// RecurrenceFor returns the revisit rhythm for a customer of tier: the
// tier's own, else the "*" one; nil when neither exists.
func (p *Plan) RecurrenceFor(tier string) *Recurrence {
	if p.Revisit == nil {
		return nil
	}
	var pick string
	for _, tr := range p.Revisit.ByTier {
		if tr.Tier == tier && tier != "" {
			pick = tr.Recurrence
			break
		}
		if tr.Tier == AnyTier && pick == "" {
			pick = tr.Recurrence
		}
	}
	if pick == "" {
		return nil
	}
	r, err := ParseRecurrence(pick)
	if err != nil {
		return nil // Validate refused it before the plan was stored
	}
	return r
}

// Validate checks a plan, naming every bad field by its path in a
// CreatePlanRequest or UpdatePlanRequest ("plan.survey.days_after_purchase").
func (p *Plan) Validate() error {
	var v fault.Violations
	ident.Check(&v, "plan.plan_id", p.ID, true)
	if tz := p.DefaultTimeZone; tz != "" {
		if _, err := time.LoadLocation(tz); err != nil || tz == "Local" {
			v.Add("plan.default_time_zone", "is not an IANA time zone: %q", tz)
		}
	}
	t := p.Target
	if !t.AllCustomers && len(t.Tiers) == 0 && len(t.SegmentIDs) == 0 && len(t.LoyaltyTiers) == 0 {
		v.Add("plan.target", "must set tiers, segment_ids, loyalty_tiers or all_customers")
	}
	for i, tier := range t.Tiers {
		if !isValueTier(tier) {
			v.Add(fmt.Sprintf("plan.target.tiers[%d]", i), "must be one of %s, got %q", strings.Join(ValueTiers, ", "), tier)
		}
	}
	for i, s := range t.SegmentIDs {
		ident.Check(&v, fmt.Sprintf("plan.target.segment_ids[%d]", i), s, true)
	}
	for i, lt := range t.LoyaltyTiers {
		prog, tier, ok := strings.Cut(lt, "/")
		if !ok || !ident.Valid(prog) || !ident.Valid(tier) {
			v.Add(fmt.Sprintf("plan.target.loyalty_tiers[%d]", i), "must be \"program_id/tier_id\", got %q", lt)
		}
	}
	switch set := p.triggers(); len(set) {
	case 0:
		v.Add("plan.trigger", "exactly one trigger is required: revisit, holidays, birthday, survey, complaint_follow_up, not_contacted, win_back or recommendation")
	case 1:
	default:
		v.Add("plan.trigger", "exactly one trigger is allowed, got %s", strings.Join(set, " and "))
	}
	p.validateTrigger(&v)
	switch {
	case p.Task == nil && p.Message == nil:
		v.Add("plan.action", "exactly one action is required: task or message")
	case p.Task != nil && p.Message != nil:
		v.Add("plan.action", "exactly one action is allowed, got task and message")
	}
	if p.Task != nil && strings.TrimSpace(p.Task.Title) == "" {
		v.Add("plan.task.title", "is required")
	}
	if m := p.Message; m != nil {
		if u, err := url.Parse(m.WebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.Add("plan.message.webhook_url", "must be an absolute http or https URL, got %q", m.WebhookURL)
		}
		ident.Check(&v, "plan.message.channel", m.Channel, true)
		if strings.TrimSpace(m.Template) == "" {
			v.Add("plan.message.template", "is required")
		}
	}
	if p.Complaint != nil && p.Message != nil {
		v.Add("plan.action", "a complaint follow-up needs a task: an SLA escalates to a person")
	}
	checkClockAt(&v, "plan.at", p.At)
	if h := p.WorkingHours; h != nil {
		checkClockAt(&v, "plan.working_hours.start", h.Start)
		checkClockAt(&v, "plan.working_hours.end", h.End)
		if h.End.Hour*60+h.End.Minute <= h.Start.Hour*60+h.Start.Minute {
			v.Add("plan.working_hours.end", "must be after start")
		}
		for i, d := range h.Weekdays {
			if d < 1 || d > 7 {
				v.Add(fmt.Sprintf("plan.working_hours.weekdays[%d]", i), "must be 1 (Monday) to 7 (Sunday), got %d", d)
			}
		}
	}
	return v.Err()
}

func (p *Plan) validateTrigger(v *fault.Violations) {
	if r := p.Revisit; r != nil {
		if len(r.ByTier) == 0 {
			v.Add("plan.revisit.by_tier", "must give at least one tier's rhythm")
		}
		for i, tr := range r.ByTier {
			f := fmt.Sprintf("plan.revisit.by_tier[%d]", i)
			if tr.Tier != AnyTier && !isValueTier(tr.Tier) {
				v.Add(f+".tier", "must be one of %s or \"*\", got %q", strings.Join(ValueTiers, ", "), tr.Tier)
			}
			if _, err := ParseRecurrence(tr.Recurrence); err != nil {
				v.Merge(f, err) // ParseRecurrence names "recurrence"
			}
		}
	}
	if h := p.Holidays; h != nil {
		if len(h.Festivals) == 0 && len(h.FixedDates) == 0 {
			v.Add("plan.holidays", "must name at least one festival or fixed date")
		}
		for i, f := range h.Festivals {
			if _, _, ok := f.LunarDate(); !ok {
				v.Add(fmt.Sprintf("plan.holidays.festivals[%d]", i), "unknown festival %d", int(f))
			}
		}
		for i, d := range h.FixedDates {
			if err := (FixedDate{Month: d.Month, Day: d.Day}).Validate(); err != nil {
				v.Merge(fmt.Sprintf("plan.holidays.fixed_dates[%d]", i), err)
			}
		}
	}
	if s := p.Survey; s != nil && s.DaysAfterPurchase < 1 {
		v.Add("plan.survey.days_after_purchase", "must be at least 1, got %d", s.DaysAfterPurchase)
	}
	if c := p.Complaint; c != nil && c.SLAHours < 1 {
		v.Add("plan.complaint_follow_up.sla_hours", "must be at least 1, got %d", c.SLAHours)
	}
	if n := p.NotContacted; n != nil && n.Days < 1 {
		v.Add("plan.not_contacted.days", "must be at least 1, got %d", n.Days)
	}
	if w := p.WinBack; w != nil && w.DaysAfterDormant < 0 {
		v.Add("plan.win_back.days_after_dormant", "must not be negative, got %d", w.DaysAfterDormant)
	}
	if r := p.Recommendation; r != nil {
		if len(r.Categories) == 0 {
			v.Add("plan.recommendation.categories", "must name at least one category")
		}
		for i, c := range r.Categories {
			if strings.TrimSpace(c) == "" {
				v.Add(fmt.Sprintf("plan.recommendation.categories[%d]", i), "must not be empty")
			}
		}
		if strings.TrimSpace(r.Product) == "" {
			v.Add("plan.recommendation.product", "is required")
		}
	}
}

func checkClockAt(v *fault.Violations, field string, c Clock) {
	if err := ValidateClock(c.Hour, c.Minute); err != nil {
		v.Merge(field, err)
	}
}

func isValueTier(s string) bool {
	for _, t := range ValueTiers {
		if s == t {
			return true
		}
	}
	return false
}
