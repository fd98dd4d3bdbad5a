package importer

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"rapport.dev/platform/money"
)

// row is one purchase or refund line read from the file, already checked:
// a row that exists has a valid customer, time, currency and positive amount.
type row struct {
	line     int // 1-based line number, for the summary
	customer string
	at       time.Time
	currency string
	// amount is the line total in minor units, always positive; refund says
	// which way the money went.
	amount int64
	// item says whether the row describes a product line (sku, category,
	// quantity); quantity is then at least 1.
	item      bool
	quantity  int64
	unitPrice int64 // price of one unit, when the file gives unit prices
	sku       string
	category  string
	order     string // the order column as written, "" when there is none
	refund    bool
	cancelled bool // the order carries the cancellation marker
}

// rejection is a row the importer will not send, and why. customer is set
// when the row named a valid customer, who is created anyway: a customer in
// the file is a customer even if none of their rows can be recorded.
type rejection struct {
	line     int
	customer string
	reason   string
}

// Rejection reasons found without asking the service. They are fixed
// strings, free of row values, so that the summary can count them.
const (
	reasonFields         = "wrong number of fields"
	reasonMalformedCSV   = "malformed CSV"
	reasonNoCustomer     = "missing customer"
	reasonCustomerID     = "invalid customer id"
	reasonNoTime         = "missing time"
	reasonTime           = "invalid time"
	reasonNoAmount       = "missing amount"
	reasonZeroAmount     = "zero amount"
	reasonNoCurrency     = "missing currency"
	reasonNoQuantity     = "missing quantity"
	reasonQuantity       = "invalid quantity"
	reasonZeroQuantity   = "zero quantity"
	reasonMixedCurrency  = "order has rows in different currencies"
	reasonNoPurchaseLeft = "no purchase left to refund"
	reasonOverRefund     = "refund exceeds what is left of its order"
	reasonRefundCurrency = "refund currency differs from its order"
	reasonPurchaseLost   = "its purchase was not recorded"
)

// parsed is everything read from a file.
type parsed struct {
	rows      []*row
	rejected  []rejection
	read      int      // data rows, whatever became of them
	skipped   int      // header and blank lines
	customers []string // distinct valid customer ids, in order of appearance
	seen      map[string]bool
}

func (p *parsed) customer(id string) {
	if id == "" || p.seen[id] {
		return
	}
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	p.seen[id] = true
	p.customers = append(p.customers, id)
}

// add records the outcome of parsing one data row.
func (p *parsed) add(r *row, reason string) {
	p.read++
	p.customer(r.customer)
	if reason != "" {
		p.rejected = append(p.rejected, rejection{line: r.line, customer: r.customer, reason: reason})
		return
	}
	p.rows = append(p.rows, r)
}

// validCustomerID mirrors the profile service's rule (1 to 128 of
// A-Z a-z 0-9 . _ : -), so a bad id is one rejected row, not a failed batch.
func validCustomerID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// setCustomer applies the prefix and checks the id.
func (r *row) setCustomer(raw, prefix string) string {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return reasonNoCustomer
	}
	id := prefix + raw
	if !validCustomerID(id) {
		return reasonCustomerID
	}
	r.customer = id
	return ""
}

// setMoney fills the amount from the signed amount and quantity. A negative
// quantity or amount is money going back to the customer: the row becomes a
// refund of the absolute value. A purchase may cost nothing (a free or fully
// discounted order is still a transaction); a refund of nothing is rejected.
func (r *row) setMoney(amount, quantity int64, unitPrice bool) string {
	if quantity == 0 {
		return reasonZeroQuantity
	}
	if amount < 0 || quantity < 0 {
		r.refund = true
	}
	if quantity < 0 {
		quantity = -quantity
	}
	if amount < 0 {
		amount = -amount
	}
	if unitPrice {
		total, err := mulMinor(amount, quantity)
		if err != nil {
			return err.Error()
		}
		r.unitPrice, amount = amount, total
	}
	if amount == 0 && r.refund {
		return reasonZeroAmount
	}
	r.amount, r.quantity = amount, quantity
	return ""
}

// timeLayouts are tried in order. The last one is the UCI Online Retail
// export ("12/1/2010 8:26"); month-first because that is what it uses.
var timeLayouts = []string{
	time.RFC3339,
	"2006-01-02 15:04:05",
	"2006-01-02",
	"20060102",
	"1/2/2006 15:04",
}

// parseTime reads a time in the first layout that fits; times without an
// offset are in loc.
func parseTime(s string, loc *time.Location) (time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	s = strings.TrimSpace(s)
	for _, layout := range timeLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New(reasonTime)
}

// readCDNOW reads the whitespace-separated CDNOW files. The sample file's
// customer is its second column, the sample id: that is the id the
// published model results are keyed by.
func readCDNOW(r io.Reader, sample bool, prefix string, p *parsed) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line, first := 0, true
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			p.skipped++
			continue
		}
		row, reason := parseCDNOW(text, sample, prefix)
		if first {
			first = false
			// A header is a first line that is not data and has words in it.
			if reason != "" && strings.IndexFunc(text, isLetter) >= 0 {
				p.skipped++
				continue
			}
		}
		row.line = line
		p.add(row, reason)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: %w", line+1, err)
	}
	return nil
}

func isLetter(r rune) bool { return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' }

// parseCDNOW reads one data line: "customer date cds dollars", or with
// sample, "master_id sample_id date cds dollars". Every row is one order of
// CDs, in dollars, on a day (midnight UTC).
func parseCDNOW(text string, sample bool, prefix string) (*row, string) {
	r := &row{currency: "USD", item: true, sku: "cd", category: "music"}
	f := strings.Fields(text)
	if sample {
		if len(f) != 5 {
			return r, reasonFields
		}
		f = f[1:] // the master id is not the customer
	} else if len(f) != 4 {
		return r, reasonFields
	}
	if reason := r.setCustomer(f[0], prefix); reason != "" {
		return r, reason
	}
	at, err := time.ParseInLocation("20060102", f[1], time.UTC)
	if err != nil || len(f[1]) != 8 {
		return r, reasonTime
	}
	r.at = at
	cds, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return r, reasonQuantity
	}
	dollars, err := parseMinor(f[3], money.Exponent("USD"))
	if err != nil {
		return r, err.Error()
	}
	return r, r.setMoney(dollars, cds, false)
}

// readCSV reads a CSV file with a header row through the mapping. A mapping
// that names a column the header lacks fails the whole read; everything
// wrong with a single row only rejects that row.
func readCSV(r io.Reader, m Mapping, prefix string, p *parsed) error {
	cr := csv.NewReader(r)
	if m.Delimiter != 0 {
		cr.Comma = m.Delimiter
	}
	cr.FieldsPerRecord = -1 // a short row is one rejection, not the end of the import
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: the file is empty, there is no header row", ErrMapping)
	}
	if err != nil {
		return fmt.Errorf("reading the header: %w", err)
	}
	cols, err := m.resolve(header)
	if err != nil {
		return err
	}
	p.skipped++
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			p.add(&row{line: perr.StartLine}, reasonMalformedCSV)
			continue
		}
		if err != nil {
			return err
		}
		line, _ := cr.FieldPos(0)
		row, reason := parseCSV(rec, cols, m, prefix)
		row.line = line
		p.add(row, reason)
	}
}

// parseCSV maps one record to a row.
func parseCSV(rec []string, c columns, m Mapping, prefix string) (*row, string) {
	r := &row{}
	short := false
	get := func(i int) string {
		if i < 0 {
			return ""
		}
		if i >= len(rec) {
			short = true
			return ""
		}
		return strings.TrimSpace(rec[i])
	}
	customer, order, at, amount := get(c.customer), get(c.order), get(c.time), get(c.amount)
	currency, quantity, sku, category := get(c.currency), get(c.quantity), get(c.sku), get(c.category)
	if short {
		return r, reasonFields
	}
	if reason := r.setCustomer(customer, prefix); reason != "" {
		return r, reason
	}
	if at == "" {
		return r, reasonNoTime
	}
	t, err := parseTime(at, m.Location)
	if err != nil {
		return r, reasonTime
	}
	r.at = t
	if currency == "" {
		currency = m.DefaultCurrency
	}
	if currency == "" {
		return r, reasonNoCurrency
	}
	if r.currency, err = normalizeCurrency(currency); err != nil {
		return r, err.Error()
	}
	if amount == "" {
		return r, reasonNoAmount
	}
	minor, err := parseMinor(amount, money.Exponent(r.currency))
	if err != nil {
		return r, err.Error()
	}
	qty := int64(1)
	if c.quantity >= 0 {
		if quantity == "" {
			return r, reasonNoQuantity
		}
		if qty, err = strconv.ParseInt(quantity, 10, 64); err != nil {
			return r, reasonQuantity
		}
	}
	r.order, r.sku, r.category = order, sku, category
	r.item = c.quantity >= 0 || c.sku >= 0 || c.category >= 0
	if m.CancelPrefix != "" && strings.HasPrefix(order, m.CancelPrefix) {
		r.refund, r.cancelled = true, true
	}
	return r, r.setMoney(minor, qty, m.AmountIsUnitPrice)
}
