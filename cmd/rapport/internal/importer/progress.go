package importer

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// redrawEvery limits redraws: ten a second look live, more only cost.
const redrawEvery = 100 * time.Millisecond

// progress draws a one-line bar, redrawn in place with \r. A nil *progress
// draws nothing, so callers need not check whether a terminal is attached.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	clock Clock
	start time.Time
	last  time.Time // of the last redraw
	total int
	done  int
	width int // of the last line drawn, to blank out what a shorter one leaves
}

func newProgress(w io.Writer, c Clock, total int) *progress {
	if w == nil {
		return nil
	}
	p := &progress{w: w, clock: c, start: c.Now(), total: total}
	p.draw(p.start)
	return p
}

// add counts n more rows as done and redraws if the last redraw is old enough.
func (p *progress) add(n int) {
	if p == nil || n == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if now := p.clock.Now(); now.Sub(p.last) >= redrawEvery {
		p.draw(now)
	}
}

// finish draws the final state and ends the line, so that what follows
// starts on a clean one.
func (p *progress) finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draw(p.clock.Now())
	fmt.Fprintln(p.w)
}

func (p *progress) draw(now time.Time) {
	p.last = now
	line := progressLine(p.done, p.total, now.Sub(p.start))
	pad := max(0, p.width-len(line))
	p.width = len(line)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
}

// progressLine renders "[=====>    ] 1200/6919 rows  17%  3000 rows/s  ETA 2s".
func progressLine(done, total int, elapsed time.Duration) string {
	const width = 30
	frac := 1.0
	if total > 0 {
		frac = float64(min(done, total)) / float64(total)
	}
	filled := int(frac * width)
	bar := strings.Repeat("=", filled)
	if filled < width {
		bar += ">" + strings.Repeat(" ", width-filled-1)
	}
	rate, eta := "-", "-"
	if s := elapsed.Seconds(); s > 0 && done > 0 {
		r := float64(done) / s
		rate = fmt.Sprintf("%.0f", r)
		eta = time.Duration(float64(total-done) / r * float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("[%s] %d/%d rows  %3.0f%%  %s rows/s  ETA %s", bar, done, total, 100*frac, rate, eta)
}
