package domain

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"rapport.dev/platform/clock"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/ident"
)

// MaxBatch is the most customers or events one batch call may carry.
const MaxBatch = 1000

// Page asks for one page of a listing.
type Page struct {
	Token string
	Size  int
}

// CreateResult is the outcome of creating one customer.
type CreateResult struct {
	Customer *Customer
	Created  bool
	Err      error
}

// RecordResult is the outcome of recording one event.
type RecordResult struct {
	Event   *Event
	Created bool
	Err     error
}

// DuplicateGroup is a set of customers sharing a match key.
type DuplicateGroup struct {
	Match       string
	CustomerIDs []string
}

// Repository is the storage the profile service needs. Every method is
// scoped to one tenant; every write is durable when it returns.
type Repository interface {
	// CreateCustomers stores new customers. A customer whose id exists with
	// the same content is returned as it is (Created false); with different
	// content the item fails with ErrAlreadyExists.
	CreateCustomers(ctx context.Context, tenant string, cs []*Customer) ([]CreateResult, error)
	GetCustomer(ctx context.Context, tenant, id string) (*Customer, error)
	// UpdateCustomer loads the customer, applies mutate and stores the result
	// with a new revision, in one transaction. mutate may run more than once.
	UpdateCustomer(ctx context.Context, tenant, id string, mutate func(*Customer) error) (*Customer, error)
	ListCustomers(ctx context.Context, tenant string, f Filter, p Page) ([]*Customer, string, error)
	// Erase tombstones the personal data of a customer and its timeline text.
	Erase(ctx context.Context, tenant, id string, now time.Time) (*Customer, error)
	// Merge moves src's timeline to target and marks src merged.
	Merge(ctx context.Context, tenant, targetID, srcID string, now time.Time) (*Customer, int64, error)
	Duplicates(ctx context.Context, tenant, customerID string, p Page) ([]DuplicateGroup, string, error)
	// RecordEvents appends events; each item succeeds or fails on its own.
	RecordEvents(ctx context.Context, tenant string, evs []*Event) ([]RecordResult, error)
	GetEvent(ctx context.Context, tenant, id string) (*Event, error)
	ListEvents(ctx context.Context, tenant, customerID string, kind EventKind, p Page) ([]*Event, string, error)
	Stats(ctx context.Context, tenant, customerID string) (*Stats, error)
	TenantStats(ctx context.Context, tenant string) (*TenantStats, error)
}

// Clock is the time source; see rapport.dev/platform/clock.
type Clock = clock.Clock

// Service is the profile service's use cases.
type Service struct {
	repo  Repository
	clock Clock
}

// NewService returns the use cases over repo.
func NewService(repo Repository, clk Clock) *Service {
	return &Service{repo: repo, clock: clk}
}

// CreateCustomers validates and creates customers; invalid items fail alone.
func (s *Service) CreateCustomers(ctx context.Context, tenant string, cs []*Customer) ([]CreateResult, error) {
	if len(cs) > MaxBatch {
		return nil, fault.InvalidField("customers", "at most %d per batch", MaxBatch)
	}
	now := s.clock.Now().UTC()
	results := make([]CreateResult, len(cs))
	var valid []*Customer
	var at []int
	for i, c := range cs {
		if err := c.Validate(); err != nil {
			results[i].Err = err
			continue
		}
		c.CreateTime, c.UpdateTime, c.Revision = now, now, 1
		c.Erased, c.MergedInto = false, ""
		valid = append(valid, c)
		at = append(at, i)
	}
	if len(valid) == 0 {
		return results, nil
	}
	stored, err := s.repo.CreateCustomers(ctx, tenant, valid)
	if err != nil {
		return nil, err
	}
	for j, r := range stored {
		results[at[j]] = r
	}
	return results, nil
}

// CreateCustomer creates one customer.
func (s *Service) CreateCustomer(ctx context.Context, tenant string, c *Customer) (*Customer, bool, error) {
	rs, err := s.CreateCustomers(ctx, tenant, []*Customer{c})
	if err != nil {
		return nil, false, err
	}
	return rs[0].Customer, rs[0].Created, rs[0].Err
}

// GetCustomer reads one customer.
func (s *Service) GetCustomer(ctx context.Context, tenant, id string) (*Customer, error) {
	if !ValidID(id) {
		return nil, fault.InvalidField("customer_id", ident.Rule)
	}
	return s.repo.GetCustomer(ctx, tenant, id)
}

// UpdateCustomer applies change to the stored customer after checking etag;
// the result must still be valid and keep its kind.
func (s *Service) UpdateCustomer(ctx context.Context, tenant, id, etag string, change func(*Customer) error) (*Customer, error) {
	if !ValidID(id) {
		return nil, fault.InvalidField("customer.customer_id", ident.Rule)
	}
	now := s.clock.Now().UTC()
	return s.repo.UpdateCustomer(ctx, tenant, id, func(c *Customer) error {
		if err := c.CheckEtag(etag); err != nil {
			return err
		}
		if c.MergedInto != "" {
			return fmt.Errorf("customer %q was merged into %q: %w", id, c.MergedInto, fault.ErrFailedPrecondition)
		}
		kind := c.Kind
		if err := change(c); err != nil {
			return err
		}
		if c.Kind != kind {
			return fault.InvalidField("customer.kind", "cannot change once created")
		}
		c.ID = id
		c.UpdateTime = now
		var v fault.Violations
		v.Merge("customer", c.Validate())
		return v.Err()
	})
}

// UpsertContact adds or replaces a contact of an organization.
func (s *Service) UpsertContact(ctx context.Context, tenant, customerID string, ct Contact) (*Customer, error) {
	var v fault.Violations
	v.Merge("contact", ct.Validate())
	if err := v.Err(); err != nil {
		return nil, err
	}
	return s.UpdateCustomer(ctx, tenant, customerID, "", func(c *Customer) error {
		if c.Kind != KindOrganization {
			return fault.InvalidField("customer_id", "customer %q is not an organization", customerID)
		}
		if c.Organization == nil {
			c.Organization = &Organization{}
		}
		for i := range c.Organization.Contacts {
			if c.Organization.Contacts[i].ID == ct.ID {
				c.Organization.Contacts[i] = ct
				return nil
			}
		}
		c.Organization.Contacts = append(c.Organization.Contacts, ct)
		return nil
	})
}

// DeleteContact removes a contact of an organization.
func (s *Service) DeleteContact(ctx context.Context, tenant, customerID, contactID string) (*Customer, error) {
	if !ValidID(contactID) {
		return nil, fault.InvalidField("contact_id", ident.Rule)
	}
	return s.UpdateCustomer(ctx, tenant, customerID, "", func(c *Customer) error {
		if c.Organization != nil {
			for i, ct := range c.Organization.Contacts {
				if ct.ID == contactID {
					c.Organization.Contacts = append(c.Organization.Contacts[:i:i], c.Organization.Contacts[i+1:]...)
					return nil
				}
			}
		}
		return fmt.Errorf("contact %q of customer %q: %w", contactID, customerID, fault.ErrNotFound)
	})
}

// ListCustomers lists customers matching f.
func (s *Service) ListCustomers(ctx context.Context, tenant string, f Filter, p Page) ([]*Customer, string, error) {
	p, err := checkPage(p)
	if err != nil {
		return nil, "", err
	}
	return s.repo.ListCustomers(ctx, tenant, f, p)
}

// EraseCustomer erases a customer's personal data.
func (s *Service) EraseCustomer(ctx context.Context, tenant, id string) (*Customer, error) {
	if !ValidID(id) {
		return nil, fault.InvalidField("customer_id", ident.Rule)
	}
	return s.repo.Erase(ctx, tenant, id, s.clock.Now().UTC())
}

// MergeCustomers merges src into target.
func (s *Service) MergeCustomers(ctx context.Context, tenant, targetID, srcID string) (*Customer, int64, error) {
	var v fault.Violations
	checkID(&v, "target_customer_id", targetID, true)
	checkID(&v, "source_customer_id", srcID, true)
	if err := v.Err(); err != nil {
		return nil, 0, err
	}
	if targetID == srcID {
		return nil, 0, fault.InvalidField("source_customer_id", "must differ from target_customer_id")
	}
	return s.repo.Merge(ctx, tenant, targetID, srcID, s.clock.Now().UTC())
}

// ListDuplicates lists duplicate groups, of one customer when customerID is set.
func (s *Service) ListDuplicates(ctx context.Context, tenant, customerID string, p Page) ([]DuplicateGroup, string, error) {
	var v fault.Violations
	checkID(&v, "customer_id", customerID, false)
	if err := v.Err(); err != nil {
		return nil, "", err
	}
	p, err := checkPage(p)
	if err != nil {
		return nil, "", err
	}
	return s.repo.Duplicates(ctx, tenant, customerID, p)
}

// RecordEvents validates and records events; invalid items fail alone.
func (s *Service) RecordEvents(ctx context.Context, tenant string, evs []*Event) ([]RecordResult, error) {
	if len(evs) > MaxBatch {
		return nil, fault.InvalidField("events", "at most %d per batch", MaxBatch)
	}
	now := s.clock.Now().UTC()
	results := make([]RecordResult, len(evs))
	var valid []*Event
	var at []int
	for i, e := range evs {
		if err := e.Validate(now); err != nil {
			results[i].Err = err
			continue
		}
		e.OccurTime = e.OccurTime.UTC()
		e.RecordTime = now
		valid = append(valid, e)
		at = append(at, i)
	}
	if len(valid) == 0 {
		return results, nil
	}
	stored, err := s.repo.RecordEvents(ctx, tenant, valid)
	if err != nil {
		return nil, err
	}
	for j, r := range stored {
		results[at[j]] = r
	}
	return results, nil
}

// RecordEvent records one event.
func (s *Service) RecordEvent(ctx context.Context, tenant string, e *Event) (*Event, bool, error) {
	rs, err := s.RecordEvents(ctx, tenant, []*Event{e})
	if err != nil {
		return nil, false, err
	}
	return rs[0].Event, rs[0].Created, rs[0].Err
}

// GetEvent reads one event.
func (s *Service) GetEvent(ctx context.Context, tenant, id string) (*Event, error) {
	if !ValidID(id) {
		return nil, fault.InvalidField("event_id", ident.Rule)
	}
	return s.repo.GetEvent(ctx, tenant, id)
}

// ListEvents lists a customer's timeline.
func (s *Service) ListEvents(ctx context.Context, tenant, customerID string, kind EventKind, p Page) ([]*Event, string, error) {
	var v fault.Violations
	checkID(&v, "customer_id", customerID, true)
	checkEnum(&v, "kind", kind, EventReferral, false)
	if err := v.Err(); err != nil {
		return nil, "", err
	}
	p, err := checkPage(p)
	if err != nil {
		return nil, "", err
	}
	return s.repo.ListEvents(ctx, tenant, customerID, kind, p)
}

// CustomerIndicators returns one customer's indicators.
func (s *Service) CustomerIndicators(ctx context.Context, tenant, id string) (CustomerIndicators, error) {
	if !ValidID(id) {
		return CustomerIndicators{}, fault.InvalidField("customer_id", ident.Rule)
	}
	st, err := s.repo.Stats(ctx, tenant, id)
	if err != nil {
		return CustomerIndicators{}, err
	}
	return st.Indicators(id), nil
}

// TenantIndicators returns the indicators over all customers.
func (s *Service) TenantIndicators(ctx context.Context, tenant string) (TenantIndicators, error) {
	st, err := s.repo.TenantStats(ctx, tenant)
	if err != nil {
		return TenantIndicators{}, err
	}
	return st.Indicators(), nil
}

// DefaultPageSize and MaxPageSize bound listings.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

func checkPage(p Page) (Page, error) {
	switch {
	case p.Size < 0 || p.Size > MaxPageSize:
		return p, fault.InvalidField("page_size", "must be 0 to %d", MaxPageSize)
	case p.Size == 0:
		p.Size = DefaultPageSize
	}
	return p, nil
}

// SameCustomer reports whether a create retry carries the content stored:
// the client-supplied fields are compared, not the server-set ones.
func SameCustomer(stored, incoming *Customer) bool {
	a, b := *stored, *incoming
	for _, c := range []*Customer{&a, &b} {
		c.CreateTime, c.UpdateTime, c.Revision, c.Erased, c.MergedInto = zeroTime, zeroTime, 0, false, ""
	}
	return sameJSON(&a, &b)
}

// SameEvent reports whether a record retry carries the content stored.
func SameEvent(stored, incoming *Event) bool {
	a, b := *stored, *incoming
	a.RecordTime, b.RecordTime = zeroTime, zeroTime
	a.OccurTime, b.OccurTime = a.OccurTime.UTC(), b.OccurTime.UTC()
	return sameJSON(&a, &b)
}

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

var zeroTime time.Time
