package convert_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
	"rapport.dev/services/profile/convert"
	"rapport.dev/services/profile/domain"
)

// ts is a fixed instant with nanoseconds, so precision loss shows.
func ts(day int) *timestamppb.Timestamp {
	return timestamppb.New(time.Date(2024, 3, day, 6, 7, 8, 123456789, time.UTC))
}

func ptr[T any](v T) *T { return &v }

// personFixture is a person customer with every field of Customer and Person
// set (organization aside, which a person may not have), output-only ones
// included.
func personFixture() *profilev1.Customer {
	return &profilev1.Customer{
		CustomerId:  "c-person",
		Kind:        profilev1.CustomerKind_CUSTOMER_KIND_PERSON,
		DisplayName: "王小明",
		Person: &profilev1.Person{
			GivenName:     "小明",
			FamilyName:    "王",
			Gender:        profilev1.Gender_GENDER_MALE,
			Birthday:      &typev1.Date{Year: 1990, Month: 5, Day: 17},
			LunarBirthday: &typev1.LunarDate{Year: 1990, Month: 4, Day: 23, LeapMonth: true},
			Occupation:    "engineer",
			IncomeBand:    profilev1.IncomeBand_INCOME_BAND_UPPER_MIDDLE,
			Education:     profilev1.Education_EDUCATION_MASTER,
		},
		Phone:      "+86 138 0000 0000",
		Email:      "xm@example.com",
		Region:     &profilev1.Region{Country: "CN", Province: "浙江", City: "杭州"},
		Tags:       []string{"vip", "tea"},
		Attributes: map[string]string{"member_no": "M-1", "shoe_size": "42"},
		Traits:     []string{"outdoors", "family"},
		TimeZone:   "Asia/Shanghai",
		Language:   "zh-CN",
		Consents: []*profilev1.Consent{
			{Channel: profilev1.ContactChannel_CONTACT_CHANNEL_SMS, Granted: true, UpdateTime: ts(1)},
			{Channel: profilev1.ContactChannel_CONTACT_CHANNEL_EMAIL, Granted: false, UpdateTime: ts(2)},
		},
		DoNotContact: true,
		Acquisition: &profilev1.Acquisition{
			Channel:     profilev1.AcquisitionChannel_ACQUISITION_CHANNEL_REFERRAL,
			Campaign:    "spring-2024",
			ReferredBy:  "c-friend",
			AcquireTime: ts(3),
		},
		Stage:      profilev1.LifecycleStage_LIFECYCLE_STAGE_LOYAL,
		Intent:     profilev1.IntentLevel_INTENT_LEVEL_HIGH,
		Owner:      "li.lei",
		CreateTime: ts(4),
		UpdateTime: ts(5),
		Etag:       "r7",
		Erased:     true,
		MergedInto: "c-target",
	}
}

// organizationFixture is an organization with contacts; two of the five
// decision roles are covered, so three are reported uncovered.
func organizationFixture() *profilev1.Customer {
	return &profilev1.Customer{
		CustomerId:  "c-org",
		Kind:        profilev1.CustomerKind_CUSTOMER_KIND_ORGANIZATION,
		DisplayName: "Acme Trading",
		Organization: &profilev1.Organization{
			LegalName:        "Acme Trading Co., Ltd.",
			Industry:         "wholesale",
			EmployeeCount:    250,
			RelationshipType: profilev1.RelationshipType_RELATIONSHIP_TYPE_MULTI_THREADED,
			Contacts: []*profilev1.Contact{
				{
					ContactId:   "ct-1",
					Name:        "Zhang Wei",
					Title:       "CEO",
					Role:        profilev1.DecisionRole_DECISION_ROLE_DECISION_MAKER,
					Phone:       "+86 571 1234 5678",
					Email:       "zw@acme.example",
					Counterpart: "li.lei",
					Note:        "prefers mornings",
				},
				{
					ContactId:   "ct-2",
					Name:        "Liu Yang",
					Title:       "CTO",
					Role:        profilev1.DecisionRole_DECISION_ROLE_TECHNICAL_EVALUATOR,
					Phone:       "+86 571 1234 5679",
					Email:       "ly@acme.example",
					Counterpart: "han.mei",
					Note:        "wants a demo",
				},
			},
			UncoveredRoles: []profilev1.DecisionRole{
				profilev1.DecisionRole_DECISION_ROLE_PURCHASER,
				profilev1.DecisionRole_DECISION_ROLE_USER,
				profilev1.DecisionRole_DECISION_ROLE_INFLUENCER,
			},
		},
		Phone:      "+86 571 0000 0000",
		Email:      "info@acme.example",
		Region:     &profilev1.Region{Country: "CN", Province: "浙江", City: "宁波"},
		Tags:       []string{"b2b"},
		Attributes: map[string]string{"credit_limit": "500000"},
		Traits:     []string{"price-sensitive"},
		TimeZone:   "Asia/Shanghai",
		Language:   "zh-CN",
		Consents: []*profilev1.Consent{
			{Channel: profilev1.ContactChannel_CONTACT_CHANNEL_VISIT, Granted: true, UpdateTime: ts(6)},
		},
		Acquisition: &profilev1.Acquisition{
			Channel:     profilev1.AcquisitionChannel_ACQUISITION_CHANNEL_EVENT,
			Campaign:    "canton-fair",
			AcquireTime: ts(7),
		},
		Stage:      profilev1.LifecycleStage_LIFECYCLE_STAGE_PROSPECT,
		Intent:     profilev1.IntentLevel_INTENT_LEVEL_GENERAL,
		Owner:      "li.lei",
		CreateTime: ts(8),
		UpdateTime: ts(9),
		Etag:       "r3",
	}
}

func customerFixtures() []struct {
	name string
	p    *profilev1.Customer
	rev  uint64 // the revision behind p's etag
} {
	return []struct {
		name string
		p    *profilev1.Customer
		rev  uint64
	}{
		{"person", personFixture(), 7},
		{"organization", organizationFixture(), 3},
	}
}

func event(id string, kind func(*profilev1.Event)) *profilev1.Event {
	e := &profilev1.Event{
		EventId:    id,
		CustomerId: "c-person",
		OccurTime:  ts(10),
		RecordTime: ts(11),
		Source:     "pos",
	}
	kind(e)
	return e
}

// eventKinds is the domain kind of each fixture.
var eventKinds = map[string]domain.EventKind{
	"purchase":     domain.EventPurchase,
	"refund":       domain.EventRefund,
	"consultation": domain.EventConsultation,
	"after_sales":  domain.EventAfterSales,
	"complaint":    domain.EventComplaint,
	"survey":       domain.EventSurvey,
	"contact_log":  domain.EventContactLog,
	"referral":     domain.EventReferral,
}

// eventFixtures holds one fully populated event of each kind.
func eventFixtures() map[string]*profilev1.Event {
	return map[string]*profilev1.Event{
		"purchase": event("e-purchase", func(e *profilev1.Event) {
			e.Kind = &profilev1.Event_Purchase{Purchase: &profilev1.Purchase{
				OrderId: "o-1",
				Amount:  &typev1.Money{AmountMinor: 12900, Currency: "CNY"},
				Items: []*profilev1.LineItem{
					{Sku: "tea-01", Name: "龙井", Category: "tea", Quantity: 2, UnitPrice: &typev1.Money{AmountMinor: 6950, Currency: "CNY"}},
					{Sku: "cup-02", Name: "cup", Category: "ware", Quantity: 1, UnitPrice: &typev1.Money{AmountMinor: 1000, Currency: "CNY"}},
				},
				Channel:  profilev1.SalesChannel_SALES_CHANNEL_STORE,
				Discount: &typev1.Money{AmountMinor: 2000, Currency: "CNY"},
				StoreId:  "hz-01",
			}}
		}),
		"refund": event("e-refund", func(e *profilev1.Event) {
			e.Kind = &profilev1.Event_Refund{Refund: &profilev1.Refund{
				OrderId:      "o-1",
				Amount:       &typev1.Money{AmountMinor: 1000, Currency: "CNY"},
				Reason:       "cracked cup",
				Cancellation: true,
			}}
		}),
		"consultation": event("e-consultation", func(e *profilev1.Event) {
			e.Kind = &profilev1.Event_Consultation{Consultation: &profilev1.Consultation{
				Topic:  "brewing",
				Method: profilev1.ContactMethod_CONTACT_METHOD_MESSAGE,
				Notes:  "asked about water temperature",
			}}
		}),
		"after_sales": event("e-after-sales", func(e *profilev1.Event) {
			e.Kind = &profilev1.Event_AfterSales{AfterSales: &profilev1.AfterSales{
				Kind:     profilev1.AfterSalesKind_AFTER_SALES_KIND_EXCHANGE,
				OrderId:  "o-1",
				TicketId: "t-9",
				Notes:    "exchanged the cup",
			}}
		}),
		"complaint": event("e-complaint", func(e *profilev1.Event) {
			e.Kind = &profilev1.Event_Complaint{Complaint: &profilev1.Complaint{
				ComplaintId: "cp-1",
				Severity:    profilev1.ComplaintSeverity_COMPLAINT_SEVERITY_HIGH,
				Status:      profilev1.ComplaintStatus_COMPLAINT_STATUS_IN_PROGRESS,
				Category:    "delivery",
				Description: "arrived late",
				OrderId:     "o-1",
			}}
		}),
		"survey": event("e-survey", func(e *profilev1.Event) {
			e.Kind = &profilev1.Event_Survey{Survey: &profilev1.SurveyResponse{
				SurveyId: "s-2024q1",
				Csat:     ptr[int32](4),
				Nps:      ptr[int32](9),
				Text:     "good tea",
			}}
		}),
		"contact_log": event("e-contact-log", func(e *profilev1.Event) {
			e.Kind = &profilev1.Event_ContactLog{ContactLog: &profilev1.ContactLog{
				Method:  profilev1.ContactMethod_CONTACT_METHOD_CALL,
				Outcome: profilev1.ContactOutcome_CONTACT_OUTCOME_CALLBACK_REQUESTED,
				Staff:   "han.mei",
				Notes:   "call back after 6pm",
				TaskId:  "task-3",
			}}
		}),
		"referral": event("e-referral", func(e *profilev1.Event) {
			e.Kind = &profilev1.Event_Referral{Referral: &profilev1.Referral{
				ReferredCustomerId: "c-friend",
				Note:               "brought a colleague",
			}}
		}),
	}
}

// clearCustomerOutputs returns a copy of p without its output-only fields.
func clearCustomerOutputs(p *profilev1.Customer) *profilev1.Customer {
	p = proto.CloneOf(p)
	p.CreateTime, p.UpdateTime, p.Etag, p.Erased, p.MergedInto = nil, nil, "", false, ""
	if p.Organization != nil {
		p.Organization.UncoveredRoles = nil
	}
	return p
}

func clearEventOutputs(p *profilev1.Event) *profilev1.Event {
	p = proto.CloneOf(p)
	p.RecordTime = nil
	return p
}

func diff(want, got proto.Message) string { return cmp.Diff(want, got, protocmp.Transform()) }

// The fixtures must set every field, so that a field added to the proto
// fails here until the fixture, and with it the converter, covers it.

func TestFixturesSetEveryProtoField(t *testing.T) {
	var customers []proto.Message
	for _, f := range customerFixtures() {
		customers = append(customers, f.p)
	}
	var events []proto.Message
	for _, e := range eventFixtures() {
		events = append(events, e)
	}
	assertEveryFieldSet(t, (*profilev1.Customer)(nil), customers, nil)
	assertEveryFieldSet(t, (*profilev1.Event)(nil), events, nil)
	assertEveryFieldSet(t, (*profilev1.ListCustomersRequest)(nil), []proto.Message{listRequestFixture()},
		[]protoreflect.Name{"page_size", "page_token"}) // paging is not part of the filter
}

// assertEveryFieldSet fails for each field of root, or of a rapport message
// reachable from it, that none of the fixtures sets to a non-default value.
func assertEveryFieldSet(t *testing.T, root proto.Message, fixtures []proto.Message, skip []protoreflect.Name) {
	t.Helper()
	want := map[protoreflect.FullName]bool{}
	reachableFields(root.ProtoReflect().Descriptor(), want, map[protoreflect.FullName]bool{})
	rootName := root.ProtoReflect().Descriptor().FullName()
	for _, s := range skip {
		delete(want, rootName.Append(s))
	}
	got := map[protoreflect.FullName]bool{}
	for _, f := range fixtures {
		markSet(f.ProtoReflect(), got)
	}
	var missing []string
	for name := range want {
		if !got[name] {
			missing = append(missing, string(name))
		}
	}
	if len(missing) > 0 {
		t.Errorf("%s fixtures leave fields unset; set them and convert them: %s", rootName, strings.Join(missing, ", "))
	}
}

// reachableFields collects the fields of md and of every rapport message
// reachable from it. Well-known types such as Timestamp are leaves.
func reachableFields(md protoreflect.MessageDescriptor, out, seen map[protoreflect.FullName]bool) {
	if seen[md.FullName()] || !strings.HasPrefix(string(md.FullName()), "rapport.") {
		return
	}
	seen[md.FullName()] = true
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		out[fd.FullName()] = true
		if fd.IsMap() {
			fd = fd.MapValue()
		}
		if fd.Message() != nil {
			reachableFields(fd.Message(), out, seen)
		}
	}
}

// markSet records every populated field of m and of the messages within it;
// Range visits exactly the fields that are set to a non-default value.
func markSet(m protoreflect.Message, got map[protoreflect.FullName]bool) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		got[fd.FullName()] = true
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					markSet(mv.Message(), got)
					return true
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				for i := 0; i < v.List().Len(); i++ {
					markSet(v.List().Get(i).Message(), got)
				}
			}
		case fd.Message() != nil:
			markSet(v.Message(), got)
		}
		return true
	})
}

// assertEveryDomainFieldSet is the domain-side twin: every exported field of
// root's struct type, and of domain structs within it, must be non-zero in
// some value, so a domain field the converter does not fill shows up.
func assertEveryDomainFieldSet(t *testing.T, root any, values ...any) {
	t.Helper()
	want := map[string]bool{}
	domainFields(reflect.TypeOf(root), want, map[reflect.Type]bool{})
	got := map[string]bool{}
	for _, v := range values {
		markDomainSet(reflect.ValueOf(v), got)
	}
	var missing []string
	for name := range want {
		if !got[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		t.Errorf("domain fields left zero by the conversion: %s", strings.Join(missing, ", "))
	}
}

const domainPkg = "rapport.dev/services/profile/domain"

func domainFields(t reflect.Type, out map[string]bool, seen map[reflect.Type]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t.PkgPath() != domainPkg || seen[t] {
		return
	}
	seen[t] = true
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); f.IsExported() {
			out[t.Name()+"."+f.Name] = true
			domainFields(f.Type, out, seen)
		}
	}
}

func markDomainSet(v reflect.Value, got map[string]bool) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			markDomainSet(v.Elem(), got)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			markDomainSet(v.Index(i), got)
		}
	case reflect.Struct:
		if v.Type().PkgPath() != domainPkg {
			return
		}
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() || v.Field(i).IsZero() {
				continue
			}
			got[v.Type().Name()+"."+f.Name] = true
			markDomainSet(v.Field(i), got)
		}
	}
}

func TestCustomerRoundTrip(t *testing.T) {
	var restored []any
	for _, tc := range customerFixtures() {
		t.Run(tc.name, func(t *testing.T) {
			d := convert.CustomerFromProto(tc.p)

			// Client input: output-only fields are dropped on the way in.
			got := convert.CustomerToProto(d)
			if diff := diff(clearCustomerOutputs(tc.p), clearCustomerOutputs(got)); diff != "" {
				t.Errorf("client fields differ after the round trip (-want +got):\n%s", diff)
			}
			if !d.CreateTime.IsZero() || !d.UpdateTime.IsZero() || d.Revision != 0 || d.Erased || d.MergedInto != "" {
				t.Errorf("CustomerFromProto kept output-only fields: %+v", d)
			}

			// Stored record: with the server's fields set, the whole message
			// comes back, etag and uncovered roles included.
			d.Revision = tc.rev
			d.CreateTime = tc.p.GetCreateTime().AsTime()
			d.UpdateTime = tc.p.GetUpdateTime().AsTime()
			d.Erased = tc.p.GetErased()
			d.MergedInto = tc.p.GetMergedInto()
			if diff := diff(tc.p, convert.CustomerToProto(d)); diff != "" {
				t.Errorf("stored customer differs after the round trip (-want +got):\n%s", diff)
			}
			restored = append(restored, d)
		})
	}
	assertEveryDomainFieldSet(t, domain.Customer{}, restored...)
}

func TestCustomerToProtoOutputFields(t *testing.T) {
	created := time.Date(2024, 1, 2, 3, 4, 5, 6, time.FixedZone("CST", 8*3600))
	c := &domain.Customer{
		ID:   "c-1",
		Kind: domain.KindOrganization,
		Organization: &domain.Organization{Contacts: []domain.Contact{
			{ID: "a", Role: domain.RolePurchaser, Counterpart: "li.lei"},
			{ID: "b", Role: domain.RoleUser}, // no counterpart: not covered
		}},
		CreateTime: created,
		UpdateTime: created.Add(time.Hour),
		Revision:   42,
		Erased:     true,
		MergedInto: "c-2",
	}
	p := convert.CustomerToProto(c)
	if p.GetEtag() != "r42" || p.GetEtag() != domain.Etag(42) {
		t.Errorf("etag = %q, want r42", p.GetEtag())
	}
	if !p.GetCreateTime().AsTime().Equal(created) || !p.GetUpdateTime().AsTime().Equal(created.Add(time.Hour)) {
		t.Errorf("times = %v, %v; want %v and an hour later", p.GetCreateTime().AsTime(), p.GetUpdateTime().AsTime(), created)
	}
	if !p.GetErased() || p.GetMergedInto() != "c-2" {
		t.Errorf("erased, merged_into = %v, %q; want true, c-2", p.GetErased(), p.GetMergedInto())
	}
	wantRoles := []profilev1.DecisionRole{
		profilev1.DecisionRole_DECISION_ROLE_DECISION_MAKER,
		profilev1.DecisionRole_DECISION_ROLE_TECHNICAL_EVALUATOR,
		profilev1.DecisionRole_DECISION_ROLE_USER,
		profilev1.DecisionRole_DECISION_ROLE_INFLUENCER,
	}
	if diff := cmp.Diff(wantRoles, p.GetOrganization().GetUncoveredRoles()); diff != "" {
		t.Errorf("uncovered_roles (-want +got):\n%s", diff)
	}

	// Roles a client sends are ignored: they are derived from the contacts.
	in := organizationFixture()
	in.Organization.UncoveredRoles = []profilev1.DecisionRole{profilev1.DecisionRole_DECISION_ROLE_DECISION_MAKER}
	out := convert.CustomerToProto(convert.CustomerFromProto(in))
	if diff := cmp.Diff(organizationFixture().GetOrganization().GetUncoveredRoles(), out.GetOrganization().GetUncoveredRoles()); diff != "" {
		t.Errorf("uncovered_roles not derived from contacts (-want +got):\n%s", diff)
	}

	// Every role covered: nothing to report.
	full := &domain.Organization{}
	for r := domain.RoleDecisionMaker; r <= domain.RoleInfluencer; r++ {
		full.Contacts = append(full.Contacts, domain.Contact{ID: "x", Role: r, Counterpart: "us"})
	}
	if roles := convert.CustomerToProto(&domain.Customer{Organization: full}).GetOrganization().GetUncoveredRoles(); roles != nil {
		t.Errorf("uncovered_roles = %v, want nil", roles)
	}
}

func TestCustomerZeroValues(t *testing.T) {
	if convert.CustomerFromProto(nil) != nil || convert.CustomerToProto(nil) != nil {
		t.Error("nil customer did not map to nil")
	}
	d := convert.CustomerFromProto(&profilev1.Customer{CustomerId: "c"})
	if d.Person != nil || d.Organization != nil || d.Tags != nil || d.Attributes != nil || d.Consents != nil ||
		d.Region != (domain.Region{}) || !d.Acquisition.AcquireTime.IsZero() {
		t.Errorf("unset sub-messages did not map to zero values: %+v", d)
	}
	// Unset messages, empty slices and maps, zero times: all nil, no etag.
	empty := &domain.Customer{Tags: []string{}, Attributes: map[string]string{}, Consents: []domain.Consent{}}
	if diff := diff(&profilev1.Customer{}, convert.CustomerToProto(empty)); diff != "" {
		t.Errorf("zero customer (-want +got):\n%s", diff)
	}
	if diff := diff(&profilev1.Person{}, convert.CustomerToProto(&domain.Customer{Person: &domain.Person{}}).GetPerson()); diff != "" {
		t.Errorf("empty person should stay an empty message (-want +got):\n%s", diff)
	}
}

// TestCustomerToProtoShared: the message is the one CustomerToProto makes,
// sharing the customer's tags, traits and attributes instead of copying
// them; empty ones are nil all the same.
func TestCustomerToProtoShared(t *testing.T) {
	if convert.CustomerToProtoShared(nil) != nil {
		t.Error("nil customer did not map to nil")
	}
	for _, tc := range customerFixtures() {
		d := convert.CustomerFromProto(tc.p)
		d.Revision, d.CreateTime, d.UpdateTime = tc.rev, tc.p.GetCreateTime().AsTime(), tc.p.GetUpdateTime().AsTime()
		d.Erased, d.MergedInto = tc.p.GetErased(), tc.p.GetMergedInto()
		shared := convert.CustomerToProtoShared(d)
		if diff := diff(convert.CustomerToProto(d), shared); diff != "" {
			t.Errorf("%s: shared and copied messages differ (-copied +shared):\n%s", tc.name, diff)
		}
		if len(d.Tags) > 0 && &shared.Tags[0] != &d.Tags[0] {
			t.Errorf("%s: the tags were copied", tc.name)
		}
		if copied := convert.CustomerToProto(d); len(d.Tags) > 0 && &copied.Tags[0] == &d.Tags[0] {
			t.Errorf("%s: CustomerToProto shares the tags", tc.name)
		}
	}
	empty := &domain.Customer{Tags: []string{}, Attributes: map[string]string{}, Traits: []string{}}
	if diff := diff(&profilev1.Customer{}, convert.CustomerToProtoShared(empty)); diff != "" {
		t.Errorf("empty lists (-want +got):\n%s", diff)
	}
}

func TestCustomerFromProtoCopies(t *testing.T) {
	p := personFixture()
	d := convert.CustomerFromProto(p)
	p.Tags[0] = "changed"
	p.Attributes["member_no"] = "changed"
	p.Traits[0] = "changed"
	if d.Tags[0] != "vip" || d.Attributes["member_no"] != "M-1" || d.Traits[0] != "outdoors" {
		t.Errorf("domain customer shares memory with the proto: %+v", d)
	}
	if got := d.Consents[0].UpdateTime; got.Location() != time.UTC {
		t.Errorf("time location = %v, want UTC", got.Location())
	}
}

func TestContactRoundTrip(t *testing.T) {
	for _, p := range organizationFixture().GetOrganization().GetContacts() {
		if diff := diff(p, convert.ContactToProto(convert.ContactFromProto(p))); diff != "" {
			t.Errorf("contact %s (-want +got):\n%s", p.GetContactId(), diff)
		}
	}
	if got := convert.ContactFromProto(nil); got != (domain.Contact{}) {
		t.Errorf("ContactFromProto(nil) = %+v, want zero", got)
	}
}

func TestEventRoundTrip(t *testing.T) {
	var restored []any
	for name, p := range eventFixtures() {
		t.Run(name, func(t *testing.T) {
			d := convert.EventFromProto(p)
			if got, want := d.Kind(), eventKinds[name]; got != want || want == domain.EventUnspecified {
				t.Errorf("kind = %d, want %d", got, want)
			}
			if diff := diff(clearEventOutputs(p), clearEventOutputs(convert.EventToProto(d))); diff != "" {
				t.Errorf("client fields differ after the round trip (-want +got):\n%s", diff)
			}
			if !d.RecordTime.IsZero() {
				t.Errorf("EventFromProto kept record_time %v", d.RecordTime)
			}
			d.RecordTime = p.GetRecordTime().AsTime()
			if diff := diff(p, convert.EventToProto(d)); diff != "" {
				t.Errorf("stored event differs after the round trip (-want +got):\n%s", diff)
			}
			restored = append(restored, d)
		})
	}
	assertEveryDomainFieldSet(t, domain.Event{}, restored...)
}

func TestEventFixturesCoverEveryKind(t *testing.T) {
	oneof := (*profilev1.Event)(nil).ProtoReflect().Descriptor().Oneofs().ByName("kind")
	fixtures := eventFixtures()
	if len(fixtures) != oneof.Fields().Len() || len(eventKinds) != oneof.Fields().Len() {
		t.Errorf("%d fixtures and %d kinds for %d oneof members", len(fixtures), len(eventKinds), oneof.Fields().Len())
	}
	for i := 0; i < oneof.Fields().Len(); i++ {
		name := string(oneof.Fields().Get(i).Name())
		if p := fixtures[name]; p.ProtoReflect().WhichOneof(oneof).Name() != oneof.Fields().Get(i).Name() {
			t.Errorf("fixture %q does not hold a %s", name, name)
		}
	}
}

func TestSurveyScorePresence(t *testing.T) {
	// nps 0 is an answer (a detractor); csat unset was not asked.
	p := event("e-s", func(e *profilev1.Event) {
		e.Kind = &profilev1.Event_Survey{Survey: &profilev1.SurveyResponse{Nps: ptr[int32](0)}}
	})
	d := convert.EventFromProto(p)
	if d.Survey.CSAT != nil || d.Survey.NPS == nil || *d.Survey.NPS != 0 {
		t.Fatalf("survey scores = %v, %v; want nil and 0", d.Survey.CSAT, d.Survey.NPS)
	}
	*p.GetSurvey().Nps = 10
	if *d.Survey.NPS != 0 {
		t.Error("domain survey shares the score with the proto")
	}
	back := convert.EventToProto(d)
	if back.GetSurvey().Csat != nil || back.GetSurvey().Nps == nil || *back.GetSurvey().Nps != 0 {
		t.Errorf("survey scores after the round trip = %v, %v; want nil and 0", back.GetSurvey().Csat, back.GetSurvey().Nps)
	}
	*d.Survey.NPS = 5
	if *back.GetSurvey().Nps != 0 {
		t.Error("proto survey shares the score with the domain")
	}
}

func TestEventZeroValues(t *testing.T) {
	if convert.EventFromProto(nil) != nil || convert.EventToProto(nil) != nil {
		t.Error("nil event did not map to nil")
	}
	if d := convert.EventFromProto(&profilev1.Event{EventId: "e"}); d.Kind() != domain.EventUnspecified || !d.OccurTime.IsZero() {
		t.Errorf("event without kind or time = %+v", d)
	}
	if diff := diff(&profilev1.Event{}, convert.EventToProto(&domain.Event{})); diff != "" {
		t.Errorf("zero event (-want +got):\n%s", diff)
	}
	// A oneof holding a nil message still names its kind.
	d := convert.EventFromProto(&profilev1.Event{Kind: &profilev1.Event_Referral{}})
	if d.Kind() != domain.EventReferral {
		t.Errorf("kind = %d, want referral", d.Kind())
	}
	// Unset money stays unset.
	d = convert.EventFromProto(&profilev1.Event{Kind: &profilev1.Event_Purchase{Purchase: &profilev1.Purchase{OrderId: "o"}}})
	if back := convert.EventToProto(d).GetPurchase(); back.Amount != nil || back.Discount != nil || back.Items != nil {
		t.Errorf("purchase without money = %v", back)
	}
}

func listRequestFixture() *profilev1.ListCustomersRequest {
	return &profilev1.ListCustomersRequest{
		PageSize:  50,
		PageToken: "next",
		Stage:     profilev1.LifecycleStage_LIFECYCLE_STAGE_DORMANT,
		Owner:     "li.lei",
		Country:   "CN",
		Province:  "浙江",
		City:      "杭州",
		Tag:       "vip",
		Channel:   profilev1.AcquisitionChannel_ACQUISITION_CHANNEL_ONLINE,
		Intent:    profilev1.IntentLevel_INTENT_LEVEL_NONE,
		Kind:      profilev1.CustomerKind_CUSTOMER_KIND_ORGANIZATION,
	}
}

func TestFilterFromProto(t *testing.T) {
	got := convert.FilterFromProto(listRequestFixture())
	want := domain.Filter{
		Stage:    5,
		Owner:    "li.lei",
		Country:  "CN",
		Province: "浙江",
		City:     "杭州",
		Tag:      "vip",
		Channel:  5,
		Intent:   3,
		Kind:     domain.KindOrganization,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("filter (-want +got):\n%s", diff)
	}
	assertEveryDomainFieldSet(t, domain.Filter{}, got)
	if got := convert.FilterFromProto(nil); got != (domain.Filter{}) {
		t.Errorf("FilterFromProto(nil) = %+v, want the empty filter", got)
	}
}

var currencyTotals = []domain.CurrencyTotals{
	{Currency: "CNY", Purchased: 12900, Refunded: 1000, Net: 11900, Discount: 2000},
	{Currency: "USD", Purchased: 500, Refunded: 100, Net: 400, Discount: 50},
}

var currencyTotalsProto = []*profilev1.CurrencyTotals{
	{Currency: "CNY", PurchasedMinor: 12900, RefundedMinor: 1000, NetMinor: 11900, DiscountMinor: 2000},
	{Currency: "USD", PurchasedMinor: 500, RefundedMinor: 100, NetMinor: 400, DiscountMinor: 50},
}

func TestCustomerIndicatorsToProto(t *testing.T) {
	in := domain.CustomerIndicators{
		CustomerID:              "c-person",
		Purchases:               4,
		Refunds:                 1,
		RepeatBuyer:             true,
		Complaints:              2,
		ComplaintRate:           0.5,
		CSATCount:               3,
		AverageCSAT:             4.25,
		NPSCount:                2,
		LastNPS:                 9,
		Totals:                  currencyTotals,
		DiscountedPurchaseShare: 0.75,
		FirstPurchase:           ts(1).AsTime(),
		LastPurchase:            ts(2).AsTime(),
		Referrals:               6,
		LastContact:             ts(3).AsTime(),
	}
	assertEveryDomainFieldSet(t, domain.CustomerIndicators{}, in)
	want := &profilev1.CustomerIndicators{
		CustomerId:              "c-person",
		PurchaseCount:           4,
		RefundCount:             1,
		RepeatBuyer:             true,
		ComplaintCount:          2,
		ComplaintRate:           0.5,
		CsatCount:               3,
		AverageCsat:             4.25,
		NpsCount:                2,
		LastNps:                 9,
		Totals:                  currencyTotalsProto,
		DiscountedPurchaseShare: 0.75,
		FirstPurchaseTime:       ts(1),
		LastPurchaseTime:        ts(2),
		ReferralCount:           6,
		LastContactTime:         ts(3),
	}
	got := convert.CustomerIndicatorsToProto(in)
	if diff := diff(want, got); diff != "" {
		t.Errorf("customer indicators (-want +got):\n%s", diff)
	}
	assertEveryFieldSet(t, (*profilev1.CustomerIndicators)(nil), []proto.Message{got}, nil)

	// Without answers or purchases: last_nps -1 passes through, times unset.
	got = convert.CustomerIndicatorsToProto(domain.CustomerIndicators{CustomerID: "c", LastNPS: -1})
	if diff := diff(&profilev1.CustomerIndicators{CustomerId: "c", LastNps: -1}, got); diff != "" {
		t.Errorf("empty customer indicators (-want +got):\n%s", diff)
	}
}

func TestTenantIndicatorsToProto(t *testing.T) {
	in := domain.TenantIndicators{
		Customers:               100,
		Buyers:                  40,
		RepeatBuyers:            10,
		RepurchaseRate:          0.25,
		Purchases:               80,
		Complaints:              4,
		ComplaintRate:           0.05,
		AverageCSAT:             4.1,
		CSATCount:               30,
		NPS:                     20,
		Promoters:               12,
		Passives:                6,
		Detractors:              2,
		Totals:                  currencyTotals,
		DiscountedPurchaseShare: 0.3,
		ReferredCustomers:       15,
	}
	assertEveryDomainFieldSet(t, domain.TenantIndicators{}, in)
	want := &profilev1.TenantIndicators{
		CustomerCount:           100,
		BuyerCount:              40,
		RepeatBuyerCount:        10,
		RepurchaseRate:          0.25,
		PurchaseCount:           80,
		ComplaintCount:          4,
		ComplaintRate:           0.05,
		AverageCsat:             4.1,
		CsatCount:               30,
		Nps:                     20,
		Promoters:               12,
		Passives:                6,
		Detractors:              2,
		Totals:                  currencyTotalsProto,
		DiscountedPurchaseShare: 0.3,
		ReferredCustomerCount:   15,
	}
	got := convert.TenantIndicatorsToProto(in)
	if diff := diff(want, got); diff != "" {
		t.Errorf("tenant indicators (-want +got):\n%s", diff)
	}
	assertEveryFieldSet(t, (*profilev1.TenantIndicators)(nil), []proto.Message{got}, nil)
	if diff := diff(&profilev1.TenantIndicators{}, convert.TenantIndicatorsToProto(domain.TenantIndicators{Totals: []domain.CurrencyTotals{}})); diff != "" {
		t.Errorf("empty tenant indicators (-want +got):\n%s", diff)
	}
}

func TestDuplicateGroupToProto(t *testing.T) {
	in := domain.DuplicateGroup{Match: "phone:8613800000000", CustomerIDs: []string{"c-1", "c-2"}}
	assertEveryDomainFieldSet(t, domain.DuplicateGroup{}, in)
	got := convert.DuplicateGroupToProto(in)
	want := &profilev1.DuplicateGroup{Match: "phone:8613800000000", CustomerIds: []string{"c-1", "c-2"}}
	if diff := diff(want, got); diff != "" {
		t.Errorf("duplicate group (-want +got):\n%s", diff)
	}
	assertEveryFieldSet(t, (*profilev1.DuplicateGroup)(nil), []proto.Message{got}, nil)
	in.CustomerIDs[0] = "changed"
	if got.GetCustomerIds()[0] != "c-1" {
		t.Error("proto group shares customer ids with the domain")
	}
}

// TestEnumNumbersMatch pins the domain constants the converter casts to the
// API's numbers.
func TestEnumNumbersMatch(t *testing.T) {
	for _, tc := range []struct {
		name          string
		domain, proto int32
	}{
		{"kind person", int32(domain.KindPerson), int32(profilev1.CustomerKind_CUSTOMER_KIND_PERSON)},
		{"kind organization", int32(domain.KindOrganization), int32(profilev1.CustomerKind_CUSTOMER_KIND_ORGANIZATION)},
		{"channel referral", int32(domain.ChannelReferral), int32(profilev1.AcquisitionChannel_ACQUISITION_CHANNEL_REFERRAL)},
		{"role decision maker", int32(domain.RoleDecisionMaker), int32(profilev1.DecisionRole_DECISION_ROLE_DECISION_MAKER)},
		{"role technical evaluator", int32(domain.RoleTechnicalEvaluator), int32(profilev1.DecisionRole_DECISION_ROLE_TECHNICAL_EVALUATOR)},
		{"role purchaser", int32(domain.RolePurchaser), int32(profilev1.DecisionRole_DECISION_ROLE_PURCHASER)},
		{"role user", int32(domain.RoleUser), int32(profilev1.DecisionRole_DECISION_ROLE_USER)},
		{"role influencer", int32(domain.RoleInfluencer), int32(profilev1.DecisionRole_DECISION_ROLE_INFLUENCER)},
		{"event purchase", int32(domain.EventPurchase), int32(profilev1.EventKind_EVENT_KIND_PURCHASE)},
		{"event refund", int32(domain.EventRefund), int32(profilev1.EventKind_EVENT_KIND_REFUND)},
		{"event consultation", int32(domain.EventConsultation), int32(profilev1.EventKind_EVENT_KIND_CONSULTATION)},
		{"event after-sales", int32(domain.EventAfterSales), int32(profilev1.EventKind_EVENT_KIND_AFTER_SALES)},
		{"event complaint", int32(domain.EventComplaint), int32(profilev1.EventKind_EVENT_KIND_COMPLAINT)},
		{"event survey", int32(domain.EventSurvey), int32(profilev1.EventKind_EVENT_KIND_SURVEY)},
		{"event contact log", int32(domain.EventContactLog), int32(profilev1.EventKind_EVENT_KIND_CONTACT_LOG)},
		{"event referral", int32(domain.EventReferral), int32(profilev1.EventKind_EVENT_KIND_REFERRAL)},
	} {
		if tc.domain != tc.proto {
			t.Errorf("%s: domain %d, proto %d", tc.name, tc.domain, tc.proto)
		}
	}
	// The decision roles the domain iterates over must be all the API has.
	if n := len(profilev1.DecisionRole_name) - 1; n != int(domain.RoleInfluencer) {
		t.Errorf("proto has %d decision roles, domain %d", n, domain.RoleInfluencer)
	}
}
