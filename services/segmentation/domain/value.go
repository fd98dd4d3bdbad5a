package domain

import "rapport.dev/platform/fault"

// Activity is a customer's activity state (活跃期 / 休眠期); the numbers are
// those of rapport.segmentation.v1.Activity.
type Activity int32

// Activity states. ActivityUnspecified is a customer without purchases or a
// tenant without a value model.
const (
	ActivityUnspecified Activity = 0
	ActivityActive      Activity = 1
	ActivityDormant     Activity = 2
	ActivityLost        Activity = 3
)

var activityNames = [...]string{"unspecified", "active", "dormant", "lost"}

func (a Activity) String() string { return enumName(activityNames[:], int32(a)) }

// TimeUnit is the unit of a value model fit; the numbers are those of
// rapport.segmentation.v1.TimeUnit. Unspecified means weeks.
type TimeUnit int32

// Time units.
const (
	UnitUnspecified TimeUnit = 0
	UnitDays        TimeUnit = 1
	UnitWeeks       TimeUnit = 2
)

// ValueModelSettings are a tenant's value model settings; zero fields mean
// the defaults (see withDefaults).
type ValueModelSettings struct {
	// Unit is the time unit of scheduled fits.
	Unit TimeUnit `json:"unit,omitempty"`
	// FitIntervalHours is the schedule of background fits; negative turns
	// them off.
	FitIntervalHours int32 `json:"fit_every_h,omitempty"`
	// HorizonDays is the CLV horizon.
	HorizonDays int32 `json:"horizon_d,omitempty"`
	// AnnualDiscountRate discounts CLV month by month; negative means none.
	AnnualDiscountRate float64 `json:"discount,omitempty"`
	// Margin is the share of spend that is profit.
	Margin float64 `json:"margin,omitempty"`
	// ActiveThreshold and LostThreshold split probability alive into
	// active (≥ ActiveThreshold), dormant and lost (< LostThreshold).
	ActiveThreshold float64 `json:"active,omitempty"`
	LostThreshold   float64 `json:"lost,omitempty"`
}

// Defaults of ValueModelSettings.
const (
	DefaultFitIntervalHours   = 24
	DefaultHorizonDays        = 365
	DefaultAnnualDiscountRate = 0.10
	DefaultActiveThreshold    = 0.5
	DefaultLostThreshold      = 0.15
)

func (v ValueModelSettings) withDefaults() ValueModelSettings {
	if v.Unit == UnitUnspecified {
		v.Unit = UnitWeeks
	}
	if v.FitIntervalHours == 0 {
		v.FitIntervalHours = DefaultFitIntervalHours
	}
	if v.HorizonDays == 0 {
		v.HorizonDays = DefaultHorizonDays
	}
	if v.AnnualDiscountRate == 0 {
		v.AnnualDiscountRate = DefaultAnnualDiscountRate
	}
	if v.Margin == 0 {
		v.Margin = 1
	}
	if v.ActiveThreshold == 0 {
		v.ActiveThreshold = DefaultActiveThreshold
	}
	if v.LostThreshold == 0 {
		v.LostThreshold = DefaultLostThreshold
	}
	return v
}

func (v ValueModelSettings) validate(out *fault.Violations) {
	if v.Unit < UnitUnspecified || v.Unit > UnitWeeks {
		out.Add("value_model_unit", "unknown time unit %d", v.Unit)
	}
	if v.FitIntervalHours > 24*366 {
		out.Add("value_model_fit_interval_hours", "must be at most a year (8784), got %d", v.FitIntervalHours)
	}
	if v.HorizonDays < 0 || v.HorizonDays > 3660 {
		out.Add("clv_horizon_days", "must be between 1 and 3660 days, got %d", v.HorizonDays)
	}
	if !(v.AnnualDiscountRate < 1) {
		out.Add("clv_annual_discount_rate", "must be below 1 (100%% a year), got %v", v.AnnualDiscountRate)
	}
	if !(v.Margin >= 0 && v.Margin <= 1) {
		out.Add("clv_margin", "must be between 0 and 1, got %v", v.Margin)
	}
	okShare := func(field string, x float64) bool {
		if !(x >= 0 && x < 1) {
			out.Add(field, "must be between 0 and 1 (exclusive), got %v", x)
			return false
		}
		return true
	}
	if okShare("active_threshold", v.ActiveThreshold) && okShare("lost_threshold", v.LostThreshold) {
		d := v.withDefaults()
		if d.LostThreshold > d.ActiveThreshold {
			out.Add("lost_threshold", "must not exceed active_threshold (%v), got %v", d.ActiveThreshold, d.LostThreshold)
		}
	}
}

// ActivityOf classifies a probability alive under the settings (defaults
// filled in).
func (v ValueModelSettings) ActivityOf(pAlive float64) Activity {
	v = v.withDefaults()
	switch {
	case pAlive >= v.ActiveThreshold:
		return ActivityActive
	case pAlive < v.LostThreshold:
		return ActivityLost
	}
	return ActivityDormant
}

// CustomerValue is what a value model says of one customer at an instant.
// Money is in minor units of the reporting currency; X, TX and T are the
// customer's summary in the fit's unit.
type CustomerValue struct {
	FitID             string
	X                 int
	TX, T             float64
	PAlive            float64
	Activity          Activity
	ExpectedPurchases float64
	ExpectedSpend     int64
	CLV               int64
	HorizonDays       int32
}
