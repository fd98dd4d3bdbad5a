package domain

import (
	"encoding/binary"
	"fmt"
	"math"

	"rapport.dev/platform/binrec"
)

// The binary encoding of Customer (format version 1), as the store keeps
// it (schema 6): GetCustomer's JSON decode of the record was most of the
// handler's time and allocations. Fields in the order of the struct:
//
//	version       byte = 1
//	flags         byte: customerPerson, customerOrganization (which sections
//	              follow), customerDoNotContact, customerErased (the bools),
//	              customerCreateTime, customerUpdateTime, customerAcquireTime
//	              (which times follow); other bits are refused
//	ID, DisplayName                    string
//	Kind                               varint
//	Person        only with customerPerson:
//	              GivenName, FamilyName string; Gender varint;
//	              Birthday Year, Month, Day varints;
//	              LunarBirthday Year, Month, Day varints, LeapMonth byte (0 or 1);
//	              Occupation string; IncomeBand, Education varints
//	Organization  only with customerOrganization:
//	              LegalName, Industry string; EmployeeCount, RelationshipType varints;
//	              Contacts uvarint n, n × (ID, Name, Title string; Role varint;
//	              Phone, Email, Counterpart, Note string)
//	Phone, Email                       string
//	Region        Country, Province, City strings
//	Tags          uvarint n, n strings
//	Attributes    uvarint n, n × (key, value strings), keys strictly ascending
//	Traits        uvarint n, n strings
//	TimeZone, Language                 string
//	Consents      uvarint n, n × (Channel varint; flags byte: consentGranted,
//	              consentTime; UpdateTime time when consentTime is set)
//	Acquisition   Channel varint; Campaign, ReferredBy strings;
//	              AcquireTime time with customerAcquireTime
//	Stage, Intent                      varint
//	Owner                              string
//	CreateTime, UpdateTime             time, each only when its flag is set
//	Revision                           uvarint
//	MergedInto                         string
//
// Strings, varints and times are platform/binrec's, as in codec.go; every
// varint of an int32 field must be in the int32 range. Times keep their
// instant and are read back in UTC (the service sets them in UTC). As with
// the JSON encoding before, a nil Person or Organization stays nil and a
// present one stays present even when empty, while empty lists and maps
// decode as nil. The input must be consumed exactly; an unknown version or
// customer flag is an error saying so, other malformed input an error
// wrapping binrec.ErrMalformed, never a panic. A decoded customer's strings
// share one copy of the record (binrec.NewSharedReader).

// customerCodecVersion is the first byte of an encoded Customer.
const customerCodecVersion = 1

const (
	customerPerson = 1 << iota
	customerOrganization
	customerDoNotContact
	customerErased
	customerCreateTime
	customerUpdateTime
	customerAcquireTime
	customerKnownFlags = customerPerson | customerOrganization | customerDoNotContact | customerErased |
		customerCreateTime | customerUpdateTime | customerAcquireTime
)

const (
	consentGranted = 1 << iota
	consentTime
	consentKnownFlags = consentGranted | consentTime
)

// MarshalBinary encodes the customer in the binary format above.
func (c *Customer) MarshalBinary() ([]byte, error) {
	return c.AppendBinary(make([]byte, 0, c.binarySizeHint())), nil
}

// binarySizeHint is about the size of c's encoding, so that encoding it
// allocates once.
func (c *Customer) binarySizeHint() int {
	n := 64 + len(c.ID) + len(c.DisplayName) + len(c.Phone) + len(c.Email) + len(c.Region.Country) +
		len(c.Region.Province) + len(c.Region.City) + len(c.TimeZone) + len(c.Language) +
		len(c.Acquisition.Campaign) + len(c.Acquisition.ReferredBy) + len(c.Owner) + len(c.MergedInto) +
		16*len(c.Consents)
	if p := c.Person; p != nil {
		n += 16 + len(p.GivenName) + len(p.FamilyName) + len(p.Occupation)
	}
	if o := c.Organization; o != nil {
		n += 16 + len(o.LegalName) + len(o.Industry)
		for i := range o.Contacts {
			ct := &o.Contacts[i]
			n += 10 + len(ct.ID) + len(ct.Name) + len(ct.Title) + len(ct.Phone) + len(ct.Email) + len(ct.Counterpart) + len(ct.Note)
		}
	}
	for _, s := range c.Tags {
		n += 1 + len(s)
	}
	for _, s := range c.Traits {
		n += 1 + len(s)
	}
	for k, v := range c.Attributes {
		n += 2 + len(k) + len(v)
	}
	return n
}

// AppendBinary appends the binary encoding of c to b.
func (c *Customer) AppendBinary(b []byte) []byte {
	var flags byte
	for _, x := range [...]struct {
		set  bool
		flag byte
	}{{c.Person != nil, customerPerson}, {c.Organization != nil, customerOrganization},
		{c.DoNotContact, customerDoNotContact}, {c.Erased, customerErased},
		{!c.CreateTime.IsZero(), customerCreateTime}, {!c.UpdateTime.IsZero(), customerUpdateTime},
		{!c.Acquisition.AcquireTime.IsZero(), customerAcquireTime}} {
		if x.set {
			flags |= x.flag
		}
	}
	b = append(b, customerCodecVersion, flags)
	b = binrec.AppendString(b, c.ID)
	b = binrec.AppendString(b, c.DisplayName)
	b = binary.AppendVarint(b, int64(c.Kind))
	if p := c.Person; p != nil {
		b = binrec.AppendString(b, p.GivenName)
		b = binrec.AppendString(b, p.FamilyName)
		b = binary.AppendVarint(b, int64(p.Gender))
		for _, v := range [...]int32{p.Birthday.Year, p.Birthday.Month, p.Birthday.Day,
			p.LunarBirthday.Year, p.LunarBirthday.Month, p.LunarBirthday.Day} {
			b = binary.AppendVarint(b, int64(v))
		}
		b = append(b, boolByte(p.LunarBirthday.LeapMonth))
		b = binrec.AppendString(b, p.Occupation)
		b = binary.AppendVarint(b, int64(p.IncomeBand))
		b = binary.AppendVarint(b, int64(p.Education))
	}
	if o := c.Organization; o != nil {
		b = binrec.AppendString(b, o.LegalName)
		b = binrec.AppendString(b, o.Industry)
		b = binary.AppendVarint(b, int64(o.EmployeeCount))
		b = binary.AppendVarint(b, int64(o.RelationshipType))
		b = binary.AppendUvarint(b, uint64(len(o.Contacts)))
		for i := range o.Contacts {
			ct := &o.Contacts[i]
			b = binrec.AppendString(b, ct.ID)
			b = binrec.AppendString(b, ct.Name)
			b = binrec.AppendString(b, ct.Title)
			b = binary.AppendVarint(b, int64(ct.Role))
			b = binrec.AppendString(b, ct.Phone)
			b = binrec.AppendString(b, ct.Email)
			b = binrec.AppendString(b, ct.Counterpart)
			b = binrec.AppendString(b, ct.Note)
		}
	}
	b = binrec.AppendString(b, c.Phone)
	b = binrec.AppendString(b, c.Email)
	b = binrec.AppendString(b, c.Region.Country)
	b = binrec.AppendString(b, c.Region.Province)
	b = binrec.AppendString(b, c.Region.City)
	b = appendStrings(b, c.Tags)
	b = binary.AppendUvarint(b, uint64(len(c.Attributes)))
	for _, k := range sortedKeys(c.Attributes) {
		b = binrec.AppendString(b, k)
		b = binrec.AppendString(b, c.Attributes[k])
	}
	b = appendStrings(b, c.Traits)
	b = binrec.AppendString(b, c.TimeZone)
	b = binrec.AppendString(b, c.Language)
	b = binary.AppendUvarint(b, uint64(len(c.Consents)))
	for i := range c.Consents {
		cs := &c.Consents[i]
		var cf byte
		if cs.Granted {
			cf |= consentGranted
		}
		if !cs.UpdateTime.IsZero() {
			cf |= consentTime
		}
		b = append(binary.AppendVarint(b, int64(cs.Channel)), cf)
		if cf&consentTime != 0 {
			b = binrec.AppendTime(b, cs.UpdateTime)
		}
	}
	b = binary.AppendVarint(b, int64(c.Acquisition.Channel))
	b = binrec.AppendString(b, c.Acquisition.Campaign)
	b = binrec.AppendString(b, c.Acquisition.ReferredBy)
	if flags&customerAcquireTime != 0 {
		b = binrec.AppendTime(b, c.Acquisition.AcquireTime)
	}
	b = binary.AppendVarint(b, int64(c.Stage))
	b = binary.AppendVarint(b, int64(c.Intent))
	b = binrec.AppendString(b, c.Owner)
	if flags&customerCreateTime != 0 {
		b = binrec.AppendTime(b, c.CreateTime)
	}
	if flags&customerUpdateTime != 0 {
		b = binrec.AppendTime(b, c.UpdateTime)
	}
	b = binary.AppendUvarint(b, c.Revision)
	return binrec.AppendString(b, c.MergedInto)
}

// UnmarshalBinary decodes what MarshalBinary encoded into c, replacing its
// contents; on error c is left as it was.
func (c *Customer) UnmarshalBinary(data []byte) error {
	if len(data) < 2 {
		return fmt.Errorf("domain: decode customer: %w", binrec.ErrMalformed)
	}
	if data[0] != customerCodecVersion {
		return fmt.Errorf("domain: decode customer: unknown format version %d", data[0])
	}
	flags := data[1]
	if flags&^customerKnownFlags != 0 {
		return fmt.Errorf("domain: decode customer: unknown flags %#x", flags)
	}
	r := binrec.NewSharedReader(data[2:])
	var out Customer
	out.ID = r.String()
	out.DisplayName = r.String()
	out.Kind = Kind(readInt32(r, "kind"))
	if flags&customerPerson != 0 {
		p := &Person{}
		p.GivenName = r.String()
		p.FamilyName = r.String()
		p.Gender = Gender(readInt32(r, "gender"))
		p.Birthday.Year = readInt32(r, "birthday year")
		p.Birthday.Month = readInt32(r, "birthday month")
		p.Birthday.Day = readInt32(r, "birthday day")
		p.LunarBirthday.Year = readInt32(r, "lunar birthday year")
		p.LunarBirthday.Month = readInt32(r, "lunar birthday month")
		p.LunarBirthday.Day = readInt32(r, "lunar birthday day")
		p.LunarBirthday.LeapMonth = readBool(r, "lunar leap month")
		p.Occupation = r.String()
		p.IncomeBand = IncomeBand(readInt32(r, "income band"))
		p.Education = Education(readInt32(r, "education"))
		out.Person = p
	}
	if flags&customerOrganization != 0 {
		o := &Organization{}
		o.LegalName = r.String()
		o.Industry = r.String()
		o.EmployeeCount = readInt32(r, "employee count")
		o.RelationshipType = RelationshipType(readInt32(r, "relationship type"))
		if n := r.Count(); n > 0 {
			o.Contacts = make([]Contact, n)
			for i := range o.Contacts {
				ct := &o.Contacts[i]
				ct.ID = r.String()
				ct.Name = r.String()
				ct.Title = r.String()
				ct.Role = DecisionRole(readInt32(r, "contact role"))
				ct.Phone = r.String()
				ct.Email = r.String()
				ct.Counterpart = r.String()
				ct.Note = r.String()
			}
		}
		out.Organization = o
	}
	out.Phone = r.String()
	out.Email = r.String()
	out.Region.Country = r.String()
	out.Region.Province = r.String()
	out.Region.City = r.String()
	out.Tags = readStrings(r)
	if n := r.Count(); n > 0 {
		out.Attributes = make(map[string]string, n)
		var last string
		for i := range n {
			k := r.String()
			if i > 0 && k <= last {
				r.Fail(fmt.Errorf("%w: attribute %q out of key order", binrec.ErrMalformed, k))
				break
			}
			out.Attributes[k] = r.String()
			last = k
		}
	}
	out.Traits = readStrings(r)
	out.TimeZone = r.String()
	out.Language = r.String()
	if n := r.Count(); n > 0 {
		out.Consents = make([]Consent, n)
		for i := range out.Consents {
			cs := &out.Consents[i]
			cs.Channel = ContactChannel(readInt32(r, "consent channel"))
			cf := r.Byte()
			if cf&^consentKnownFlags != 0 {
				r.Fail(fmt.Errorf("%w: unknown consent flags %#x", binrec.ErrMalformed, cf))
			}
			cs.Granted = cf&consentGranted != 0
			if cf&consentTime != 0 {
				cs.UpdateTime = r.Time()
			}
		}
	}
	out.Acquisition.Channel = AcquisitionChannel(readInt32(r, "acquisition channel"))
	out.Acquisition.Campaign = r.String()
	out.Acquisition.ReferredBy = r.String()
	if flags&customerAcquireTime != 0 {
		out.Acquisition.AcquireTime = r.Time()
	}
	out.Stage = Stage(readInt32(r, "stage"))
	out.Intent = Intent(readInt32(r, "intent"))
	out.Owner = r.String()
	if flags&customerCreateTime != 0 {
		out.CreateTime = r.Time()
	}
	if flags&customerUpdateTime != 0 {
		out.UpdateTime = r.Time()
	}
	out.Revision = r.Uvarint()
	out.MergedInto = r.String()
	out.DoNotContact = flags&customerDoNotContact != 0
	out.Erased = flags&customerErased != 0
	if err := r.Done(); err != nil {
		return fmt.Errorf("domain: decode customer: %w", err)
	}
	*c = out
	return nil
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// readBool reads a byte that must be 0 or 1.
func readBool(r *binrec.Reader, what string) bool {
	switch v := r.Byte(); v {
	case 0, 1:
		return v == 1
	default:
		r.Fail(fmt.Errorf("%w: %s byte %d, want 0 or 1", binrec.ErrMalformed, what, v))
		return false
	}
}

// readInt32 reads a varint that must fit an int32.
func readInt32(r *binrec.Reader, what string) int32 {
	v := r.Varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		r.Fail(fmt.Errorf("%w: %s %d out of range", binrec.ErrMalformed, what, v))
		return 0
	}
	return int32(v)
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = binrec.AppendString(b, s)
	}
	return b
}

// readStrings reads what appendStrings wrote; none is nil.
func readStrings(r *binrec.Reader) []string {
	n := r.Count()
	if n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = r.String()
	}
	return ss
}
