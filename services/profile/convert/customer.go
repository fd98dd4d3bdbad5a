package convert

import (
	"maps"
	"slices"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	typev1 "rapport.dev/gen/go/rapport/type/v1"
	"rapport.dev/services/profile/domain"
)

// CustomerFromProto maps the client-settable fields of p. Output-only fields
// (create_time, update_time, etag, erased, merged_into and
// organization.uncovered_roles) are ignored: the service sets them. It
// returns nil for a nil p.
func CustomerFromProto(p *profilev1.Customer) *domain.Customer {
	if p == nil {
		return nil
	}
	return &domain.Customer{
		ID:           p.GetCustomerId(),
		Kind:         domain.Kind(p.GetKind()),
		DisplayName:  p.GetDisplayName(),
		Person:       personFromProto(p.GetPerson()),
		Organization: organizationFromProto(p.GetOrganization()),
		Phone:        p.GetPhone(),
		Email:        p.GetEmail(),
		Region:       regionFromProto(p.GetRegion()),
		Tags:         cloneStrings(p.GetTags()),
		Attributes:   cloneMap(p.GetAttributes()),
		Traits:       cloneStrings(p.GetTraits()),
		TimeZone:     p.GetTimeZone(),
		Language:     p.GetLanguage(),
		Consents:     mapSlice(p.GetConsents(), consentFromProto),
		DoNotContact: p.GetDoNotContact(),
		Acquisition:  acquisitionFromProto(p.GetAcquisition()),
		Stage:        domain.Stage(p.GetStage()),
		Intent:       domain.Intent(p.GetIntent()),
		Owner:        p.GetOwner(),
	}
}

// CustomerToProto maps every field of c, output-only ones included: the etag
// (empty for a customer never stored, revision 0), the times, erased,
// merged_into and the organization's uncovered roles. It returns nil for a
// nil c.
func CustomerToProto(c *domain.Customer) *profilev1.Customer {
	if c == nil {
		return nil
	}
	p := customerToProto(c)
	p.Tags, p.Attributes, p.Traits = cloneStrings(c.Tags), cloneMap(c.Attributes), cloneStrings(c.Traits)
	return p
}

// CustomerToProtoShared is CustomerToProto without the copies of c's tags,
// traits and attributes: the message shares them with c. It is for a
// customer handed over whole, that nothing changes afterwards, such as one
// just read from the store to answer a call.
func CustomerToProtoShared(c *domain.Customer) *profilev1.Customer {
	if c == nil {
		return nil
	}
	p := customerToProto(c)
	p.Tags, p.Attributes, p.Traits = nilIfEmpty(c.Tags), nilIfEmptyMap(c.Attributes), nilIfEmpty(c.Traits)
	return p
}

// customerToProto maps every field of c but its tags, traits and attributes.
func customerToProto(c *domain.Customer) *profilev1.Customer {
	p := &profilev1.Customer{
		CustomerId:   c.ID,
		Kind:         profilev1.CustomerKind(c.Kind),
		DisplayName:  c.DisplayName,
		Person:       personToProto(c.Person),
		Organization: organizationToProto(c.Organization),
		Phone:        c.Phone,
		Email:        c.Email,
		Region:       regionToProto(c.Region),
		TimeZone:     c.TimeZone,
		Language:     c.Language,
		Consents:     mapSlice(c.Consents, consentToProto),
		DoNotContact: c.DoNotContact,
		Acquisition:  acquisitionToProto(c.Acquisition),
		Stage:        profilev1.LifecycleStage(c.Stage),
		Intent:       profilev1.IntentLevel(c.Intent),
		Owner:        c.Owner,
		CreateTime:   timeToProto(c.CreateTime),
		UpdateTime:   timeToProto(c.UpdateTime),
		Erased:       c.Erased,
		MergedInto:   c.MergedInto,
	}
	if c.Revision != 0 {
		p.Etag = domain.Etag(c.Revision)
	}
	return p
}

// ContactFromProto maps a contact of an organization; nil gives the zero Contact.
func ContactFromProto(p *profilev1.Contact) domain.Contact {
	return domain.Contact{
		ID:          p.GetContactId(),
		Name:        p.GetName(),
		Title:       p.GetTitle(),
		Role:        domain.DecisionRole(p.GetRole()),
		Phone:       p.GetPhone(),
		Email:       p.GetEmail(),
		Counterpart: p.GetCounterpart(),
		Note:        p.GetNote(),
	}
}

// ContactToProto maps a contact of an organization.
func ContactToProto(c domain.Contact) *profilev1.Contact {
	return &profilev1.Contact{
		ContactId:   c.ID,
		Name:        c.Name,
		Title:       c.Title,
		Role:        profilev1.DecisionRole(c.Role),
		Phone:       c.Phone,
		Email:       c.Email,
		Counterpart: c.Counterpart,
		Note:        c.Note,
	}
}

// FilterFromProto maps the filter fields of a listing request; paging is
// left to the caller, which builds a domain.Page from page_size and
// page_token.
func FilterFromProto(r *profilev1.ListCustomersRequest) domain.Filter {
	return domain.Filter{
		Stage:    domain.Stage(r.GetStage()),
		Owner:    r.GetOwner(),
		Country:  r.GetCountry(),
		Province: r.GetProvince(),
		City:     r.GetCity(),
		Tag:      r.GetTag(),
		Channel:  domain.AcquisitionChannel(r.GetChannel()),
		Intent:   domain.Intent(r.GetIntent()),
		Kind:     domain.Kind(r.GetKind()),
	}
}

func personFromProto(p *profilev1.Person) *domain.Person {
	if p == nil {
		return nil
	}
	return &domain.Person{
		GivenName:     p.GetGivenName(),
		FamilyName:    p.GetFamilyName(),
		Gender:        domain.Gender(p.GetGender()),
		Birthday:      dateFromProto(p.GetBirthday()),
		LunarBirthday: lunarDateFromProto(p.GetLunarBirthday()),
		Occupation:    p.GetOccupation(),
		IncomeBand:    domain.IncomeBand(p.GetIncomeBand()),
		Education:     domain.Education(p.GetEducation()),
	}
}

func personToProto(p *domain.Person) *profilev1.Person {
	if p == nil {
		return nil
	}
	return &profilev1.Person{
		GivenName:     p.GivenName,
		FamilyName:    p.FamilyName,
		Gender:        profilev1.Gender(p.Gender),
		Birthday:      dateToProto(p.Birthday),
		LunarBirthday: lunarDateToProto(p.LunarBirthday),
		Occupation:    p.Occupation,
		IncomeBand:    profilev1.IncomeBand(p.IncomeBand),
		Education:     profilev1.Education(p.Education),
	}
}

func organizationFromProto(p *profilev1.Organization) *domain.Organization {
	if p == nil {
		return nil
	}
	return &domain.Organization{
		LegalName:        p.GetLegalName(),
		Industry:         p.GetIndustry(),
		EmployeeCount:    p.GetEmployeeCount(),
		RelationshipType: domain.RelationshipType(p.GetRelationshipType()),
		Contacts:         mapSlice(p.GetContacts(), ContactFromProto),
	}
}

func organizationToProto(o *domain.Organization) *profilev1.Organization {
	if o == nil {
		return nil
	}
	return &profilev1.Organization{
		LegalName:        o.LegalName,
		Industry:         o.Industry,
		EmployeeCount:    o.EmployeeCount,
		RelationshipType: profilev1.RelationshipType(o.RelationshipType),
		Contacts:         mapSlice(o.Contacts, ContactToProto),
		UncoveredRoles: mapSlice(o.UncoveredRoles(), func(r domain.DecisionRole) profilev1.DecisionRole {
			return profilev1.DecisionRole(r)
		}),
	}
}

func regionFromProto(p *profilev1.Region) domain.Region {
	return domain.Region{Country: p.GetCountry(), Province: p.GetProvince(), City: p.GetCity()}
}

func regionToProto(r domain.Region) *profilev1.Region {
	if r == (domain.Region{}) {
		return nil
	}
	return &profilev1.Region{Country: r.Country, Province: r.Province, City: r.City}
}

func consentFromProto(p *profilev1.Consent) domain.Consent {
	return domain.Consent{
		Channel:    domain.ContactChannel(p.GetChannel()),
		Granted:    p.GetGranted(),
		UpdateTime: timeFromProto(p.GetUpdateTime()),
	}
}

func consentToProto(c domain.Consent) *profilev1.Consent {
	return &profilev1.Consent{
		Channel:    profilev1.ContactChannel(c.Channel),
		Granted:    c.Granted,
		UpdateTime: timeToProto(c.UpdateTime),
	}
}

func acquisitionFromProto(p *profilev1.Acquisition) domain.Acquisition {
	return domain.Acquisition{
		Channel:     domain.AcquisitionChannel(p.GetChannel()),
		Campaign:    p.GetCampaign(),
		ReferredBy:  p.GetReferredBy(),
		AcquireTime: timeFromProto(p.GetAcquireTime()),
	}
}

func acquisitionToProto(a domain.Acquisition) *profilev1.Acquisition {
	// Compared field by field: == on time.Time also compares locations.
	if a.Channel == 0 && a.Campaign == "" && a.ReferredBy == "" && a.AcquireTime.IsZero() {
		return nil
	}
	return &profilev1.Acquisition{
		Channel:     profilev1.AcquisitionChannel(a.Channel),
		Campaign:    a.Campaign,
		ReferredBy:  a.ReferredBy,
		AcquireTime: timeToProto(a.AcquireTime),
	}
}

func dateFromProto(p *typev1.Date) domain.Date {
	return domain.Date{Year: p.GetYear(), Month: p.GetMonth(), Day: p.GetDay()}
}

func dateToProto(d domain.Date) *typev1.Date {
	if d.IsZero() {
		return nil
	}
	return &typev1.Date{Year: d.Year, Month: d.Month, Day: d.Day}
}

func lunarDateFromProto(p *typev1.LunarDate) domain.LunarDate {
	return domain.LunarDate{Year: p.GetYear(), Month: p.GetMonth(), Day: p.GetDay(), LeapMonth: p.GetLeapMonth()}
}

func lunarDateToProto(d domain.LunarDate) *typev1.LunarDate {
	if d.IsZero() {
		return nil
	}
	return &typev1.LunarDate{Year: d.Year, Month: d.Month, Day: d.Day, LeapMonth: d.LeapMonth}
}

// mapSlice maps every element of s with f; an empty s gives nil.
func mapSlice[E, T any](s []E, f func(E) T) []T {
	if len(s) == 0 {
		return nil
	}
	out := make([]T, len(s))
	for i, e := range s {
		out[i] = f(e)
	}
	return out
}

// cloneStrings copies s so neither side aliases the other; empty gives nil.
func cloneStrings(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

// nilIfEmpty is s, or nil when s is empty.
func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// nilIfEmptyMap is m, or nil when m is empty.
func nilIfEmptyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// cloneMap copies m; empty gives nil.
func cloneMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}
