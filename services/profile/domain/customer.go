package domain

import (
	"time"
)

// Kind says whether a customer is a person or an organization.
type Kind int32

// Kinds; the numbers match the API enums.
const (
	KindUnspecified  Kind = 0
	KindPerson       Kind = 1
	KindOrganization Kind = 2
)

// Gender of a person (0 = not recorded, 1 female, 2 male, 3 other, 4 undisclosed).
type Gender int32

// IncomeBand is a coarse income bracket (0 = not recorded, 1 low … 5 high).
type IncomeBand int32

// Education is the highest education level (0 = not recorded, 1 primary … 6 doctorate).
type Education int32

// AcquisitionChannel is how a customer came to us (0 = not recorded, 3 = referral).
type AcquisitionChannel int32

// ChannelReferral is word of mouth, the cheapest acquisition.
const ChannelReferral AcquisitionChannel = 3

// Stage is the lifecycle stage (1 lead … 7 won back).
type Stage int32

// Intent is the purchase intent (1 high, 2 general, 3 none).
type Intent int32

// ContactChannel is a channel of contact permission (1 phone … 7 visit).
type ContactChannel int32

// DecisionRole is a contact's role in the buying decision (1 decision maker … 5 influencer).
type DecisionRole int32

// Decision-chain roles, the teeth of the zipper (seed 002).
const (
	RoleDecisionMaker      DecisionRole = 1
	RoleTechnicalEvaluator DecisionRole = 2
	RolePurchaser          DecisionRole = 3
	RoleUser               DecisionRole = 4
	RoleInfluencer         DecisionRole = 5
	maxRole                             = RoleInfluencer
)

// RelationshipType is clip, zipper or velcro (1 transactional, 2 multi-threaded, 3 integrated).
type RelationshipType int32

// Highest valid value of each enum; 0 is "not recorded" everywhere.
const (
	maxGender       Gender             = 4
	maxIncome       IncomeBand         = 5
	maxEducation    Education          = 6
	maxChannel      AcquisitionChannel = 8
	maxStage        Stage              = 7
	maxIntent       Intent             = 3
	maxContact      ContactChannel     = 7
	maxRelationship RelationshipType   = 3
)

// Date is a solar calendar date; Year 0 means the year is unknown.
type Date struct {
	Year  int32 `json:"y,omitempty"`
	Month int32 `json:"m"`
	Day   int32 `json:"d"`
}

// IsZero reports whether no date is set.
func (d Date) IsZero() bool { return d == Date{} }

// LunarDate is a date of the Chinese lunisolar calendar.
type LunarDate struct {
	Year      int32 `json:"y,omitempty"`
	Month     int32 `json:"m"`
	Day       int32 `json:"d"`
	LeapMonth bool  `json:"leap,omitempty"`
}

// IsZero reports whether no date is set.
func (d LunarDate) IsZero() bool { return d == LunarDate{} }

// Person is the basic data of an individual.
type Person struct {
	GivenName     string     `json:"given,omitempty"`
	FamilyName    string     `json:"family,omitempty"`
	Gender        Gender     `json:"gender,omitempty"`
	Birthday      Date       `json:"birthday,omitzero"`
	LunarBirthday LunarDate  `json:"lunar_birthday,omitzero"`
	Occupation    string     `json:"occupation,omitempty"`
	IncomeBand    IncomeBand `json:"income,omitempty"`
	Education     Education  `json:"education,omitempty"`
}

// Contact is a person at an organization customer.
type Contact struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Title       string       `json:"title,omitempty"`
	Role        DecisionRole `json:"role,omitempty"`
	Phone       string       `json:"phone,omitempty"`
	Email       string       `json:"email,omitempty"`
	Counterpart string       `json:"counterpart,omitempty"`
	Note        string       `json:"note,omitempty"`
}

// Organization is the data of a B2B customer.
type Organization struct {
	LegalName        string           `json:"legal_name,omitempty"`
	Industry         string           `json:"industry,omitempty"`
	EmployeeCount    int32            `json:"employees,omitempty"`
	RelationshipType RelationshipType `json:"relationship,omitempty"`
	Contacts         []Contact        `json:"contacts,omitempty"`
}

// UncoveredRoles lists the decision-chain roles that have no contact, or
// whose contacts have no counterpart of ours: the missing links of the
// zipper that stall a deal.
func (o *Organization) UncoveredRoles() []DecisionRole {
	covered := map[DecisionRole]bool{}
	for _, c := range o.Contacts {
		if c.Counterpart != "" {
			covered[c.Role] = true
		}
	}
	var out []DecisionRole
	for r := RoleDecisionMaker; r <= maxRole; r++ {
		if !covered[r] {
			out = append(out, r)
		}
	}
	return out
}

// Region is where a customer is.
type Region struct {
	Country  string `json:"country,omitempty"`
	Province string `json:"province,omitempty"`
	City     string `json:"city,omitempty"`
}

// Consent is a permission to contact through one channel.
type Consent struct {
	Channel    ContactChannel `json:"channel"`
	Granted    bool           `json:"granted"`
	UpdateTime time.Time      `json:"time,omitzero"`
}

// Acquisition is how a customer was acquired.
type Acquisition struct {
	Channel     AcquisitionChannel `json:"channel,omitempty"`
	Campaign    string             `json:"campaign,omitempty"`
	ReferredBy  string             `json:"referred_by,omitempty"`
	AcquireTime time.Time          `json:"time,omitzero"`
}

// Customer is a customer record.
type Customer struct {
	ID           string            `json:"id"`
	Kind         Kind              `json:"kind"`
	DisplayName  string            `json:"name"`
	Person       *Person           `json:"person,omitempty"`
	Organization *Organization     `json:"org,omitempty"`
	Phone        string            `json:"phone,omitempty"`
	Email        string            `json:"email,omitempty"`
	Region       Region            `json:"region,omitzero"`
	Tags         []string          `json:"tags,omitempty"`
	Attributes   map[string]string `json:"attrs,omitempty"`
	Traits       []string          `json:"traits,omitempty"`
	TimeZone     string            `json:"tz,omitempty"`
	Language     string            `json:"lang,omitempty"`
	Consents     []Consent         `json:"consents,omitempty"`
	DoNotContact bool              `json:"dnc,omitempty"`
	Acquisition  Acquisition       `json:"acq,omitzero"`
	Stage        Stage             `json:"stage,omitempty"`
	Intent       Intent            `json:"intent,omitempty"`
	Owner        string            `json:"owner,omitempty"`

	CreateTime time.Time `json:"created"`
	UpdateTime time.Time `json:"updated"`
	// Revision counts the stored versions; the etag is derived from it.
	Revision   uint64 `json:"rev"`
	Erased     bool   `json:"erased,omitempty"`
	MergedInto string `json:"merged_into,omitempty"`
}

// Referred reports whether the customer came by word of mouth.
func (c *Customer) Referred() bool {
	return c.Acquisition.Channel == ChannelReferral || c.Acquisition.ReferredBy != ""
}

// Active reports whether the record is a live customer (not merged away).
func (c *Customer) Active() bool { return c.MergedInto == "" }
