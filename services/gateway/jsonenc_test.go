package gateway

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	profilev1 "rapport.dev/gen/go/rapport/profile/v1"
)

// apiMessages lists every message type the API's proto files declare,
// nested ones included.
func apiMessages(t *testing.T) []protoreflect.MessageDescriptor {
	t.Helper()
	var out []protoreflect.MessageDescriptor
	var walk func(protoreflect.MessageDescriptors)
	walk = func(ms protoreflect.MessageDescriptors) {
		for i := range ms.Len() {
			if md := ms.Get(i); !md.IsMapEntry() {
				out = append(out, md)
				walk(md.Messages())
			}
		}
	}
	protoregistry.GlobalFiles.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		if strings.HasPrefix(string(f.Package()), "rapport.") {
			walk(f.Messages())
		}
		return true
	})
	if len(out) < 50 {
		t.Fatalf("found %d API message types; are the generated packages linked in?", len(out))
	}
	return out
}

// TestAppendJSONMatchesProtojson: for random messages of every API type
// appendJSON handles, its output means exactly what protojson's does (the
// same members with the same values, numbers written the same), and
// protojson reads it back into an equal message.
func TestAppendJSONMatchesProtojson(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	handled := 0
	for _, md := range apiMessages(t) {
		if !supportsJSON(md) {
			continue
		}
		handled++
		for range 40 {
			m := dynamicpb.NewMessage(md)
			fillRandom(r, m, 0)
			got, err := appendJSON(nil, m)
			if err != nil {
				t.Fatalf("%s: %v", md.FullName(), err)
			}
			want, err := protojson.Marshal(m)
			if err != nil {
				t.Fatalf("%s: protojson: %v", md.FullName(), err)
			}
			if g, w := decodeJSON(t, got), decodeJSON(t, want); !reflect.DeepEqual(g, w) {
				t.Fatalf("%s:\n appendJSON %s\n protojson  %s", md.FullName(), got, want)
			}
			back := dynamicpb.NewMessage(md)
			if err := protojson.Unmarshal(got, back); err != nil {
				t.Fatalf("%s: protojson cannot read %s: %v", md.FullName(), got, err)
			}
		}
	}
	if handled < 40 {
		t.Errorf("appendJSON handles %d API message types, want most of them", handled)
	}
}

// TestAppendJSONLeavesToProtojson: types holding well-known types other
// than Timestamp, and values protojson refuses, are protojson's.
func TestAppendJSONLeavesToProtojson(t *testing.T) {
	for _, md := range apiMessages(t) {
		var other string
		var walk func(protoreflect.MessageDescriptor, map[protoreflect.FullName]bool)
		walk = func(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) {
			if seen[md.FullName()] {
				return
			}
			seen[md.FullName()] = true
			for i := range md.Fields().Len() {
				fd := md.Fields().Get(i)
				if fd.IsMap() {
					fd = fd.MapValue()
				}
				if m := fd.Message(); m != nil && m.FullName() != timestampName {
					if m.FullName().Parent() == "google.protobuf" {
						other = string(m.FullName())
					}
					walk(m, seen)
				}
			}
		}
		walk(md, map[protoreflect.FullName]bool{})
		if supportsJSON(md) == (other != "") {
			t.Errorf("%s: supported %v, holds %q", md.FullName(), supportsJSON(md), other)
		}
	}
	for name, m := range map[string]*profilev1.Customer{
		"not UTF-8":           {DisplayName: "\xff"},
		"timestamp too early": {CreateTime: &timestamppb.Timestamp{Seconds: minTimestampSeconds - 1}},
		"nanos out of range":  {CreateTime: &timestamppb.Timestamp{Nanos: 1e9}},
	} {
		if _, err := appendJSON(nil, m.ProtoReflect()); err != errJSONFallback {
			t.Errorf("%s: err %v, want the fallback", name, err)
		}
	}
}

// TestBodyMarshalerEncodesLikeProtojson: the gateway's marshaler gives the
// reply of a GetCustomer what protojson gives it.
func TestBodyMarshalerEncodesLikeProtojson(t *testing.T) {
	m := &profilev1.GetCustomerResponse{Customer: &profilev1.Customer{
		CustomerId: "c-1", Kind: profilev1.CustomerKind_CUSTOMER_KIND_PERSON, DisplayName: "Zoë \"Z\" <z>\n",
		Tags: []string{"vip"}, Attributes: map[string]string{"b": "2", "a": "1"},
		CreateTime: &timestamppb.Timestamp{Seconds: 1700000000, Nanos: 120_000_000},
	}}
	got, err := newBodyMarshaler().Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := protojson.Marshal(m)
	if !reflect.DeepEqual(decodeJSON(t, got), decodeJSON(t, want)) {
		t.Errorf("got %s, want %s", got, want)
	}
	if !bytes.Contains(got, []byte(`"createTime":"2023-11-14T22:13:20.120Z"`)) || !bytes.Contains(got, []byte(`"attributes":{"a":"1","b":"2"}`)) {
		t.Errorf("got %s", got)
	}
}

// decodeJSON decodes a JSON document keeping numbers as written.
func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return v
}

// fillRandom sets a random subset of m's fields to random values, nested
// messages down to a few levels.
func fillRandom(r *rand.Rand, m protoreflect.Message, depth int) {
	if m.Descriptor().FullName() == timestampName {
		fields := m.Descriptor().Fields()
		m.Set(fields.ByNumber(1), protoreflect.ValueOfInt64(minTimestampSeconds+r.Int64N(maxTimestampSeconds-minTimestampSeconds)))
		nanos := []int32{0, 1, 120_000_000, 123_456_000, 999_999_999, r.Int32N(1e9)}
		m.Set(fields.ByNumber(2), protoreflect.ValueOfInt32(nanos[r.IntN(len(nanos))]))
		return
	}
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if r.IntN(3) == 0 || (fd.Message() != nil && depth > 3) {
			continue
		}
		switch {
		case fd.IsMap():
			mm := m.Mutable(fd).Map()
			for range r.IntN(4) {
				k := randomScalar(r, fd.MapKey()).MapKey()
				if fd.MapValue().Message() != nil {
					v := mm.NewValue()
					fillRandom(r, v.Message(), depth+1)
					mm.Set(k, v)
				} else {
					mm.Set(k, randomScalar(r, fd.MapValue()))
				}
			}
		case fd.IsList():
			l := m.Mutable(fd).List()
			for range r.IntN(4) {
				if fd.Message() != nil {
					v := l.NewElement()
					fillRandom(r, v.Message(), depth+1)
					l.Append(v)
				} else {
					l.Append(randomScalar(r, fd))
				}
			}
		case fd.Message() != nil:
			fillRandom(r, m.Mutable(fd).Message(), depth+1)
		default:
			m.Set(fd, randomScalar(r, fd))
		}
	}
}

var randomStrings = []string{"", "a", "Zoë", "中文 客户", "quote \" backslash \\ slash /", "tab\tnewline\ncr\r", "\x00\x01\x1f\x7f", "<>&'", "\u2028\u2029", "😀"}

func randomScalar(r *rand.Rand, fd protoreflect.FieldDescriptor) protoreflect.Value {
	ints := []int64{0, 1, -1, 42, math.MaxInt32, math.MinInt32, r.Int64()}
	floats := []float64{0, 1, -1.5, 1e-7, 1e21, 123456.789, math.NaN(), math.Inf(1), math.Inf(-1), r.NormFloat64() * 1e6, math.SmallestNonzeroFloat64}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(r.IntN(2) == 0)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(ints[r.IntN(len(ints))]))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(ints[r.IntN(len(ints))]))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(ints[r.IntN(len(ints))])
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(ints[r.IntN(len(ints))]))
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(floats[r.IntN(len(floats))]))
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(floats[r.IntN(len(floats))])
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(randomStrings[r.IntN(len(randomStrings))])
	case protoreflect.BytesKind:
		b := make([]byte, r.IntN(6))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		return protoreflect.ValueOfBytes(b)
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		if r.IntN(5) == 0 {
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(1000 + r.IntN(10))) // unknown to the schema
		}
		return protoreflect.ValueOfEnum(vals.Get(r.IntN(vals.Len())).Number())
	}
	panic("unexpected kind " + fd.Kind().String())
}

// BenchmarkMarshalCustomer: the reply of a GetCustomer as `rapport load`
// reads it, encoded by protojson and by the gateway's marshaler:
//
//	go test -run XXX -bench MarshalCustomer rapport.dev/services/gateway
func BenchmarkMarshalCustomer(b *testing.B) {
	now := timestamppb.Now()
	m := &profilev1.GetCustomerResponse{Customer: &profilev1.Customer{
		CustomerId: "c-000123", Kind: profilev1.CustomerKind_CUSTOMER_KIND_PERSON, DisplayName: "Customer c-000123",
		Person: &profilev1.Person{GivenName: "Given123", FamilyName: "Family", Gender: profilev1.Gender_GENDER_UNDISCLOSED},
		Email:  "c-000123@example.com", Phone: "+33610000123", Region: &profilev1.Region{Country: "FR", City: "Lyon"},
		Tags: []string{"bench", "seeded"}, TimeZone: "Europe/Paris", Language: "fr", CreateTime: now, UpdateTime: now,
	}}
	b.Run("protojson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := protojson.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gateway", func(b *testing.B) {
		b.ReportAllocs()
		bm := newBodyMarshaler()
		for b.Loop() {
			if _, err := bm.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
