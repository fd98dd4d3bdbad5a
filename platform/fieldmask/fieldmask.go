// Package fieldmask applies update masks (google.protobuf.FieldMask paths)
// to API messages generically, with protoreflect: every service's partial
// update checks its paths against the message and copies exactly the named
// fields, without a hand-written case per field.
package fieldmask

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"rapport.dev/platform/fault"
)

// Paths returns the paths to update in msg: the mask's, after checking that
// each names a field of msg that is not immutable (nor inside or around an
// immutable field); or, for an empty mask, every field populated in msg
// (AIP-134), descending into a message that holds an immutable field so its
// other fields can change. Violations name "update_mask".
func Paths(msg proto.Message, mask, immutable []string) ([]string, error) {
	if len(mask) == 0 {
		mask = populated(msg.ProtoReflect(), "", immutable)
		if len(mask) == 0 {
			return nil, fault.InvalidField("update_mask", "names no field, and the request sets none")
		}
	}
	var v fault.Violations
	desc := msg.ProtoReflect().Descriptor()
	for _, p := range mask {
		if blocked(p, immutable) {
			v.Add("update_mask", "field %q cannot be updated", p)
			continue
		}
		if !validPath(desc, p) {
			v.Add("update_mask", "unknown field %q of %s", p, desc.Name())
		}
	}
	return mask, v.Err()
}

func populated(m protoreflect.Message, prefix string, immutable []string) []string {
	var out []string
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		path := prefix + string(fd.Name())
		switch {
		case slices.Contains(immutable, path):
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap() && blocked(path, immutable):
			out = append(out, populated(v.Message(), path+".", immutable)...)
		default:
			out = append(out, path)
		}
		return true
	})
	return out
}

func blocked(path string, immutable []string) bool {
	for _, f := range immutable {
		if path == f || strings.HasPrefix(path, f+".") || strings.HasPrefix(f, path+".") {
			return true
		}
	}
	return false
}

func validPath(md protoreflect.MessageDescriptor, path string) bool {
	parts := strings.Split(path, ".")
	for i, name := range parts {
		fd := md.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			return false
		}
		if i < len(parts)-1 {
			if fd.Kind() != protoreflect.MessageKind || fd.IsList() || fd.IsMap() {
				return false
			}
			md = fd.Message()
		}
	}
	return true
}

// Apply copies the fields named by paths (checked by Paths) from src into
// dst; a field unset in src is cleared in dst.
func Apply(dst, src proto.Message, paths []string) {
	for _, p := range paths {
		d, s := dst.ProtoReflect(), src.ProtoReflect()
		parts := strings.Split(p, ".")
		for _, name := range parts[:len(parts)-1] {
			fd := d.Descriptor().Fields().ByName(protoreflect.Name(name))
			d = d.Mutable(fd).Message()
			// An unset parent reads as an empty message of its type, so the
			// leaf is cleared. (The parent's own zero, s.Type().Zero(), is a
			// message of the wrong type: Has panicked on the leaf's field.)
			s = s.Get(fd).Message()
		}
		fd := d.Descriptor().Fields().ByName(protoreflect.Name(parts[len(parts)-1]))
		if s.Has(fd) {
			d.Set(fd, cloneValue(fd, s.Get(fd)))
		} else {
			d.Clear(fd)
		}
	}
}

func cloneValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) protoreflect.Value {
	if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() {
		return protoreflect.ValueOfMessage(proto.Clone(v.Message().Interface()).ProtoReflect())
	}
	return v // lists and maps are replaced whole; dst is rebuilt from proto afterwards
}
