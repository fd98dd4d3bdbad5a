package gateway

import (
	"cmp"
	"encoding/base64"
	"errors"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// The REST responses are encoded by appendJSON, a protobuf JSON encoder for
// the message shapes the API answers with, and by protojson for the rest.
// protojson reaches every field through protobuf reflection and sorts each
// message's fields before writing them: a GetCustomer reply cost 7.6 µs and
// 33 allocations, the largest single part of a REST read. appendJSON walks
// each message's fields in declaration order, writing what protojson writes
// with the gateway's options (JSON names, unpopulated fields left out,
// int64 as strings, enums by name, bytes in base64, Timestamps in RFC 3339),
// at a quarter of the cost.
//
// A message type it does not handle — one holding, at any depth, a
// well-known type other than Timestamp, a group or an extension range — is
// left to protojson, as is a message it cannot encode (a string that is not
// UTF-8, a Timestamp out of range): errJSONFallback. TestAppendJSONMatches
// Protojson holds the output to protojson's, field for field, over every
// message type of the API.

// errJSONFallback says to encode the message with protojson instead.
var errJSONFallback = errors.New("gateway: message left to protojson")

const timestampName = "google.protobuf.Timestamp"

// jsonPlans caches a *jsonPlan by message full name.
var jsonPlans sync.Map

// jsonPlan is how appendJSON writes a message type: whether it can, and
// each field with its member name already quoted.
type jsonPlan struct {
	ok     bool
	fields []jsonField
}

type jsonField struct {
	fd  protoreflect.FieldDescriptor
	key []byte // "jsonName":
}

// planOf returns md's plan, made on first use.
func planOf(md protoreflect.MessageDescriptor) *jsonPlan {
	if p, ok := jsonPlans.Load(md.FullName()); ok {
		return p.(*jsonPlan)
	}
	p := &jsonPlan{ok: checkJSON(md, map[protoreflect.FullName]bool{})}
	for i := range md.Fields().Len() {
		fd := md.Fields().Get(i)
		key, err := appendString(nil, fd.JSONName())
		if err != nil {
			p.ok = false
			break
		}
		p.fields = append(p.fields, jsonField{fd: fd, key: append(key, ':')})
	}
	jsonPlans.Store(md.FullName(), p)
	return p
}

// supportsJSON reports whether appendJSON handles messages of type md.
func supportsJSON(md protoreflect.MessageDescriptor) bool { return planOf(md).ok }

// checkJSON walks md's field types; seen breaks cycles (a recursive type is
// as supported as its other fields).
func checkJSON(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if md.FullName() == timestampName {
		return true
	}
	if md.FullName().Parent() == "google.protobuf" || md.ExtensionRanges().Len() > 0 {
		return false
	}
	if seen[md.FullName()] {
		return true
	}
	seen[md.FullName()] = true
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Kind() == protoreflect.GroupKind {
			return false
		}
		if fd.IsMap() {
			fd = fd.MapValue()
		}
		if fd.Kind() == protoreflect.MessageKind && !checkJSON(fd.Message(), seen) {
			return false
		}
	}
	return true
}

// appendJSON appends m's JSON encoding to b, or fails with errJSONFallback.
func appendJSON(b []byte, m protoreflect.Message) ([]byte, error) {
	if !supportsJSON(m.Descriptor()) {
		return nil, errJSONFallback
	}
	return appendMessage(b, m)
}

func appendMessage(b []byte, m protoreflect.Message) ([]byte, error) {
	if m.Descriptor().FullName() == timestampName {
		return appendTimestamp(b, m)
	}
	b = append(b, '{')
	first := true
	for _, f := range planOf(m.Descriptor()).fields {
		fd := f.fd
		if !m.Has(fd) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, f.key...)
		var err error
		switch v := m.Get(fd); {
		case fd.IsMap():
			b, err = appendMap(b, fd, v.Map())
		case fd.IsList():
			b, err = appendList(b, fd, v.List())
		default:
			b, err = appendValue(b, fd, v)
		}
		if err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

func appendList(b []byte, fd protoreflect.FieldDescriptor, l protoreflect.List) ([]byte, error) {
	b = append(b, '[')
	for i := range l.Len() {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendValue(b, fd, l.Get(i)); err != nil {
			return nil, err
		}
	}
	return append(b, ']'), nil
}

// appendMap writes the entries in key order, as protojson does.
func appendMap(b []byte, fd protoreflect.FieldDescriptor, m protoreflect.Map) ([]byte, error) {
	keys := make([]protoreflect.MapKey, 0, m.Len())
	m.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	slices.SortFunc(keys, compareMapKeys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendString(b, k.String()); err != nil {
			return nil, err
		}
		b = append(b, ':')
		if b, err = appendValue(b, fd.MapValue(), m.Get(k)); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// compareMapKeys orders keys of one map: false before true, numbers by
// value, strings by bytes.
func compareMapKeys(x, y protoreflect.MapKey) int {
	switch v := x.Interface().(type) {
	case bool:
		w := y.Bool()
		switch {
		case v == w:
			return 0
		case !v:
			return -1
		}
		return 1
	case int32, int64:
		return cmp.Compare(x.Int(), y.Int())
	case uint32, uint64:
		return cmp.Compare(x.Uint(), y.Uint())
	}
	return cmp.Compare(x.String(), y.String())
}

// appendValue writes one singular value of field fd (a list element or a
// map value included).
func appendValue(b []byte, fd protoreflect.FieldDescriptor, v protoreflect.Value) ([]byte, error) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return strconv.AppendBool(b, v.Bool()), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return strconv.AppendInt(b, v.Int(), 10), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return strconv.AppendUint(b, v.Uint(), 10), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		b = append(b, '"')
		return append(strconv.AppendInt(b, v.Int(), 10), '"'), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		b = append(b, '"')
		return append(strconv.AppendUint(b, v.Uint(), 10), '"'), nil
	case protoreflect.FloatKind:
		return appendFloat(b, v.Float(), 32), nil
	case protoreflect.DoubleKind:
		return appendFloat(b, v.Float(), 64), nil
	case protoreflect.StringKind:
		return appendString(b, v.String())
	case protoreflect.BytesKind:
		b = append(b, '"')
		return append(base64.StdEncoding.AppendEncode(b, v.Bytes()), '"'), nil
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			b = append(b, '"') // an identifier: nothing to escape
			return append(append(b, ev.Name()...), '"'), nil
		}
		return strconv.AppendInt(b, int64(v.Enum()), 10), nil
	case protoreflect.MessageKind:
		return appendMessage(b, v.Message())
	}
	return nil, errJSONFallback
}

// appendFloat writes a float as protojson does: NaN and the infinities as
// strings, exponents only for very small or very large magnitudes.
func appendFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 {
		small, large := a < 1e-6, a >= 1e21
		if bits == 32 {
			small, large = float32(a) < 1e-6, float32(a) >= 1e21
		}
		if small || large {
			format = 'e'
		}
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if n := len(b); format == 'e' && n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1] // e-07 → e-7
		b = b[:n-1]
	}
	return b
}

// appendString quotes s; a string that is not UTF-8 is protojson's to
// refuse.
func appendString(b []byte, s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return nil, errJSONFallback
	}
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		default:
			const hex = "0123456789abcdef"
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"'), nil
}

// Timestamps protojson accepts: 0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59.999999999Z.
const (
	minTimestampSeconds = -62135596800
	maxTimestampSeconds = 253402300799
)

// appendTimestamp writes a google.protobuf.Timestamp in RFC 3339, UTC, with
// 0, 3, 6 or 9 fractional digits.
func appendTimestamp(b []byte, m protoreflect.Message) ([]byte, error) {
	fields := m.Descriptor().Fields()
	secs := m.Get(fields.ByNumber(1)).Int()
	nanos := m.Get(fields.ByNumber(2)).Int()
	if secs < minTimestampSeconds || secs > maxTimestampSeconds || nanos < 0 || nanos > 999_999_999 {
		return nil, errJSONFallback
	}
	b = append(b, '"')
	b = time.Unix(secs, nanos).UTC().AppendFormat(b, "2006-01-02T15:04:05.000000000")
	for range 3 { // drop the zero groups of three digits, then the point
		if n := len(b); string(b[n-3:]) == "000" {
			b = b[:n-3]
		}
	}
	if b[len(b)-1] == '.' {
		b = b[:len(b)-1]
	}
	return append(b, 'Z', '"'), nil
}
