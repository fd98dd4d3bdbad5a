package importer

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// linesPerReason is how many line numbers the summary keeps per reason:
// enough to open the file and see the pattern, few enough to print.
const linesPerReason = 5

// Summary is the account of an import. Every data row ends in exactly one
// of Imported, AlreadyPresent, Rejected or NotSent, so they add up to
// RowsRead; a re-run of a file that went through reports what was imported
// as AlreadyPresent and rejects the same rows again.
type Summary struct {
	// Format is the file layout that was read.
	Format Format
	// RowsRead is the number of data rows (header and blank lines excluded).
	RowsRead int
	// Imported is the number of rows recorded by this run.
	Imported int
	// AlreadyPresent is the number of rows an earlier run had recorded.
	AlreadyPresent int
	// Skipped is the number of header and blank lines. (encoding/csv drops
	// blank lines unseen, so for CSV it is the header only.)
	Skipped int
	// Rejected is the number of rows refused, by the importer or the service.
	Rejected int
	// NotSent is the number of rows left unsent because the run failed.
	NotSent int
	// Reasons breaks Rejected down, most frequent first.
	Reasons []Rejection
	// Customers is the number of distinct customers in the file.
	Customers int
	// CustomersCreated is the number of customers this run created.
	CustomersCreated int
	// Purchases and Refunds count the events of each kind now stored
	// (created or already present); a purchase is one order, which may span
	// several rows.
	Purchases, Refunds int
	// Elapsed is the wall time of the run.
	Elapsed time.Duration
}

// Rejection counts the rows refused for one reason.
type Rejection struct {
	// Reason says why, in words shared by every row it applies to.
	Reason string
	// Count is the number of rows.
	Count int
	// Lines are the first few line numbers, ascending, to look at.
	Lines []int
}

// RowsPerSecond is the throughput of the run.
func (s *Summary) RowsPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.RowsRead) / s.Elapsed.Seconds()
}

// tally fills the row counts from the plan's outcomes.
func (s *Summary) tally(pl *plan) {
	s.RowsRead, s.Skipped = pl.read, pl.skipped
	s.Imported, s.AlreadyPresent, s.Rejected, s.NotSent = 0, 0, 0, 0
	s.Purchases, s.Refunds = 0, 0
	rejections := slices.Clone(pl.rejected)
	for _, e := range slices.Concat(pl.purchases, pl.refunds) {
		switch e.outcome {
		case created:
			s.Imported += len(e.rows)
		case present:
			s.AlreadyPresent += len(e.rows)
		case rejected:
			for _, r := range e.rows {
				rejections = append(rejections, rejection{r.line, r.customer, e.reason})
			}
		default:
			s.NotSent += len(e.rows)
		}
		if e.outcome == created || e.outcome == present {
			if e.refund {
				s.Refunds++
			} else {
				s.Purchases++
			}
		}
	}
	s.Rejected = len(rejections)
	slices.SortFunc(rejections, func(a, b rejection) int { return cmp.Compare(a.line, b.line) })
	byReason := map[string]int{} // index in s.Reasons
	s.Reasons = nil
	for _, r := range rejections {
		i, ok := byReason[r.reason]
		if !ok {
			i = len(s.Reasons)
			byReason[r.reason] = i
			s.Reasons = append(s.Reasons, Rejection{Reason: r.reason})
		}
		rr := &s.Reasons[i]
		rr.Count++
		if len(rr.Lines) < linesPerReason {
			rr.Lines = append(rr.Lines, r.line)
		}
	}
	slices.SortStableFunc(s.Reasons, func(a, b Rejection) int { return cmp.Compare(b.Count, a.Count) })
}

// Print writes the summary for a person to read, for example
//
//	rows read       6919
//	imported        6911
//	already present    0
//	skipped            0  header and blank lines
//	rejected           8
//	customers       2357  2357 created
//	rejected rows by reason:
//	  8  zero amount  (line 87, 155, 227, 286, 1080, …)
//	elapsed 1.204s, 5747 rows/s
func (s *Summary) Print(w io.Writer) error {
	var b strings.Builder
	digits := len(fmt.Sprint(max(s.RowsRead, s.Customers)))
	row := func(label string, n int, note string) {
		line := fmt.Sprintf("%-15s %*d  %s", label, digits, n, note)
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	row("rows read", s.RowsRead, "")
	row("imported", s.Imported, "")
	row("already present", s.AlreadyPresent, "")
	row("skipped", s.Skipped, "header and blank lines")
	row("rejected", s.Rejected, "")
	if s.NotSent > 0 {
		row("not sent", s.NotSent, "the run stopped; run it again")
	}
	row("customers", s.Customers, fmt.Sprintf("%d created", s.CustomersCreated))
	if len(s.Reasons) > 0 {
		b.WriteString("rejected rows by reason:\n")
		width := len(fmt.Sprint(s.Reasons[0].Count))
		for _, r := range s.Reasons {
			lines := make([]string, len(r.Lines))
			for i, l := range r.Lines {
				lines[i] = fmt.Sprint(l)
			}
			more := ""
			if r.Count > len(r.Lines) {
				more = ", …"
			}
			fmt.Fprintf(&b, "  %*d  %s  (line %s%s)\n", width, r.Count, r.Reason, strings.Join(lines, ", "), more)
		}
	}
	fmt.Fprintf(&b, "elapsed %s, %.0f rows/s\n", s.Elapsed.Round(time.Millisecond), s.RowsPerSecond())
	_, err := io.WriteString(w, b.String())
	return err
}
