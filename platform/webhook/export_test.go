package webhook

// InFlight is how many messages the loop has claimed and not yet finished.
func (o *Outbox) InFlight() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.inflight)
}
