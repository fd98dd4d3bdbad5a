package domain_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"rapport.dev/platform/binrec"
	"rapport.dev/services/profile/domain"
)

// fullCustomer sets every field of Customer and of the types it holds to a
// value that is not its zero, Person and Organization both (the codec does
// not validate), with unicode in the strings and times on both sides of
// 1970.
func fullCustomer() *domain.Customer {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 123_456_789, time.UTC)
	return &domain.Customer{
		ID: "c-王-1", Kind: domain.KindPerson, DisplayName: "王小明 🍵",
		Person: &domain.Person{GivenName: "小明", FamilyName: "王", Gender: 2,
			Birthday:      domain.Date{Year: 1988, Month: 2, Day: 29},
			LunarBirthday: domain.LunarDate{Year: 1988, Month: 1, Day: 13, LeapMonth: true},
			Occupation:    "tea merchant", IncomeBand: 4, Education: 6},
		Organization: &domain.Organization{LegalName: "Acme Ltd", Industry: "retail", EmployeeCount: 1_200, RelationshipType: 2,
			Contacts: []domain.Contact{
				{ID: "ct-1", Name: "Zoë", Title: "CTO", Role: domain.RoleTechnicalEvaluator, Phone: "+86 138 0000 0000",
					Email: "zoe@acme.example", Counterpart: "am-7", Note: "prefers 微信"},
				{ID: "ct-2", Name: "Ann"},
			}},
		Phone: "+86 138 1234 5678", Email: "xm@example.com",
		Region:       domain.Region{Country: "CN", Province: "浙江", City: "杭州"},
		Tags:         []string{"vip", "茶", "vip"},
		Attributes:   map[string]string{"tier": "gold", "a.b": "", "z_last": "末", "0": "zero"},
		Traits:       []string{"early adopter"},
		TimeZone:     "Asia/Shanghai",
		Language:     "zh-CN",
		Consents:     []domain.Consent{{Channel: 1, Granted: true, UpdateTime: t0.Add(-time.Hour)}, {Channel: 3}},
		DoNotContact: true,
		Acquisition: domain.Acquisition{Channel: domain.ChannelReferral, Campaign: "spring", ReferredBy: "c-9",
			AcquireTime: time.Date(1969, 12, 31, 23, 59, 59, 999_999_999, time.UTC)},
		Stage: 7, Intent: 1, Owner: "am-7",
		CreateTime: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), UpdateTime: time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		Revision: 1 << 40, Erased: true, MergedInto: "c-王-2",
	}
}

// orgCustomer is a valid organization, as the store holds one.
func orgCustomer() *domain.Customer {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return &domain.Customer{ID: "acme", Kind: domain.KindOrganization, DisplayName: "ACME 有限公司",
		Organization: &domain.Organization{LegalName: "ACME 有限公司", EmployeeCount: 40, RelationshipType: 3,
			Contacts: []domain.Contact{
				{ID: "boss", Name: "李总", Role: domain.RoleDecisionMaker, Counterpart: "am-1"},
				{ID: "buyer", Name: "Émile", Title: "Purchasing", Role: domain.RolePurchaser, Email: "emile@acme.example"},
			}},
		Region: domain.Region{Country: "FR"}, CreateTime: t0, UpdateTime: t0.Add(time.Minute), Revision: 3}
}

// loadCustomer is shaped like the customers `rapport load` seeds and reads.
func loadCustomer() *domain.Customer {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6_000, time.UTC)
	return &domain.Customer{ID: "c-000042", Kind: domain.KindPerson, DisplayName: "Customer c-000042",
		Person: &domain.Person{GivenName: "Given42", FamilyName: "Family", Gender: 4},
		Phone:  "+33610000042", Email: "c-000042@example.com",
		Region: domain.Region{Country: "FR", City: "Lyon"}, Tags: []string{"bench", "seeded"},
		TimeZone: "Europe/Paris", Language: "fr", CreateTime: t0, UpdateTime: t0, Revision: 1}
}

// checkAllSet fails when a field of v, or of a struct, pointer or first
// slice element below it, is its zero value (time.Time is a leaf).
func checkAllSet(t *testing.T, path string, v reflect.Value) {
	t.Helper()
	if v.IsZero() {
		t.Errorf("fixture leaves %s zero", path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		checkAllSet(t, path, v.Elem())
	case reflect.Slice:
		checkAllSet(t, path+"[0]", v.Index(0))
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			return
		}
		for i := range v.NumField() {
			checkAllSet(t, path+"."+v.Type().Field(i).Name, v.Field(i))
		}
	}
}

func encodeCustomer(t testing.TB, c *domain.Customer) []byte {
	t.Helper()
	raw, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if again := c.AppendBinary([]byte("prefix")); string(again[6:]) != string(raw) || string(again[:6]) != "prefix" {
		t.Fatal("AppendBinary does not append what MarshalBinary returns")
	}
	return raw
}

func TestCustomerBinaryRoundTrip(t *testing.T) {
	checkAllSet(t, "Customer", reflect.ValueOf(fullCustomer()))
	for name, c := range map[string]*domain.Customer{
		"full":         fullCustomer(),
		"organization": orgCustomer(),
		"load":         loadCustomer(),
		"zero":         {},
		"minimal":      {ID: "c", Kind: domain.KindPerson, DisplayName: "x", Revision: 1},
		// Present but empty: the pointers stay, the lists do not (as in JSON).
		"empty parts": {ID: "c", Person: &domain.Person{}, Organization: &domain.Organization{}},
	} {
		t.Run(name, func(t *testing.T) {
			raw := encodeCustomer(t, c)
			var got domain.Customer
			if err := got.UnmarshalBinary(raw); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c, &got) {
				t.Errorf("after the round trip (-want +got):\n%s", cmp.Diff(c, &got))
			}
			// The JSON encoding the store used before reads back the same.
			js, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			var fromJSON domain.Customer
			if err := json.Unmarshal(js, &fromJSON); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(&fromJSON, &got) {
				t.Errorf("binary and JSON round trips differ (-json +binary):\n%s", cmp.Diff(&fromJSON, &got))
			}
		})
	}
}

// TestCustomerBinaryEmptyLists: empty, non-nil lists and maps decode as
// nil, as they did from JSON (omitempty); a present, empty Person or
// Organization stays present.
func TestCustomerBinaryEmptyLists(t *testing.T) {
	c := &domain.Customer{ID: "c", Tags: []string{}, Traits: []string{}, Attributes: map[string]string{},
		Consents: []domain.Consent{}, Person: &domain.Person{}, Organization: &domain.Organization{Contacts: []domain.Contact{}}}
	var got domain.Customer
	if err := got.UnmarshalBinary(encodeCustomer(t, c)); err != nil {
		t.Fatal(err)
	}
	want := &domain.Customer{ID: "c", Person: &domain.Person{}, Organization: &domain.Organization{}}
	if !reflect.DeepEqual(want, &got) {
		t.Errorf("decoded %#v, want %#v", got, want)
	}
}

// TestCustomerBinaryKeepsBytes: strings are kept byte for byte, NUL and
// invalid UTF-8 included (JSON replaced the latter), and times keep their
// instant but come back in UTC.
func TestCustomerBinaryKeepsBytes(t *testing.T) {
	sh := time.FixedZone("CST", 8*3600)
	at := time.Date(2025, 6, 1, 20, 0, 0, 5, sh)
	c := &domain.Customer{ID: "c\x00d", DisplayName: "\xff\xfe bad", Tags: []string{"", "\x80"},
		Attributes: map[string]string{"": "\x00"}, CreateTime: at, UpdateTime: time.Now(),
		Consents: []domain.Consent{{Channel: 2, UpdateTime: at}}}
	var got domain.Customer
	if err := got.UnmarshalBinary(encodeCustomer(t, c)); err != nil {
		t.Fatal(err)
	}
	want := *c
	want.CreateTime, want.UpdateTime = c.CreateTime.UTC(), c.UpdateTime.Round(0).UTC()
	want.Consents = []domain.Consent{{Channel: 2, UpdateTime: at.UTC()}}
	if !reflect.DeepEqual(&want, &got) {
		t.Errorf("after the round trip (-want +got):\n%s", cmp.Diff(&want, &got))
	}
}

func TestCustomerBinaryIsDeterministic(t *testing.T) {
	c := fullCustomer()
	for i := range 50 {
		c.Attributes[fmt.Sprintf("k%02d", i)] = fmt.Sprint(i)
	}
	a := encodeCustomer(t, c)
	for range 20 { // map order varies from run to run
		if b := encodeCustomer(t, c); string(a) != string(b) {
			t.Fatal("two encodings of the same customer differ")
		}
	}
}

// A decoded customer's strings share one copy of the record: decoding the
// customer `rapport load` reads allocates that copy, the Person and the
// tags, nothing per string.
func TestCustomerBinaryAllocations(t *testing.T) {
	raw := encodeCustomer(t, loadCustomer())
	var c domain.Customer
	n := testing.AllocsPerRun(100, func() {
		if err := c.UnmarshalBinary(raw); err != nil {
			t.Fatal(err)
		}
	})
	if n > 3 {
		t.Errorf("%v allocations to decode a customer, want at most 3", n)
	}
}

// TestCustomerBinaryMalformed checks that damaged input is an error that
// says what failed to decode: every truncation, a trailing byte, an unknown
// version or flag, values out of range, attributes out of order and
// counts larger than the record.
func TestCustomerBinaryMalformed(t *testing.T) {
	decode := func(b []byte) error { return new(domain.Customer).UnmarshalBinary(b) }
	for name, c := range map[string]*domain.Customer{"full": fullCustomer(), "organization": orgCustomer(), "zero": {}} {
		t.Run(name, func(t *testing.T) {
			raw := encodeCustomer(t, c)
			for n := range len(raw) {
				if err := decode(raw[:n]); !isDecodeError(err) {
					t.Errorf("truncated to %d of %d bytes: %v", n, len(raw), err)
				}
			}
			if err := decode(append(append([]byte(nil), raw...), 0)); !isDecodeError(err) {
				t.Errorf("trailing byte: %v", err)
			}
			for _, v := range []byte{0, 2, '{'} {
				bad := append([]byte(nil), raw...)
				bad[0] = v
				if err := decode(bad); err == nil || !strings.HasPrefix(err.Error(), "domain: decode customer: ") {
					t.Errorf("format version %d: %v", v, err)
				}
			}
			bad := append([]byte(nil), raw...)
			bad[1] |= 0x80
			if err := decode(bad); err == nil {
				t.Error("unknown customer flag: no error")
			}
		})
	}
	if err := decode([]byte(`{"id":"c","kind":1,"name":"x"}`)); err == nil {
		t.Error("a JSON record: no error")
	}

	// Hand-built records: a customer with nothing but a Person, or nothing
	// but attributes, tags or consents, after the given head.
	head := func(flags byte) []byte {
		b := []byte{1, flags}
		b = binrec.AppendString(b, "c")
		b = binrec.AppendString(b, "x")
		return binary.AppendVarint(b, 1)
	}
	// tail appends everything after Region's city up to the end, with the
	// given tags, attributes and consents parts.
	tail := func(b, tags, attrs, consents []byte) []byte {
		b = append(b, tags...)
		b = append(b, attrs...)
		b = append(b, 0)    // traits
		b = append(b, 0, 0) // time zone, language
		b = append(b, consents...)
		b = append(b, 0, 0, 0) // acquisition
		b = append(b, 0, 0, 0) // stage, intent, owner
		return append(b, 1, 0) // revision, merged into
	}
	noPerson := func() []byte { return append(head(0), 0, 0, 0, 0, 0) } // phone, email, region
	strs := func(ss ...string) []byte {
		b := binary.AppendUvarint(nil, uint64(len(ss)))
		for _, s := range ss {
			b = binrec.AppendString(b, s)
		}
		return b
	}
	// attrs is an attributes part: key, value, key, value...
	attrs := func(kv ...string) []byte {
		return append(binary.AppendUvarint(nil, uint64(len(kv)/2)), strs(kv...)[1:]...)
	}
	valid := tail(noPerson(), strs("t"), attrs("a", "1", "b", "2"), []byte{1, 2, 1}) // one consent: channel 1, granted
	if err := decode(valid); err != nil {
		t.Fatalf("the hand-built record does not decode: %v", err)
	}
	person := func(leap byte, gender int64) []byte {
		b := head(1)
		b = append(b, 0, 0)                      // given, family
		b = binary.AppendVarint(b, gender)       // gender
		b = append(b, 0, 0, 0, 0, 0, 0, leap, 0) // dates, leap, occupation
		b = append(b, 0, 0)                      // income, education
		b = append(b, 0, 0, 0, 0, 0)             // phone, email, region
		return tail(b, strs(), attrs(), []byte{0})
	}
	if err := decode(person(1, 4)); err != nil {
		t.Fatalf("the hand-built person does not decode: %v", err)
	}
	for name, bad := range map[string][]byte{
		"leap month byte 2":             person(2, 4),
		"gender above the int32 range":  person(0, 1<<31),
		"gender below the int32 range":  person(0, -1<<31-1),
		"attributes out of order":       tail(noPerson(), strs(), attrs("b", "1", "a", "2"), []byte{0}),
		"attribute twice":               tail(noPerson(), strs(), attrs("a", "1", "a", "2"), []byte{0}),
		"unknown consent flag":          tail(noPerson(), strs(), attrs(), []byte{1, 2, 4}),
		"consent channel out of range":  tail(noPerson(), strs(), attrs(), append(binary.AppendVarint([]byte{1}, 1<<40), 0)),
		"more tags than bytes":          tail(noPerson(), binary.AppendUvarint(nil, 1<<50), attrs(), []byte{0}),
		"more attributes than bytes":    tail(noPerson(), strs(), binary.AppendUvarint(nil, 1<<62), []byte{0}),
		"string longer than the record": tail(noPerson(), binary.AppendUvarint([]byte{1}, 100), attrs(), []byte{0}),
	} {
		if err := decode(bad); !isDecodeError(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzDecodeCustomer(f *testing.F) {
	fuzzRoundTrip(f, fullCustomer(), orgCustomer(), loadCustomer(), &domain.Customer{})
}

// decoded keeps the benchmark's customers on the heap, as the store's are.
var decoded *domain.Customer

// BenchmarkDecodeCustomer compares the store's decode of a customer record
// in the binary encoding with the JSON one it replaced, on the customer
// `rapport load` reads and on one with every field set:
//
//	go test -run XXX -bench DecodeCustomer rapport.dev/services/profile/domain
func BenchmarkDecodeCustomer(b *testing.B) {
	for _, c := range []struct {
		name string
		c    *domain.Customer
	}{{"load", loadCustomer()}, {"full", fullCustomer()}} {
		js, err := json.Marshal(c.c)
		if err != nil {
			b.Fatal(err)
		}
		bin := encodeCustomer(b, c.c)
		b.Run(c.name+"/json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c := new(domain.Customer)
				if err := json.Unmarshal(js, c); err != nil {
					b.Fatal(err)
				}
				decoded = c
			}
			b.ReportMetric(float64(len(js)), "bytes/record")
		})
		b.Run(c.name+"/binary", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c := new(domain.Customer)
				if err := c.UnmarshalBinary(bin); err != nil {
					b.Fatal(err)
				}
				decoded = c
			}
			b.ReportMetric(float64(len(bin)), "bytes/record")
		})
	}
}
