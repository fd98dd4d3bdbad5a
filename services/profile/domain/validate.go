package domain

import (
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"rapport.dev/platform/fault"
	"rapport.dev/platform/ident"
)

var (
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
	countryPattern  = regexp.MustCompile(`^[A-Z]{2}$`)
	languagePattern = regexp.MustCompile(`^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$`)
	attrKeyPattern  = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// Limits on free data, so one record cannot grow without bound.
const (
	maxText       = 4096
	maxShortText  = 256
	maxTags       = 100
	maxAttributes = 100
	maxItems      = 500
	maxContacts   = 200
)

// ValidID reports whether s is a well-formed client-supplied id.
func ValidID(s string) bool { return ident.Valid(s) }

func checkID(v *fault.Violations, field, s string, required bool) { ident.Check(v, field, s, required) }

func checkText(v *fault.Violations, field, s string, max int) {
	if !utf8.ValidString(s) {
		v.Add(field, "must be valid UTF-8")
	} else if utf8.RuneCountInString(s) > max {
		v.Add(field, "must be at most %d characters", max)
	}
}

func checkEnum[T ~int32](v *fault.Violations, field string, x, max T, required bool) {
	switch {
	case x < 0 || x > max:
		v.Add(field, "unknown value %d", x)
	case required && x == 0:
		v.Add(field, "is required")
	}
}

// normalizedPhone keeps the digits of a phone number; duplicates are found on it.
func normalizedPhone(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// normalizedEmail lower-cases an address.
func normalizedEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func checkPhone(v *fault.Violations, field, s string) {
	if s == "" {
		return
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789+-() .", r) {
			v.Add(field, "may contain only digits, spaces and + - ( ) .")
			return
		}
	}
	if n := len(normalizedPhone(s)); n < 5 || n > 20 {
		v.Add(field, "must have 5 to 20 digits")
	}
}

func checkEmail(v *fault.Violations, field, s string) {
	if s == "" {
		return
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || len(s) > 254 {
		v.Add(field, "must be a plain email address like name@example.com")
	}
}

func checkDate(v *fault.Violations, field string, d Date) {
	if d.IsZero() {
		return
	}
	if d.Year < 0 || d.Year > 9999 {
		v.Add(field+".year", "must be 1 to 9999, or 0 when unknown")
	}
	if d.Month < 1 || d.Month > 12 {
		v.Add(field+".month", "must be 1 to 12")
		return
	}
	year := int(d.Year)
	if year == 0 {
		year = 2000 // a leap year, so 29 February is accepted when the year is unknown
	}
	last := time.Date(year, time.Month(d.Month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
	if d.Day < 1 || int(d.Day) > last {
		v.Add(field+".day", "must be 1 to %d for month %d", last, d.Month)
	}
}

func checkLunar(v *fault.Violations, field string, d LunarDate) {
	if d.IsZero() {
		return
	}
	if d.Year < 0 || d.Year > 9999 {
		v.Add(field+".year", "must be 1 to 9999, or 0 when unknown")
	}
	if d.Month < 1 || d.Month > 12 {
		v.Add(field+".month", "must be 1 to 12")
	}
	if d.Day < 1 || d.Day > 30 {
		v.Add(field+".day", "must be 1 to 30")
	}
}

// A google.protobuf.Timestamp holds 0001-01-01 to 9999-12-31, and the JSON
// that SameCustomer and SameEvent compare fails outside years 0 to 9999 (the
// store's binary records would hold any time): a client-set time outside
// this range is refused rather than stored (or failing as Internal).
var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

func checkTime(v *fault.Violations, field string, t time.Time) {
	if !t.IsZero() && (t.Before(minTime) || t.After(maxTime)) {
		v.Add(field, "must be between 0001-01-01 and 9999-12-31")
	}
}

// ValidTimeZone reports whether name is an IANA time zone known here.
func ValidTimeZone(name string) bool {
	if name == "" || name == "Local" {
		return false
	}
	_, err := time.LoadLocation(name)
	return err == nil
}

// Validate checks a customer as it would be stored. Field names are the API's.
func (c *Customer) Validate() error {
	var v fault.Violations
	checkID(&v, "customer_id", c.ID, true)
	checkEnum(&v, "kind", c.Kind, KindOrganization, true)
	if strings.TrimSpace(c.DisplayName) == "" {
		v.Add("display_name", "is required")
	}
	checkText(&v, "display_name", c.DisplayName, maxShortText)
	if c.Person != nil {
		if c.Kind == KindOrganization {
			v.Add("person", "must be empty for an organization")
		}
		p := c.Person
		checkText(&v, "person.given_name", p.GivenName, maxShortText)
		checkText(&v, "person.family_name", p.FamilyName, maxShortText)
		checkEnum(&v, "person.gender", p.Gender, maxGender, false)
		checkDate(&v, "person.birthday", p.Birthday)
		checkLunar(&v, "person.lunar_birthday", p.LunarBirthday)
		checkText(&v, "person.occupation", p.Occupation, maxShortText)
		checkEnum(&v, "person.income_band", p.IncomeBand, maxIncome, false)
		checkEnum(&v, "person.education", p.Education, maxEducation, false)
	}
	if c.Organization != nil {
		if c.Kind == KindPerson {
			v.Add("organization", "must be empty for a person")
		}
		o := c.Organization
		checkText(&v, "organization.legal_name", o.LegalName, maxShortText)
		checkText(&v, "organization.industry", o.Industry, maxShortText)
		if o.EmployeeCount < 0 {
			v.Add("organization.employee_count", "must not be negative")
		}
		checkEnum(&v, "organization.relationship_type", o.RelationshipType, maxRelationship, false)
		if len(o.Contacts) > maxContacts {
			v.Add("organization.contacts", "at most %d contacts", maxContacts)
		}
		seen := map[string]bool{}
		for i, ct := range o.Contacts {
			f := "organization.contacts[" + strconv.Itoa(i) + "]"
			v.Merge(f, ct.Validate())
			if seen[ct.ID] {
				v.Add(f+".contact_id", "duplicate contact id %q", ct.ID)
			}
			seen[ct.ID] = true
		}
	}
	checkPhone(&v, "phone", c.Phone)
	checkEmail(&v, "email", c.Email)
	if c.Region.Country != "" && !countryPattern.MatchString(c.Region.Country) {
		v.Add("region.country", "must be an ISO 3166-1 alpha-2 code like CN")
	}
	checkText(&v, "region.province", c.Region.Province, maxShortText)
	checkText(&v, "region.city", c.Region.City, maxShortText)
	if len(c.Tags) > maxTags {
		v.Add("tags", "at most %d tags", maxTags)
	}
	for i, t := range c.Tags {
		if strings.TrimSpace(t) == "" {
			v.Add("tags["+strconv.Itoa(i)+"]", "must not be empty")
		}
		checkText(&v, "tags["+strconv.Itoa(i)+"]", t, 64)
	}
	for i, t := range c.Traits {
		if strings.TrimSpace(t) == "" {
			v.Add("traits["+strconv.Itoa(i)+"]", "must not be empty")
		}
		checkText(&v, "traits["+strconv.Itoa(i)+"]", t, 64)
	}
	if len(c.Attributes) > maxAttributes {
		v.Add("attributes", "at most %d attributes", maxAttributes)
	}
	for k, val := range c.Attributes {
		if !attrKeyPattern.MatchString(k) {
			v.Add("attributes["+k+"]", "key must be 1-64 of A-Z a-z 0-9 _ . -")
		}
		checkText(&v, "attributes["+k+"]", val, 1024)
	}
	if c.TimeZone != "" && !ValidTimeZone(c.TimeZone) {
		v.Add("time_zone", "unknown IANA time zone %q", c.TimeZone)
	}
	if c.Language != "" && !languagePattern.MatchString(c.Language) {
		v.Add("language", "must be a BCP 47 tag like zh-CN")
	}
	channels := map[ContactChannel]bool{}
	for i, cs := range c.Consents {
		f := "consents[" + strconv.Itoa(i) + "].channel"
		checkEnum(&v, f, cs.Channel, maxContact, true)
		if channels[cs.Channel] {
			v.Add(f, "duplicate consent for channel %d", cs.Channel)
		}
		channels[cs.Channel] = true
		checkTime(&v, "consents["+strconv.Itoa(i)+"].update_time", cs.UpdateTime)
	}
	checkEnum(&v, "acquisition.channel", c.Acquisition.Channel, maxChannel, false)
	checkTime(&v, "acquisition.acquire_time", c.Acquisition.AcquireTime)
	checkText(&v, "acquisition.campaign", c.Acquisition.Campaign, maxShortText)
	checkID(&v, "acquisition.referred_by", c.Acquisition.ReferredBy, false)
	if c.Acquisition.ReferredBy != "" && c.Acquisition.ReferredBy == c.ID {
		v.Add("acquisition.referred_by", "a customer cannot refer themselves")
	}
	checkEnum(&v, "stage", c.Stage, maxStage, false)
	checkEnum(&v, "intent", c.Intent, maxIntent, false)
	checkText(&v, "owner", c.Owner, maxShortText)
	return v.Err()
}

// Validate checks a contact.
func (ct *Contact) Validate() error {
	var v fault.Violations
	checkID(&v, "contact_id", ct.ID, true)
	if strings.TrimSpace(ct.Name) == "" {
		v.Add("name", "is required")
	}
	checkText(&v, "name", ct.Name, maxShortText)
	checkText(&v, "title", ct.Title, maxShortText)
	checkEnum(&v, "role", ct.Role, maxRole, false)
	checkPhone(&v, "phone", ct.Phone)
	checkEmail(&v, "email", ct.Email)
	checkText(&v, "counterpart", ct.Counterpart, maxShortText)
	checkText(&v, "note", ct.Note, maxText)
	return v.Err()
}

func checkMoney(v *fault.Violations, field string, m Money, positive bool) {
	if !currencyPattern.MatchString(m.Currency) {
		v.Add(field+".currency", "must be an upper-case ISO 4217 code like CNY")
	}
	switch {
	case positive && m.Minor <= 0:
		v.Add(field+".amount_minor", "must be positive")
	case m.Minor < 0:
		v.Add(field+".amount_minor", "must not be negative")
	}
}

// maxFuture is how far ahead of the server's clock an event may be dated,
// to allow for clock skew between systems but not for typos in the year.
const maxFuture = 24 * time.Hour

// Validate checks an event as sent by a client; now is the server's time.
func (e *Event) Validate(now time.Time) error {
	var v fault.Violations
	checkID(&v, "event_id", e.ID, true)
	checkID(&v, "customer_id", e.CustomerID, true)
	switch {
	case e.OccurTime.IsZero():
		v.Add("occur_time", "is required")
	case e.OccurTime.Year() < 1900:
		v.Add("occur_time", "must be after 1900")
	case e.OccurTime.After(now.Add(maxFuture)):
		v.Add("occur_time", "must not be more than 24h in the future")
	}
	checkText(&v, "source", e.Source, 64)
	switch e.kinds() {
	case 0:
		v.Add("kind", "one of purchase, refund, consultation, after_sales, complaint, survey, contact_log, referral is required")
	case 1:
	default:
		v.Add("kind", "exactly one kind may be set")
	}
	if p := e.Purchase; p != nil {
		checkID(&v, "purchase.order_id", p.OrderID, true)
		checkMoney(&v, "purchase.amount", p.Amount, false) // free orders are purchases too
		if p.Discount != (Money{}) {
			checkMoney(&v, "purchase.discount", p.Discount, false)
			if p.Discount.Currency != p.Amount.Currency {
				v.Add("purchase.discount.currency", "must be the purchase's currency")
			}
		}
		checkEnum(&v, "purchase.channel", p.Channel, 8, false)
		checkText(&v, "purchase.store_id", p.StoreID, maxShortText)
		if len(p.Items) > maxItems {
			v.Add("purchase.items", "at most %d items", maxItems)
		}
		for i, it := range p.Items {
			f := "purchase.items[" + strconv.Itoa(i) + "]"
			if it.Quantity < 1 {
				v.Add(f+".quantity", "must be at least 1")
			}
			if it.UnitPrice != (Money{}) {
				checkMoney(&v, f+".unit_price", it.UnitPrice, false)
			}
			checkText(&v, f+".sku", it.SKU, maxShortText)
			checkText(&v, f+".name", it.Name, maxShortText)
			checkText(&v, f+".category", it.Category, maxShortText)
		}
	}
	if r := e.Refund; r != nil {
		checkID(&v, "refund.order_id", r.OrderID, true)
		checkMoney(&v, "refund.amount", r.Amount, true)
		checkText(&v, "refund.reason", r.Reason, maxText)
	}
	if c := e.Consultation; c != nil {
		checkText(&v, "consultation.topic", c.Topic, maxShortText)
		checkEnum(&v, "consultation.method", c.Method, 5, false)
		checkText(&v, "consultation.notes", c.Notes, maxText)
	}
	if a := e.AfterSales; a != nil {
		checkEnum(&v, "after_sales.kind", a.Kind, 6, true)
		checkID(&v, "after_sales.order_id", a.OrderID, false)
		checkText(&v, "after_sales.ticket_id", a.TicketID, maxShortText)
		checkText(&v, "after_sales.notes", a.Notes, maxText)
	}
	if c := e.Complaint; c != nil {
		checkID(&v, "complaint.complaint_id", c.ComplaintID, true)
		checkEnum(&v, "complaint.severity", c.Severity, 4, true)
		checkEnum(&v, "complaint.status", c.Status, 4, true)
		checkText(&v, "complaint.category", c.Category, maxShortText)
		checkText(&v, "complaint.description", c.Description, maxText)
		checkID(&v, "complaint.order_id", c.OrderID, false)
	}
	if s := e.Survey; s != nil {
		if s.CSAT == nil && s.NPS == nil && s.Text == "" {
			v.Add("survey", "needs at least one of csat, nps, text")
		}
		if s.CSAT != nil && (*s.CSAT < 1 || *s.CSAT > 5) {
			v.Add("survey.csat", "must be 1 to 5")
		}
		if s.NPS != nil && (*s.NPS < 0 || *s.NPS > 10) {
			v.Add("survey.nps", "must be 0 to 10")
		}
		checkText(&v, "survey.survey_id", s.SurveyID, maxShortText)
		checkText(&v, "survey.text", s.Text, maxText)
	}
	if c := e.ContactLog; c != nil {
		checkEnum(&v, "contact_log.method", c.Method, 5, true)
		checkEnum(&v, "contact_log.outcome", c.Outcome, 6, true)
		checkText(&v, "contact_log.staff", c.Staff, maxShortText)
		checkText(&v, "contact_log.notes", c.Notes, maxText)
		checkText(&v, "contact_log.task_id", c.TaskID, maxShortText)
	}
	if r := e.Referral; r != nil {
		checkID(&v, "referral.referred_customer_id", r.ReferredCustomerID, false)
		if r.ReferredCustomerID != "" && r.ReferredCustomerID == e.CustomerID {
			v.Add("referral.referred_customer_id", "a customer cannot refer themselves")
		}
		checkText(&v, "referral.note", r.Note, maxText)
	}
	return v.Err()
}
