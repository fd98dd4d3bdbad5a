package importer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrMapping marks a mapping the importer cannot work with: a syntax error,
// a missing required role, or a column the file does not have. Run returns
// it before anything is sent, so a typo never produces a half-import.
var ErrMapping = errors.New("invalid mapping")

// Mapping says which CSV column plays which role, because every shop exports
// its orders with its own column names. Column names are matched exactly
// against the header row (surrounding spaces and a byte-order mark ignored).
type Mapping struct {
	// Customer names the customer id column; required.
	Customer string
	// Order names the order (invoice) id column. Rows of the same customer and
	// order are lines of one purchase; empty means every row is its own order.
	Order string
	// Time names the column with when the purchase happened; required.
	Time string
	// Amount names the amount column, in major units ("29.33"); required.
	Amount string
	// Currency names the ISO 4217 currency column; empty falls back to
	// DefaultCurrency.
	Currency string
	// Quantity names the quantity column; a negative quantity is a return.
	Quantity string
	// SKU names the product id column.
	SKU string
	// Category names the product category column.
	Category string
	// CancelPrefix marks cancelled orders: an order id starting with it is a
	// refund (the UCI Online Retail data writes "C536379"). Needs Order.
	CancelPrefix string
	// DefaultCurrency is the currency of rows without one.
	DefaultCurrency string
	// AmountIsUnitPrice says Amount is the price of one unit, so the line
	// total is Amount × Quantity. Needs Quantity.
	AmountIsUnitPrice bool
	// Location is the time zone of times written without an offset; nil is UTC.
	Location *time.Location
	// Delimiter separates fields; 0 is a comma.
	Delimiter rune
}

// ParseMapping reads a mapping from the command line's compact form, a
// comma-separated list of role=column pairs and options, for example
//
//	customer=CustomerID,order=InvoiceNo,time=InvoiceDate,amount=UnitPrice,quantity=Quantity,currency=,default_currency=GBP,cancel_prefix=C,amount_is_unit_price
//
// Roles: customer, order, time, amount, currency, quantity, sku, category
// (an empty column leaves the role unmapped). Options: default_currency,
// cancel_prefix, amount_is_unit_price[=true|false], time_zone (an IANA name)
// and delimiter (one character, or "tab"). Column names cannot contain
// commas or "=" in this form; build a Mapping in code for those.
func ParseMapping(spec string) (Mapping, error) {
	var m Mapping
	seen := map[string]bool{}
	for _, pair := range strings.Split(spec, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		key, value, hasValue := strings.Cut(pair, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		value = strings.TrimSpace(value)
		if seen[key] {
			return Mapping{}, fmt.Errorf("%w: %q given twice", ErrMapping, key)
		}
		seen[key] = true
		if !hasValue && key != "amount_is_unit_price" {
			return Mapping{}, fmt.Errorf("%w: %q has no value (want key=value)", ErrMapping, pair)
		}
		switch key {
		case "customer":
			m.Customer = value
		case "order":
			m.Order = value
		case "time":
			m.Time = value
		case "amount":
			m.Amount = value
		case "currency":
			m.Currency = value
		case "quantity":
			m.Quantity = value
		case "sku":
			m.SKU = value
		case "category":
			m.Category = value
		case "cancel_prefix":
			m.CancelPrefix = value
		case "default_currency":
			m.DefaultCurrency = value
		case "amount_is_unit_price":
			b := true
			if hasValue {
				var err error
				if b, err = strconv.ParseBool(value); err != nil {
					return Mapping{}, fmt.Errorf("%w: amount_is_unit_price=%q is not a boolean", ErrMapping, value)
				}
			}
			m.AmountIsUnitPrice = b
		case "time_zone", "tz":
			loc, err := time.LoadLocation(value)
			if err != nil {
				return Mapping{}, fmt.Errorf("%w: time zone %q: %v", ErrMapping, value, err)
			}
			m.Location = loc
		case "delimiter":
			switch {
			case value == "tab" || value == `\t`:
				m.Delimiter = '\t'
			case utf8.RuneCountInString(value) == 1:
				m.Delimiter, _ = utf8.DecodeRuneInString(value)
			default:
				return Mapping{}, fmt.Errorf("%w: delimiter %q is not one character", ErrMapping, value)
			}
		default:
			return Mapping{}, fmt.Errorf("%w: unknown key %q", ErrMapping, key)
		}
	}
	if err := m.Validate(); err != nil {
		return Mapping{}, err
	}
	return m, nil
}

// Validate checks that the mapping is complete and consistent on its own;
// whether its columns exist is checked against the file's header by Run.
func (m Mapping) Validate() error {
	var missing []string
	for _, r := range []struct{ role, column string }{
		{"customer", m.Customer}, {"time", m.Time}, {"amount", m.Amount},
	} {
		if r.column == "" {
			missing = append(missing, r.role)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: no column for %s", ErrMapping, strings.Join(missing, ", "))
	}
	if m.Currency == "" && m.DefaultCurrency == "" {
		return fmt.Errorf("%w: map a currency column or set default_currency", ErrMapping)
	}
	if m.DefaultCurrency != "" {
		if _, err := normalizeCurrency(m.DefaultCurrency); err != nil {
			return fmt.Errorf("%w: default_currency %q is not an ISO 4217 code", ErrMapping, m.DefaultCurrency)
		}
	}
	if m.AmountIsUnitPrice && m.Quantity == "" {
		return fmt.Errorf("%w: amount_is_unit_price needs a quantity column", ErrMapping)
	}
	if m.CancelPrefix != "" && m.Order == "" {
		return fmt.Errorf("%w: cancel_prefix needs an order column", ErrMapping)
	}
	switch d := m.Delimiter; {
	case d == 0:
	case d == '"' || d == '\r' || d == '\n' || d == utf8.RuneError || !utf8.ValidRune(d):
		return fmt.Errorf("%w: %q cannot be a delimiter", ErrMapping, d)
	}
	return nil
}

// columns are the header positions of the mapped roles; -1 is unmapped.
type columns struct {
	customer, order, time, amount, currency, quantity, sku, category int
}

// resolve finds the mapped columns in the header, naming every missing one
// at once so that a user fixes the mapping in one go.
func (m Mapping) resolve(header []string) (columns, error) {
	index := make(map[string]int, len(header))
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if _, dup := index[h]; !dup {
			index[h] = i
		}
	}
	var missing []string
	find := func(role, name string) int {
		if name == "" {
			return -1
		}
		i, ok := index[name]
		if !ok {
			missing = append(missing, fmt.Sprintf("%s=%q", role, name))
			return -1
		}
		return i
	}
	c := columns{
		customer: find("customer", m.Customer),
		order:    find("order", m.Order),
		time:     find("time", m.Time),
		amount:   find("amount", m.Amount),
		currency: find("currency", m.Currency),
		quantity: find("quantity", m.Quantity),
		sku:      find("sku", m.SKU),
		category: find("category", m.Category),
	}
	if len(missing) > 0 {
		names := make([]string, len(header))
		for i, h := range header {
			names[i] = strconv.Quote(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		}
		return columns{}, fmt.Errorf("%w: column %s not in the header (%s)", ErrMapping,
			strings.Join(missing, ", "), strings.Join(names, ", "))
	}
	return c, nil
}
