package importer

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// outcome is what became of an event.
type outcome int

const (
	pending  outcome = iota
	created          // recorded by this run
	present          // recorded by an earlier run: the service answered with the stored event
	rejected         // refused, by the importer or by the service
)

// event is one record to send: a purchase made of one or more rows (the
// lines of one order) or a refund made of exactly one row.
type event struct {
	id       string
	refund   bool
	customer string
	at       time.Time
	currency string
	amount   int64
	orderID  string // the order id sent: the order column, or the event id
	rows     []*row

	remaining int64  // purchases: what refunds in this file have not taken yet
	purchase  *event // refunds: the purchase refunded

	outcome outcome
	reason  string // why it was rejected
}

// plan is a file turned into events, before anything is sent.
type plan struct {
	purchases []*event
	refunds   []*event
	rejected  []rejection
	customers []string
	read      int
	skipped   int
}

// orderKey identifies an order: order ids are unique per customer only.
type orderKey struct{ customer, order string }

// buildPlan groups the rows into events, derives their ids and matches each
// refund to a purchase. It is pure: the same file gives the same plan, which
// is what makes re-imports collide on event ids.
func buildPlan(format Format, p *parsed) *plan {
	pl := &plan{rejected: p.rejected, customers: p.customers, read: p.read, skipped: p.skipped}
	orders := map[orderKey]*event{}
	byCustomer := map[string][]*event{}
	var refundRows []*row
	for _, r := range p.rows {
		if r.refund {
			refundRows = append(refundRows, r)
			continue
		}
		if r.order != "" {
			// Rows of one order are its lines: the service keeps order ids
			// unique per customer, so they must travel as one purchase.
			if e := orders[orderKey{r.customer, r.order}]; e != nil {
				if e.currency != r.currency {
					pl.rejected = append(pl.rejected, rejection{r.line, r.customer, reasonMixedCurrency})
					continue
				}
				e.rows = append(e.rows, r)
				e.amount += r.amount
				e.remaining = e.amount
				continue
			}
		}
		e := &event{customer: r.customer, at: r.at, currency: r.currency, amount: r.amount,
			remaining: r.amount, orderID: r.order, rows: []*row{r}}
		if r.order != "" {
			orders[orderKey{r.customer, r.order}] = e
		}
		byCustomer[r.customer] = append(byCustomer[r.customer], e)
		pl.purchases = append(pl.purchases, e)
	}

	ids := idCounter{format: format, seen: map[string]int{}}
	for _, e := range pl.purchases {
		e.id = ids.next(e)
		if e.orderID == "" {
			e.orderID = e.id
		}
	}
	for _, r := range refundRows {
		target, reason := matchRefund(r, orders, byCustomer[r.customer])
		if reason != "" {
			pl.rejected = append(pl.rejected, rejection{r.line, r.customer, reason})
			continue
		}
		target.remaining -= r.amount
		e := &event{refund: true, customer: r.customer, at: r.at, currency: r.currency,
			amount: r.amount, orderID: target.orderID, rows: []*row{r}, purchase: target}
		e.id = ids.next(e)
		pl.refunds = append(pl.refunds, e)
	}
	return pl
}

// matchRefund finds the purchase a refund row takes its money back from. An
// order id that names an earlier purchase of the customer wins; otherwise it
// is the customer's most recent earlier purchase in the same currency that
// still has enough left, which is how a shop refunds when it does not say
// which order: the last thing bought.
func matchRefund(r *row, orders map[orderKey]*event, purchases []*event) (*event, string) {
	if e := orders[orderKey{r.customer, r.order}]; r.order != "" && e != nil && e.rows[0].line < r.line {
		switch {
		case e.currency != r.currency:
			return nil, reasonRefundCurrency
		case e.remaining < r.amount:
			return nil, reasonOverRefund
		}
		return e, ""
	}
	for i := len(purchases) - 1; i >= 0; i-- {
		e := purchases[i]
		if e.rows[0].line > r.line || e.at.After(r.at) || e.currency != r.currency || e.remaining < r.amount {
			continue
		}
		return e, ""
	}
	return nil, reasonNoPurchaseLeft
}

// idCounter derives event ids from content. The id is
//
//	imp-<hex of the first 16 bytes of sha256(fields)>-<n>
//
// where fields are, each written as <decimal length>":"<bytes> so that no
// value can run into the next:
//
//	format, kind ("purchase" | "refund"), customer, order column, currency,
//	then for every row of the event: time (RFC 3339 UTC, nanoseconds),
//	amount (minor units), quantity, sku, category, cancelled ("true" | "false")
//
// and n counts the earlier events of the same file with the same digest.
// Line numbers are left out on purpose: a file with a row added on top
// still maps every old row to its old id. n keeps genuine duplicate rows
// (two identical CDs bought the same day) apart, and is the same on every
// run of the same file.
type idCounter struct {
	format Format
	seen   map[string]int
}

func (c *idCounter) next(e *event) string {
	h := sha256.New()
	buf := make([]byte, 0, 64)
	field := func(s string) {
		buf = strconv.AppendInt(buf[:0], int64(len(s)), 10)
		buf = append(buf, ':')
		buf = append(buf, s...)
		h.Write(buf)
	}
	kind := "purchase"
	if e.refund {
		kind = "refund"
	}
	field(string(c.format))
	field(kind)
	field(e.customer)
	field(e.rows[0].order)
	field(e.currency)
	for _, r := range e.rows {
		field(r.at.UTC().Format(time.RFC3339Nano))
		field(strconv.FormatInt(r.amount, 10))
		field(strconv.FormatInt(r.quantity, 10))
		field(r.sku)
		field(r.category)
		field(strconv.FormatBool(r.cancelled))
	}
	digest := hex.EncodeToString(h.Sum(nil)[:16])
	n := c.seen[digest]
	c.seen[digest] = n + 1
	return "imp-" + digest + "-" + strconv.Itoa(n)
}
