package feed

import feedv1 "rapport.dev/gen/go/rapport/feed/v1"

// Response is a FollowChanges response of any service: each carries one
// feed event.
type Response interface {
	GetEvent() *feedv1.Event
}

// StreamOf adapts a service's generated FollowChanges client stream to
// Stream; nil stays nil (a failed call).
func StreamOf[M Response](c interface{ Recv() (M, error) }) Stream {
	if c == nil {
		return nil
	}
	return responses[M]{c.Recv}
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
