package feed

import (
	"errors"
	"io"
	"testing"

	feedv1 "rapport.dev/gen/go/rapport/feed/v1"
)

type resp struct{ e *feedv1.Event }

func (r *resp) GetEvent() *feedv1.Event { return r.e }

type fakeRecv struct{ out []*resp }

func (f *fakeRecv) Recv() (*resp, error) {
	if len(f.out) == 0 {
		return nil, io.EOF
	}
	r := f.out[0]
	f.out = f.out[1:]
	return r, nil
}

func TestStreamOf(t *testing.T) {
	s := StreamOf[*resp](&fakeRecv{out: []*resp{{&feedv1.Event{Sequence: 7}}}})
	if e, err := s.Recv(); err != nil || e.GetSequence() != 7 {
		t.Fatalf("first: %v, %v", e, err)
	}
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v, want io.EOF", err)
	}
}
