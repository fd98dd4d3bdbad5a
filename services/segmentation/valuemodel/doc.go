// Package valuemodel fits the standard probabilistic customer-base models
// per tenant — BG/NBD for purchase counts and Gamma-Gamma for spend — and
// derives from them "probability alive", expected purchases, expected spend
// and customer lifetime value. It is pure computation: no storage, no gRPC.
//
// # Data
//
// Summarize turns purchases into one Summary per customer at an instant
// asOf, in days or weeks: purchases on the same UTC calendar day are one
// transaction (amounts summed); x = distinct purchase days − 1 (repeat
// transactions), t_x = last − first purchase day, T = asOf's day − first
// purchase day, and MeanSpend m̄ the mean amount of the repeat transactions.
// On the CDNOW sample this reproduces the published summaries exactly.
//
// # BG/NBD
//
// Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An
// Alternative to the Pareto/NBD Model", Marketing Science 24(2), 275–284,
// and their note "Implementing the BG/NBD Model for Customer Base Analysis
// in Excel". While alive a customer buys at Poisson rate λ, λ ~ Gamma(r, α)
// across customers; after each repeat purchase the customer drops out with
// probability p, p ~ Beta(a, b). The likelihood of (x, t_x, T) is, in log
// space (ln Γ by math.Lgamma, the sum by log-sum-exp so that customers with
// hundreds of purchases neither overflow nor underflow):
//
//	ln L = A₁ + ln(e^A₂ + δ(x>0)·e^A₃)
//	A₁ = ln Γ(r+x) − ln Γ(r) + r ln α + ln Γ(a+b) + ln Γ(b+x) − ln Γ(b) − ln Γ(a+b+x)
//	A₂ = −(r+x) ln(α+T)
//	A₃ = ln a − ln(b+x−1) − (r+x) ln(α+t_x)
//
// For x = 0 this is L = (α/(α+T))^r. Per customer:
//
//	P(alive | x, t_x, T) = 1 / (1 + δ(x>0)·a/(b+x−1)·((α+T)/(α+t_x))^(r+x))
//	E[X(t)]              = (a+b−1)/(a−1)·[1 − (α/(α+t))^r ₂F₁(r, b; a+b−1; t/(α+t))]
//	E[Y(t) | x, t_x, T]  = (a+b+x−1)/(a−1)·[1 − ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x−1; t/(α+T+t))]·P(alive)
//
// The Gaussian hypergeometric function is summed as a series with a
// rigorous tail bound; with z = t/(α+T+t), Euler's transformation
// (DLMF 15.8.1) rewrites (1−z)^(r+x) ₂F₁(r+x, b+x; a+b+x−1; z) as
// (1−z)^(a−1) ₂F₁(a+b−1−r, a−1; a+b+x−1; z), which cancels the large
// factors analytically and converges fast for any x. 1 − G is formed with
// expm1 so that small t keeps its precision.
//
// # Gamma-Gamma
//
// Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for
// Customer Base Analysis", Journal of Marketing Research 42(4), 415–430,
// and Fader & Hardie, "The Gamma-Gamma Model of Monetary Value" (2013).
// Transaction values are Gamma(p, ν), ν ~ Gamma(q, γ) across customers,
// independent of the purchase process. The mean m̄ of x repeat transactions
// has density
//
//	ln f(m̄ | x) = ln Γ(px+q) − ln Γ(px) − ln Γ(q) + q ln γ + (px−1) ln m̄ + px ln x − (px+q) ln(γ + m̄x)
//
// and the expected value of the customer's future transactions is
//
//	E[M | x, m̄] = p(γ + x·m̄)/(px + q − 1)
//
// (the population mean pγ/(q−1) for x = 0). It is fitted on repeat buyers
// only. γ is in the money unit of MeanSpend; p and q do not depend on it.
//
// # Fitting
//
// Both models are fitted by maximum likelihood over the logarithms of the
// parameters, which keeps them positive: gonum's Nelder-Mead to reach the
// basin of the maximum robustly, then BFGS with the analytic gradient
// (digamma by gonum's mathext) to converge tightly. Customers with equal
// summaries are merged into weighted rows, which is exact, and large
// samples are summed across GOMAXPROCS goroutines in a fixed order, so the
// result does not depend on scheduling. Convergence is judged by the
// gradient at the end. Standard errors come from the inverse Hessian of the
// negative log-likelihood, by central differences of the analytic gradient
// in the log-parameters and the delta method (at the optimum this equals
// inverting the Hessian in the original parameters). Fits fail with
// ErrInvalidSummary, ErrTooFewCustomers, ErrTooFewRepeatBuyers or
// ErrNotConverged (a parameter running off to 0 or ∞, a gradient not
// vanishing, a Hessian not positive definite), or the context's error.
//
// # Customer lifetime value
//
// CLV discounts the expected purchases of each period, from differences of
// the BG/NBD conditional expectation, at the end of the period, and values
// them at the Gamma-Gamma expected spend times a margin:
//
//	CLV = margin · E[M | x, m̄] · Σ_k (E[Y(t_k)] − E[Y(t_{k−1})]) / (1+d)^k
//
// This is the approach of the lifetimes package (Davidson-Pilon) and of
// Fader, Hardie & Lee (2005b) in discrete time; the independence of spend
// and purchase process is the Gamma-Gamma model's assumption.
//
// # CDNOW
//
// On the CDNOW sample (2,357 customers, weeks, as of 1997-09-30) the fits
// reproduce the published r, α, a, b = 0.243, 4.414, 0.793, 2.426 with
// ln L = −9582.4, and p, q, γ = 6.25, 3.74, 15.44; see cdnow_test.go.
package valuemodel
