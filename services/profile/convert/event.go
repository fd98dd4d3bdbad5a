package convert

import (
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
	"rapport.dev/services/profile/domain"
)

// EventFromProto maps a timeline record as a client sends it: the oneof kind
// becomes the matching kind pointer. record_time is output-only and ignored.
// It returns nil for a nil p.
func EventFromProto(p *profilev1.Event) *domain.Event {
	if p == nil {
		return nil
	}
	e := &domain.Event{
		ID:         p.GetEventId(),
		CustomerID: p.GetCustomerId(),
		OccurTime:  timeFromProto(p.GetOccurTime()),
		Source:     p.GetSource(),
	}
	switch k := p.GetKind().(type) {
	case *profilev1.Event_Purchase:
		e.Purchase = purchaseFromProto(k.Purchase)
	case *profilev1.Event_Refund:
		e.Refund = refundFromProto(k.Refund)
	case *profilev1.Event_Consultation:
		e.Consultation = consultationFromProto(k.Consultation)
	case *profilev1.Event_AfterSales:
		e.AfterSales = afterSalesFromProto(k.AfterSales)
	case *profilev1.Event_Complaint:
		e.Complaint = complaintFromProto(k.Complaint)
	case *profilev1.Event_Survey:
		e.Survey = surveyFromProto(k.Survey)
	case *profilev1.Event_ContactLog:
		e.ContactLog = contactLogFromProto(k.ContactLog)
	case *profilev1.Event_Referral:
		e.Referral = referralFromProto(k.Referral)
	}
	return e
}

// EventToProto maps a stored timeline record, record_time included. The kind
// is chosen as domain.Event.Kind does, should more than one pointer be set.
// It returns nil for a nil e.
func EventToProto(e *domain.Event) *profilev1.Event {
	if e == nil {
		return nil
	}
	p := &profilev1.Event{
		EventId:    e.ID,
		CustomerId: e.CustomerID,
		OccurTime:  timeToProto(e.OccurTime),
		RecordTime: timeToProto(e.RecordTime),
		Source:     e.Source,
	}
	switch e.Kind() {
	case domain.EventPurchase:
		p.Kind = &profilev1.Event_Purchase{Purchase: purchaseToProto(e.Purchase)}
	case domain.EventRefund:
		p.Kind = &profilev1.Event_Refund{Refund: refundToProto(e.Refund)}
	case domain.EventConsultation:
		p.Kind = &profilev1.Event_Consultation{Consultation: consultationToProto(e.Consultation)}
	case domain.EventAfterSales:
		p.Kind = &profilev1.Event_AfterSales{AfterSales: afterSalesToProto(e.AfterSales)}
	case domain.EventComplaint:
		p.Kind = &profilev1.Event_Complaint{Complaint: complaintToProto(e.Complaint)}
	case domain.EventSurvey:
		p.Kind = &profilev1.Event_Survey{Survey: surveyToProto(e.Survey)}
	case domain.EventContactLog:
		p.Kind = &profilev1.Event_ContactLog{ContactLog: contactLogToProto(e.ContactLog)}
	case domain.EventReferral:
		p.Kind = &profilev1.Event_Referral{Referral: referralToProto(e.Referral)}
	}
	return p
}

// The kind messages below are never nil on the ToProto side (the caller
// switched on the pointer) and are read through nil-safe getters on the
// FromProto side, where a oneof may hold a nil message.

func purchaseFromProto(p *profilev1.Purchase) *domain.Purchase {
	return &domain.Purchase{
		OrderID:  p.GetOrderId(),
		Amount:   moneyFromProto(p.GetAmount()),
		Items:    mapSlice(p.GetItems(), lineItemFromProto),
		Channel:  int32(p.GetChannel()),
		Discount: moneyFromProto(p.GetDiscount()),
		StoreID:  p.GetStoreId(),
	}
}

func purchaseToProto(p *domain.Purchase) *profilev1.Purchase {
	return &profilev1.Purchase{
		OrderId:  p.OrderID,
		Amount:   moneyToProto(p.Amount),
		Items:    mapSlice(p.Items, lineItemToProto),
		Channel:  profilev1.SalesChannel(p.Channel),
		Discount: moneyToProto(p.Discount),
		StoreId:  p.StoreID,
	}
}

func lineItemFromProto(p *profilev1.LineItem) domain.LineItem {
	return domain.LineItem{
		SKU:       p.GetSku(),
		Name:      p.GetName(),
		Category:  p.GetCategory(),
		Quantity:  p.GetQuantity(),
		UnitPrice: moneyFromProto(p.GetUnitPrice()),
	}
}

func lineItemToProto(l domain.LineItem) *profilev1.LineItem {
	return &profilev1.LineItem{
		Sku:       l.SKU,
		Name:      l.Name,
		Category:  l.Category,
		Quantity:  l.Quantity,
		UnitPrice: moneyToProto(l.UnitPrice),
	}
}

func refundFromProto(p *profilev1.Refund) *domain.Refund {
	return &domain.Refund{
		OrderID:      p.GetOrderId(),
		Amount:       moneyFromProto(p.GetAmount()),
		Reason:       p.GetReason(),
		Cancellation: p.GetCancellation(),
	}
}

func refundToProto(r *domain.Refund) *profilev1.Refund {
	return &profilev1.Refund{
		OrderId:      r.OrderID,
		Amount:       moneyToProto(r.Amount),
		Reason:       r.Reason,
		Cancellation: r.Cancellation,
	}
}

func consultationFromProto(p *profilev1.Consultation) *domain.Consultation {
	return &domain.Consultation{
		Topic:  p.GetTopic(),
		Method: int32(p.GetMethod()),
		Notes:  p.GetNotes(),
	}
}

func consultationToProto(c *domain.Consultation) *profilev1.Consultation {
	return &profilev1.Consultation{
		Topic:  c.Topic,
		Method: profilev1.ContactMethod(c.Method),
		Notes:  c.Notes,
	}
}

func afterSalesFromProto(p *profilev1.AfterSales) *domain.AfterSales {
	return &domain.AfterSales{
		Kind:     int32(p.GetKind()),
		OrderID:  p.GetOrderId(),
		TicketID: p.GetTicketId(),
		Notes:    p.GetNotes(),
	}
}

func afterSalesToProto(a *domain.AfterSales) *profilev1.AfterSales {
	return &profilev1.AfterSales{
		Kind:     profilev1.AfterSalesKind(a.Kind),
		OrderId:  a.OrderID,
		TicketId: a.TicketID,
		Notes:    a.Notes,
	}
}

func complaintFromProto(p *profilev1.Complaint) *domain.Complaint {
	return &domain.Complaint{
		ComplaintID: p.GetComplaintId(),
		Severity:    int32(p.GetSeverity()),
		Status:      int32(p.GetStatus()),
		Category:    p.GetCategory(),
		Description: p.GetDescription(),
		OrderID:     p.GetOrderId(),
	}
}

func complaintToProto(c *domain.Complaint) *profilev1.Complaint {
	return &profilev1.Complaint{
		ComplaintId: c.ComplaintID,
		Severity:    profilev1.ComplaintSeverity(c.Severity),
		Status:      profilev1.ComplaintStatus(c.Status),
		Category:    c.Category,
		Description: c.Description,
		OrderId:     c.OrderID,
	}
}

func surveyFromProto(p *profilev1.SurveyResponse) *domain.Survey {
	s := &domain.Survey{SurveyID: p.GetSurveyId(), Text: p.GetText()}
	if p != nil {
		// Copies, so an unset score stays nil and a score of 0 stays set.
		s.CSAT, s.NPS = clonePtr(p.Csat), clonePtr(p.Nps)
	}
	return s
}

func surveyToProto(s *domain.Survey) *profilev1.SurveyResponse {
	return &profilev1.SurveyResponse{
		SurveyId: s.SurveyID,
		Csat:     clonePtr(s.CSAT),
		Nps:      clonePtr(s.NPS),
		Text:     s.Text,
	}
}

func contactLogFromProto(p *profilev1.ContactLog) *domain.ContactLog {
	return &domain.ContactLog{
		Method:  int32(p.GetMethod()),
		Outcome: int32(p.GetOutcome()),
		Staff:   p.GetStaff(),
		Notes:   p.GetNotes(),
		TaskID:  p.GetTaskId(),
	}
}

func contactLogToProto(c *domain.ContactLog) *profilev1.ContactLog {
	return &profilev1.ContactLog{
		Method:  profilev1.ContactMethod(c.Method),
		Outcome: profilev1.ContactOutcome(c.Outcome),
		Staff:   c.Staff,
		Notes:   c.Notes,
		TaskId:  c.TaskID,
	}
}

func referralFromProto(p *profilev1.Referral) *domain.Referral {
	return &domain.Referral{
		ReferredCustomerID: p.GetReferredCustomerId(),
		Note:               p.GetNote(),
	}
}

func referralToProto(r *domain.Referral) *profilev1.Referral {
	return &profilev1.Referral{
		ReferredCustomerId: r.ReferredCustomerID,
		Note:               r.Note,
	}
}

// clonePtr copies the value behind p, keeping nil as nil.
func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func moneyFromProto(p *typev1.Money) domain.Money {
	return domain.Money{Minor: p.GetAmountMinor(), Currency: p.GetCurrency()}
}

// moneyToProto gives nil for the zero Money, as an unset discount or unit
// price is sent.
func moneyToProto(m domain.Money) *typev1.Money {
	if m == (domain.Money{}) {
		return nil
	}
	return &typev1.Money{AmountMinor: m.Minor, Currency: m.Currency}
}
