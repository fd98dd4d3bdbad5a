package etag

import "testing"

func TestOf(t *testing.T) {
	type rec struct {
		Name string
		N    int
	}
	a, b := Of(rec{"x", 1}), Of(rec{"x", 2})
	if len(a) != 16 || a == b || a != Of(rec{"x", 1}) {
		t.Errorf("Of: %q %q: want 16 characters, stable, different for different content", a, b)
	}
}
