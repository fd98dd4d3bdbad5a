package api

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
	"rapport.dev/platform/fault"
)

// immutable are the Customer fields an update may not name: identity,
// server-set fields, and contacts (changed with UpsertContact/DeleteContact so
// two account managers editing different contacts do not overwrite each other).
var immutable = []string{"customer_id", "kind", "create_time", "update_time", "etag", "erased", "merged_into",
	"organization.contacts", "organization.uncovered_roles"}

// updatePaths returns the mask's paths after checking each names a field of
// Customer that may be changed. An empty mask means every field populated in
// the request (AIP-134).
func updatePaths(c *profilev1.Customer, mask []string) ([]string, error) {
	if len(mask) == 0 {
		mask = populated(c.ProtoReflect(), "")
		if len(mask) == 0 {
			return nil, fault.InvalidField("update_mask", "names no field, and the customer sets none")
		}
	}
	var v fault.Violations
	desc := c.ProtoReflect().Descriptor()
	for _, p := range mask {
		if blocked(p) {
			v.Add("update_mask", "field %q cannot be updated", p)
			continue
		}
		if !validPath(desc, p) {
			v.Add("update_mask", "unknown field %q of Customer", p)
		}
	}
	return mask, v.Err()
}

// populated lists the set fields of m as paths, descending into a message
// that holds an immutable field (organization) so its other fields can change.
func populated(m protoreflect.Message, prefix string) []string {
	var out []string
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		path := prefix + string(fd.Name())
		switch {
		case slices.Contains(immutable, path):
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap() && blocked(path):
			out = append(out, populated(v.Message(), path+".")...)
		default:
			out = append(out, path)
		}
		return true
	})
	return out
}

func blocked(path string) bool {
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

// applyMask copies the fields named by paths from src into dst; a field
// unset in src is cleared in dst.
func applyMask(dst, src proto.Message, paths []string) {
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
