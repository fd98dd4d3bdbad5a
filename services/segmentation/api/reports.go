package api

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/fieldmask"
	"rapport.dev/services/segmentation/convert"
	"rapport.dev/services/segmentation/domain"
	"rapport.dev/services/segmentation/store"
)

// reports scores the caller's tenant for one of the report RPCs.
func (s *Server) reports(ctx context.Context) (*store.Reports, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	r, err := s.store.Reports(ctx, tenant)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return r, nil
}

// GetPyramidReport implements segmentationv1.SegmentationServiceServer.
func (s *Server) GetPyramidReport(ctx context.Context, _ *segmentationv1.GetPyramidReportRequest) (*segmentationv1.GetPyramidReportResponse, error) {
	r, err := s.reports(ctx)
	if err != nil {
		return nil, err
	}
	p := domain.NewPyramidReport(r.Pop.Scores)
	out := &segmentationv1.GetPyramidReportResponse{Top20Share: p.Top20Share, Customers: int64(p.Customers),
		TotalContribution: p.TotalContribution, Currency: r.Settings.Currency, ScoreTime: timestamppb.New(r.Time)}
	for _, t := range p.Tiers {
		out.Tiers = append(out.Tiers, &segmentationv1.TierStat{Tier: segmentationv1.Tier(t.Tier), Customers: int64(t.Customers),
			Contribution: t.Contribution, Share: t.Share})
	}
	return out, nil
}

// GetQuadrantReport implements segmentationv1.SegmentationServiceServer.
func (s *Server) GetQuadrantReport(ctx context.Context, _ *segmentationv1.GetQuadrantReportRequest) (*segmentationv1.GetQuadrantReportResponse, error) {
	r, err := s.reports(ctx)
	if err != nil {
		return nil, err
	}
	q := domain.NewQuadrantReport(r.Pop.Scores, r.Pop.ValueThreshold, r.Pop.LoyaltyThreshold)
	out := &segmentationv1.GetQuadrantReportResponse{ValueThreshold: q.ValueThreshold, LoyaltyThreshold: q.LoyaltyThreshold,
		ScoreTime: timestamppb.New(r.Time)}
	for _, c := range q.Quadrants {
		out.Quadrants = append(out.Quadrants, &segmentationv1.QuadrantStat{Quadrant: segmentationv1.Quadrant(c.Quadrant),
			Customers: int64(c.Customers), Contribution: c.Contribution})
	}
	return out, nil
}

// GetRfmReport implements segmentationv1.SegmentationServiceServer.
func (s *Server) GetRfmReport(ctx context.Context, _ *segmentationv1.GetRfmReportRequest) (*segmentationv1.GetRfmReportResponse, error) {
	r, err := s.reports(ctx)
	if err != nil {
		return nil, err
	}
	g := domain.NewRfmGrid(r.Rows, r.Pop.Scores)
	out := &segmentationv1.GetRfmReportResponse{ScoreTime: timestamppb.New(r.Time)}
	for _, c := range g.Cells {
		out.Cells = append(out.Cells, &segmentationv1.RfmCell{Recency: c.Recency, Frequency: c.Frequency,
			Customers: int64(c.Customers), Monetary: c.Monetary})
	}
	for _, gs := range g.Groups {
		out.Groups = append(out.Groups, &segmentationv1.RfmGroupStat{Group: segmentationv1.RfmGroup(gs.Group), Customers: int64(gs.Customers)})
	}
	return out, nil
}

// GetSettings implements segmentationv1.SegmentationServiceServer.
func (s *Server) GetSettings(ctx context.Context, _ *segmentationv1.GetSettingsRequest) (*segmentationv1.GetSettingsResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	st, err := s.store.Settings(ctx, tenant)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &segmentationv1.GetSettingsResponse{Settings: convert.SettingsToProto(st)}, nil
}

// UpdateSettings implements segmentationv1.SegmentationServiceServer.
func (s *Server) UpdateSettings(ctx context.Context, req *segmentationv1.UpdateSettingsRequest) (*segmentationv1.UpdateSettingsResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if req.GetSettings() == nil {
		return nil, s.fail(ctx, fault.InvalidField("settings", "is required"))
	}
	paths, err := fieldmask.Paths(req.Settings, req.GetUpdateMask().GetPaths(), nil)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	st, err := s.store.UpdateSettings(ctx, tenant, func(st *domain.Settings) error {
		cur := convert.SettingsToProto(*st)
		fieldmask.Apply(cur, req.Settings, paths)
		*st = convert.SettingsFromProto(cur)
		return fault.Prefix("settings", st.Validate())
	})
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &segmentationv1.UpdateSettingsResponse{Settings: convert.SettingsToProto(st.WithDefaults())}, nil
}
