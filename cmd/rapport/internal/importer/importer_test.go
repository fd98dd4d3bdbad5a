package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
)

func TestParseMinor(t *testing.T) {
	tests := []struct {
		in   string
		exp  int
		want int64
		err  error
	}{
		{"11.77", 2, 1177, nil},
		{"29.33", 2, 2933, nil},
		{"12", 2, 1200, nil},
		{"12.", 2, 1200, nil},
		{".5", 2, 50, nil},
		{"-3.5", 2, -350, nil},
		{"+7.01", 2, 701, nil},
		{"0.00", 2, 0, nil},
		{" 4.20 ", 2, 420, nil},
		{"1.250", 2, 125, nil}, // trailing zeros are exact
		{"0.1", 2, 10, nil},
		{"1000", 0, 1000, nil},  // JPY
		{"100.0", 0, 100, nil},  // JPY, exact
		{"1.234", 3, 1234, nil}, // BHD
		{"1.2", 3, 1200, nil},   // BHD
		{"92233720368547758.07", 2, 9223372036854775807, nil},
		{"92233720368547758.08", 2, 0, errAmountRange},
		{"100.5", 0, 0, errAmountPrecision},
		{"1.005", 2, 0, errAmountPrecision},
		{"1,234.50", 2, 0, errAmountSyntax},
		{"1.234,50", 2, 0, errAmountSyntax},
		{"1e3", 2, 0, errAmountSyntax},
		{"", 2, 0, errAmountSyntax},
		{".", 2, 0, errAmountSyntax},
		{"-", 2, 0, errAmountSyntax},
		{"--1", 2, 0, errAmountSyntax},
		{"1.2.3", 2, 0, errAmountSyntax},
		{"$5", 2, 0, errAmountSyntax},
		{"NaN", 2, 0, errAmountSyntax},
		{"1 000", 2, 0, errAmountSyntax},
	}
	for _, tt := range tests {
		got, err := parseMinor(tt.in, tt.exp)
		if !errors.Is(err, tt.err) || got != tt.want {
			t.Errorf("parseMinor(%q, %d) = %d, %v; want %d, %v", tt.in, tt.exp, got, err, tt.want, tt.err)
		}
	}
}

func TestParseTime(t *testing.T) {
	shanghai := time.FixedZone("CST", 8*3600)
	tests := []struct {
		in   string
		loc  *time.Location
		want time.Time
		bad  bool
	}{
		{in: "2010-12-01T08:26:00Z", want: time.Date(2010, 12, 1, 8, 26, 0, 0, time.UTC)},
		{in: "2010-12-01T08:26:00.5+01:00", want: time.Date(2010, 12, 1, 7, 26, 0, 5e8, time.UTC)},
		{in: "2010-12-01T08:26:00+01:00", loc: shanghai, want: time.Date(2010, 12, 1, 7, 26, 0, 0, time.UTC)}, // an offset wins over the zone
		{in: "2010-12-01 08:26:07", want: time.Date(2010, 12, 1, 8, 26, 7, 0, time.UTC)},
		{in: "2010-12-01 08:26:07", loc: shanghai, want: time.Date(2010, 12, 1, 0, 26, 7, 0, time.UTC)},
		{in: "2010-12-01", want: time.Date(2010, 12, 1, 0, 0, 0, 0, time.UTC)},
		{in: "19970101", want: time.Date(1997, 1, 1, 0, 0, 0, 0, time.UTC)},
		{in: "12/1/2010 8:26", want: time.Date(2010, 12, 1, 8, 26, 0, 0, time.UTC)},
		{in: "1/12/2011 14:05", want: time.Date(2011, 1, 12, 14, 5, 0, 0, time.UTC)},
		{in: " 2010-12-01 ", want: time.Date(2010, 12, 1, 0, 0, 0, 0, time.UTC)},
		{in: "2010-13-01", bad: true},
		{in: "19970230", bad: true},
		{in: "yesterday", bad: true},
		{in: "", bad: true},
		{in: "01.12.2010", bad: true},
	}
	for _, tt := range tests {
		got, err := parseTime(tt.in, tt.loc)
		if tt.bad {
			if err == nil {
				t.Errorf("parseTime(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("parseTime(%q, %v) = %v, %v; want %v", tt.in, tt.loc, got, err, tt.want)
		}
	}
}

func TestParseMapping(t *testing.T) {
	m, err := ParseMapping("customer=CustomerID, order=InvoiceNo,time=InvoiceDate,amount=UnitPrice,quantity=Quantity,sku=StockCode,currency=,default_currency=gbp,cancel_prefix=C,amount_is_unit_price,delimiter=;,tz=UTC")
	if err != nil {
		t.Fatal(err)
	}
	want := Mapping{Customer: "CustomerID", Order: "InvoiceNo", Time: "InvoiceDate", Amount: "UnitPrice",
		Quantity: "Quantity", SKU: "StockCode", DefaultCurrency: "gbp", CancelPrefix: "C",
		AmountIsUnitPrice: true, Delimiter: ';', Location: time.UTC}
	if m != want {
		t.Errorf("ParseMapping = %+v\nwant %+v", m, want)
	}
	if m, err := ParseMapping("customer=c,time=t,amount=a,currency=cur,delimiter=tab,amount_is_unit_price=false"); err != nil || m.Delimiter != '\t' || m.AmountIsUnitPrice {
		t.Errorf("ParseMapping(tab) = %+v, %v", m, err)
	}
}

func TestParseMappingErrors(t *testing.T) {
	for _, spec := range []string{
		"",                                     // nothing mapped
		"customer=c,time=t",                    // no amount
		"customer=c,amount=a,currency=x",       // no time
		"time=t,amount=a,currency=x",           // no customer
		"customer=c,time=t,amount=a",           // no currency at all
		"customer=c,time=t,amount=a,currency=", // currency unmapped, no default
		"customer=c,time=t,amount=a,default_currency=EURO",
		"customer=c,time=t,amount=a,default_currency=E1R",
		"customer=c,time=t,amount=a,default_currency=EUR,amount_is_unit_price", // no quantity
		"customer=c,time=t,amount=a,default_currency=EUR,cancel_prefix=C",      // no order
		"customer=c,time=t,amount=a,default_currency=EUR,colour=red",           // unknown key
		"customer=c,time=t,amount=a,default_currency=EUR,customer=d",           // twice
		"customer=c,time=t,amount,default_currency=EUR",                        // no value
		"customer=c,time=t,amount=a,default_currency=EUR,amount_is_unit_price=maybe,quantity=q",
		"customer=c,time=t,amount=a,default_currency=EUR,tz=Mars/Olympus_Mons",
		"customer=c,time=t,amount=a,default_currency=EUR,delimiter=ab",
		`customer=c,time=t,amount=a,default_currency=EUR,delimiter="`,
	} {
		if m, err := ParseMapping(spec); !errors.Is(err, ErrMapping) {
			t.Errorf("ParseMapping(%q) = %+v, %v; want ErrMapping", spec, m, err)
		}
	}
}

func TestParseCDNOW(t *testing.T) {
	day := time.Date(1997, 1, 12, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		line   string
		sample bool
		prefix string
		want   row
		reason string
	}{
		{line: " 00002 19970112  5   77.00", want: row{customer: "00002", at: day, amount: 7700, quantity: 5}},
		{line: "00001 19970112 1 11.77\r", want: row{customer: "00001", at: day, amount: 1177, quantity: 1}},
		{line: "00001 19970112 1 11.77", prefix: "cdnow:", want: row{customer: "cdnow:00001", at: day, amount: 1177, quantity: 1}},
		{line: " 00004 0001 19970112  2   29.33", sample: true, want: row{customer: "0001", at: day, amount: 2933, quantity: 2}},
		{line: "00001 19970112 -1 11.77", want: row{customer: "00001", at: day, amount: 1177, quantity: 1, refund: true}},
		{line: "00001 19970112 1 -11.77", want: row{customer: "00001", at: day, amount: 1177, quantity: 1, refund: true}},
		{line: "00455 19970112 1 0.00", want: row{customer: "00455", at: day, amount: 0, quantity: 1}},
		{line: "00455 19970112 -1 0.00", want: row{customer: "00455"}, reason: reasonZeroAmount},
		{line: "00001 19970112 0 11.77", want: row{customer: "00001"}, reason: reasonZeroQuantity},
		{line: "00001 19970112 1.5 11.77", want: row{customer: "00001"}, reason: reasonQuantity},
		{line: "00001 1997-01-12 1 11.77", want: row{customer: "00001"}, reason: reasonTime},
		{line: "00001 19970132 1 11.77", want: row{customer: "00001"}, reason: reasonTime},
		{line: "00001 19970112 1 11,77", want: row{customer: "00001"}, reason: errAmountSyntax.Error()},
		{line: "00001 19970112 1 11.775", want: row{customer: "00001"}, reason: errAmountPrecision.Error()},
		{line: "00001 19970112 1", reason: reasonFields},
		{line: "00004 0001 19970112 2 29.33", reason: reasonFields},          // a sample line read as master
		{line: "00001 19970112 1 11.77", sample: true, reason: reasonFields}, // and the other way round
		{line: "00/01 19970112 1 11.77", reason: reasonCustomerID},
	}
	for _, tt := range tests {
		got, reason := parseCDNOW(tt.line, tt.sample, tt.prefix)
		if reason != tt.reason || got.customer != tt.want.customer {
			t.Errorf("parseCDNOW(%q) = customer %q, reason %q; want %q, %q", tt.line, got.customer, reason, tt.want.customer, tt.reason)
			continue
		}
		if reason != "" {
			continue
		}
		want := tt.want
		want.currency, want.item, want.sku, want.category = "USD", true, "cd", "music"
		if *got != want {
			t.Errorf("parseCDNOW(%q) = %+v\nwant %+v", tt.line, *got, want)
		}
	}
}

func TestReadCDNOWSkipsHeaderAndBlankLines(t *testing.T) {
	in := " customer_id  date number_of_cds  dollar_value\r\n 00001 19970101  1   11.77\r\n\r\n 00002 19970112  1   12.00\r\n 00003 1997O112 1 1.00\r\n"
	var p parsed
	if err := readCDNOW(strings.NewReader(in), false, "", &p); err != nil {
		t.Fatal(err)
	}
	if p.read != 3 || p.skipped != 2 || len(p.rows) != 2 || len(p.rejected) != 1 {
		t.Fatalf("read %d skipped %d rows %d rejected %v", p.read, p.skipped, len(p.rows), p.rejected)
	}
	// Only the first line can be a header; letters later are a bad row.
	if r := p.rejected[0]; r.line != 5 || r.reason != reasonTime || r.customer != "00003" {
		t.Errorf("rejection %+v, want line 5, customer 00003, %s", r, reasonTime)
	}
	if p.rows[1].line != 4 {
		t.Errorf("line numbers count blank lines: got %d, want 4", p.rows[1].line)
	}
}

var idPattern = regexp.MustCompile(`^imp-[0-9a-f]{32}-[0-9]+$`)

func planOf(t *testing.T, format Format, in string) *plan {
	t.Helper()
	var p parsed
	var err error
	if format == FormatCSV {
		err = readCSV(strings.NewReader(in), testMapping, "", &p)
	} else {
		err = readCDNOW(strings.NewReader(in), format == FormatCDNOWSample, "", &p)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buildPlan(format, &p)
}

func TestEventIDs(t *testing.T) {
	in := "00001 19970101 1 11.77\n00002 19970112 1 12.00\n00001 19970101 1 11.77\n00001 19970101 2 11.77\n"
	a := planOf(t, FormatCDNOWMaster, in)
	b := planOf(t, FormatCDNOWMaster, in)
	// A row added on top moves every line number but no id.
	c := planOf(t, FormatCDNOWMaster, "00009 19970105 3 30.00\n"+in)
	// The same rows in another format are another file's facts.
	d := planOf(t, FormatCDNOWSample, "x1 00001 19970101 1 11.77\n")

	ids := func(pl *plan) []string {
		var out []string
		for _, e := range pl.purchases {
			out = append(out, e.id)
		}
		return out
	}
	got := ids(a)
	if len(got) != 4 {
		t.Fatalf("%d purchases, want 4", len(got))
	}
	for _, id := range got {
		if !idPattern.MatchString(id) {
			t.Errorf("id %q does not look like imp-<32 hex>-<n>", id)
		}
	}
	if !slices.Equal(got, ids(b)) {
		t.Errorf("ids differ between two plans of the same file:\n%v\n%v", got, ids(b))
	}
	if !slices.Equal(got, ids(c)[1:]) {
		t.Errorf("a row added on top changed the ids:\n%v\n%v", got, ids(c)[1:])
	}
	if got[0] == got[2] {
		t.Errorf("duplicate rows share id %s", got[0])
	}
	if strings.TrimSuffix(got[0], "-0") != strings.TrimSuffix(got[2], "-1") {
		t.Errorf("duplicate rows should differ only in n: %s, %s", got[0], got[2])
	}
	if got[3][:36] == got[0][:36] {
		t.Errorf("rows differing in quantity share a digest: %s, %s", got[0], got[3])
	}
	if d.purchases[0].customer != a.purchases[0].customer || d.purchases[0].id == got[0] {
		t.Errorf("the format is not part of the id")
	}
	// Without an order column the order id is the event id: unique per customer.
	for _, e := range a.purchases {
		if e.orderID != e.id {
			t.Errorf("order id %q, want the event id %q", e.orderID, e.id)
		}
	}
}

// testMapping reads a small CSV shaped like the UCI Online Retail export.
var testMapping = Mapping{
	Customer: "CustomerID", Order: "InvoiceNo", Time: "InvoiceDate", Amount: "UnitPrice",
	Quantity: "Quantity", SKU: "StockCode", DefaultCurrency: "GBP", CancelPrefix: "C",
	AmountIsUnitPrice: true,
}

const csvHeader = "InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID\n"

func TestRefundMatching(t *testing.T) {
	type refund struct {
		line  int
		order string // of the purchase refunded
	}
	type reject struct {
		line   int
		reason string
	}
	tests := []struct {
		name     string
		rows     string // after the header, which is line 1
		refunds  []refund
		rejected []reject
	}{{
		name: "partial refunds take from the latest purchase until it is used up",
		rows: "A1,x,2,12/1/2010 8:00,5.00,c1\n" + // 10.00
			"A2,x,1,12/2/2010 8:00,3.00,c1\n" + // 3.00
			"C9,x,-1,12/3/2010 8:00,2.00,c1\n" + // from A2, 1.00 left
			"C9,x,-1,12/3/2010 9:00,2.00,c1\n" + // A2 has too little: from A1, 8.00 left
			"C9,x,-4,12/3/2010 9:30,2.00,c1\n", // from A1, 0.00 left
		refunds: []refund{{4, "A2"}, {5, "A1"}, {6, "A1"}},
	}, {
		name: "an over-refund is rejected",
		rows: "A1,x,1,12/1/2010 8:00,5.00,c1\n" +
			"C9,x,-2,12/3/2010 8:00,5.00,c1\n",
		rejected: []reject{{3, reasonNoPurchaseLeft}},
	}, {
		name: "a refund before any purchase is rejected",
		rows: "C9,x,-1,12/1/2010 8:00,5.00,c1\n" +
			"A1,x,1,12/2/2010 8:00,5.00,c1\n",
		rejected: []reject{{2, reasonNoPurchaseLeft}},
	}, {
		name: "a refund only takes from its own customer",
		rows: "A1,x,1,12/1/2010 8:00,5.00,c1\n" +
			"C9,x,-1,12/2/2010 8:00,5.00,c2\n",
		rejected: []reject{{3, reasonNoPurchaseLeft}},
	}, {
		name: "a refund naming its order takes from that one, not the latest",
		rows: "A1,x,1,12/1/2010 8:00,5.00,c1\n" +
			"A2,x,1,12/2/2010 8:00,5.00,c1\n" +
			"A1,x,-1,12/3/2010 8:00,5.00,c1\n" + // negative quantity, order A1
			"A1,x,-1,12/3/2010 8:00,5.00,c1\n", // A1 is used up: rejected, not taken from A2
		refunds:  []refund{{4, "A1"}},
		rejected: []reject{{5, reasonOverRefund}},
	}, {
		name: "lines of one order are one purchase",
		rows: "A1,x,1,12/1/2010 8:00,5.00,c1\n" +
			"A1,y,3,12/1/2010 8:00,1.50,c1\n" + // A1 is 9.50
			"C9,y,-3,12/3/2010 8:00,1.50,c1\n" +
			"C9,x,-1,12/3/2010 8:00,5.00,c1\n",
		refunds: []refund{{4, "A1"}, {5, "A1"}},
	}, {
		name: "a negative price is a refund too",
		rows: "A1,x,1,12/1/2010 8:00,5.00,c1\n" +
			"A9,x,1,12/3/2010 8:00,-2.50,c1\n",
		refunds: []refund{{3, "A1"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl := planOf(t, FormatCSV, csvHeader+tt.rows)
			var refunds []refund
			for _, e := range pl.refunds {
				refunds = append(refunds, refund{e.rows[0].line, e.purchase.orderID})
				if e.orderID != e.purchase.orderID {
					t.Errorf("refund on line %d sent for order %q, matched %q", e.rows[0].line, e.orderID, e.purchase.orderID)
				}
			}
			var rejected []reject
			for _, r := range pl.rejected {
				rejected = append(rejected, reject{r.line, r.reason})
			}
			if !slices.Equal(refunds, tt.refunds) || !slices.Equal(rejected, tt.rejected) {
				t.Errorf("refunds %v, rejected %v; want %v, %v", refunds, rejected, tt.refunds, tt.rejected)
			}
		})
	}
}

func TestParseCSVRows(t *testing.T) {
	in := csvHeader +
		"536365,85123A,6,12/1/2010 8:26,2.55,17850\n" + // 15.30
		"536366,22633,,12/1/2010 8:28,1.85,17850\n" +
		"536367,22633,2,12/1/2010 8:28,1.85,\n" +
		"536368,22633,2,someday,1.85,17851\n" +
		"536369,22633,2,12/1/2010 8:28,\"1,85\",17851\n" +
		"536370,22633,0,12/1/2010 8:28,1.85,17851\n" +
		"536371,22633,2,12/1/2010 8:28,0.00,17851\n" +
		"536372,22633,2\n" +
		"536373,22633,2,12/1/2010 8:28,1.85,\"178\"52\"\n" +
		"536374,22633,2,12/1/2010 8:28,1.855,17853\n"
	var p parsed
	if err := readCSV(strings.NewReader(in), testMapping, "", &p); err != nil {
		t.Fatal(err)
	}
	if p.read != 10 || p.skipped != 1 || len(p.rows) != 2 {
		t.Fatalf("read %d skipped %d rows %d", p.read, p.skipped, len(p.rows))
	}
	r := p.rows[0]
	want := row{line: 2, customer: "17850", at: time.Date(2010, 12, 1, 8, 26, 0, 0, time.UTC), currency: "GBP",
		amount: 1530, item: true, quantity: 6, unitPrice: 255, sku: "85123A", order: "536365"}
	if *r != want {
		t.Errorf("row %+v\nwant %+v", *r, want)
	}
	var got []string
	for _, r := range p.rejected {
		got = append(got, fmt.Sprintf("%d:%s", r.line, r.reason))
	}
	wantRejected := []string{
		"3:" + reasonNoQuantity, "4:" + reasonNoCustomer, "5:" + reasonTime, "6:" + errAmountSyntax.Error(),
		"7:" + reasonZeroQuantity, "9:" + reasonFields, "10:" + reasonMalformedCSV,
		"11:" + errAmountPrecision.Error(),
	}
	if !slices.Equal(got, wantRejected) {
		t.Errorf("rejected\n%v\nwant\n%v", got, wantRejected)
	}
	if !slices.Equal(p.customers, []string{"17850", "17851", "17853"}) {
		t.Errorf("customers %v", p.customers)
	}
}

func TestRunRejectsMissingColumnBeforeSending(t *testing.T) {
	srv := newFakeProfile()
	client := dial(t, srv)
	m := testMapping
	m.Customer = "Customer ID"
	_, err := Run(tenantCtx(t), client, strings.NewReader(csvHeader+"536365,85123A,6,12/1/2010 8:26,2.55,17850\n"),
		Options{Format: FormatCSV, Mapping: m})
	if !errors.Is(err, ErrMapping) || !strings.Contains(err.Error(), `"Customer ID"`) {
		t.Fatalf("Run = %v, want ErrMapping naming the column", err)
	}
	if n := srv.calls(); n != 0 {
		t.Errorf("%d calls reached the service, want none", n)
	}
	if _, err := Run(tenantCtx(t), client, strings.NewReader(""), Options{Format: "excel"}); err == nil {
		t.Error("an unknown format was accepted")
	}
}

const smallCDNOW = ` customer_id  date number_of_cds  dollar_value
 00001 19970101  1   11.77
 00002 19970112  1   12.00
 00002 19970112  5   77.00
 00002 19970112  5   77.00
 00003 19970102  2   20.76
 00003 19970330  2   20.76
 00455 19970102  1    0.00
 00004 19970101  2   -9.00
`

func TestRunTwiceAddsNothing(t *testing.T) {
	srv := newFakeProfile()
	client := dial(t, srv)
	opts := Options{Format: FormatCDNOWMaster, BatchSize: 2, Concurrency: 3}

	first, err := Run(tenantCtx(t), client, strings.NewReader(smallCDNOW), opts)
	if err != nil {
		t.Fatal(err)
	}
	want := Summary{Format: FormatCDNOWMaster, RowsRead: 8, Imported: 7, Skipped: 1, Rejected: 1,
		Customers: 5, CustomersCreated: 5, Purchases: 7,
		Reasons: []Rejection{{reasonNoPurchaseLeft, 1, []int{9}}}}
	checkSummary(t, first, want)
	events := srv.eventCount()
	if events != 7 {
		t.Errorf("the service holds %d events, want 7 (the $0 purchase is one)", events)
	}

	second, err := Run(tenantCtx(t), client, strings.NewReader(smallCDNOW), opts)
	if err != nil {
		t.Fatal(err)
	}
	want.Imported, want.AlreadyPresent, want.CustomersCreated = 0, 7, 0
	checkSummary(t, second, want)
	if srv.eventCount() != events {
		t.Errorf("the second run stored %d more events", srv.eventCount()-events)
	}
}

func TestRunCDNOWSample(t *testing.T) {
	f, err := os.Open("/work/shared/data/cdnow/CDNOW_sample.txt")
	if err != nil {
		t.Skipf("the CDNOW data is not here: %v", err)
	}
	defer f.Close()
	srv := newFakeProfile()
	sum, err := Run(tenantCtx(t), dial(t, srv), f, Options{Format: FormatCDNOWSample, BatchSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if sum.RowsRead != 6919 || sum.Customers != 2357 || sum.CustomersCreated != 2357 {
		t.Errorf("rows %d, customers %d (%d created); want 6919 rows and 2357 customers",
			sum.RowsRead, sum.Customers, sum.CustomersCreated)
	}
	// Eight rows are $0 purchases: transactions all the same, as in the literature.
	if sum.Imported != 6919 || sum.Rejected != 0 {
		t.Errorf("imported %d, rejected %d %+v; want all 6919", sum.Imported, sum.Rejected, sum.Reasons)
	}
	if got := srv.customerCount(); got != 2357 {
		t.Errorf("the service holds %d customers, want 2357", got)
	}
	if got := srv.eventCount(); got != 6919 {
		t.Errorf("the service holds %d events, want 6919", got)
	}
	// 00004 0001 19970101 2 29.33 is customer 0001's first purchase.
	e := srv.eventsOf("0001")[0]
	p := e.GetPurchase()
	if e.GetSource() != "import" || p.GetAmount().GetAmountMinor() != 2933 || p.GetAmount().GetCurrency() != "USD" ||
		!e.GetOccurTime().AsTime().Equal(time.Date(1997, 1, 1, 0, 0, 0, 0, time.UTC)) ||
		len(p.GetItems()) != 1 || p.GetItems()[0].GetQuantity() != 2 || p.GetItems()[0].GetSku() != "cd" || p.GetOrderId() != e.GetEventId() {
		t.Errorf("first event of 0001: %v", e)
	}
}

func TestRunRecordsRefundsAfterTheirPurchases(t *testing.T) {
	in := csvHeader
	// Ten customers, each with two orders and refunds of both; with batches
	// of three, refunds would reach the service before their purchases if
	// the importer sent in file order with batches in flight.
	for c := range 10 {
		in += fmt.Sprintf("A%d,x,2,12/1/2010 8:00,5.00,c%d\n", c, c)
		in += fmt.Sprintf("C%d,x,-1,12/1/2010 9:00,5.00,c%d\n", c, c)
		in += fmt.Sprintf("B%d,y,1,12/2/2010 8:00,7.00,c%d\n", c, c)
		in += fmt.Sprintf("C%d,y,-1,12/2/2010 9:00,7.00,c%d\n", c, c)
		in += fmt.Sprintf("C%d,x,-1,12/2/2010 9:00,5.00,c%d\n", c, c)
	}
	srv := newFakeProfile()
	sum, err := Run(tenantCtx(t), dial(t, srv), strings.NewReader(in),
		Options{Format: FormatCSV, Mapping: testMapping, BatchSize: 3, Concurrency: 4, Source: "retail"})
	if err != nil {
		t.Fatal(err)
	}
	checkSummary(t, sum, Summary{Format: FormatCSV, RowsRead: 50, Imported: 50, Skipped: 1,
		Customers: 10, CustomersCreated: 10, Purchases: 20, Refunds: 30})
	// c3's refunds: 5.00 from A3, then 7.00 from B3 (the latest), then 5.00
	// from A3 again, because B3 has nothing left.
	refunded := map[string]int64{}
	for _, e := range srv.eventsOf("c3") {
		if r := e.GetRefund(); r != nil {
			if !r.GetCancellation() || r.GetAmount().GetCurrency() != "GBP" || e.GetSource() != "retail" {
				t.Errorf("refund %v", e)
			}
			refunded[r.GetOrderId()] += r.GetAmount().GetAmountMinor()
		}
	}
	if refunded["A3"] != 1000 || refunded["B3"] != 700 || len(refunded) != 2 {
		t.Errorf("refunded per order %v, want A3:1000 B3:700", refunded)
	}
}

func TestRunRetriesTransientFailures(t *testing.T) {
	srv := newFakeProfile()
	srv.failures = []codes.Code{codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded}
	ru := newRunner(dial(t, srv), Options{Format: FormatCDNOWMaster, Concurrency: 1})
	var waits []time.Duration
	ru.sleep = func(_ context.Context, d time.Duration) error {
		waits = append(waits, d)
		return nil
	}
	sum, err := ru.run(tenantCtx(t), strings.NewReader(smallCDNOW))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Imported != 7 {
		t.Errorf("imported %d, want 7", sum.Imported)
	}
	if want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}; !slices.Equal(waits, want) {
		t.Errorf("waited %v, want %v", waits, want)
	}
}

func TestRunStopsOnPermanentFailure(t *testing.T) {
	srv := newFakeProfile()
	srv.failures = []codes.Code{codes.OK, codes.PermissionDenied} // customers pass, the first event batch fails
	ru := newRunner(dial(t, srv), Options{Format: FormatCDNOWMaster, Concurrency: 1, BatchSize: 2})
	ru.sleep = func(context.Context, time.Duration) error { t.Error("retried a permanent failure"); return nil }
	sum, err := ru.run(tenantCtx(t), strings.NewReader(smallCDNOW))
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Run = %v, want PermissionDenied", err)
	}
	if sum == nil || sum.NotSent != 7 || sum.RowsRead != 8 {
		t.Errorf("summary %+v, want 7 rows not sent", sum)
	}
}

func TestRunRejectsRowsOfCustomersTheServiceRefuses(t *testing.T) {
	srv := newFakeProfile()
	srv.refuseCustomer = "00002"
	sum, err := Run(tenantCtx(t), dial(t, srv), strings.NewReader(smallCDNOW), Options{Format: FormatCDNOWMaster})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Imported != 4 || sum.Rejected != 4 || sum.CustomersCreated != 4 {
		t.Errorf("summary %+v", sum)
	}
	if r := sum.Reasons[0]; r.Reason != "customer not created: customer refused" || r.Count != 3 || !slices.Equal(r.Lines, []int{3, 4, 5}) {
		t.Errorf("reasons %+v", sum.Reasons)
	}
}

// stepClock moves forward by step every time it is read, so that a run
// sees time pass without anyone sleeping.
type stepClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.step)
	return c.now
}

func TestProgress(t *testing.T) {
	clock := &stepClock{now: time.Unix(0, 0), step: 30 * time.Millisecond}
	var out bytes.Buffer
	p := newProgress(&out, clock, 100)
	for range 10 {
		p.add(10)
	}
	p.finish()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\r")[1:]
	// Each add reads the clock once, 30ms apart: the 4th and the 8th are
	// 120ms after the previous draw, the others too early.
	if len(lines) != 1+2+1 {
		t.Errorf("%d draws, want 4 (start, two at 100ms or more, finish): %q", len(lines), lines)
	}
	last := strings.TrimSpace(lines[len(lines)-1])
	if !strings.Contains(last, "100/100 rows") || !strings.Contains(last, "100%") || !strings.Contains(last, "ETA 0s") {
		t.Errorf("last draw %q", last)
	}
	if !strings.HasSuffix(out.String(), "\n") {
		t.Error("the bar's line is not ended")
	}
	var nilProgress *progress
	nilProgress.add(1) // draws nothing, does not panic
	nilProgress.finish()
}

func TestProgressLine(t *testing.T) {
	got := progressLine(1200, 6000, 2*time.Second)
	want := "[======>                       ] 1200/6000 rows   20%  600 rows/s  ETA 8s"
	if got != want {
		t.Errorf("progressLine =\n%q\nwant\n%q", got, want)
	}
	if got := progressLine(0, 10, 0); !strings.Contains(got, "- rows/s  ETA -") {
		t.Errorf("progressLine at start = %q", got)
	}
}

func TestRunDrawsProgressOnlyOnATerminal(t *testing.T) {
	for _, terminal := range []bool{false, true} {
		var out bytes.Buffer
		clock := &stepClock{now: time.Unix(0, 0), step: time.Second}
		sum, err := Run(tenantCtx(t), dial(t, newFakeProfile()), strings.NewReader(smallCDNOW),
			Options{Format: FormatCDNOWMaster, Progress: &out, IsTerminal: terminal, Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		if !terminal && out.Len() != 0 {
			t.Errorf("drew %q on a non-terminal", out.String())
		}
		if terminal && !strings.Contains(out.String(), "8/8 rows") {
			t.Errorf("drew %q on a terminal", out.String())
		}
		if sum.Elapsed <= 0 {
			t.Errorf("elapsed %v from the clock", sum.Elapsed)
		}
	}
}

func TestSummaryPrint(t *testing.T) {
	s := &Summary{RowsRead: 6919, Imported: 6911, Rejected: 8, Customers: 2357, CustomersCreated: 2357,
		Reasons: []Rejection{{reasonZeroAmount, 8, []int{87, 155, 227, 286, 1080}}}, Elapsed: 2 * time.Second}
	var out bytes.Buffer
	if err := s.Print(&out); err != nil {
		t.Fatal(err)
	}
	want := `rows read       6919
imported        6911
already present    0
skipped            0  header and blank lines
rejected           8
customers       2357  2357 created
rejected rows by reason:
  8  zero amount  (line 87, 155, 227, 286, 1080, …)
elapsed 2s, 3460 rows/s
`
	if out.String() != want {
		t.Errorf("Print =\n%s\nwant\n%s", out.String(), want)
	}
}

func checkSummary(t *testing.T, got *Summary, want Summary) {
	t.Helper()
	g := *got
	g.Elapsed = 0
	if fmt.Sprintf("%+v", g) != fmt.Sprintf("%+v", want) {
		t.Errorf("summary\n%+v\nwant\n%+v", g, want)
	}
}

// ---- the profile service, in memory, over a real gRPC connection ----

const tenantKey = "x-rapport-tenant"

func tenantCtx(t *testing.T) context.Context {
	return metadata.AppendToOutgoingContext(t.Context(), tenantKey, "acme")
}

type purchaseState struct {
	currency  string
	remaining int64
}

// fakeProfile keeps customers and events in maps and enforces the rules
// the importer relies on: event ids are idempotency keys, order ids are
// unique per customer, refunds need their purchase and may not exceed it.
type fakeProfile struct {
	profilev1.UnimplementedProfileServiceServer

	mu             sync.Mutex
	n              int // calls
	failures       []codes.Code
	refuseCustomer string
	customers      map[string]*profilev1.Customer
	events         map[string]*profilev1.Event
	timeline       map[string][]*profilev1.Event
	orders         map[orderKey]*purchaseState
}

func newFakeProfile() *fakeProfile {
	return &fakeProfile{
		customers: map[string]*profilev1.Customer{},
		events:    map[string]*profilev1.Event{},
		timeline:  map[string][]*profilev1.Event{},
		orders:    map[orderKey]*purchaseState{},
	}
}

func (s *fakeProfile) calls() int         { s.mu.Lock(); defer s.mu.Unlock(); return s.n }
func (s *fakeProfile) eventCount() int    { s.mu.Lock(); defer s.mu.Unlock(); return len(s.events) }
func (s *fakeProfile) customerCount() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.customers) }
func (s *fakeProfile) eventsOf(id string) []*profilev1.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.timeline[id]
}

// enter counts a call, checks the tenant and plays the next scripted failure.
func (s *fakeProfile) enter(ctx context.Context, items int) error {
	s.n++
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get(tenantKey)) != 1 {
		return status.Error(codes.Unauthenticated, "no tenant")
	}
	if items > 1000 {
		return status.Errorf(codes.InvalidArgument, "%d items, at most 1000", items)
	}
	if len(s.failures) > 0 {
		code := s.failures[0]
		s.failures = s.failures[1:]
		if code != codes.OK {
			return status.Error(code, "scripted failure")
		}
	}
	return nil
}

func (s *fakeProfile) BatchCreateCustomers(ctx context.Context, req *profilev1.BatchCreateCustomersRequest) (*profilev1.BatchCreateCustomersResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(ctx, len(req.GetCustomers())); err != nil {
		return nil, err
	}
	resp := &profilev1.BatchCreateCustomersResponse{}
	for _, c := range req.GetCustomers() {
		res := &profilev1.CreateCustomerResult{Status: status.New(codes.OK, "").Proto()}
		switch old := s.customers[c.GetCustomerId()]; {
		case c.GetCustomerId() == s.refuseCustomer:
			res.Status = status.New(codes.InvalidArgument, "customer refused").Proto()
		case !validCustomerID(c.GetCustomerId()) || c.GetKind() != profilev1.CustomerKind_CUSTOMER_KIND_PERSON || c.GetDisplayName() == "":
			res.Status = status.New(codes.InvalidArgument, "bad customer").Proto()
		case old != nil && !proto.Equal(old, c):
			res.Status = status.New(codes.AlreadyExists, "customer exists").Proto()
		case old != nil:
			res.Customer = old
		default:
			s.customers[c.GetCustomerId()] = c
			res.Customer, res.Created = c, true
		}
		resp.Results = append(resp.Results, res)
	}
	return resp, nil
}

func (s *fakeProfile) BatchRecordEvents(ctx context.Context, req *profilev1.BatchRecordEventsRequest) (*profilev1.BatchRecordEventsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(ctx, len(req.GetEvents())); err != nil {
		return nil, err
	}
	resp := &profilev1.BatchRecordEventsResponse{}
	for _, e := range req.GetEvents() {
		res := &profilev1.RecordEventResult{Status: status.New(codes.OK, "").Proto()}
		if err := s.record(e); err != nil {
			res.Status = status.Convert(err).Proto()
		} else {
			res.Event = s.events[e.GetEventId()]
			res.Created = res.Event == e
		}
		resp.Results = append(resp.Results, res)
	}
	return resp, nil
}

func (s *fakeProfile) record(e *profilev1.Event) error {
	if old := s.events[e.GetEventId()]; old != nil {
		if !proto.Equal(old, e) {
			return status.Error(codes.AlreadyExists, "event id reused with other content")
		}
		return nil
	}
	if s.customers[e.GetCustomerId()] == nil {
		return status.Error(codes.NotFound, "no such customer")
	}
	if e.GetOccurTime() == nil {
		return status.Error(codes.InvalidArgument, "occur_time is required")
	}
	switch {
	case e.GetPurchase() != nil:
		p := e.GetPurchase()
		if p.GetAmount().GetAmountMinor() < 0 {
			return status.Error(codes.InvalidArgument, "purchase amount must not be negative")
		}
		for _, it := range p.GetItems() {
			if it.GetQuantity() < 1 {
				return status.Error(codes.InvalidArgument, "quantity must be at least 1")
			}
		}
		key := orderKey{e.GetCustomerId(), p.GetOrderId()}
		if p.GetOrderId() == "" || s.orders[key] != nil {
			return status.Error(codes.AlreadyExists, "order id already used")
		}
		s.orders[key] = &purchaseState{p.GetAmount().GetCurrency(), p.GetAmount().GetAmountMinor()}
	case e.GetRefund() != nil:
		r := e.GetRefund()
		o := s.orders[orderKey{e.GetCustomerId(), r.GetOrderId()}]
		switch {
		case o == nil:
			return status.Error(codes.FailedPrecondition, "refund of an unknown order")
		case o.currency != r.GetAmount().GetCurrency():
			return status.Error(codes.InvalidArgument, "refund in another currency")
		case r.GetAmount().GetAmountMinor() <= 0 || r.GetAmount().GetAmountMinor() > o.remaining:
			return status.Error(codes.FailedPrecondition, "refund exceeds what is left of the purchase")
		}
		o.remaining -= r.GetAmount().GetAmountMinor()
	default:
		return status.Error(codes.InvalidArgument, "an event needs a kind")
	}
	s.events[e.GetEventId()] = e
	s.timeline[e.GetCustomerId()] = append(s.timeline[e.GetCustomerId()], e)
	return nil
}

// dial serves srv over an in-memory listener and returns a client of it.
func dial(t *testing.T, srv profilev1.ProfileServiceServer) profilev1.ProfileServiceClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
	profilev1.RegisterProfileServiceServer(gs, srv)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return profilev1.NewProfileServiceClient(conn)
}
