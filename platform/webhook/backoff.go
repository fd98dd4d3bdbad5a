package webhook

import (
	"hash/fnv"
	"strconv"
	"time"
)

// Backoff bounds of DefaultBackoff.
const (
	MinBackoff = time.Second
	MaxBackoff = 10 * time.Minute
)

// DefaultBackoff is the wait after the attempt-th failed attempt (1 for the
// first) of the message with id: MinBackoff doubling per attempt up to
// MaxBackoff, less a jitter of up to a quarter, so the wait lies in
// (¾·base, base], truncated to the millisecond.
//
// The jitter spreads the retries of messages that failed together (a
// tenant's endpoint going down) so they do not return in one burst. It is
// derived from an FNV-1a hash of the id and the attempt number rather than a
// random source, so a message's schedule is reproducible: the same id always
// retries at the same offsets, which tests assert exactly.
func DefaultBackoff(id string, attempt int) time.Duration {
	base := MaxBackoff
	if n := max(attempt, 1) - 1; n < 20 { // 1 s << 20 is far past the cap
		base = min(MinBackoff<<n, MaxBackoff)
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write([]byte(strconv.Itoa(attempt)))
	jitter := time.Duration(uint64(base/4) * (h.Sum64() % 1000) / 1000)
	return (base - jitter).Truncate(time.Millisecond)
}
