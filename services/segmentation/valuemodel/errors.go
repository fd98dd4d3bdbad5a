package valuemodel

import "errors"

// Errors returned by the fits. They are wrapped with details; test with
// errors.Is.
var (
	// ErrInvalidSummary: a summary has a negative count, a recency outside
	// [0, T], a non-finite value or a negative spend.
	ErrInvalidSummary = errors.New("valuemodel: invalid customer summary")
	// ErrTooFewCustomers: fewer customers than FitOptions.MinCustomers.
	ErrTooFewCustomers = errors.New("valuemodel: too few customers to fit")
	// ErrTooFewRepeatBuyers: fewer repeat buyers (x > 0, and for the spend
	// model a positive mean spend) than FitOptions.MinRepeatBuyers. Without
	// repeat buyers the BG/NBD likelihood has no interior maximum.
	ErrTooFewRepeatBuyers = errors.New("valuemodel: too few repeat buyers to fit")
	// ErrNotConverged: the optimizer did not reach a maximum of the
	// likelihood, a parameter ran off to 0 or ∞ (the data do not identify
	// it), or the Hessian at the optimum is not positive definite.
	ErrNotConverged = errors.New("valuemodel: fit did not converge")
)
