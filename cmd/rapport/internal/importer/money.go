package importer

import (
	"errors"
	"math"
	"strings"
)

// Amount errors double as rejection reasons, so they are short and free of
// row values: the summary groups rejected rows by reason.
var (
	errAmountSyntax    = errors.New("invalid amount")
	errAmountPrecision = errors.New("amount has more decimals than its currency allows")
	errAmountRange     = errors.New("amount out of range")
	errCurrency        = errors.New("invalid currency")
)

// normalizeCurrency upper-cases an ISO 4217 code and checks its shape.
func normalizeCurrency(s string) (string, error) {
	c := strings.ToUpper(strings.TrimSpace(s))
	if len(c) != 3 {
		return "", errCurrency
	}
	for i := 0; i < len(c); i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return "", errCurrency
		}
	}
	return c, nil
}

// parseMinor turns a decimal amount in major units ("29.33", "-3.5", "+7")
// into integer minor units with exp decimals, by string arithmetic: money
// must never pass through a float, where 0.1+0.2 is not 0.3. Decimals
// beyond the currency's exponent are accepted only when they are zeros
// ("100.0" is 100 yen, "100.5" is rejected), because rounding would silently
// change what the customer paid. Thousands separators and exponents are rejected: "1,234"
// means different things in different countries.
func parseMinor(s string, exp int) (int64, error) {
	s = strings.TrimSpace(s)
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" || !allDigits(whole) || !allDigits(frac) {
		return 0, errAmountSyntax
	}
	for len(frac) > exp {
		if frac[len(frac)-1] != '0' {
			return 0, errAmountPrecision
		}
		frac = frac[:len(frac)-1]
	}
	frac += strings.Repeat("0", exp-len(frac))
	var v int64
	for _, c := range whole + frac {
		d := int64(c - '0')
		if v > (math.MaxInt64-d)/10 {
			return 0, errAmountRange
		}
		v = v*10 + d
	}
	if neg {
		v = -v
	}
	return v, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// mulMinor multiplies a unit price by a quantity, refusing overflow rather
// than wrapping into a nonsense amount.
func mulMinor(a, b int64) (int64, error) {
	if a == 0 || b == 0 {
		return 0, nil
	}
	if a < 0 {
		a = -a
	}
	if b < 0 {
		b = -b
	}
	if a > math.MaxInt64/b {
		return 0, errAmountRange
	}
	return a * b, nil
}
