package valuemodel

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize"
)

// FitOptions tune the fits. The zero value is ready to use.
type FitOptions struct {
	// MinCustomers is the least number of customers a BG/NBD fit accepts
	// (default DefaultMinCustomers).
	MinCustomers int
	// MinRepeatBuyers is the least number of repeat buyers either fit
	// accepts (default DefaultMinRepeatBuyers).
	MinRepeatBuyers int
	// Workers is the number of goroutines summing the likelihood over
	// customers (default GOMAXPROCS). Small data sets use one.
	Workers int
}

// Defaults of FitOptions.
const (
	DefaultMinCustomers    = 20
	DefaultMinRepeatBuyers = 5
)

func (o FitOptions) withDefaults() FitOptions {
	if o.MinCustomers <= 0 {
		o.MinCustomers = DefaultMinCustomers
	}
	if o.MinRepeatBuyers <= 0 {
		o.MinRepeatBuyers = DefaultMinRepeatBuyers
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	return o
}

// objective is a negative log-likelihood over the logarithms u of the
// parameters, so that every u maps to positive parameters.
type objective struct {
	names []string
	// eval returns the total negative log-likelihood at exp(u) and, when
	// grad is not nil, stores its gradient with respect to u in grad.
	eval func(u, grad []float64) float64
	// n is the number of customers; the optimizer sees the mean so that its
	// tolerances do not depend on the size of the data.
	n      float64
	passes int // passes over the data (function, gradient or both)
}

func (o *objective) call(u, grad []float64) float64 {
	o.passes++
	return o.eval(u, grad)
}

// warmRowsMax is the most rows the first, derivative-free stage of a fit
// runs on; wider data is subsampled for it (every k-th row, rows being
// sorted by x, so every part of the data keeps its share).
// (A variable so that tests can compare with a fit without it.)
var warmRowsMax = 20_000

// warmStride returns k for a sample of n rows, 1 when no subsample is needed.
func warmStride(n int) int {
	if n <= 2*warmRowsMax {
		return 1
	}
	return (n + warmRowsMax - 1) / warmRowsMax
}

// subsample keeps every k-th of n rows: it calls keep(i) for each kept row
// and returns the factor that scales their weights back to the total.
func subsample(w []float64, k int, keep func(i int)) float64 {
	var total, kept float64
	for i, v := range w {
		total += v
		if i%k == 0 {
			kept += v
			keep(i)
		}
	}
	return total / kept
}

// Bounds on the log-parameters: beyond them a parameter has run off to 0 or
// ∞ and the model is not identified by the data.
const (
	maxLogParam = 25
	// gradTolerance is the largest acceptable |∂(mean NLL)/∂u| at the optimum.
	gradTolerance = 1e-5
)

// ctxRecorder aborts the optimization when the context ends.
type ctxRecorder struct{ ctx context.Context }

func (r ctxRecorder) Init() error { return nil }

func (r ctxRecorder) Record(*optimize.Location, optimize.Operation, *optimize.Stats) error {
	return r.ctx.Err()
}

// minimize finds the maximum-likelihood log-parameters: Nelder-Mead from u0
// to reach the basin robustly, then BFGS with the analytic gradient to
// converge tightly. It returns the optimum and the mean NLL there.
//
// When warm is not nil, stage 1 runs on it instead of o: the same
// likelihood over a subsample of the rows (see warmRows), whose optimum is
// close to the full data's. Nelder-Mead needs hundreds of evaluations and
// BFGS a few dozen, so on wide data this divides the fit's time several
// fold, and the answer is still the full data's maximum: stage 2 and the
// convergence check use o.
func minimize(ctx context.Context, o, warm *objective, u0 []float64) ([]float64, error) {
	if warm == nil {
		warm = o
	}
	dim := len(u0)
	outOfBounds := func(u []float64) bool {
		for _, v := range u {
			if math.Abs(v) > 2*maxLogParam || math.IsNaN(v) {
				return true
			}
		}
		return false
	}
	value := func(u []float64) float64 {
		if outOfBounds(u) {
			return math.Inf(1)
		}
		f := warm.call(u, nil) / warm.n
		if math.IsNaN(f) {
			return math.Inf(1)
		}
		return f
	}

	// Stage 1: Nelder-Mead, loosely converged.
	nm, err := optimize.Minimize(optimize.Problem{Func: value}, u0, &optimize.Settings{
		FuncEvaluations: 600,
		Converger:       &optimize.FunctionConverge{Absolute: 1e-8, Iterations: 40},
		Recorder:        ctxRecorder{ctx},
	}, &optimize.NelderMead{SimplexSize: 0.5})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start := u0
	if err == nil && nm != nil && !math.IsInf(nm.F, 0) {
		start = nm.X
	}

	// Stage 2: BFGS with the analytic gradient. Func computes the gradient
	// too and caches it, since BFGS asks for both at the same points.
	var cacheX, cacheG []float64
	cacheG = make([]float64, dim)
	valueGrad := func(u []float64) float64 {
		if outOfBounds(u) {
			cacheX = nil
			return math.Inf(1)
		}
		f := o.call(u, cacheG) / o.n
		for i := range cacheG {
			cacheG[i] /= o.n
		}
		cacheX = append(cacheX[:0], u...)
		return f
	}
	grad := func(g, u []float64) {
		if cacheX == nil || !slices.Equal(cacheX, u) {
			valueGrad(u)
		}
		if cacheX == nil {
			for i := range g {
				g[i] = math.NaN()
			}
			return
		}
		copy(g, cacheG)
	}
	res, err := optimize.Minimize(optimize.Problem{Func: valueGrad, Grad: grad}, start, &optimize.Settings{
		MajorIterations: 2000,
		Converger:       &optimize.FunctionConverge{Absolute: 1e-14, Iterations: 50},
		Recorder:        ctxRecorder{ctx},
	}, &optimize.BFGS{GradStopThreshold: 1e-10})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if res == nil {
		return nil, fmt.Errorf("%w: %v", ErrNotConverged, err)
	}
	// A line search that can make no progress ends with an error; that is
	// the normal end at the optimum when the gradient is already tiny, so
	// convergence is judged by the gradient itself.
	u := slices.Clone(res.X)
	g := make([]float64, dim)
	if math.IsInf(o.call(u, g), 0) {
		return nil, fmt.Errorf("%w: likelihood not finite at the optimum", ErrNotConverged)
	}
	var steep error
	for i, v := range u {
		if math.Abs(v) > maxLogParam {
			return nil, fmt.Errorf("%w: parameter %s ran off to %g (not identified by the data)", ErrNotConverged, o.names[i], math.Exp(v))
		}
		if gi := math.Abs(g[i]) / o.n; (gi > gradTolerance || math.IsNaN(gi)) && steep == nil {
			reason := res.Status.String()
			if err != nil {
				reason = err.Error()
			}
			steep = fmt.Errorf("%w: gradient %g for %s after %s", ErrNotConverged, gi, o.names[i], reason)
		}
	}
	if steep == nil {
		return u, nil
	}
	// On a long, flat ridge (Gamma-Gamma's p and γ with a few outlying
	// spenders) the line search can stop where the gradient is still above
	// the tolerance although nothing is left to gain. What a Newton step
	// could still gain, gᵀH⁻¹g/2 per customer, decides: negligible means
	// converged.
	hess, ok := hessian(o, u)
	if !ok {
		return nil, steep
	}
	var chol mat.Cholesky
	if !chol.Factorize(hess) {
		return nil, steep
	}
	gv := mat.NewVecDense(dim, slices.Clone(g))
	var d mat.VecDense
	if err := chol.SolveVecTo(&d, gv); err != nil {
		return nil, steep
	}
	gain := mat.Dot(gv, &d) / 2 / o.n
	if !(gain < newtonGainTolerance) {
		return nil, fmt.Errorf("%w (a Newton step would still gain %g per customer)", steep, gain)
	}
	// Take the step when it does gain: along the ridge it may move the
	// parameters noticeably, for next to nothing in likelihood.
	step := slices.Clone(u)
	for i := range step {
		step[i] -= d.AtVec(i)
	}
	if !outOfBounds(step) && o.call(step, nil) < o.call(u, nil) {
		return step, nil
	}
	return u, nil
}

// newtonGainTolerance is the largest mean log-likelihood a Newton step may
// still promise at an accepted optimum: a hundred-millionth of a unit per
// customer. In the quadratic approximation the estimate is then within
// sqrt(2·n·1e-8) standard errors of the maximum — 0.002 for 300 customers,
// 0.14 for a million — before the step is taken.
const newtonGainTolerance = 1e-8

// hessian is the Hessian of the negative log-likelihood in u, by central
// differences of the analytic gradient; false when it is not finite.
func hessian(o *objective, u []float64) (*mat.SymDense, bool) {
	const h = 1e-4
	dim := len(u)
	gp, gm := make([]float64, dim), make([]float64, dim)
	x := slices.Clone(u)
	hess := mat.NewSymDense(dim, nil)
	rows := make([][]float64, dim)
	for j := range dim {
		x[j] = u[j] + h
		o.call(x, gp)
		x[j] = u[j] - h
		o.call(x, gm)
		x[j] = u[j]
		rows[j] = make([]float64, dim)
		for i := range dim {
			rows[j][i] = (gp[i] - gm[i]) / (2 * h)
		}
	}
	for i := range dim {
		for j := i; j < dim; j++ {
			v := (rows[i][j] + rows[j][i]) / 2
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, false
			}
			hess.SetSym(i, j, v)
		}
	}
	return hess, true
}

// stdErrors returns the standard errors of the parameters θ = exp(u) from
// the inverse of the Hessian of the negative log-likelihood, computed by
// central differences of the analytic gradient in u. At the optimum the
// Hessian in u is D·H_θ·D with D = diag(θ), so the delta method gives
// se(θ_i) = θ_i·sqrt((H_u⁻¹)_ii), the same as inverting H_θ.
func stdErrors(o *objective, u []float64) ([]float64, error) {
	dim := len(u)
	hess, ok := hessian(o, u)
	if !ok {
		return nil, fmt.Errorf("%w: Hessian of the likelihood is not finite", ErrNotConverged)
	}
	var chol mat.Cholesky
	if !chol.Factorize(hess) {
		return nil, fmt.Errorf("%w: Hessian of the likelihood is not positive definite", ErrNotConverged)
	}
	var cov mat.SymDense
	if err := chol.InverseTo(&cov); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotConverged, err)
	}
	se := make([]float64, dim)
	for i := range dim {
		se[i] = math.Exp(u[i]) * math.Sqrt(cov.At(i, i))
	}
	return se, nil
}

// parallelSum splits [0, n) into contiguous chunks, runs f on each with its
// own accumulator of length width, and adds the accumulators in chunk order
// so that the result does not depend on scheduling.
func parallelSum(n, workers, width int, f func(lo, hi int, acc []float64)) []float64 {
	const minChunk = 4096
	if workers > n/minChunk {
		workers = n / minChunk
	}
	if workers <= 1 {
		acc := make([]float64, width)
		f(0, n, acc)
		return acc
	}
	accs := make([][]float64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*n/workers, (w+1)*n/workers
		accs[w] = make([]float64, width)
		wg.Go(func() { f(lo, hi, accs[w]) })
	}
	wg.Wait()
	total := make([]float64, width)
	for _, acc := range accs {
		for i, v := range acc {
			total[i] += v
		}
	}
	return total
}

// canceled wraps a context error so that errors.Is sees both it and the
// fit that was interrupted.
func canceled(model string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("valuemodel: %s fit interrupted: %w", model, err)
	}
	return err
}
