package valuemodel

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// BenchmarkFitBGNBD1M fits 1,000,000 customers simulated from the CDNOW
// parameters (see syntheticBG) and reports the fit time, the likelihood
// evaluations and the distinct rows the likelihood is summed over.
func BenchmarkFitBGNBD1M(b *testing.B) {
	data := syntheticBG(rand.New(rand.NewPCG(2005, 24)), cdnowParams, 1_000_000)
	b.ResetTimer()
	var fit BGNBDFit
	for b.Loop() {
		var err error
		fit, err = FitBGNBD(context.Background(), data, FitOptions{})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(fit.Evaluations), "evals/op")
	b.ReportMetric(float64(fit.Rows), "rows")
	b.Logf("1,000,000 customers (%d repeat buyers, %d distinct rows, GOMAXPROCS %d): fit in %v with %d likelihood evaluations",
		fit.RepeatBuyers, fit.Rows, runtime.GOMAXPROCS(0), fit.Duration, fit.Evaluations)
	b.Logf("fitted r=%.4f±%.4f α=%.4f±%.4f a=%.4f±%.4f b=%.4f±%.4f, true %+v",
		fit.Params.R, fit.StdErr.R, fit.Params.Alpha, fit.StdErr.Alpha, fit.Params.A, fit.StdErr.A, fit.Params.B, fit.StdErr.B, cdnowParams)
	for _, c := range []struct{ got, se, want float64 }{
		{fit.Params.R, fit.StdErr.R, cdnowParams.R}, {fit.Params.Alpha, fit.StdErr.Alpha, cdnowParams.Alpha},
		{fit.Params.A, fit.StdErr.A, cdnowParams.A}, {fit.Params.B, fit.StdErr.B, cdnowParams.B},
	} {
		if math.Abs(c.got-c.want) > 4*c.se+0.02*c.want {
			b.Errorf("fit %+v far from the true %+v", fit.Params, cdnowParams)
			break
		}
	}
}
