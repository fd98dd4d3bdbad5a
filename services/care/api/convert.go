package api

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	carev1 "rapport.dev/gen/go/rapport/care/v1"
	"rapport.dev/services/care/domain"
	"rapport.dev/services/care/store"
)

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func timeOf(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime().UTC()
}

func clockOf(c *carev1.LocalTime) domain.Clock {
	return domain.Clock{Hour: int(c.GetHour()), Minute: int(c.GetMinute())}
}

func localTime(c domain.Clock) *carev1.LocalTime {
	return &carev1.LocalTime{Hour: int32(c.Hour), Minute: int32(c.Minute)}
}

// planFromProto is the domain plan of a request; Validate checks it.
func planFromProto(in *carev1.Plan) *domain.Plan {
	tg := in.GetTarget()
	p := &domain.Plan{ID: in.GetPlanId(), DisplayName: in.GetDisplayName(), Enabled: in.GetEnabled(),
		Target: domain.Target{Tiers: tg.GetTiers(), SegmentIDs: tg.GetSegmentIds(), LoyaltyTiers: tg.GetLoyaltyTiers(),
			AllCustomers: tg.GetAllCustomers()},
		At: clockOf(in.GetAt()), Etag: in.GetEtag(), DefaultTimeZone: in.GetDefaultTimeZone()}
	switch t := in.GetTrigger().(type) {
	case *carev1.Plan_Revisit:
		p.Revisit = &domain.Revisit{}
		for _, tr := range t.Revisit.GetByTier() {
			p.Revisit.ByTier = append(p.Revisit.ByTier, domain.TierRecurrence{Tier: tr.GetTier(), Recurrence: tr.GetRecurrence()})
		}
	case *carev1.Plan_Holidays:
		p.Holidays = &domain.Holidays{}
		for _, f := range t.Holidays.GetFestivals() {
			p.Holidays.Festivals = append(p.Holidays.Festivals, domain.Festival(f))
		}
		for _, d := range t.Holidays.GetFixedDates() {
			p.Holidays.FixedDates = append(p.Holidays.FixedDates, domain.NamedHoliday{Month: time.Month(d.GetMonth()), Day: int(d.GetDay()), Name: d.GetName()})
		}
	case *carev1.Plan_Birthday:
		p.Birthday = &domain.BirthdayCare{PreferLunar: t.Birthday.GetPreferLunar()}
	case *carev1.Plan_Survey:
		p.Survey = &domain.Survey{DaysAfterPurchase: int(t.Survey.GetDaysAfterPurchase())}
	case *carev1.Plan_ComplaintFollowUp:
		p.Complaint = &domain.Complaint{SLAHours: int(t.ComplaintFollowUp.GetSlaHours())}
	case *carev1.Plan_NotContacted:
		p.NotContacted = &domain.NotContacted{Days: int(t.NotContacted.GetDays())}
	case *carev1.Plan_WinBack:
		p.WinBack = &domain.WinBack{DaysAfterDormant: int(t.WinBack.GetDaysAfterDormant())}
	case *carev1.Plan_Recommendation:
		p.Recommendation = &domain.Recommendation{Categories: t.Recommendation.GetCategories(),
			Product: t.Recommendation.GetProduct(), Start: timeOf(t.Recommendation.GetStartTime())}
	}
	switch a := in.GetAction().(type) {
	case *carev1.Plan_Task:
		p.Task = &domain.TaskAction{Title: a.Task.GetTitle(), Note: a.Task.GetNote()}
	case *carev1.Plan_Message:
		p.Message = &domain.MessageAction{WebhookURL: a.Message.GetWebhookUrl(), Channel: a.Message.GetChannel(), Template: a.Message.GetTemplate()}
	}
	if h := in.GetWorkingHours(); h != nil {
		p.WorkingHours = &domain.PlanHours{Start: clockOf(h.GetStart()), End: clockOf(h.GetEnd())}
		for _, d := range h.GetWeekdays() {
			p.WorkingHours.Weekdays = append(p.WorkingHours.Weekdays, int(d))
		}
	}
	return p
}

func planToProto(p *domain.Plan) *carev1.Plan {
	out := &carev1.Plan{PlanId: p.ID, DisplayName: p.DisplayName, Enabled: p.Enabled,
		Target: &carev1.Target{Tiers: p.Target.Tiers, SegmentIds: p.Target.SegmentIDs, LoyaltyTiers: p.Target.LoyaltyTiers,
			AllCustomers: p.Target.AllCustomers},
		At: localTime(p.At), Etag: p.Etag, CreateTime: ts(p.Created), UpdateTime: ts(p.Updated),
		DefaultTimeZone: p.DefaultTimeZone}
	switch {
	case p.Revisit != nil:
		r := &carev1.Revisit{}
		for _, tr := range p.Revisit.ByTier {
			r.ByTier = append(r.ByTier, &carev1.TierRecurrence{Tier: tr.Tier, Recurrence: tr.Recurrence})
		}
		out.Trigger = &carev1.Plan_Revisit{Revisit: r}
	case p.Holidays != nil:
		h := &carev1.Holidays{}
		for _, f := range p.Holidays.Festivals {
			h.Festivals = append(h.Festivals, carev1.Festival(f))
		}
		for _, d := range p.Holidays.FixedDates {
			h.FixedDates = append(h.FixedDates, &carev1.FixedDate{Month: int32(d.Month), Day: int32(d.Day), Name: d.Name})
		}
		out.Trigger = &carev1.Plan_Holidays{Holidays: h}
	case p.Birthday != nil:
		out.Trigger = &carev1.Plan_Birthday{Birthday: &carev1.Birthday{PreferLunar: p.Birthday.PreferLunar}}
	case p.Survey != nil:
		out.Trigger = &carev1.Plan_Survey{Survey: &carev1.Survey{DaysAfterPurchase: int32(p.Survey.DaysAfterPurchase)}}
	case p.Complaint != nil:
		out.Trigger = &carev1.Plan_ComplaintFollowUp{ComplaintFollowUp: &carev1.ComplaintFollowUp{SlaHours: int32(p.Complaint.SLAHours)}}
	case p.NotContacted != nil:
		out.Trigger = &carev1.Plan_NotContacted{NotContacted: &carev1.NotContacted{Days: int32(p.NotContacted.Days)}}
	case p.WinBack != nil:
		out.Trigger = &carev1.Plan_WinBack{WinBack: &carev1.WinBack{DaysAfterDormant: int32(p.WinBack.DaysAfterDormant)}}
	case p.Recommendation != nil:
		out.Trigger = &carev1.Plan_Recommendation{Recommendation: &carev1.Recommendation{Categories: p.Recommendation.Categories,
			Product: p.Recommendation.Product, StartTime: ts(p.Recommendation.Start)}}
	}
	switch {
	case p.Task != nil:
		out.Action = &carev1.Plan_Task{Task: &carev1.TaskAction{Title: p.Task.Title, Note: p.Task.Note}}
	case p.Message != nil:
		out.Action = &carev1.Plan_Message{Message: &carev1.MessageAction{WebhookUrl: p.Message.WebhookURL,
			Channel: p.Message.Channel, Template: p.Message.Template}}
	}
	if h := p.WorkingHours; h != nil {
		wh := &carev1.WorkingHours{Start: localTime(h.Start), End: localTime(h.End)}
		for _, d := range h.Weekdays {
			wh.Weekdays = append(wh.Weekdays, int32(d))
		}
		out.WorkingHours = wh
	}
	return out
}

func consentFromProto(in *carev1.Consent) store.Consent {
	c := store.Consent{CustomerID: in.GetCustomerId(), DoNotContact: in.GetDoNotContact(),
		OptedOutChannels: in.GetOptedOutChannels(), MaxTouchesPerWeek: int(in.GetMaxTouchesPerWeek())}
	if q := in.GetQuietHours(); q != nil {
		c.QuietHours = &store.QuietHours{Start: clockOf(q.GetStart()), End: clockOf(q.GetEnd())}
	}
	return c
}

func consentToProto(c *store.Consent) *carev1.Consent {
	out := &carev1.Consent{CustomerId: c.CustomerID, DoNotContact: c.DoNotContact, OptedOutChannels: c.OptedOutChannels,
		MaxTouchesPerWeek: int32(c.MaxTouchesPerWeek), UpdateTime: ts(c.Updated)}
	if q := c.QuietHours; q != nil {
		out.QuietHours = &carev1.QuietHours{Start: localTime(q.Start), End: localTime(q.End)}
	}
	return out
}
