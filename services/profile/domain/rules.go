package domain

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"rapport.dev/platform/fault"
)

// Etag is the opaque version tag of a stored revision.
func Etag(revision uint64) string { return "r" + strconv.FormatUint(revision, 10) }

// CheckEtag fails with ErrConflict when etag is set and is not the current one.
func (c *Customer) CheckEtag(etag string) error {
	if etag != "" && etag != Etag(c.Revision) {
		return fmt.Errorf("customer %q changed since it was read (etag %s, now %s): %w",
			c.ID, etag, Etag(c.Revision), fault.ErrConflict)
	}
	return nil
}

// CheckRefund decides whether refund r may be applied to order o, which is
// nil when the customer has no purchase with that order id.
func CheckRefund(o *Order, customerID string, r *Refund) error {
	if o == nil {
		return fault.InvalidField("refund.order_id", "customer %q has no purchase with order id %q", customerID, r.OrderID)
	}
	if r.Amount.Currency != o.Amount.Currency {
		return fault.InvalidField("refund.amount.currency", "must be %s, the currency of order %q", o.Amount.Currency, o.OrderID)
	}
	if r.Amount.Minor > o.Remaining() {
		return fault.InvalidField("refund.amount.amount_minor",
			"refund of %d exceeds what is left of order %q (%d of %d)", r.Amount.Minor, o.OrderID, o.Remaining(), o.Amount.Minor)
	}
	return nil
}

// Erased is the display name left on an erased record.
const Erased = "(erased)"

// Erase tombstones the personal fields of c: names, phone, email, birthdays,
// contacts' personal data, free attributes and traits. What is not personal
// stays: kind, region down to the province, lifecycle, acquisition channel,
// owner, and, outside this record, the timeline's money.
func (c *Customer) Erase(now time.Time) {
	c.DisplayName = Erased
	if c.Person != nil {
		c.Person = &Person{IncomeBand: c.Person.IncomeBand, Education: c.Person.Education}
	}
	if c.Organization != nil {
		for i := range c.Organization.Contacts {
			ct := &c.Organization.Contacts[i]
			*ct = Contact{ID: ct.ID, Role: ct.Role, Counterpart: ct.Counterpart, Name: Erased}
		}
	}
	c.Phone, c.Email = "", ""
	c.Region.City = ""
	c.Attributes, c.Traits = nil, nil
	c.Acquisition.Campaign = ""
	c.Erased = true
	c.UpdateTime = now
}

// ScrubText removes the free text of an erased customer's timeline record,
// which may hold personal data; amounts, ids and times stay.
func (e *Event) ScrubText() {
	switch {
	case e.Refund != nil:
		e.Refund.Reason = ""
	case e.Consultation != nil:
		e.Consultation.Notes = ""
	case e.AfterSales != nil:
		e.AfterSales.Notes = ""
	case e.Complaint != nil:
		e.Complaint.Description = ""
	case e.Survey != nil:
		e.Survey.Text = ""
	case e.ContactLog != nil:
		e.ContactLog.Notes = ""
	case e.Referral != nil:
		e.Referral.Note = ""
	}
}

// MergeFrom fills the empty fields of c (the target) from src and unions tags,
// traits, attributes and contacts. Values already on the target win.
func (c *Customer) MergeFrom(src *Customer, now time.Time) {
	fill := func(dst *string, s string) {
		if *dst == "" {
			*dst = s
		}
	}
	fill(&c.Phone, src.Phone)
	fill(&c.Email, src.Email)
	fill(&c.Region.Country, src.Region.Country)
	fill(&c.Region.Province, src.Region.Province)
	fill(&c.Region.City, src.Region.City)
	fill(&c.TimeZone, src.TimeZone)
	fill(&c.Language, src.Language)
	fill(&c.Owner, src.Owner)
	if c.Person == nil && src.Person != nil && c.Kind == src.Kind {
		p := *src.Person
		c.Person = &p
	}
	if c.Acquisition == (Acquisition{}) {
		c.Acquisition = src.Acquisition
	}
	if c.Stage == 0 {
		c.Stage = src.Stage
	}
	if c.Intent == 0 {
		c.Intent = src.Intent
	}
	for _, t := range src.Tags {
		if !slices.Contains(c.Tags, t) {
			c.Tags = append(c.Tags, t)
		}
	}
	for _, t := range src.Traits {
		if !slices.Contains(c.Traits, t) {
			c.Traits = append(c.Traits, t)
		}
	}
	for k, v := range src.Attributes {
		if _, ok := c.Attributes[k]; !ok {
			if c.Attributes == nil {
				c.Attributes = map[string]string{}
			}
			c.Attributes[k] = v
		}
	}
	for _, cs := range src.Consents {
		if !slices.ContainsFunc(c.Consents, func(x Consent) bool { return x.Channel == cs.Channel }) {
			c.Consents = append(c.Consents, cs)
		}
	}
	c.DoNotContact = c.DoNotContact || src.DoNotContact
	if c.Organization != nil && src.Organization != nil {
		for _, ct := range src.Organization.Contacts {
			if !slices.ContainsFunc(c.Organization.Contacts, func(x Contact) bool { return x.ID == ct.ID }) {
				c.Organization.Contacts = append(c.Organization.Contacts, ct)
			}
		}
	}
	c.UpdateTime = now
}

// CheckMerge decides whether src may be merged into target.
func CheckMerge(target, src *Customer) error {
	var v fault.Violations
	switch {
	case target.ID == src.ID:
		v.Add("source_customer_id", "must differ from target_customer_id")
	case target.MergedInto != "":
		v.Add("target_customer_id", "was itself merged into %q", target.MergedInto)
	case src.MergedInto != "" && src.MergedInto != target.ID:
		v.Add("source_customer_id", "was already merged into %q", src.MergedInto)
	case target.Kind != src.Kind:
		v.Add("source_customer_id", "is a different kind of customer than the target")
	}
	return v.Err()
}

// DuplicateKeys are the match keys a customer is found by: its normalized
// phone numbers and email addresses, "phone:<digits>" and "email:<address>".
func (c *Customer) DuplicateKeys() []string {
	if !c.Active() || c.Erased {
		return nil
	}
	var keys []string
	add := func(k string) {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	if p := normalizedPhone(c.Phone); p != "" {
		add("phone:" + p)
	}
	if e := normalizedEmail(c.Email); e != "" {
		add("email:" + e)
	}
	if c.Organization != nil {
		for _, ct := range c.Organization.Contacts {
			if p := normalizedPhone(ct.Phone); p != "" {
				add("phone:" + p)
			}
			if e := normalizedEmail(ct.Email); e != "" {
				add("email:" + e)
			}
		}
	}
	slices.Sort(keys)
	return keys
}

// Filter selects customers in a listing; zero fields match everything.
type Filter struct {
	Stage    Stage
	Owner    string
	Country  string
	Province string
	City     string
	Tag      string
	Channel  AcquisitionChannel
	Intent   Intent
	Kind     Kind
}

// Match reports whether c passes the filter.
func (f Filter) Match(c *Customer) bool {
	return (f.Stage == 0 || c.Stage == f.Stage) &&
		(f.Owner == "" || c.Owner == f.Owner) &&
		(f.Country == "" || strings.EqualFold(c.Region.Country, f.Country)) &&
		(f.Province == "" || c.Region.Province == f.Province) &&
		(f.City == "" || c.Region.City == f.City) &&
		(f.Tag == "" || slices.Contains(c.Tags, f.Tag)) &&
		(f.Channel == 0 || c.Acquisition.Channel == f.Channel) &&
		(f.Intent == 0 || c.Intent == f.Intent) &&
		(f.Kind == 0 || c.Kind == f.Kind)
}
