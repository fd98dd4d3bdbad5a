package convert

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// timeFromProto returns ts in UTC, or the zero time when ts is unset.
func timeFromProto(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// timeToProto returns nil for the zero time, which has no valid Timestamp.
func timeToProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
