package api

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	segmentationv1 "rapport.dev/gen/go/rapport/segmentation/v1"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/ident"
	"rapport.dev/services/segmentation/convert"
	"rapport.dev/services/segmentation/domain"
	"rapport.dev/services/segmentation/store"
	"rapport.dev/services/segmentation/valuemodel"
)

// FitValueModel implements segmentationv1.SegmentationServiceServer.
func (s *Server) FitValueModel(ctx context.Context, req *segmentationv1.FitValueModelRequest) (*segmentationv1.FitValueModelResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	var v fault.Violations
	in := store.FitRequest{ID: req.GetFitId(), Unit: domain.TimeUnit(req.GetTimeUnit()), UseForScores: req.UseForScores}
	if req.AsOf != nil {
		if err := req.AsOf.CheckValid(); err != nil {
			v.Add("as_of", "is not a valid timestamp: %v", err)
		} else {
			in.AsOf = req.AsOf.AsTime()
		}
	}
	if req.HoldoutEnd != nil {
		if err := req.HoldoutEnd.CheckValid(); err != nil {
			v.Add("holdout_end", "is not a valid timestamp: %v", err)
		} else {
			in.HoldoutEnd = req.HoldoutEnd.AsTime()
		}
	}
	if err := v.Err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	if s.CaughtUp != nil {
		if err := s.CaughtUp(ctx); err != nil {
			return nil, s.fail(ctx, err)
		}
	}
	fit, err := s.store.RequestFit(ctx, tenant, in)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if req.GetWait() && fit.State == store.FitRunning {
		if fit, err = s.store.RunFit(ctx, tenant, fit.ID); err != nil {
			return nil, s.fail(ctx, err)
		}
	}
	return &segmentationv1.FitValueModelResponse{Fit: fitToProto(fit)}, nil
}

// GetValueModelFit implements segmentationv1.SegmentationServiceServer.
func (s *Server) GetValueModelFit(ctx context.Context, req *segmentationv1.GetValueModelFitRequest) (*segmentationv1.GetValueModelFitResponse, error) {
	id := req.GetFitId()
	ids := []ident.Field{}
	if id != store.CurrentFitID {
		ids = append(ids, ident.Field{Name: "fit_id", ID: id})
	}
	tenant, err := scope(ctx, ids...)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	fit, err := s.store.GetFit(ctx, tenant, id)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &segmentationv1.GetValueModelFitResponse{Fit: fitToProto(fit)}, nil
}

// ListValueModelFits implements segmentationv1.SegmentationServiceServer.
func (s *Server) ListValueModelFits(ctx context.Context, req *segmentationv1.ListValueModelFitsRequest) (*segmentationv1.ListValueModelFitsResponse, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	var v fault.Violations
	size := page(&v, req.GetPageSize(), 20, 100)
	if err := v.Err(); err != nil {
		return nil, s.fail(ctx, err)
	}
	fits, next, err := s.store.ListFits(ctx, tenant, req.GetPageToken(), size)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &segmentationv1.ListValueModelFitsResponse{NextPageToken: next}
	for _, f := range fits {
		out.Fits = append(out.Fits, fitToProto(f))
	}
	return out, nil
}

func duration(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

func bgToProto(p valuemodel.BGNBDParams) *segmentationv1.BgNbdParams {
	return &segmentationv1.BgNbdParams{R: p.R, Alpha: p.Alpha, A: p.A, B: p.B}
}

func ggToProto(p valuemodel.GammaGammaParams) *segmentationv1.GammaGammaParams {
	return &segmentationv1.GammaGammaParams{P: p.P, Q: p.Q, Gamma: p.Gamma}
}

func fitToProto(f *store.Fit) *segmentationv1.ValueModelFit {
	out := &segmentationv1.ValueModelFit{
		FitId:        f.ID,
		State:        segmentationv1.FitState(f.State),
		Trigger:      segmentationv1.FitTrigger(f.Trigger),
		AsOf:         convert.Timestamp(f.AsOf),
		TimeUnit:     segmentationv1.TimeUnit(f.Unit),
		CreateTime:   convert.Timestamp(f.Created),
		FinishTime:   convert.Timestamp(f.Finished),
		Error:        f.Error,
		UseForScores: f.UseForScores,
		Current:      f.Current,
		FitTime:      duration(f.FitTime),
	}
	if bg := f.BG; bg != nil {
		out.BgNbd = &segmentationv1.BgNbdFit{Params: bgToProto(bg.Params), StdErr: bgToProto(bg.StdErr),
			LogLikelihood: bg.LogLikelihood, Evaluations: int64(bg.Evaluations), Customers: int64(bg.Customers),
			RepeatBuyers: int64(bg.RepeatBuyers), Duration: duration(bg.Duration),
			WarmStartRows: int64(bg.WarmRows), WarmStartEvaluations: int64(bg.WarmEvals)}
	}
	if gg := f.GG; gg != nil {
		out.GammaGamma = &segmentationv1.GammaGammaFit{Params: ggToProto(gg.Params), StdErr: ggToProto(gg.StdErr),
			LogLikelihood: gg.LogLikelihood, Evaluations: int64(gg.Evaluations), Customers: int64(gg.Customers),
			Duration: duration(gg.Duration), WarmStartRows: int64(gg.WarmRows), WarmStartEvaluations: int64(gg.WarmEvals)}
	}
	if b := f.Backtest; b != nil {
		out.Backtest = &segmentationv1.Backtest{End: convert.Timestamp(b.End), Length: b.Length,
			PredictedRepeatPurchases: b.Predicted, ActualRepeatPurchases: b.Actual}
	}
	return out
}
