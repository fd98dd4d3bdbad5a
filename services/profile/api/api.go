package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"

	"google.golang.org/grpc/status"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/fieldmask"
	"rapport.dev/platform/grpcserver"
	"rapport.dev/platform/tenancy"
	"rapport.dev/services/profile/convert"
	"rapport.dev/services/profile/domain"
)

// CrossTenantMethods may be called with the tenancy.All wildcard: only
// following the whole feed, which other services do.
var CrossTenantMethods = []string{profilev1.ProfileService_FollowChanges_FullMethodName}

// Server implements profilev1.ProfileServiceServer.
type Server struct {
	profilev1.UnimplementedProfileServiceServer
	svc  *domain.Service
	feed *feed.Log
	log  *slog.Logger
}

// New returns the gRPC API over the domain service and the feed.
func New(svc *domain.Service, log *feed.Log, logger *slog.Logger) *Server {
	return &Server{svc: svc, feed: log, log: logger}
}

func (s *Server) fail(ctx context.Context, err error) error {
	return grpcserver.Status(ctx, err, s.log)
}

// itemStatus is the google.rpc.Status of an item-level error in a batch.
func (s *Server) itemStatus(ctx context.Context, err error) *status.Status {
	return status.Convert(s.fail(ctx, err))
}

func tenantOf(ctx context.Context) (string, error) { return tenancy.Single(ctx) }

func missing(field string) error { return fault.InvalidField(field, "is required") }

// CreateCustomer implements profilev1.ProfileServiceServer.
func (s *Server) CreateCustomer(ctx context.Context, req *profilev1.CreateCustomerRequest) (*profilev1.CreateCustomerResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if req.GetCustomer() == nil {
		return nil, s.fail(ctx, missing("customer"))
	}
	c, created, err := s.svc.CreateCustomer(ctx, tenant, convert.CustomerFromProto(req.Customer))
	if err != nil {
		return nil, s.fail(ctx, fault.Prefix("customer", err))
	}
	return &profilev1.CreateCustomerResponse{Customer: convert.CustomerToProto(c), Created: created}, nil
}

// BatchCreateCustomers implements profilev1.ProfileServiceServer.
func (s *Server) BatchCreateCustomers(ctx context.Context, req *profilev1.BatchCreateCustomersRequest) (*profilev1.BatchCreateCustomersResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	cs := make([]*domain.Customer, len(req.GetCustomers()))
	for i, c := range req.GetCustomers() {
		cs[i] = convert.CustomerFromProto(c)
	}
	rs, err := s.svc.CreateCustomers(ctx, tenant, cs)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &profilev1.BatchCreateCustomersResponse{Results: make([]*profilev1.CreateCustomerResult, len(rs))}
	for i, r := range rs {
		res := &profilev1.CreateCustomerResult{Created: r.Created}
		if r.Err != nil {
			res.Status = s.itemStatus(ctx, fault.Prefix("customers["+strconv.Itoa(i)+"]", r.Err)).Proto()
		} else {
			res.Customer = convert.CustomerToProto(r.Customer)
			res.Status = status.New(0, "").Proto()
		}
		out.Results[i] = res
	}
	return out, nil
}

// GetCustomer implements profilev1.ProfileServiceServer.
func (s *Server) GetCustomer(ctx context.Context, req *profilev1.GetCustomerRequest) (*profilev1.GetCustomerResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	c, err := s.svc.GetCustomer(ctx, tenant, req.GetCustomerId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	// c was read for this call alone: the message may share its lists.
	return &profilev1.GetCustomerResponse{Customer: convert.CustomerToProtoShared(c)}, nil
}

// UpdateCustomer implements profilev1.ProfileServiceServer.
func (s *Server) UpdateCustomer(ctx context.Context, req *profilev1.UpdateCustomerRequest) (*profilev1.UpdateCustomerResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if req.GetCustomer() == nil {
		return nil, s.fail(ctx, missing("customer"))
	}
	paths, err := updatePaths(req.Customer, req.GetUpdateMask().GetPaths())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	c, err := s.svc.UpdateCustomer(ctx, tenant, req.Customer.GetCustomerId(), req.Customer.GetEtag(), func(c *domain.Customer) error {
		cur := convert.CustomerToProto(c)
		fieldmask.Apply(cur, req.Customer, paths)
		next := convert.CustomerFromProto(cur)
		next.CreateTime, next.Revision, next.Erased, next.MergedInto = c.CreateTime, c.Revision, c.Erased, c.MergedInto
		*c = *next
		return nil
	})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &profilev1.UpdateCustomerResponse{Customer: convert.CustomerToProto(c)}, nil
}

// ListCustomers implements profilev1.ProfileServiceServer.
func (s *Server) ListCustomers(ctx context.Context, req *profilev1.ListCustomersRequest) (*profilev1.ListCustomersResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	cs, next, err := s.svc.ListCustomers(ctx, tenant, convert.FilterFromProto(req), domain.Page{Token: req.GetPageToken(), Size: int(req.GetPageSize())})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &profilev1.ListCustomersResponse{NextPageToken: next}
	for _, c := range cs { // read for this call alone, like GetCustomer's
		out.Customers = append(out.Customers, convert.CustomerToProtoShared(c))
	}
	return out, nil
}

// EraseCustomer implements profilev1.ProfileServiceServer.
func (s *Server) EraseCustomer(ctx context.Context, req *profilev1.EraseCustomerRequest) (*profilev1.EraseCustomerResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	c, err := s.svc.EraseCustomer(ctx, tenant, req.GetCustomerId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &profilev1.EraseCustomerResponse{Customer: convert.CustomerToProto(c)}, nil
}

// ListDuplicates implements profilev1.ProfileServiceServer.
func (s *Server) ListDuplicates(ctx context.Context, req *profilev1.ListDuplicatesRequest) (*profilev1.ListDuplicatesResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	gs, next, err := s.svc.ListDuplicates(ctx, tenant, req.GetCustomerId(), domain.Page{Token: req.GetPageToken(), Size: int(req.GetPageSize())})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &profilev1.ListDuplicatesResponse{NextPageToken: next}
	for _, g := range gs {
		out.Groups = append(out.Groups, convert.DuplicateGroupToProto(g))
	}
	return out, nil
}

// MergeCustomers implements profilev1.ProfileServiceServer.
func (s *Server) MergeCustomers(ctx context.Context, req *profilev1.MergeCustomersRequest) (*profilev1.MergeCustomersResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	c, moved, err := s.svc.MergeCustomers(ctx, tenant, req.GetTargetCustomerId(), req.GetSourceCustomerId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &profilev1.MergeCustomersResponse{Customer: convert.CustomerToProto(c), MovedEvents: moved}, nil
}

// UpsertContact implements profilev1.ProfileServiceServer.
func (s *Server) UpsertContact(ctx context.Context, req *profilev1.UpsertContactRequest) (*profilev1.UpsertContactResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if req.GetContact() == nil {
		return nil, s.fail(ctx, missing("contact"))
	}
	c, err := s.svc.UpsertContact(ctx, tenant, req.GetCustomerId(), convert.ContactFromProto(req.Contact))
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &profilev1.UpsertContactResponse{Customer: convert.CustomerToProto(c)}, nil
}

// DeleteContact implements profilev1.ProfileServiceServer.
func (s *Server) DeleteContact(ctx context.Context, req *profilev1.DeleteContactRequest) (*profilev1.DeleteContactResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	c, err := s.svc.DeleteContact(ctx, tenant, req.GetCustomerId(), req.GetContactId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &profilev1.DeleteContactResponse{Customer: convert.CustomerToProto(c)}, nil
}

// RecordEvent implements profilev1.ProfileServiceServer.
func (s *Server) RecordEvent(ctx context.Context, req *profilev1.RecordEventRequest) (*profilev1.RecordEventResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if req.GetEvent() == nil {
		return nil, s.fail(ctx, missing("event"))
	}
	e, created, err := s.svc.RecordEvent(ctx, tenant, convert.EventFromProto(req.Event))
	if err != nil {
		return nil, s.fail(ctx, fault.Prefix("event", err))
	}
	return &profilev1.RecordEventResponse{Event: convert.EventToProto(e), Created: created}, nil
}

// recordBatch records events and converts the per-item outcomes.
func (s *Server) recordBatch(ctx context.Context, tenant string, in []*profilev1.Event, field string) ([]*profilev1.RecordEventResult, error) {
	evs := make([]*domain.Event, len(in))
	for i, e := range in {
		evs[i] = convert.EventFromProto(e)
	}
	rs, err := s.svc.RecordEvents(ctx, tenant, evs)
	if err != nil {
		return nil, err
	}
	out := make([]*profilev1.RecordEventResult, len(rs))
	for i, r := range rs {
		res := &profilev1.RecordEventResult{Created: r.Created}
		if r.Err != nil {
			res.Status = s.itemStatus(ctx, fault.Prefix(field+"["+strconv.Itoa(i)+"]", r.Err)).Proto()
		} else {
			res.Event = convert.EventToProto(r.Event)
			res.Status = status.New(0, "").Proto()
		}
		out[i] = res
	}
	return out, nil
}

// BatchRecordEvents implements profilev1.ProfileServiceServer.
func (s *Server) BatchRecordEvents(ctx context.Context, req *profilev1.BatchRecordEventsRequest) (*profilev1.BatchRecordEventsResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	rs, err := s.recordBatch(ctx, tenant, req.GetEvents(), "events")
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &profilev1.BatchRecordEventsResponse{Results: rs}, nil
}

// maxReported bounds the rejections a stream summary lists.
const maxReported = 100

// StreamRecordEvents implements profilev1.ProfileServiceServer.
func (s *Server) StreamRecordEvents(stream profilev1.ProfileService_StreamRecordEventsServer) error {
	ctx := stream.Context()
	tenant, err := tenantOf(ctx)
	if err != nil {
		return s.fail(ctx, err)
	}
	sum := &profilev1.StreamRecordEventsResponse{}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(sum)
		}
		if err != nil {
			return err
		}
		rs, err := s.recordBatch(ctx, tenant, msg.GetEvents(), "events")
		if err != nil {
			return s.fail(ctx, err)
		}
		for i, r := range rs {
			switch {
			case r.Status.GetCode() != 0:
				sum.Rejected++
				if len(sum.Errors) < maxReported {
					sum.Errors = append(sum.Errors, &profilev1.RejectedEvent{EventId: msg.Events[i].GetEventId(), Status: r.Status})
				}
			case r.Created:
				sum.Created++
			default:
				sum.Duplicates++
			}
		}
	}
}

// GetEvent implements profilev1.ProfileServiceServer.
func (s *Server) GetEvent(ctx context.Context, req *profilev1.GetEventRequest) (*profilev1.GetEventResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	e, err := s.svc.GetEvent(ctx, tenant, req.GetEventId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &profilev1.GetEventResponse{Event: convert.EventToProto(e)}, nil
}

// ListEvents implements profilev1.ProfileServiceServer.
func (s *Server) ListEvents(ctx context.Context, req *profilev1.ListEventsRequest) (*profilev1.ListEventsResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	evs, next, err := s.svc.ListEvents(ctx, tenant, req.GetCustomerId(), domain.EventKind(req.GetKind()), domain.Page{Token: req.GetPageToken(), Size: int(req.GetPageSize())})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &profilev1.ListEventsResponse{NextPageToken: next}
	for _, e := range evs {
		out.Events = append(out.Events, convert.EventToProto(e))
	}
	return out, nil
}

// GetCustomerIndicators implements profilev1.ProfileServiceServer.
func (s *Server) GetCustomerIndicators(ctx context.Context, req *profilev1.GetCustomerIndicatorsRequest) (*profilev1.GetCustomerIndicatorsResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	ind, err := s.svc.CustomerIndicators(ctx, tenant, req.GetCustomerId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &profilev1.GetCustomerIndicatorsResponse{Indicators: convert.CustomerIndicatorsToProto(ind)}, nil
}

// GetTenantIndicators implements profilev1.ProfileServiceServer.
func (s *Server) GetTenantIndicators(ctx context.Context, _ *profilev1.GetTenantIndicatorsRequest) (*profilev1.GetTenantIndicatorsResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	ind, err := s.svc.TenantIndicators(ctx, tenant)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &profilev1.GetTenantIndicatorsResponse{Indicators: convert.TenantIndicatorsToProto(ind)}, nil
}

// FollowChanges implements profilev1.ProfileServiceServer. A tenant's caller
// sees its own events; a service following with tenancy.All sees all.
func (s *Server) FollowChanges(req *profilev1.FollowChangesRequest, stream profilev1.ProfileService_FollowChangesServer) error {
	ctx := stream.Context()
	tenant, err := tenancy.FromContext(ctx)
	if err != nil {
		return s.fail(ctx, fault.InvalidField(tenancy.MetadataKey, "is required"))
	}
	err = s.feed.Serve(ctx, tenant, req.GetAfterSequence(), req.GetWait(), func(ev *feedv1.Event) error {
		return stream.Send(&profilev1.FollowChangesResponse{Event: ev})
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return s.fail(ctx, err)
}
