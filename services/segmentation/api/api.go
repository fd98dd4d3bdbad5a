package api

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/feed"
	"rapport.dev/platform/fieldmask"
	"rapport.dev/platform/grpcserver"
	"rapport.dev/platform/ident"
	"rapport.dev/platform/tenancy"
	"rapport.dev/services/segmentation/convert"
	"rapport.dev/services/segmentation/store"
)

// CrossTenantMethods may be called with the tenancy.All wildcard.
var CrossTenantMethods = []string{segmentationv1.SegmentationService_FollowChanges_FullMethodName}

// Server implements segmentationv1.SegmentationServiceServer.
type Server struct {
	segmentationv1.UnimplementedSegmentationServiceServer
	store *store.Store
	feed  *feed.Log
	log   *slog.Logger
	// CaughtUp, when set, returns once every profile event recorded before
	// the call has been applied; FitValueModel calls it so that a fit sees
	// what was recorded before it was asked for.
	CaughtUp func(ctx context.Context) error
}

// New returns the gRPC API over the store.
func New(st *store.Store, log *feed.Log, logger *slog.Logger) *Server {
	return &Server{store: st, feed: log, log: logger}
}

func (s *Server) fail(ctx context.Context, err error) error {
	return grpcserver.Status(ctx, err, s.log)
}

func checkID(v *fault.Violations, field, id string) { ident.Check(v, field, id, true) }

// scope is ident.Scope for a handler with no other violations to report.
func scope(ctx context.Context, ids ...ident.Field) (string, error) {
	var v fault.Violations
	return ident.Scope(ctx, &v, ids...)
}

func tenantOf(ctx context.Context) (string, error) { return tenancy.Single(ctx) }

// page checks a page size against its bounds.
func page(v *fault.Violations, size int32, def, max int) int {
	switch {
	case size < 0 || int(size) > max:
		v.Add("page_size", "must be 0 to %d", max)
	case size == 0:
		return def
	}
	return int(size)
}

// GetCustomerScores implements segmentationv1.SegmentationServiceServer.
func (s *Server) GetCustomerScores(ctx context.Context, req *segmentationv1.GetCustomerScoresRequest) (*segmentationv1.GetCustomerScoresResponse, error) {
	tenant, err := scope(ctx, ident.Field{Name: "customer_id", ID: req.GetCustomerId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	cs, err := s.store.CustomerScores(ctx, tenant, req.GetCustomerId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &segmentationv1.GetCustomerScoresResponse{
		CustomerId: req.GetCustomerId(),
		Features:   convert.FeaturesToProto(cs.Features),
		Scores:     convert.ScoreToProto(cs.Score),
	}
	if !cs.ScoreTime.IsZero() {
		out.Scores.ScoreTime = timestamppb.New(cs.ScoreTime)
	}
	for _, m := range cs.Segments {
		out.Segments = append(out.Segments, &segmentationv1.SegmentMembership{SegmentId: m.SegmentID, EnterTime: timestamppb.New(m.Since)})
	}
	out.Value = convert.CustomerValueToProto(cs.Value)
	return out, nil
}

// checkSegment validates a segment as it would be stored.
func (s *Server) checkSegment(in store.SegmentInput) error {
	var v fault.Violations
	checkID(&v, "segment_id", in.ID)
	if strings.TrimSpace(in.Name) == "" {
		v.Add("display_name", "is required")
	} else if utf8.RuneCountInString(in.Name) > 256 {
		v.Add("display_name", "must be at most 256 characters")
	}
	if utf8.RuneCountInString(in.Description) > 4096 {
		v.Add("description", "must be at most 4096 characters")
	}
	switch in.Kind {
	case int32(segmentationv1.SegmentKind_SEGMENT_KIND_STATIC):
		if in.Rule != "" {
			v.Add("rule", "must be empty for a static segment")
		}
	case int32(segmentationv1.SegmentKind_SEGMENT_KIND_DYNAMIC):
		if _, err := s.store.CompileRule(in.Rule); err != nil {
			v.Merge("", err)
		}
	case 0:
		v.Add("kind", "is required")
	default:
		v.Add("kind", "unknown value %d", in.Kind)
	}
	return v.Err()
}

func segmentInput(p *segmentationv1.Segment) store.SegmentInput {
	return store.SegmentInput{ID: p.GetSegmentId(), Name: p.GetDisplayName(), Description: p.GetDescription(),
		Kind: int32(p.GetKind()), Rule: p.GetRule()}
}

func segmentProto(r *store.Segment) *segmentationv1.Segment {
	return &segmentationv1.Segment{
		SegmentId: r.ID, DisplayName: r.Name, Description: r.Description,
		Kind: segmentationv1.SegmentKind(r.Kind), Rule: r.Rule, Size: r.Size,
		CreateTime: timestamppb.New(r.Created), UpdateTime: timestamppb.New(r.Updated), Etag: store.Etag(r.Revision),
	}
}

// segmentFixed are the Segment fields an update may not name: identity,
// kind (static and dynamic segments are different things) and server-set ones.
var segmentFixed = []string{"segment_id", "kind", "size", "create_time", "update_time", "etag"}

// CreateSegment implements segmentationv1.SegmentationServiceServer.
func (s *Server) CreateSegment(ctx context.Context, req *segmentationv1.CreateSegmentRequest) (*segmentationv1.CreateSegmentResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if req.GetSegment() == nil {
		return nil, s.fail(ctx, fault.InvalidField("segment", "is required"))
	}
	in := segmentInput(req.Segment)
	if err := s.checkSegment(in); err != nil {
		return nil, s.fail(ctx, fault.Prefix("segment", err))
	}
	seg, created, err := s.store.CreateSegment(ctx, tenant, in)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &segmentationv1.CreateSegmentResponse{Segment: segmentProto(seg), Created: created}, nil
}

// GetSegment implements segmentationv1.SegmentationServiceServer.
func (s *Server) GetSegment(ctx context.Context, req *segmentationv1.GetSegmentRequest) (*segmentationv1.GetSegmentResponse, error) {
	tenant, err := scope(ctx, ident.Field{Name: "segment_id", ID: req.GetSegmentId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	seg, err := s.store.GetSegment(ctx, tenant, req.GetSegmentId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &segmentationv1.GetSegmentResponse{Segment: segmentProto(seg)}, nil
}

// ListSegments implements segmentationv1.SegmentationServiceServer.
func (s *Server) ListSegments(ctx context.Context, req *segmentationv1.ListSegmentsRequest) (*segmentationv1.ListSegmentsResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	var v fault.Violations
	size := page(&v, req.GetPageSize(), 100, 1000)
	if err := v.Err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	segs, next, err := s.store.ListSegments(ctx, tenant, req.GetPageToken(), size)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &segmentationv1.ListSegmentsResponse{NextPageToken: next}
	for i := range segs {
		out.Segments = append(out.Segments, segmentProto(&segs[i]))
	}
	return out, nil
}

// UpdateSegment implements segmentationv1.SegmentationServiceServer.
func (s *Server) UpdateSegment(ctx context.Context, req *segmentationv1.UpdateSegmentRequest) (*segmentationv1.UpdateSegmentResponse, error) {
	if req.GetSegment() == nil {
		return nil, s.fail(ctx, fault.InvalidField("segment", "is required"))
	}
	tenant, err := scope(ctx, ident.Field{Name: "segment.segment_id", ID: req.Segment.GetSegmentId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	paths, err := fieldmask.Paths(req.Segment, req.GetUpdateMask().GetPaths(), segmentFixed)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	seg, err := s.store.UpdateSegment(ctx, tenant, req.Segment.GetSegmentId(), req.Segment.GetEtag(), func(in *store.SegmentInput) error {
		cur := &segmentationv1.Segment{SegmentId: in.ID, DisplayName: in.Name, Description: in.Description,
			Kind: segmentationv1.SegmentKind(in.Kind), Rule: in.Rule}
		fieldmask.Apply(cur, req.Segment, paths)
		*in = segmentInput(cur)
		return fault.Prefix("segment", s.checkSegment(*in))
	})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &segmentationv1.UpdateSegmentResponse{Segment: segmentProto(seg)}, nil
}

// DeleteSegment implements segmentationv1.SegmentationServiceServer.
func (s *Server) DeleteSegment(ctx context.Context, req *segmentationv1.DeleteSegmentRequest) (*segmentationv1.DeleteSegmentResponse, error) {
	tenant, err := scope(ctx, ident.Field{Name: "segment_id", ID: req.GetSegmentId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if err := s.store.DeleteSegment(ctx, tenant, req.GetSegmentId()); err != nil {
		return nil, s.fail(ctx, err)
	}
	return &segmentationv1.DeleteSegmentResponse{}, nil
}

// PreviewSegment implements segmentationv1.SegmentationServiceServer.
func (s *Server) PreviewSegment(ctx context.Context, req *segmentationv1.PreviewSegmentRequest) (*segmentationv1.PreviewSegmentResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	var v fault.Violations
	sample := int(req.GetSampleSize())
	switch {
	case sample < 0 || sample > 100:
		v.Add("sample_size", "must be 0 to 100")
	case sample == 0:
		sample = 10
	}
	rule, err := s.store.CompileRule(req.GetRule())
	if err != nil {
		v.Merge("", err)
	}
	if err := v.Err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	count, evaluated, ids, err := s.store.Preview(ctx, tenant, rule, sample)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &segmentationv1.PreviewSegmentResponse{Count: count, Sample: ids, Evaluated: evaluated}, nil
}

func (s *Server) editMembers(ctx context.Context, id string, customers []string, add bool) (int64, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return 0, err
	}
	var v fault.Violations
	checkID(&v, "segment_id", id)
	if len(customers) == 0 || len(customers) > 1000 {
		v.Add("customer_ids", "must list 1 to 1000 customers")
	}
	for i, c := range customers {
		ident.Check(&v, "customer_ids["+strconv.Itoa(i)+"]", c, true)
	}
	if err := v.Err(); err != nil {
		return 0, err
	}
	return s.store.EditMembers(ctx, tenant, id, customers, add)
}

// AddSegmentMembers implements segmentationv1.SegmentationServiceServer.
func (s *Server) AddSegmentMembers(ctx context.Context, req *segmentationv1.AddSegmentMembersRequest) (*segmentationv1.AddSegmentMembersResponse, error) {
	n, err := s.editMembers(ctx, req.GetSegmentId(), req.GetCustomerIds(), true)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &segmentationv1.AddSegmentMembersResponse{Added: n}, nil
}

// RemoveSegmentMembers implements segmentationv1.SegmentationServiceServer.
func (s *Server) RemoveSegmentMembers(ctx context.Context, req *segmentationv1.RemoveSegmentMembersRequest) (*segmentationv1.RemoveSegmentMembersResponse, error) {
	n, err := s.editMembers(ctx, req.GetSegmentId(), req.GetCustomerIds(), false)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &segmentationv1.RemoveSegmentMembersResponse{Removed: n}, nil
}

func membersProto(ms []store.Member) []*segmentationv1.Member {
	out := make([]*segmentationv1.Member, len(ms))
	for i, m := range ms {
		out[i] = &segmentationv1.Member{CustomerId: m.CustomerID, EnterTime: timestamppb.New(m.Since)}
	}
	return out
}

// ListSegmentMembers implements segmentationv1.SegmentationServiceServer.
func (s *Server) ListSegmentMembers(ctx context.Context, req *segmentationv1.ListSegmentMembersRequest) (*segmentationv1.ListSegmentMembersResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	var v fault.Violations
	checkID(&v, "segment_id", req.GetSegmentId())
	size := page(&v, req.GetPageSize(), 1000, 10000)
	if err := v.Err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	ms, next, err := s.store.Members(ctx, tenant, req.GetSegmentId(), req.GetPageToken(), size)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &segmentationv1.ListSegmentMembersResponse{Members: membersProto(ms), NextPageToken: next}, nil
}

// ExportSegmentMembers implements segmentationv1.SegmentationServiceServer.
func (s *Server) ExportSegmentMembers(req *segmentationv1.ExportSegmentMembersRequest, stream segmentationv1.SegmentationService_ExportSegmentMembersServer) error {
	ctx := stream.Context()
	tenant, err := scope(ctx, ident.Field{Name: "segment_id", ID: req.GetSegmentId()})
	if err != nil {
		return s.fail(ctx, err)
	}
	token := ""
	for {
		ms, next, err := s.store.Members(ctx, tenant, req.GetSegmentId(), token, 1000)
		if err != nil {
			return s.fail(ctx, err)
		}
		if len(ms) > 0 {
			if err := stream.Send(&segmentationv1.ExportSegmentMembersResponse{Members: membersProto(ms)}); err != nil {
				return err
			}
		}
		if token = next; token == "" {
			return nil
		}
	}
}

// ExplainMembership implements segmentationv1.SegmentationServiceServer.
func (s *Server) ExplainMembership(ctx context.Context, req *segmentationv1.ExplainMembershipRequest) (*segmentationv1.ExplainMembershipResponse, error) {
	tenant, err := scope(ctx, ident.Field{Name: "segment_id", ID: req.GetSegmentId()}, ident.Field{Name: "customer_id", ID: req.GetCustomerId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	ex, err := s.store.Explain(ctx, tenant, req.GetSegmentId(), req.GetCustomerId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &segmentationv1.ExplainMembershipResponse{Member: ex.Member, Rule: ex.Rule, EvaluateTime: timestamppb.New(ex.Time)}
	for _, c := range ex.Clauses {
		out.Clauses = append(out.Clauses, &segmentationv1.Clause{Expression: c.Expression, Value: c.Value, Held: c.Held})
	}
	for _, h := range ex.History {
		out.History = append(out.History, &segmentationv1.MembershipEvent{Entered: h.Entered, Time: timestamppb.New(h.Time), Reason: h.Reason})
	}
	if !ex.Next.IsZero() {
		out.NextEvaluateTime = timestamppb.New(ex.Next)
	}
	return out, nil
}

// ReevaluateSegment implements segmentationv1.SegmentationServiceServer.
func (s *Server) ReevaluateSegment(ctx context.Context, req *segmentationv1.ReevaluateSegmentRequest) (*segmentationv1.ReevaluateSegmentResponse, error) {
	tenant, err := scope(ctx, ident.Field{Name: "segment_id", ID: req.GetSegmentId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	size, entered, left, err := s.store.Reevaluate(ctx, tenant, req.GetSegmentId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &segmentationv1.ReevaluateSegmentResponse{Size: size, Entered: entered, Left: left}, nil
}

// GetSegmentSizes implements segmentationv1.SegmentationServiceServer.
func (s *Server) GetSegmentSizes(ctx context.Context, req *segmentationv1.GetSegmentSizesRequest) (*segmentationv1.GetSegmentSizesResponse, error) {
	tenant, err := scope(ctx, ident.Field{Name: "segment_id", ID: req.GetSegmentId()})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	sizes, err := s.store.Sizes(ctx, tenant, req.GetSegmentId())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &segmentationv1.GetSegmentSizesResponse{}
	for _, d := range sizes {
		out.Sizes = append(out.Sizes, &segmentationv1.SegmentSize{Day: timestamppb.New(d.Day), Size: d.Size})
	}
	return out, nil
}

// FollowChanges implements segmentationv1.SegmentationServiceServer.
func (s *Server) FollowChanges(req *segmentationv1.FollowChangesRequest, stream segmentationv1.SegmentationService_FollowChangesServer) error {
	ctx := stream.Context()
	tenant, err := tenancy.FromContext(ctx)
	if err != nil {
		return s.fail(ctx, fault.InvalidField(tenancy.MetadataKey, "is required"))
	}
	err = s.feed.Serve(ctx, tenant, req.GetAfterSequence(), req.GetWait(), func(ev *feedv1.Event) error {
		return stream.Send(&segmentationv1.FollowChangesResponse{Event: ev})
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return s.fail(ctx, err)
}
