package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// Headers set on every delivery.
const (
	HeaderEvent     = "X-Rapport-Event"
	HeaderDelivery  = "X-Rapport-Delivery"
	HeaderTimestamp = "X-Rapport-Timestamp"
	HeaderSignature = "X-Rapport-Signature"
)

const signaturePrefix = "sha256="

// Sign returns the X-Rapport-Signature value for body sent at timestamp
// (unix seconds): "sha256=" and the hex HMAC-SHA256, keyed by secret, of the
// decimal timestamp, ".", and body.
func Sign(secret []byte, timestamp int64, body []byte) string {
	return signaturePrefix + hex.EncodeToString(mac(secret, strconv.FormatInt(timestamp, 10), body))
}

// Verify reports whether signature (an X-Rapport-Signature header) is the
// signature of body sent with timestamp (the X-Rapport-Timestamp header, as
// received) under secret. The comparison is constant-time. Receivers should
// also refuse a timestamp far from their own clock (five minutes is usual),
// which Verify does not check, and deduplicate on X-Rapport-Delivery.
func Verify(secret []byte, timestamp string, body []byte, signature string) bool {
	if len(secret) == 0 || timestamp == "" {
		return false
	}
	hexSum, ok := strings.CutPrefix(signature, signaturePrefix)
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	return hmac.Equal(got, mac(secret, timestamp, body))
}

func mac(secret []byte, timestamp string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(timestamp))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}
