package domain_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"rapport.dev/platform/fault"
	"rapport.dev/services/profile/domain"
)

// now is the server's clock in the event tests.
var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

// fields returns the field paths of a validation error, nil for nil, and
// fails the test for an error that is not an *fault.Invalid.
func fields(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var inv *fault.Invalid
	if !errors.As(err, &inv) {
		t.Fatalf("error %v is not a *fault.Invalid", err)
	}
	if !errors.Is(err, fault.ErrInvalid) {
		t.Errorf("error %v does not match fault.ErrInvalid", err)
	}
	var out []string
	for _, v := range inv.Violations {
		if v.Description == "" {
			t.Errorf("violation of %s has no description", v.Field)
		}
		out = append(out, v.Field)
	}
	return out
}

func validPerson() *domain.Customer {
	return &domain.Customer{
		ID:          "c-1",
		Kind:        domain.KindPerson,
		DisplayName: "王小明",
		Person: &domain.Person{
			GivenName: "小明", FamilyName: "王", Gender: 2,
			Birthday:      domain.Date{Year: 1990, Month: 5, Day: 17},
			LunarBirthday: domain.LunarDate{Month: 4, Day: 23, LeapMonth: true},
			IncomeBand:    3, Education: 4, Occupation: "engineer",
		},
		Phone:       "+86 138-0000-0000",
		Email:       "xm@example.com",
		Region:      domain.Region{Country: "CN", Province: "浙江", City: "杭州"},
		Tags:        []string{"vip"},
		Attributes:  map[string]string{"member_no": "M-1"},
		Traits:      []string{"outdoors"},
		TimeZone:    "Asia/Shanghai",
		Language:    "zh-CN",
		Consents:    []domain.Consent{{Channel: 1, Granted: true}, {Channel: 3}},
		Acquisition: domain.Acquisition{Channel: domain.ChannelReferral, ReferredBy: "c-0", Campaign: "spring"},
		Stage:       3,
		Intent:      1,
		Owner:       "li.lei",
	}
}

func validOrg() *domain.Customer {
	return &domain.Customer{
		ID:          "org-1",
		Kind:        domain.KindOrganization,
		DisplayName: "Acme Ltd",
		Organization: &domain.Organization{
			LegalName: "Acme Trading Ltd", Industry: "retail", EmployeeCount: 40, RelationshipType: 2,
			Contacts: []domain.Contact{
				{ID: "ct-1", Name: "Zhang", Role: domain.RoleDecisionMaker, Counterpart: "li.lei", Phone: "010 1234 5678"},
				{ID: "ct-2", Name: "Li", Role: domain.RolePurchaser, Email: "li@acme.example"},
			},
		},
	}
}

func TestCustomerValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		base   func() *domain.Customer
		mutate func(*domain.Customer)
		want   []string
	}{
		{"valid person", validPerson, func(*domain.Customer) {}, nil},
		{"valid organization", validOrg, func(*domain.Customer) {}, nil},
		{"minimal person", validPerson, func(c *domain.Customer) {
			*c = domain.Customer{ID: "c", Kind: domain.KindPerson, DisplayName: "x"}
		}, nil},
		{"missing id", validPerson, func(c *domain.Customer) { c.ID = "" }, []string{"customer_id"}},
		{"id with space", validPerson, func(c *domain.Customer) { c.ID = "c 1" }, []string{"customer_id"}},
		{"id too long", validPerson, func(c *domain.Customer) { c.ID = strings.Repeat("a", 129) }, []string{"customer_id"}},
		{"kind unspecified", validPerson, func(c *domain.Customer) { c.Kind = 0; c.Person = nil }, []string{"kind"}},
		{"kind unknown", validPerson, func(c *domain.Customer) { c.Kind = 3 }, []string{"kind"}},
		{"blank display name", validPerson, func(c *domain.Customer) { c.DisplayName = "  " }, []string{"display_name"}},
		{"display name too long", validPerson, func(c *domain.Customer) { c.DisplayName = strings.Repeat("名", 257) }, []string{"display_name"}},
		{"30 February", validPerson, func(c *domain.Customer) { c.Person.Birthday = domain.Date{Year: 1990, Month: 2, Day: 30} }, []string{"person.birthday.day"}},
		{"29 February, year unknown", validPerson, func(c *domain.Customer) { c.Person.Birthday = domain.Date{Month: 2, Day: 29} }, nil},
		{"29 February 2024", validPerson, func(c *domain.Customer) { c.Person.Birthday = domain.Date{Year: 2024, Month: 2, Day: 29} }, nil},
		{"29 February 2023", validPerson, func(c *domain.Customer) { c.Person.Birthday = domain.Date{Year: 2023, Month: 2, Day: 29} }, []string{"person.birthday.day"}},
		{"31 April", validPerson, func(c *domain.Customer) { c.Person.Birthday = domain.Date{Month: 4, Day: 31} }, []string{"person.birthday.day"}},
		{"month 13", validPerson, func(c *domain.Customer) { c.Person.Birthday = domain.Date{Month: 13, Day: 1} }, []string{"person.birthday.month"}},
		{"year 10000", validPerson, func(c *domain.Customer) { c.Person.Birthday = domain.Date{Year: 10000, Month: 1, Day: 1} }, []string{"person.birthday.year"}},
		{"lunar day 31", validPerson, func(c *domain.Customer) { c.Person.LunarBirthday = domain.LunarDate{Month: 1, Day: 31} }, []string{"person.lunar_birthday.day"}},
		{"lunar month 0", validPerson, func(c *domain.Customer) { c.Person.LunarBirthday = domain.LunarDate{Day: 3} }, []string{"person.lunar_birthday.month"}},
		{"gender 99", validPerson, func(c *domain.Customer) { c.Person.Gender = 99 }, []string{"person.gender"}},
		{"income -1", validPerson, func(c *domain.Customer) { c.Person.IncomeBand = -1 }, []string{"person.income_band"}},
		{"education 7", validPerson, func(c *domain.Customer) { c.Person.Education = 7 }, []string{"person.education"}},
		{"person on an organization", validOrg, func(c *domain.Customer) { c.Person = &domain.Person{} }, []string{"person"}},
		{"organization on a person", validPerson, func(c *domain.Customer) { c.Organization = &domain.Organization{} }, []string{"organization"}},
		{"negative employees", validOrg, func(c *domain.Customer) { c.Organization.EmployeeCount = -1 }, []string{"organization.employee_count"}},
		{"relationship 4", validOrg, func(c *domain.Customer) { c.Organization.RelationshipType = 4 }, []string{"organization.relationship_type"}},
		{"contact without name", validOrg, func(c *domain.Customer) { c.Organization.Contacts[1].Name = "" }, []string{"organization.contacts[1].name"}},
		{"contact with bad email", validOrg, func(c *domain.Customer) { c.Organization.Contacts[0].Email = "zhang" }, []string{"organization.contacts[0].email"}},
		{"duplicate contact id", validOrg, func(c *domain.Customer) { c.Organization.Contacts[1].ID = "ct-1" }, []string{"organization.contacts[1].contact_id"}},
		{"phone with letters", validPerson, func(c *domain.Customer) { c.Phone = "call me" }, []string{"phone"}},
		{"phone too short", validPerson, func(c *domain.Customer) { c.Phone = "12-34" }, []string{"phone"}},
		{"email with a name", validPerson, func(c *domain.Customer) { c.Email = "Xiao Ming <xm@example.com>" }, []string{"email"}},
		{"email without domain", validPerson, func(c *domain.Customer) { c.Email = "xm" }, []string{"email"}},
		{"lower-case country", validPerson, func(c *domain.Customer) { c.Region.Country = "cn" }, []string{"region.country"}},
		{"city not UTF-8", validPerson, func(c *domain.Customer) { c.Region.City = "\xff" }, []string{"region.city"}},
		{"empty tag", validPerson, func(c *domain.Customer) { c.Tags = []string{"vip", " "} }, []string{"tags[1]"}},
		{"empty trait", validPerson, func(c *domain.Customer) { c.Traits = []string{""} }, []string{"traits[0]"}},
		{"attribute key", validPerson, func(c *domain.Customer) { c.Attributes = map[string]string{"shoe size": "42"} }, []string{"attributes[shoe size]"}},
		{"unknown time zone", validPerson, func(c *domain.Customer) { c.TimeZone = "Mars/Olympus" }, []string{"time_zone"}},
		{"Local is not a time zone", validPerson, func(c *domain.Customer) { c.TimeZone = "Local" }, []string{"time_zone"}},
		{"language", validPerson, func(c *domain.Customer) { c.Language = "zh_CN" }, []string{"language"}},
		{"consent channel missing", validPerson, func(c *domain.Customer) { c.Consents = []domain.Consent{{Granted: true}} }, []string{"consents[0].channel"}},
		{"consent channel twice", validPerson, func(c *domain.Customer) { c.Consents[1].Channel = 1 }, []string{"consents[1].channel"}},
		{"acquisition channel 9", validPerson, func(c *domain.Customer) { c.Acquisition.Channel = 9 }, []string{"acquisition.channel"}},
		{"referred by self", validPerson, func(c *domain.Customer) { c.Acquisition.ReferredBy = c.ID }, []string{"acquisition.referred_by"}},
		{"acquired after 9999", validPerson, func(c *domain.Customer) { c.Acquisition.AcquireTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, []string{"acquisition.acquire_time"}},
		{"consent given in year 0", validPerson, func(c *domain.Customer) { c.Consents[1].UpdateTime = time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC) }, []string{"consents[1].update_time"}},
		{"consent given in 2024", validPerson, func(c *domain.Customer) { c.Consents[1].UpdateTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) }, nil},
		{"stage 99", validPerson, func(c *domain.Customer) { c.Stage = 99 }, []string{"stage"}},
		{"intent -1", validPerson, func(c *domain.Customer) { c.Intent = -1 }, []string{"intent"}},
		{"several at once, sorted", validPerson, func(c *domain.Customer) {
			c.Stage, c.Phone, c.TimeZone = 8, "x", "Nowhere/City"
		}, []string{"phone", "stage", "time_zone"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.base()
			tc.mutate(c)
			if diff := cmp.Diff(tc.want, fields(t, c.Validate())); diff != "" {
				t.Errorf("violations (-want +got):\n%s", diff)
			}
		})
	}
}

func TestContactValidate(t *testing.T) {
	valid := func() domain.Contact {
		return domain.Contact{ID: "ct-1", Name: "Zhang", Title: "CTO", Role: domain.RoleTechnicalEvaluator,
			Phone: "+86 10 1234 5678", Email: "zhang@acme.example", Counterpart: "li.lei"}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*domain.Contact)
		want   []string
	}{
		{"valid", func(*domain.Contact) {}, nil},
		{"name only", func(c *domain.Contact) { *c = domain.Contact{ID: "x", Name: "y"} }, nil},
		{"missing id", func(c *domain.Contact) { c.ID = "" }, []string{"contact_id"}},
		{"missing name", func(c *domain.Contact) { c.Name = "" }, []string{"name"}},
		{"role 6", func(c *domain.Contact) { c.Role = 6 }, []string{"role"}},
		{"bad phone", func(c *domain.Contact) { c.Phone = "ext. 12" }, []string{"phone"}},
		{"bad email", func(c *domain.Contact) { c.Email = "@acme" }, []string{"email"}},
		{"long note", func(c *domain.Contact) { c.Note = strings.Repeat("n", 4097) }, []string{"note"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			if diff := cmp.Diff(tc.want, fields(t, c.Validate())); diff != "" {
				t.Errorf("violations (-want +got):\n%s", diff)
			}
		})
	}
}

func cny(minor int64) domain.Money { return domain.Money{Minor: minor, Currency: "CNY"} }

func purchaseEvent() *domain.Event {
	return &domain.Event{
		ID: "e-1", CustomerID: "c-1", OccurTime: now.Add(-time.Hour), Source: "pos",
		Purchase: &domain.Purchase{
			OrderID: "o-1", Amount: cny(12_800), Discount: cny(1_000), Channel: 1, StoreID: "hz-01",
			Items: []domain.LineItem{{SKU: "tea-1", Name: "Longjing", Quantity: 2, UnitPrice: cny(6_400)}},
		},
	}
}

func TestEventValidate(t *testing.T) {
	withKind := func(set func(*domain.Event)) func() *domain.Event {
		return func() *domain.Event {
			e := purchaseEvent()
			e.Purchase = nil
			set(e)
			return e
		}
	}
	refund := withKind(func(e *domain.Event) { e.Refund = &domain.Refund{OrderID: "o-1", Amount: cny(100), Reason: "broken"} })
	survey := withKind(func(e *domain.Event) { e.Survey = &domain.Survey{CSAT: ptr[int32](5), NPS: ptr[int32](0)} })
	complaint := withKind(func(e *domain.Event) {
		e.Complaint = &domain.Complaint{ComplaintID: "k-1", Severity: 2, Status: 1, Description: "late"}
	})
	contactLog := withKind(func(e *domain.Event) { e.ContactLog = &domain.ContactLog{Method: 1, Outcome: 3} })
	referral := withKind(func(e *domain.Event) { e.Referral = &domain.Referral{ReferredCustomerID: "c-2"} })
	for _, tc := range []struct {
		name   string
		base   func() *domain.Event
		mutate func(*domain.Event)
		want   []string
	}{
		{"valid purchase", purchaseEvent, func(*domain.Event) {}, nil},
		{"valid refund", refund, func(*domain.Event) {}, nil},
		{"valid survey, NPS 0 counts as set", survey, func(*domain.Event) {}, nil},
		{"valid complaint", complaint, func(*domain.Event) {}, nil},
		{"valid contact log", contactLog, func(*domain.Event) {}, nil},
		{"valid referral", referral, func(*domain.Event) {}, nil},
		{"valid consultation", withKind(func(e *domain.Event) { e.Consultation = &domain.Consultation{Topic: "sizes"} }), func(*domain.Event) {}, nil},
		{"valid after-sales", withKind(func(e *domain.Event) { e.AfterSales = &domain.AfterSales{Kind: 1, OrderID: "o-1"} }), func(*domain.Event) {}, nil},
		{"23h ahead is clock skew", purchaseEvent, func(e *domain.Event) { e.OccurTime = now.Add(23 * time.Hour) }, nil},
		{"missing event id", purchaseEvent, func(e *domain.Event) { e.ID = "" }, []string{"event_id"}},
		{"bad customer id", purchaseEvent, func(e *domain.Event) { e.CustomerID = "a/b" }, []string{"customer_id"}},
		{"missing occur time", purchaseEvent, func(e *domain.Event) { e.OccurTime = time.Time{} }, []string{"occur_time"}},
		{"occur time 1899", purchaseEvent, func(e *domain.Event) { e.OccurTime = time.Date(1899, 12, 31, 0, 0, 0, 0, time.UTC) }, []string{"occur_time"}},
		{"occur time 25h ahead", purchaseEvent, func(e *domain.Event) { e.OccurTime = now.Add(25 * time.Hour) }, []string{"occur_time"}},
		{"no kind", withKind(func(*domain.Event) {}), func(*domain.Event) {}, []string{"kind"}},
		{"two kinds", purchaseEvent, func(e *domain.Event) { e.Referral = &domain.Referral{} }, []string{"kind"}},
		{"lower-case currency", purchaseEvent, func(e *domain.Event) { e.Purchase.Amount.Currency = "cny"; e.Purchase.Discount = domain.Money{} }, []string{"purchase.amount.currency"}},
		{"negative amount", purchaseEvent, func(e *domain.Event) { e.Purchase.Amount.Minor = -1 }, []string{"purchase.amount.amount_minor"}},
		{"negative amount", purchaseEvent, func(e *domain.Event) { e.Purchase.Amount.Minor = -5 }, []string{"purchase.amount.amount_minor"}},
		{"missing order id", purchaseEvent, func(e *domain.Event) { e.Purchase.OrderID = "" }, []string{"purchase.order_id"}},
		{"discount in another currency", purchaseEvent, func(e *domain.Event) { e.Purchase.Discount.Currency = "USD" }, []string{"purchase.discount.currency"}},
		{"negative discount", purchaseEvent, func(e *domain.Event) { e.Purchase.Discount.Minor = -1 }, []string{"purchase.discount.amount_minor"}},
		{"item quantity 0", purchaseEvent, func(e *domain.Event) { e.Purchase.Items[0].Quantity = 0 }, []string{"purchase.items[0].quantity"}},
		{"item price currency", purchaseEvent, func(e *domain.Event) { e.Purchase.Items[0].UnitPrice.Currency = "" }, []string{"purchase.items[0].unit_price.currency"}},
		{"sales channel 9", purchaseEvent, func(e *domain.Event) { e.Purchase.Channel = 9 }, []string{"purchase.channel"}},
		{"refund without order", refund, func(e *domain.Event) { e.Refund.OrderID = "" }, []string{"refund.order_id"}},
		{"refund of nothing", refund, func(e *domain.Event) { e.Refund.Amount.Minor = 0 }, []string{"refund.amount.amount_minor"}},
		{"empty survey", survey, func(e *domain.Event) { e.Survey = &domain.Survey{} }, []string{"survey"}},
		{"CSAT 6", survey, func(e *domain.Event) { e.Survey.CSAT = ptr[int32](6) }, []string{"survey.csat"}},
		{"CSAT 0", survey, func(e *domain.Event) { e.Survey.CSAT = ptr[int32](0) }, []string{"survey.csat"}},
		{"NPS 11", survey, func(e *domain.Event) { e.Survey.NPS = ptr[int32](11) }, []string{"survey.nps"}},
		{"complaint without id", complaint, func(e *domain.Event) { e.Complaint.ComplaintID = "" }, []string{"complaint.complaint_id"}},
		{"complaint severity required", complaint, func(e *domain.Event) { e.Complaint.Severity = 0 }, []string{"complaint.severity"}},
		{"complaint status 5", complaint, func(e *domain.Event) { e.Complaint.Status = 5 }, []string{"complaint.status"}},
		{"contact outcome 7", contactLog, func(e *domain.Event) { e.ContactLog.Outcome = 7 }, []string{"contact_log.outcome"}},
		{"contact method required", contactLog, func(e *domain.Event) { e.ContactLog.Method = 0 }, []string{"contact_log.method"}},
		{"self referral", referral, func(e *domain.Event) { e.Referral.ReferredCustomerID = e.CustomerID }, []string{"referral.referred_customer_id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.base()
			tc.mutate(e)
			if diff := cmp.Diff(tc.want, fields(t, e.Validate(now))); diff != "" {
				t.Errorf("violations (-want +got):\n%s", diff)
			}
		})
	}
}
