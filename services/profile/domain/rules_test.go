package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"rapport.dev/platform/fault"
	"rapport.dev/services/profile/domain"
)

func TestCheckRefund(t *testing.T) {
	order := &domain.Order{OrderID: "o-1", EventID: "e-1", Amount: cny(10_000), Refunded: 4_000}
	for _, tc := range []struct {
		name  string
		order *domain.Order
		r     domain.Refund
		field string // empty when the refund is allowed
	}{
		{"what is left", order, domain.Refund{OrderID: "o-1", Amount: cny(6_000)}, ""},
		{"part of what is left", order, domain.Refund{OrderID: "o-1", Amount: cny(1)}, ""},
		{"one cent too much", order, domain.Refund{OrderID: "o-1", Amount: cny(6_001)}, "refund.amount.amount_minor"},
		{"unknown order", nil, domain.Refund{OrderID: "o-9", Amount: cny(1)}, "refund.order_id"},
		{"other currency", order, domain.Refund{OrderID: "o-1", Amount: domain.Money{Minor: 1, Currency: "USD"}}, "refund.amount.currency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := domain.CheckRefund(tc.order, "c-1", &tc.r)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("CheckRefund: %v", err)
				}
				return
			}
			if diff := cmp.Diff([]string{tc.field}, fields(t, err)); diff != "" {
				t.Errorf("violations (-want +got):\n%s", diff)
			}
		})
	}
	if got := order.Remaining(); got != 6_000 {
		t.Errorf("Remaining = %d, want 6000 (CheckRefund must not change the order)", got)
	}
}

func TestCheckEtag(t *testing.T) {
	c := &domain.Customer{ID: "c-1", Revision: 3}
	if err := c.CheckEtag(""); err != nil {
		t.Errorf("no etag: %v", err)
	}
	if err := c.CheckEtag(domain.Etag(3)); err != nil {
		t.Errorf("current etag: %v", err)
	}
	if err := c.CheckEtag(domain.Etag(2)); !errors.Is(err, fault.ErrConflict) {
		t.Errorf("stale etag: err = %v, want ErrConflict", err)
	}
}

func TestUncoveredRoles(t *testing.T) {
	for _, tc := range []struct {
		name     string
		contacts []domain.Contact
		want     []domain.DecisionRole
	}{
		{"no contacts", nil, []domain.DecisionRole{1, 2, 3, 4, 5}},
		{"contacts with and without counterpart", []domain.Contact{
			{ID: "a", Role: domain.RoleDecisionMaker, Counterpart: "li.lei"},
			{ID: "b", Role: domain.RolePurchaser}, // no counterpart of ours: a missing link
			{ID: "c", Role: domain.RoleTechnicalEvaluator, Counterpart: "han.mei"},
			{ID: "d", Counterpart: "li.lei"}, // no role: covers nothing
		}, []domain.DecisionRole{domain.RolePurchaser, domain.RoleUser, domain.RoleInfluencer}},
		{"every role covered", []domain.Contact{
			{ID: "a", Role: 1, Counterpart: "x"}, {ID: "b", Role: 2, Counterpart: "x"}, {ID: "c", Role: 3, Counterpart: "x"},
			{ID: "d", Role: 4, Counterpart: "x"}, {ID: "e", Role: 5, Counterpart: "x"},
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &domain.Organization{Contacts: tc.contacts}
			if diff := cmp.Diff(tc.want, o.UncoveredRoles()); diff != "" {
				t.Errorf("UncoveredRoles (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErase(t *testing.T) {
	at := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	c := validPerson()
	c.Revision = 4
	c.Erase(at)
	want := &domain.Customer{
		ID:          "c-1",
		Kind:        domain.KindPerson,
		DisplayName: domain.Erased,
		Person:      &domain.Person{IncomeBand: 3, Education: 4},
		Region:      domain.Region{Country: "CN", Province: "浙江"},
		Tags:        []string{"vip"},
		TimeZone:    "Asia/Shanghai",
		Language:    "zh-CN",
		Consents:    []domain.Consent{{Channel: 1, Granted: true}, {Channel: 3}},
		Acquisition: domain.Acquisition{Channel: domain.ChannelReferral, ReferredBy: "c-0"},
		Stage:       3,
		Intent:      1,
		Owner:       "li.lei",
		UpdateTime:  at,
		Revision:    4,
		Erased:      true,
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("erased person (-want +got):\n%s", diff)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("an erased record must still be valid: %v", err)
	}

	org := validOrg()
	org.Erase(at)
	wantContacts := []domain.Contact{
		{ID: "ct-1", Name: domain.Erased, Role: domain.RoleDecisionMaker, Counterpart: "li.lei"},
		{ID: "ct-2", Name: domain.Erased, Role: domain.RolePurchaser},
	}
	if diff := cmp.Diff(wantContacts, org.Organization.Contacts); diff != "" {
		t.Errorf("erased contacts (-want +got):\n%s", diff)
	}
	if org.Kind != domain.KindOrganization || org.Organization.LegalName != "Acme Trading Ltd" {
		t.Errorf("erasure changed the organization's kind or company data: %+v", org)
	}
}

func TestScrubTextKeepsMoney(t *testing.T) {
	at := now.Add(-time.Hour)
	for _, tc := range []struct {
		name     string
		in, want domain.Event
	}{
		{"purchase is kept whole", domain.Event{ID: "e", OccurTime: at, Purchase: &domain.Purchase{OrderID: "o", Amount: cny(5), Discount: cny(1), StoreID: "s"}},
			domain.Event{ID: "e", OccurTime: at, Purchase: &domain.Purchase{OrderID: "o", Amount: cny(5), Discount: cny(1), StoreID: "s"}}},
		{"refund reason", domain.Event{ID: "e", Refund: &domain.Refund{OrderID: "o", Amount: cny(5), Reason: "my address is …", Cancellation: true}},
			domain.Event{ID: "e", Refund: &domain.Refund{OrderID: "o", Amount: cny(5), Cancellation: true}}},
		{"complaint description", domain.Event{ID: "e", Complaint: &domain.Complaint{ComplaintID: "k", Severity: 3, Status: 1, Category: "delivery", Description: "call me on …"}},
			domain.Event{ID: "e", Complaint: &domain.Complaint{ComplaintID: "k", Severity: 3, Status: 1, Category: "delivery"}}},
		{"survey text", domain.Event{ID: "e", Survey: &domain.Survey{CSAT: ptr[int32](4), Text: "I am …"}},
			domain.Event{ID: "e", Survey: &domain.Survey{CSAT: ptr[int32](4)}}},
		{"contact notes", domain.Event{ID: "e", ContactLog: &domain.ContactLog{Method: 1, Outcome: 1, Staff: "li", Notes: "…"}},
			domain.Event{ID: "e", ContactLog: &domain.ContactLog{Method: 1, Outcome: 1, Staff: "li"}}},
		{"consultation notes", domain.Event{ID: "e", Consultation: &domain.Consultation{Topic: "t", Notes: "…"}},
			domain.Event{ID: "e", Consultation: &domain.Consultation{Topic: "t"}}},
		{"after-sales notes", domain.Event{ID: "e", AfterSales: &domain.AfterSales{Kind: 1, Notes: "…"}},
			domain.Event{ID: "e", AfterSales: &domain.AfterSales{Kind: 1}}},
		{"referral note", domain.Event{ID: "e", Referral: &domain.Referral{ReferredCustomerID: "c-2", Note: "…"}},
			domain.Event{ID: "e", Referral: &domain.Referral{ReferredCustomerID: "c-2"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.ScrubText()
			if diff := cmp.Diff(tc.want, tc.in); diff != "" {
				t.Errorf("scrubbed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMergeFromFillsOnlyEmptyFields(t *testing.T) {
	at := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	target := &domain.Customer{
		ID: "t", Kind: domain.KindPerson, DisplayName: "Target",
		Phone:      "111111",
		Region:     domain.Region{Country: "CN"},
		Tags:       []string{"vip"},
		Attributes: map[string]string{"size": "42"},
		Consents:   []domain.Consent{{Channel: 1, Granted: false}},
		Stage:      4,
	}
	src := validPerson()
	src.Tags = []string{"tea", "vip"}
	src.Attributes = map[string]string{"size": "40", "color": "red"}
	src.Consents = []domain.Consent{{Channel: 1, Granted: true}, {Channel: 2, Granted: true}}
	src.DoNotContact = true
	target.MergeFrom(src, at)

	want := &domain.Customer{
		ID: "t", Kind: domain.KindPerson, DisplayName: "Target",
		Person:       src.Person,
		Phone:        "111111",                                                 // the target's value wins
		Email:        "xm@example.com",                                         // empty on the target: filled
		Region:       domain.Region{Country: "CN", Province: "浙江", City: "杭州"}, // field by field
		Tags:         []string{"vip", "tea"},
		Attributes:   map[string]string{"size": "42", "color": "red"},
		Traits:       []string{"outdoors"},
		TimeZone:     "Asia/Shanghai",
		Language:     "zh-CN",
		Consents:     []domain.Consent{{Channel: 1, Granted: false}, {Channel: 2, Granted: true}},
		DoNotContact: true,
		Acquisition:  src.Acquisition,
		Stage:        4,
		Intent:       1,
		Owner:        "li.lei",
		UpdateTime:   at,
	}
	if diff := cmp.Diff(want, target); diff != "" {
		t.Errorf("merged (-want +got):\n%s", diff)
	}
	if target.Person == src.Person {
		t.Error("merge shares the source's Person")
	}

	// Organizations union their contacts by id; the target's version wins.
	orgT, orgS := validOrg(), validOrg()
	orgT.Organization.Contacts = orgT.Organization.Contacts[:1]
	orgS.Organization.Contacts[0].Name = "changed"
	orgT.MergeFrom(orgS, at)
	got := orgT.Organization.Contacts
	if len(got) != 2 || got[0].Name != "Zhang" || got[1].ID != "ct-2" {
		t.Errorf("merged contacts = %+v", got)
	}
}

func TestCheckMerge(t *testing.T) {
	person := func(id string) *domain.Customer { return &domain.Customer{ID: id, Kind: domain.KindPerson} }
	merged := person("s")
	merged.MergedInto = "other"
	mergedTarget := person("t")
	mergedTarget.MergedInto = "x"
	for _, tc := range []struct {
		name        string
		target, src *domain.Customer
		want        []string
	}{
		{"ok", person("t"), person("s"), nil},
		{"same", person("t"), person("t"), []string{"source_customer_id"}},
		{"source merged elsewhere", person("t"), merged, []string{"source_customer_id"}},
		{"target merged away", mergedTarget, person("s"), []string{"target_customer_id"}},
		{"kinds differ", person("t"), &domain.Customer{ID: "s", Kind: domain.KindOrganization}, []string{"source_customer_id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, fields(t, domain.CheckMerge(tc.target, tc.src))); diff != "" {
				t.Errorf("violations (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDuplicateKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    *domain.Customer
		want []string
	}{
		{"phone digits and lower-case email", &domain.Customer{ID: "a", Phone: "+86 (138) 0000-0000", Email: "Xiao.Ming@Example.COM"},
			[]string{"email:xiao.ming@example.com", "phone:8613800000000"}},
		{"same number, other formatting", &domain.Customer{ID: "b", Phone: "86.138.0000.0000"}, []string{"phone:8613800000000"}},
		{"nothing to match", &domain.Customer{ID: "c"}, nil},
		{"organization contacts count, once each", &domain.Customer{ID: "d", Phone: "010-1234-5678", Organization: &domain.Organization{Contacts: []domain.Contact{
			{ID: "x", Phone: "010 1234 5678", Email: "a@b.example"},
			{ID: "y", Email: "A@B.example"},
		}}}, []string{"email:a@b.example", "phone:01012345678"}},
		{"merged away", &domain.Customer{ID: "e", Phone: "12345", MergedInto: "a"}, nil},
		{"erased", &domain.Customer{ID: "f", Phone: "12345", Erased: true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.c.DuplicateKeys()); diff != "" {
				t.Errorf("DuplicateKeys (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFilterMatch(t *testing.T) {
	c := validPerson()
	for _, tc := range []struct {
		f    domain.Filter
		want bool
	}{
		{domain.Filter{}, true},
		{domain.Filter{Stage: 3, Owner: "li.lei", Country: "cn", Province: "浙江", City: "杭州", Tag: "vip", Channel: 3, Intent: 1, Kind: domain.KindPerson}, true},
		{domain.Filter{Stage: 4}, false},
		{domain.Filter{Tag: "tea"}, false},
		{domain.Filter{Kind: domain.KindOrganization}, false},
		{domain.Filter{City: "上海"}, false},
	} {
		if got := tc.f.Match(c); got != tc.want {
			t.Errorf("%+v.Match = %v, want %v", tc.f, got, tc.want)
		}
	}
}

func TestSameEventAndCustomer(t *testing.T) {
	a := purchaseEvent()
	b := purchaseEvent()
	b.RecordTime = now
	b.OccurTime = b.OccurTime.In(time.FixedZone("CST", 8*3600))
	if !domain.SameEvent(a, b) {
		t.Error("record time and time zone of occur_time must not matter")
	}
	b.Purchase.Amount.Minor++
	if domain.SameEvent(a, b) {
		t.Error("a different amount is a different event")
	}

	x, y := validPerson(), validPerson()
	y.CreateTime, y.UpdateTime, y.Revision = now, now, 3
	if !domain.SameCustomer(x, y) {
		t.Error("server-set fields must not matter")
	}
	y.Phone = "12345"
	if domain.SameCustomer(x, y) {
		t.Error("a different phone is a different customer")
	}
}
