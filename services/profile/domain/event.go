package domain

import "time"

// Money is an amount in minor units of an ISO 4217 currency.
type Money struct {
	Minor    int64  `json:"minor"`
	Currency string `json:"cur"`
}

// EventKind names the kind of a timeline record; the numbers match the API.
type EventKind int32

// Timeline record kinds.
const (
	EventUnspecified  EventKind = 0
	EventPurchase     EventKind = 1
	EventRefund       EventKind = 2
	EventConsultation EventKind = 3
	EventAfterSales   EventKind = 4
	EventComplaint    EventKind = 5
	EventSurvey       EventKind = 6
	EventContactLog   EventKind = 7
	EventReferral     EventKind = 8
)

// LineItem is one line of an order.
type LineItem struct {
	SKU       string `json:"sku,omitempty"`
	Name      string `json:"name,omitempty"`
	Category  string `json:"cat,omitempty"`
	Quantity  int64  `json:"qty"`
	UnitPrice Money  `json:"price,omitzero"`
}

// Purchase is an order.
type Purchase struct {
	OrderID  string     `json:"order"`
	Amount   Money      `json:"amount"`
	Items    []LineItem `json:"items,omitempty"`
	Channel  int32      `json:"channel,omitempty"`
	Discount Money      `json:"discount,omitzero"`
	StoreID  string     `json:"store,omitempty"`
}

// Discounted reports whether the purchase was bought on discount.
func (p *Purchase) Discounted() bool { return p.Discount.Minor > 0 }

// Refund returns or cancels (part of) an earlier purchase.
type Refund struct {
	OrderID      string `json:"order"`
	Amount       Money  `json:"amount"`
	Reason       string `json:"reason,omitempty"`
	Cancellation bool   `json:"cancel,omitempty"`
}

// Consultation is an inquiry.
type Consultation struct {
	Topic  string `json:"topic,omitempty"`
	Method int32  `json:"method,omitempty"`
	Notes  string `json:"notes,omitempty"`
}

// AfterSales is an after-sales service.
type AfterSales struct {
	Kind     int32  `json:"kind"`
	OrderID  string `json:"order,omitempty"`
	TicketID string `json:"ticket,omitempty"`
	Notes    string `json:"notes,omitempty"`
}

// Complaint is a complaint or a change of its status.
type Complaint struct {
	ComplaintID string `json:"id"`
	Severity    int32  `json:"severity"`
	Status      int32  `json:"status"`
	Category    string `json:"cat,omitempty"`
	Description string `json:"desc,omitempty"`
	OrderID     string `json:"order,omitempty"`
}

// Survey is a satisfaction survey answer; nil scores were not asked.
type Survey struct {
	SurveyID string `json:"id,omitempty"`
	CSAT     *int32 `json:"csat,omitempty"`
	NPS      *int32 `json:"nps,omitempty"`
	Text     string `json:"text,omitempty"`
}

// ContactLog is a contact or revisit.
type ContactLog struct {
	Method  int32  `json:"method"`
	Outcome int32  `json:"outcome"`
	Staff   string `json:"staff,omitempty"`
	Notes   string `json:"notes,omitempty"`
	TaskID  string `json:"task,omitempty"`
}

// Referral is the customer referring someone.
type Referral struct {
	ReferredCustomerID string `json:"referred,omitempty"`
	Note               string `json:"note,omitempty"`
}

// Event is one record of a customer's timeline. Exactly one of the kind
// pointers is set.
type Event struct {
	ID         string    `json:"id"`
	CustomerID string    `json:"customer"`
	OccurTime  time.Time `json:"at"`
	RecordTime time.Time `json:"recorded"`
	Source     string    `json:"source,omitempty"`

	Purchase     *Purchase     `json:"purchase,omitempty"`
	Refund       *Refund       `json:"refund,omitempty"`
	Consultation *Consultation `json:"consultation,omitempty"`
	AfterSales   *AfterSales   `json:"after_sales,omitempty"`
	Complaint    *Complaint    `json:"complaint,omitempty"`
	Survey       *Survey       `json:"survey,omitempty"`
	ContactLog   *ContactLog   `json:"contact,omitempty"`
	Referral     *Referral     `json:"referral,omitempty"`
}

// Kind says which kind of record the event is.
func (e *Event) Kind() EventKind {
	switch {
	case e.Purchase != nil:
		return EventPurchase
	case e.Refund != nil:
		return EventRefund
	case e.Consultation != nil:
		return EventConsultation
	case e.AfterSales != nil:
		return EventAfterSales
	case e.Complaint != nil:
		return EventComplaint
	case e.Survey != nil:
		return EventSurvey
	case e.ContactLog != nil:
		return EventContactLog
	case e.Referral != nil:
		return EventReferral
	}
	return EventUnspecified
}

// kinds counts the kind pointers set, for validation.
func (e *Event) kinds() int {
	n := 0
	for _, set := range []bool{e.Purchase != nil, e.Refund != nil, e.Consultation != nil, e.AfterSales != nil,
		e.Complaint != nil, e.Survey != nil, e.ContactLog != nil, e.Referral != nil} {
		if set {
			n++
		}
	}
	return n
}

// Order is the refundable state of a purchase, kept so refunds can be checked
// without scanning the timeline.
type Order struct {
	OrderID  string `json:"order"`
	EventID  string `json:"event"`
	Amount   Money  `json:"amount"`
	Refunded int64  `json:"refunded"`
}

// Remaining is what may still be refunded.
func (o *Order) Remaining() int64 { return o.Amount.Minor - o.Refunded }
