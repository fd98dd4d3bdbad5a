package feed

import (
	"strconv"
	"time"

	"google.golang.org/grpc/metadata"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
)

// Response is a FollowChanges response of any service: each carries one
// feed event.
type Response interface {
	GetEvent() *feedv1.Event
}

// StreamOf adapts a service's generated FollowChanges client stream to
// Stream; nil stays nil (a failed call). When the stream has response
// headers (a gRPC client stream), the adapted stream also tells the
// feed's head at subscription (Log.Serve sends it).
func StreamOf[M Response](c interface{ Recv() (M, error) }) Stream {
	if c == nil {
		return nil
	}
	r := responses[M]{recv: c.Recv}
	if h, ok := c.(interface{ Header() (metadata.MD, error) }); ok {
		return headed[M]{r, h.Header}
	}
	return r
}

type responses[M Response] struct {
	recv func() (M, error)
}

func (r responses[M]) Recv() (*feedv1.Event, error) {
	m, err := r.recv()
	if err != nil {
		return nil, err
	}
	return m.GetEvent(), nil
}

// header is a Stream that knows the feed's head at subscription.
type header interface {
	// Head returns the newest event's sequence and commit time when the
	// stream started; ok is false when the leader did not say. It may
	// block until the leader answers.
	Head() (seq uint64, at time.Time, ok bool)
}

type headed[M Response] struct {
	responses[M]
	header func() (metadata.MD, error)
}

func (h headed[M]) Head() (uint64, time.Time, bool) {
	md, err := h.header()
	if err != nil {
		return 0, time.Time{}, false
	}
	v := md.Get(HeadSequenceHeader)
	if len(v) != 1 {
		return 0, time.Time{}, false
	}
	seq, err := strconv.ParseUint(v[0], 10, 64)
	if err != nil {
		return 0, time.Time{}, false
	}
	var at time.Time
	if v := md.Get(HeadTimeHeader); len(v) == 1 {
		at, _ = time.Parse(time.RFC3339Nano, v[0]) // a bad time is no time
	}
	return seq, at, true
}
