// Package webhook is a durable outbox for outgoing webhooks: messages a
// service sends to a tenant's HTTP endpoint (the care service's automatic
// messages to customers, and later others).
//
// # Enqueue in the caller's transaction
//
// Outbox.Enqueue stores a message in the caller's bbolt transaction, next to
// the state change that caused it (a care timer firing): the message exists
// if and only if that change committed. The message id is an idempotency key,
// unique per tenant: enqueueing an id the outbox already knows — pending,
// delivered or dead — is a no-op, and the first message stored under it wins.
//
// # Delivery
//
// Outbox.Run delivers due messages, the oldest due first, with at most
// Options.MaxInFlight requests at a time. It sleeps until the next retry is
// due on the injected clock, or until a transaction that enqueued (or a
// Replay) commits. Each attempt is one POST:
//
//	Content-Type:        application/json
//	X-Rapport-Event:     the message's event type
//	X-Rapport-Delivery:  the message id; receivers deduplicate on it
//	X-Rapport-Timestamp: the send time, unix seconds
//	X-Rapport-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//
// The outcome decides what happens next, each in one transaction:
//
//   - 2xx: delivered. The message leaves the outbox; a small record (attempts,
//     last status, delivery time) is kept for Get and for idempotency.
//   - 408, 429, 5xx, a timeout or a connection error: retried after
//     Options.Backoff (by default 1 s doubling to 10 min, see DefaultBackoff),
//     until Options.MaxAttempts attempts have failed; then dead-lettered.
//   - any other status (4xx, and 3xx since redirects are not followed): the
//     receiver rejected the message and retrying will not change that, so it
//     is dead-lettered at once.
//
// Dead letters are listed by DeadLetters and sent again by Replay.
//
// # At least once
//
// A message leaves the outbox only in the transaction that records its 2xx.
// If the process stops after the receiver answered and before that commit
// (a crash, a shutdown in the middle of a request), the message is still in
// the outbox and is sent again after the restart, with the same
// X-Rapport-Delivery id. Delivery is therefore at least once; receivers make
// it effectively once by ignoring a delivery id they have already processed.
// Attempts cut short by Run's context ending are not counted as failures.
//
// # Signatures
//
// The signature scheme follows Stripe's and GitHub's: the receiver
// recomputes HMAC-SHA256 over the X-Rapport-Timestamp header value, a ".",
// and the raw request body, with the secret it shares with the tenant's
// webhook, and compares it in constant time with the hex digest after
// "sha256=" (Verify does exactly this). Signing the timestamp lets the
// receiver refuse replays of an old request: it should also reject
// timestamps more than a few minutes from its own clock. Retries are signed
// again with a fresh timestamp.
//
// # Known gaps
//
//   - Secrets are stored in the bbolt file in clear until issue 7's secret
//     handling lands.
//   - Delivered records are kept until PruneDelivered removes them; the
//     caller decides the retention (which is also how long an id stays
//     deduplicated).
//   - URLs are not checked against internal addresses (SSRF); callers must
//     only enqueue URLs a tenant administrator configured.
//   - Retry-After is not honoured; 429 and 503 follow the normal backoff.
package webhook
