// Package domain is the care service's core, pure and clock-free: when care
// work falls due — birthdays (solar and lunar), holidays (fixed and the
// lunar festivals), recurrences (RFC 5545) — at a planned local time in the
// customer's time zone, moved into working hours and out of quiet hours; and
// the rules that keep contact humane: consent, do-not-contact and a cap on
// touches per customer per week.
package domain
