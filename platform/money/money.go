// Package money holds what every service needs to know about currencies.
package money

// Exponent is the number of decimals of a currency's minor unit. The list
// follows ISO 4217 for the currencies Rapport's customers trade in;
// everything else has cents.
func Exponent(currency string) int {
	switch currency {
	case "JPY", "KRW":
		return 0
	case "BHD", "KWD", "OMR", "JOD", "TND":
		return 3
	}
	return 2
}

// MinorPerMajor is 10^Exponent: the minor units in one major unit.
func MinorPerMajor(currency string) float64 {
	f := 1.0
	for range Exponent(currency) {
		f *= 10
	}
	return f
}
