package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	bolt "go.etcd.io/bbolt"

	"rapport.dev/platform/boltdb"
	"rapport.dev/platform/fault"
	"rapport.dev/platform/ident"
	"rapport.dev/platform/money"
	"rapport.dev/services/segmentation/domain"
	"rapport.dev/services/segmentation/valuemodel"
)

// The value model's buckets, beside those listed in schema.go:
//
//	value_fits       tenant 0 fit               -> Fit (JSON)
//	value_fit_order  tenant 0 created(8) 0 fit  -> empty: the listing, oldest first
//	value_fit_queue  created(8) 0 tenant 0 fit  -> empty: fits still to run, in order
//
// and in settings: tenant 0 "value_model" -> the current fit's id,
// tenant 0 "value_schedule" -> fitSchedule (JSON).
var (
	bucketValueFits  = []byte("value_fits")
	bucketFitOrder   = []byte("value_fit_order")
	bucketFitQueue   = []byte("value_fit_queue")
	valueBuckets     = [][]byte{bucketValueFits, bucketFitOrder, bucketFitQueue}
	errFitNotRunning = errors.New("fit is not running")
)

// TypeActivityChanged is the feed event of a customer's activity change.
const TypeActivityChanged = "activity.changed"

// CurrentFitID names the tenant's current fit in GetValueModelFit.
const CurrentFitID = "current"

// Fit states and triggers; the numbers are those of rapport.segmentation.v1.
const (
	FitRunning   = 1
	FitSucceeded = 2
	FitFailed    = 3

	TriggerOnDemand  = 1
	TriggerScheduled = 2
)

// FitRequest asks for a fit.
type FitRequest struct {
	// ID is client-supplied; empty lets the store choose one.
	ID string
	// AsOf is the instant of the data; zero means the time of the request.
	AsOf time.Time
	Unit domain.TimeUnit
	// HoldoutEnd, when set, asks for a backtest over (AsOf, HoldoutEnd].
	HoldoutEnd time.Time
	// UseForScores, when nil, is true exactly when AsOf is zero.
	UseForScores *bool
}

// Fit is a stored value model fit.
type Fit struct {
	ID      string          `json:"id"`
	State   int32           `json:"state"`
	Trigger int32           `json:"trigger"`
	AsOf    time.Time       `json:"as_of"`
	Unit    domain.TimeUnit `json:"unit"`
	// Requested is the request as sent, to recognize a retry.
	Requested struct {
		AsOf         time.Time `json:"as_of,omitzero"`
		Unit         int32     `json:"unit,omitempty"`
		HoldoutEnd   time.Time `json:"holdout_end,omitzero"`
		UseForScores *bool     `json:"use,omitempty"`
	} `json:"req"`
	HoldoutEnd   time.Time     `json:"holdout_end,omitzero"`
	UseForScores bool          `json:"use"`
	Created      time.Time     `json:"created"`
	Finished     time.Time     `json:"finished,omitzero"`
	Error        string        `json:"error,omitempty"`
	BG           *BGResult     `json:"bg,omitempty"`
	GG           *GGResult     `json:"gg,omitempty"`
	Backtest     *Backtest     `json:"backtest,omitempty"`
	FitTime      time.Duration `json:"fit_time,omitempty"`
	// MinorPerMajor is the money scale γ was fitted in: minor units of the
	// reporting currency per major unit.
	MinorPerMajor float64 `json:"minor_per_major,omitempty"`
	// Current is filled in on reads: whether the tenant's scores use the fit.
	Current bool `json:"-"`
}

// BGResult is a BG/NBD fit's outcome.
type BGResult struct {
	Params, StdErr          valuemodel.BGNBDParams
	LogLikelihood           float64
	Evaluations             int
	Customers, RepeatBuyers int
	Duration                time.Duration
	WarmRows, WarmEvals     int
}

// GGResult is a Gamma-Gamma fit's outcome; γ is in major currency units.
type GGResult struct {
	Params, StdErr valuemodel.GammaGammaParams
	LogLikelihood  float64
	Evaluations    int
	Customers      int
	Duration       time.Duration
	WarmRows       int
	WarmEvals      int
}

// Backtest compares predicted and actual repeat transactions after AsOf.
type Backtest struct {
	End       time.Time
	Length    float64
	Predicted float64
	Actual    int64
}

// fitSchedule is a tenant's background fitting record.
type fitSchedule struct {
	// Last is when the last scheduled fit was requested; OK whether it
	// succeeded.
	Last time.Time `json:"last"`
	OK   bool      `json:"ok"`
}

// retryFailedAfter bounds the wait after a failed scheduled fit (too few
// customers yet, say): the tenant tries again within the hour.
const retryFailedAfter = time.Hour

func unitOf(u domain.TimeUnit) valuemodel.Unit {
	if u == domain.UnitDays {
		return valuemodel.Days
	}
	return valuemodel.Weeks
}

func fitKey(tenant, id string) []byte { return boltdb.Key(tenant, id) }

func orderKey(tenant string, created time.Time, id string) []byte {
	return bytes.Join([][]byte{[]byte(tenant), boltdb.U64(uint64(created.UnixNano())), []byte(id)}, []byte{boltdb.Sep})
}

func queueKey(tenant string, created time.Time, id string) []byte {
	return bytes.Join([][]byte{boltdb.U64(uint64(created.UnixNano())), []byte(tenant), []byte(id)}, []byte{boltdb.Sep})
}

func currentKey(tenant string) []byte  { return boltdb.Key(tenant, "value_model") }
func scheduleKey(tenant string) []byte { return boltdb.Key(tenant, "value_schedule") }

// FitWake is signalled when a fit is queued.
func (s *Store) FitWake() <-chan struct{} { return s.fitWake }

// RequestFit queues a fit and returns it. A retry with the same id and the
// same request returns the stored fit; the same id with another request
// fails with fault.ErrAlreadyExists.
func (s *Store) RequestFit(ctx context.Context, tenant string, req FitRequest) (*Fit, error) {
	now := s.clock.Now().UTC()
	var v fault.Violations
	ident.Check(&v, "fit_id", req.ID, false)
	if req.ID == CurrentFitID {
		v.Add("fit_id", "%q names the current fit and cannot be used as an id", CurrentFitID)
	}
	if req.Unit < domain.UnitUnspecified || req.Unit > domain.UnitWeeks {
		v.Add("time_unit", "unknown time unit %d", req.Unit)
	}
	if !req.AsOf.IsZero() && req.AsOf.After(now) {
		v.Add("as_of", "must not be in the future (now is %s)", now.Format(time.RFC3339))
	}
	if !req.HoldoutEnd.IsZero() {
		switch {
		case req.AsOf.IsZero():
			v.Add("holdout_end", "needs an as_of in the past to compare the forecast with")
		case !req.HoldoutEnd.After(req.AsOf):
			v.Add("holdout_end", "must be after as_of")
		case req.HoldoutEnd.After(now):
			v.Add("holdout_end", "must not be in the future (now is %s)", now.Format(time.RFC3339))
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	fit := &Fit{ID: req.ID, State: FitRunning, Trigger: TriggerOnDemand, AsOf: req.AsOf.UTC(), Unit: req.Unit,
		HoldoutEnd: req.HoldoutEnd.UTC(), Created: now}
	fit.Requested.AsOf, fit.Requested.Unit = fit.AsOf, int32(req.Unit)
	fit.Requested.HoldoutEnd, fit.Requested.UseForScores = fit.HoldoutEnd, req.UseForScores
	if fit.Unit == domain.UnitUnspecified {
		fit.Unit = domain.UnitWeeks
	}
	if fit.AsOf.IsZero() {
		fit.AsOf = now
	}
	fit.UseForScores = req.AsOf.IsZero()
	if req.UseForScores != nil {
		fit.UseForScores = *req.UseForScores
	}
	if fit.ID == "" {
		// The time orders ids for a person; the random part keeps two
		// requests at one instant (a fake clock, a burst) apart.
		fit.ID = fmt.Sprintf("fit-%s-%08x", now.Format("20060102T150405.000000000Z"), rand.Uint32())
	}
	var out *Fit
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		old, err := t.fit(fit.ID)
		switch {
		case errors.Is(err, fault.ErrNotFound):
		case err != nil:
			return err
		default:
			if !sameRequest(old, fit) {
				return fmt.Errorf("fit %q exists with another request: %w", fit.ID, fault.ErrAlreadyExists)
			}
			out = old
			return nil
		}
		out = fit
		return t.queueFit(fit)
	})
	if err != nil {
		return nil, err
	}
	s.wakeFits()
	return out, nil
}

func sameRequest(a, b *Fit) bool {
	ra, rb := a.Requested, b.Requested
	sameUse := (ra.UseForScores == nil) == (rb.UseForScores == nil) &&
		(ra.UseForScores == nil || *ra.UseForScores == *rb.UseForScores)
	return a.Trigger == b.Trigger && ra.AsOf.Equal(rb.AsOf) && ra.Unit == rb.Unit && ra.HoldoutEnd.Equal(rb.HoldoutEnd) && sameUse
}

func (t tx) queueFit(f *Fit) error {
	if err := put(t.b(bucketValueFits), fitKey(t.tenant, f.ID), f); err != nil {
		return err
	}
	if err := t.b(bucketFitOrder).Put(orderKey(t.tenant, f.Created, f.ID), nil); err != nil {
		return err
	}
	return t.b(bucketFitQueue).Put(queueKey(t.tenant, f.Created, f.ID), nil)
}

func (s *Store) wakeFits() {
	select {
	case s.fitWake <- struct{}{}:
	default:
	}
}

func (t tx) fit(id string) (*Fit, error) {
	raw := t.b(bucketValueFits).Get(fitKey(t.tenant, id))
	if raw == nil {
		return nil, fmt.Errorf("fit %q: %w", id, fault.ErrNotFound)
	}
	f, err := decode[Fit](raw)
	if err != nil {
		return nil, err
	}
	f.Current = string(t.b(bucketSettings).Get(currentKey(t.tenant))) == f.ID
	return f, nil
}

// GetFit returns a fit; CurrentFitID names the tenant's current one.
func (s *Store) GetFit(ctx context.Context, tenant, id string) (*Fit, error) {
	var out *Fit
	err := s.db.View(func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		if id == CurrentFitID {
			cur := t.b(bucketSettings).Get(currentKey(tenant))
			if cur == nil {
				return fmt.Errorf("the tenant has no fitted value model yet: %w", fault.ErrNotFound)
			}
			id = string(cur)
		}
		var err error
		out, err = t.fit(id)
		return err
	})
	return out, err
}

// ListFits lists the tenant's fits, newest first.
func (s *Store) ListFits(ctx context.Context, tenant, token string, size int) ([]*Fit, string, error) {
	var out []*Fit
	var next string
	err := s.db.View(func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		prefix := boltdb.Prefix(tenant)
		c := t.b(bucketFitOrder).Cursor()
		// The walk goes backwards from the token, the order key of the next
		// fit to return, or from the tenant's last key.
		from := append(bytes.Clone(prefix), 0xff)
		if token != "" {
			after, err := base64.RawURLEncoding.DecodeString(token)
			if err != nil || !bytes.HasPrefix(after, prefix) {
				return fault.InvalidField("page_token", "is not a token returned by this listing")
			}
			from = after
		}
		k, _ := c.Seek(from)
		switch {
		case k == nil:
			k, _ = c.Last()
		case !bytes.Equal(k, from):
			k, _ = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
			if len(out) == size {
				next = base64.RawURLEncoding.EncodeToString(k)
				break
			}
			id := string(k[len(prefix)+9:])
			f, err := t.fit(id)
			if err != nil {
				return err
			}
			out = append(out, f)
		}
		return nil
	})
	return out, next, err
}

// NextQueuedFit returns the oldest queued fit's tenant and id, or ok false.
func (s *Store) NextQueuedFit() (tenant, id string, ok bool, err error) {
	err = s.db.View(func(btx *bolt.Tx) error {
		k, _ := btx.Bucket(bucketFitQueue).Cursor().First()
		if k == nil {
			return nil
		}
		parts := bytes.SplitN(k[9:], []byte{boltdb.Sep}, 2)
		if len(parts) != 2 {
			return fmt.Errorf("store: malformed fit queue key %q", k)
		}
		tenant, id, ok = string(parts[0]), string(parts[1]), true
		return nil
	})
	return tenant, id, ok, err
}

// RunFit runs a queued fit to its end and stores the outcome; a fit that
// has already finished is returned as it is. Fits run one at a time: a
// fit uses every core. The outcome is stored even when the fit fails; only
// the context ending (shutdown) leaves the fit queued, to run again after
// a restart.
func (s *Store) RunFit(ctx context.Context, tenant, id string) (*Fit, error) {
	select {
	case s.fitSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.fitSem }()
	f, err := s.GetFit(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	if f.State != FitRunning {
		// A finished fit is never queued; removing a stray entry anyway
		// keeps the fit loop from spinning on one, whatever left it there.
		return f, s.db.Update(ctx, func(btx *bolt.Tx) error {
			return btx.Bucket(bucketFitQueue).Delete(queueKey(tenant, f.Created, f.ID))
		})
	}
	start := time.Now()
	fitErr := s.fitModels(ctx, tenant, f)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	f.FitTime = time.Since(start)
	f.Finished = s.clock.Now().UTC()
	f.State = FitSucceeded
	if fitErr != nil {
		f.State, f.Error = FitFailed, fitErr.Error()
	}
	err = s.db.Update(ctx, func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		if err := t.b(bucketFitQueue).Delete(queueKey(tenant, f.Created, f.ID)); err != nil {
			return err
		}
		if f.Trigger == TriggerScheduled {
			if err := put(t.b(bucketSettings), scheduleKey(tenant), fitSchedule{Last: f.Created, OK: f.State == FitSucceeded}); err != nil {
				return err
			}
		}
		if f.State == FitSucceeded && f.UseForScores {
			if err := t.b(bucketSettings).Put(currentKey(tenant), []byte(f.ID)); err != nil {
				return err
			}
			f.Current = true
		}
		return put(t.b(bucketValueFits), fitKey(tenant, f.ID), f)
	})
	if err != nil {
		return nil, err
	}
	if f.Current {
		s.markDirty(tenant) // activity and CLV follow the new model
	}
	return f, nil
}

// fitModels reads the tenant's history up to f.AsOf and fits both models
// into f. A Gamma-Gamma failure is recorded in f.Error but does not fail
// the fit: the purchase model stands on its own.
func (s *Store) fitModels(ctx context.Context, tenant string, f *Fit) error {
	unit := unitOf(f.Unit)
	var summaries []valuemodel.Summary
	var actual int64
	var currency string
	err := s.db.View(func(btx *bolt.Tx) error {
		t := tx{Tx: btx, tenant: tenant}
		settings, err := t.settings()
		if err != nil {
			return err
		}
		currency = settings.Currency
		var buf []valuemodel.Purchase
		prefix := boltdb.Prefix(tenant)
		c := btx.Bucket(bucketStates).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			st, err := decodeState(v)
			if err != nil {
				return err
			}
			buf = modelPurchases(buf[:0], st, currency)
			sum, ok := valuemodel.SummarizeCustomer(buf, f.AsOf, unit)
			if !ok {
				continue
			}
			sum.Customer = string(k[len(prefix):])
			summaries = append(summaries, sum)
			if !f.HoldoutEnd.IsZero() {
				actual += int64(valuemodel.HoldoutTransactions(buf, f.AsOf, f.HoldoutEnd))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	bg, err := valuemodel.FitBGNBD(ctx, summaries, valuemodel.FitOptions{})
	if err != nil {
		return fmt.Errorf("BG/NBD: %w", err)
	}
	f.BG = &BGResult{Params: bg.Params, StdErr: bg.StdErr, LogLikelihood: bg.LogLikelihood, Evaluations: bg.Evaluations,
		Customers: bg.Customers, RepeatBuyers: bg.RepeatBuyers, Duration: bg.Duration,
		WarmRows: bg.WarmRows, WarmEvals: bg.WarmEvaluations}
	if !f.HoldoutEnd.IsZero() {
		length := valuemodel.PeriodsBetween(f.AsOf, f.HoldoutEnd, unit)
		var predicted float64
		for _, sum := range summaries {
			predicted += bg.Params.ConditionalExpectedPurchases(sum, length)
		}
		f.Backtest = &Backtest{End: f.HoldoutEnd, Length: length, Predicted: predicted, Actual: actual}
	}
	// γ in major units, as the literature reports it.
	f.MinorPerMajor = money.MinorPerMajor(currency)
	for i := range summaries {
		summaries[i].MeanSpend /= f.MinorPerMajor
	}
	gg, err := valuemodel.FitGammaGamma(ctx, summaries, valuemodel.FitOptions{})
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		f.Error = fmt.Sprintf("Gamma-Gamma: %v (CLV is not available from this fit)", err)
		return nil
	}
	f.GG = &GGResult{Params: gg.Params, StdErr: gg.StdErr, LogLikelihood: gg.LogLikelihood, Evaluations: gg.Evaluations,
		Customers: gg.Customers, Duration: gg.Duration, WarmRows: gg.WarmRows, WarmEvals: gg.WarmEvaluations}
	return nil
}

// modelPurchases appends the purchases the value model counts: those in
// the reporting currency (every currency when it is empty), at their amount
// net of refunds, except those refunded in full (a free order, which cost
// nothing in the first place, still counts). State purchases are sorted by
// time, and so is the result.
func modelPurchases(buf []valuemodel.Purchase, st *domain.State, currency string) []valuemodel.Purchase {
	for i := range st.Purchases {
		p := &st.Purchases[i]
		if (currency != "" && p.Currency != currency) || (p.Refunded > 0 && p.Net() <= 0) {
			continue
		}
		buf = append(buf, valuemodel.Purchase{At: p.At, Amount: p.Net()})
	}
	return buf
}

// ScheduleFits queues a scheduled fit for every tenant whose schedule is
// due at now and returns when the next one falls due (zero for none).
func (s *Store) ScheduleFits(ctx context.Context, now time.Time) (time.Time, error) {
	var next time.Time
	queued := false
	err := s.db.Update(ctx, func(btx *bolt.Tx) error {
		next, queued = time.Time{}, false
		var tenants []string
		err := btx.Bucket(bucketSettings).ForEach(func(k, _ []byte) error {
			if bytes.IndexByte(k, boltdb.Sep) < 0 {
				tenants = append(tenants, string(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, tenant := range tenants {
			t := tx{Tx: btx, tenant: tenant}
			settings, err := t.settings()
			if err != nil {
				return err
			}
			vm := settings.WithDefaults().ValueModel
			if vm.FitIntervalHours < 0 {
				continue
			}
			var due time.Time
			if raw := t.b(bucketSettings).Get(scheduleKey(tenant)); raw != nil {
				sch, err := decode[fitSchedule](raw)
				if err != nil {
					return err
				}
				wait := time.Duration(vm.FitIntervalHours) * time.Hour
				if !sch.OK {
					wait = min(wait, retryFailedAfter)
				}
				due = sch.Last.Add(wait)
			}
			if due.After(now) {
				if next.IsZero() || due.Before(next) {
					next = due
				}
				continue
			}
			f := &Fit{ID: "scheduled-" + now.Format("20060102T150405Z"), State: FitRunning, Trigger: TriggerScheduled,
				AsOf: now, Unit: vm.Unit, UseForScores: true, Created: now}
			f.Requested.AsOf, f.Requested.Unit = now, int32(vm.Unit)
			if _, err := t.fit(f.ID); err == nil {
				continue // queued in this second already
			}
			if err := t.queueFit(f); err != nil {
				return err
			}
			// Until the fit finishes, the schedule counts it as tried.
			if err := put(t.b(bucketSettings), scheduleKey(tenant), fitSchedule{Last: now}); err != nil {
				return err
			}
			queued = true
		}
		return nil
	})
	if queued {
		s.wakeFits()
	}
	return next, err
}

// valueModel is a tenant's current fit, ready to evaluate customers.
type valueModel struct {
	fit      *Fit
	settings domain.ValueModelSettings
	currency string
	clv      valuemodel.CLVOptions
}

// currentModel returns the tenant's current model, or nil without one.
func (t tx) currentModel(settings domain.Settings) (*valueModel, error) {
	id := t.b(bucketSettings).Get(currentKey(t.tenant))
	if id == nil {
		return nil, nil
	}
	f, err := t.fit(string(id))
	if err != nil || f.BG == nil {
		return nil, err
	}
	vm := settings.WithDefaults().ValueModel
	per := 1.0
	if f.Unit != domain.UnitDays {
		per = 7
	}
	const monthDays = 365.25 / 12
	monthly := 0.0
	if vm.AnnualDiscountRate > 0 {
		monthly = math.Pow(1+vm.AnnualDiscountRate, 1.0/12) - 1
	}
	return &valueModel{fit: f, settings: vm, currency: settings.Currency, clv: valuemodel.CLVOptions{
		Horizon: float64(vm.HorizonDays) / per, Period: monthDays / per, DiscountRate: monthly, Margin: vm.Margin,
	}}, nil
}

// value evaluates the model for one customer at now; nil when the
// customer has no purchase the model counts. withCLV computes the expected
// purchases, spend and CLV too (the activity alone is cheap).
func (m *valueModel) value(st *domain.State, now time.Time, withCLV bool, buf *[]valuemodel.Purchase) *domain.CustomerValue {
	*buf = modelPurchases((*buf)[:0], st, m.currency)
	sum, ok := valuemodel.SummarizeCustomer(*buf, now, unitOf(m.fit.Unit))
	if !ok {
		return nil
	}
	bg := m.fit.BG.Params
	p := bg.PActive(sum)
	v := &domain.CustomerValue{FitID: m.fit.ID, X: sum.X, TX: sum.TX, T: sum.T, PAlive: p,
		Activity: m.settings.ActivityOf(p), HorizonDays: m.settings.HorizonDays}
	if !withCLV {
		return v
	}
	v.ExpectedPurchases = bg.ConditionalExpectedPurchases(sum, m.clv.Horizon)
	if m.fit.GG != nil {
		sum.MeanSpend /= m.fit.MinorPerMajor
		v.ExpectedSpend = roundMinor(m.fit.GG.Params.ConditionalExpectedSpend(sum) * m.fit.MinorPerMajor)
		v.CLV = roundMinor(valuemodel.CLV(bg, m.fit.GG.Params, sum, m.clv) * m.fit.MinorPerMajor)
	}
	return v
}

// roundMinor rounds money to minor units, 0 for what is not a finite amount.
func roundMinor(x float64) int64 {
	if math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) > 1e17 {
		return 0
	}
	return int64(math.Round(x))
}
