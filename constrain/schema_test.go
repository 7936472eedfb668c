package constrain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/upg-ai/upg/sample"
)

const personSchema = `{"type": "object", "title": "person", "properties": {
	"name": {"type": "string"},
	"age": {"type": "integer"},
	"height": {"type": ["number", "null"]},
	"role": {"enum": ["admin", "user <x>", 3, null]},
	"tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
	"pets": {"type": "array", "minItems": 1, "items": {"type": "object", "properties": {"kind": {"const": "cat"}, "ok": {"type": "boolean"}}, "required": ["kind", "ok"], "additionalProperties": false}},
	"id": {"anyOf": [{"type": "integer"}, {"type": "string"}]}
}, "required": ["name", "age", "height", "role", "tags", "pets", "id"], "additionalProperties": false}`

// refSchema has nested models as pydantic writes them: $defs and $ref.
const refSchema = `{"$defs":{"Address":{"type":"object","title":"Address","properties":{"city":{"type":"string"}}},"a/b":{"enum":["x"]}},` +
	`"type":"object","properties":{"home":{"$ref":"#/$defs/Address","description":"where"},"work":{"anyOf":[{"$ref":"#/$defs/Address"},{"type":"null"}]},"k":{"$ref":"#/$defs/a~1b"}}}`

func mustSchema(t testing.TB, schema string) *Schema {
	t.Helper()
	s, err := NewSchema(toyJSON(), []byte(schema))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSchemaValid: what a compiled schema accepts and refuses, whole and as
// prefixes.
func TestSchemaValid(t *testing.T) {
	s := mustSchema(t, personSchema)
	good := []string{
		`{"name":"Ada","age":36,"height":1.7,"role":"admin","tags":[],"pets":[{"kind":"cat","ok":true}],"id":7}`,
		"{\n  \"name\": \"A\\\"d\\u00e9\", \"age\": -0, \"height\": null, \"role\": null,\n\t\"tags\": [\"a\", \"b\", \"c\"], \"pets\": [ {\"kind\": \"cat\", \"ok\": false} , {\"kind\":\"cat\",\"ok\":true} ], \"id\": \"x\" }",
		`{"name":"","age":0,"height":-2.5e+3,"role":"user <x>","tags":["t"],"pets":[{"kind":"cat","ok":true}],"id":-12}`,
		`{"name":"","age":0,"height":0,"role":3,"tags":[],"pets":[{"kind":"cat","ok":true}],"id":0}`,
	}
	bad := []string{
		`{"age":36,"name":"Ada","height":1.7,"role":"admin","tags":[],"pets":[{"kind":"cat","ok":true}],"id":7}`,   // order
		`{"name":"Ada","age":36.5,"height":1.7,"role":"admin","tags":[],"pets":[{"kind":"cat","ok":true}],"id":7}`, // integer
		`{"name":"Ada","age":36,"height":1.7,"role":"root","tags":[],"pets":[{"kind":"cat","ok":true}],"id":7}`,    // enum
		`{"name":"Ada","age":36,"height":1.7,"role":"admin","tags":["a","b","c","d"],"pets":[{"kind":"cat","ok":true}],"id":7}`,
		`{"name":"Ada","age":36,"height":1.7,"role":"admin","tags":[],"pets":[],"id":7}`, // minItems
		`{"name":"Ada","age":36,"height":1.7,"role":"admin","tags":[],"pets":[{"kind":"dog","ok":true}],"id":7}`,
		`{"name":"Ada","age":36,"height":1.7,"role":"admin","tags":[],"pets":[{"kind":"cat","ok":true}],"id":true}`,
		`{"name":"Ada","age":036,"height":1.7,"role":"admin","tags":[],"pets":[{"kind":"cat","ok":true}],"id":7}`,
		`{"name":"Ada","age":36,"height":1.7,"role":"admin","tags":[],"pets":[{"kind":"cat","ok":true}],"id":7,"x":1}`,
		` {"name":"Ada","age":36,"height":1.7,"role":"admin","tags":[],"pets":[{"kind":"cat","ok":true}],"id":7}`,
		`{"name":"A` + "\x01" + `","age":36,"height":1.7,"role":"admin","tags":[],"pets":[{"kind":"cat","ok":true}],"id":7}`,
		`{"name":"Ada"  ,"age":36,"height":1.7,"role":"admin","tags":[],"pets":[{"kind":"cat","ok":true}],"id":7}`,
	}
	for _, g := range good {
		if !s.Valid([]byte(g)) {
			t.Errorf("refused %s", g)
		}
		if !json.Valid([]byte(g)) {
			t.Errorf("the test's good text is not JSON: %s", g)
		}
		for cut := range len(g) {
			if !s.Prefix([]byte(g[:cut])) {
				t.Fatalf("prefix %q of %s refused", g[:cut], g)
			}
			if s.Valid([]byte(g[:cut])) {
				t.Fatalf("prefix %q of %s accepted whole", g[:cut], g)
			}
		}
	}
	for _, b := range bad {
		if s.Valid([]byte(b)) {
			t.Errorf("accepted %s", b)
		}
	}
	// a top level that is not an object, and bounded arrays
	for _, c := range []struct {
		schema     string
		good, bads []string
	}{
		{`{"type":"integer"}`, []string{"0", "-17", "42"}, []string{"01", "1.5", "-", "\"1\""}},
		{`{"type":"array","items":{"type":"boolean"},"minItems":2,"maxItems":3}`, []string{"[true,false]", "[ false, false, true ]"}, []string{"[]", "[true]", "[true,true,true,true]"}},
		{`{"type":"array","items":{"type":"null"},"maxItems":0}`, []string{"[]", "[ ]"}, []string{"[null]"}},
		{`{"type":"object","properties":{}}`, []string{"{}", "{ }"}, []string{`{"a":1}`}},
		{`{"enum":[{"a":[1,"<"]}, 2.50]}`, []string{`{"a":[1,"<"]}`, `2.50`}, []string{`{"a":[1,"\u003c"]}`, `2.5`}},
		{`{"type":["integer","null"],"enum":[1, 1.5, "x", null]}`, []string{"1", "null"}, []string{"1.5", `"x"`}},
		// pydantic's nested models: $defs and $ref (also through anyOf, and a pointer's ~1 escape)
		{refSchema,
			[]string{`{"home":{"city":"Oslo"},"work":null,"k":"x"}`, `{"home":{"city":""},"work":{"city":"Rome"},"k":"x"}`},
			[]string{`{"home":null,"work":null,"k":"x"}`, `{"home":{"city":1},"work":null,"k":"x"}`, `{"home":{"city":"a"},"work":{},"k":"x"}`}},
		{`{"type":"array","items":{"$ref":"#/definitions/p"},"maxItems":2,"definitions":{"p":{"type":"integer"}}}`, []string{"[]", "[1,2]"}, []string{`["1"]`, "[1,2,3]"}},
		{`{"type":"string","format":"date"}`, []string{`"2024-02-29"`, `"0001-12-31"`}, []string{`"2024-13-01"`, `"24-01-01"`, `"2024-01-32"`, `"2024-1-01"`}},
		{`{"type":"string","format":"time"}`, []string{`"23:59:60Z"`, `"00:00:00.5+05:30"`, `"12:30:00z"`}, []string{`"24:00:00Z"`, `"12:30:00"`, `"12:60:00Z"`}},
		{`{"type":"string","format":"date-time"}`, []string{`"2024-01-02T03:04:05Z"`, `"2024-01-02t03:04:05.123-08:00"`}, []string{`"2024-01-02 03:04:05Z"`, `"2024-01-02T03:04Z"`}},
		{`{"type":"string","format":"uuid"}`, []string{`"123e4567-e89b-12d3-A456-426614174000"`}, []string{`"123e4567e89b12d3a456426614174000"`, `"123e4567-e89b-12d3-a456-42661417400g"`}},
		{`{"type":"string","format":"ipv4"}`, []string{`"192.168.0.1"`, `"0.0.0.0"`, `"255.255.255.255"`}, []string{`"256.1.1.1"`, `"01.1.1.1"`, `"1.1.1"`}},
		{`{"type":["string","null"],"format":"email"}`, []string{`"anything"`, `"a@b.c"`, "null"}, []string{"1"}}, // annotation only
		{`{"type":"string","minLength":2,"maxLength":3}`,
			[]string{`"ab"`, `"abc"`, `"é€"`, `"\n\u00e9"`, `"\ud83d\ude00x"`, `"\"\\"`},
			[]string{`"a"`, `"abcd"`, `""`, `"\ud83dx"`, `"\ude00ab"`, `"\ud83d\u0041"`}},
		{`{"type":"string","minLength":1}`, []string{`"a"`, `"` + strings.Repeat("x", 300) + `"`}, []string{`""`}},
		// the bounds at their limits (each point of the counted tail leaves straight to its end: upTo)
		{`{"type":"string","maxLength":256}`,
			[]string{`""`, `"` + strings.Repeat("x", 256) + `"`, `"` + strings.Repeat("é", 255) + `\n"`, `"` + strings.Repeat(`\ud83d\ude00`, 256) + `"`},
			[]string{`"` + strings.Repeat("x", 257) + `"`, `"` + strings.Repeat("€", 256) + `\t"`, `"` + strings.Repeat("x", 100) + `\ud83d"`}},
		{`{"type":"string","minLength":250,"maxLength":256}`,
			[]string{`"` + strings.Repeat("x", 250) + `"`, `"` + strings.Repeat("x", 253) + `"`, `"` + strings.Repeat("x", 256) + `"`},
			[]string{`"` + strings.Repeat("x", 249) + `"`, `"` + strings.Repeat("x", 257) + `"`}},
		{`{"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":64}`,
			[]string{"[1]", "[" + strings.TrimSuffix(strings.Repeat("7, ", 64), ", ") + "]"},
			[]string{"[]", "[" + strings.TrimSuffix(strings.Repeat("7,", 65), ",") + "]", "[1,]"}},
		// ~30,000 states: past the old cap of 16,384 (1 KiB a state), within the table's 16 MiB at 50 byte classes
		{`{"type":"object","properties":{"name":{"type":"string","maxLength":256},"tags":{"type":"array","items":{"type":"string","maxLength":64},"maxItems":16}},"required":["name","tags"]}`,
			[]string{`{"name":"","tags":[]}`, `{"name":"a","tags":[` + strings.TrimSuffix(strings.Repeat(`"`+strings.Repeat("é", 64)+`",`, 16), ",") + `]}`},
			[]string{`{"name":"a","tags":[` + strings.TrimSuffix(strings.Repeat(`"x",`, 17), ",") + `]}`, `{"name":"a","tags":["` + strings.Repeat("x", 65) + `"]}`, `{"tags":[],"name":""}`}},
		{`{"type":"string","pattern":"^a{2,64}(-[0-9]{0,3})?$"}`,
			[]string{`"aa"`, `"` + strings.Repeat("a", 64) + `"`, `"aaa-"`, `"aa-123"`},
			[]string{`"a"`, `"` + strings.Repeat("a", 65) + `"`, `"aa-1234"`, `"aa1"`}},
		// numeric bounds, as pydantic's Field(ge=, le=, gt=, lt=) writes them
		{`{"type":"integer","minimum":0,"maximum":120}`, []string{"0", "7", "120"}, []string{"121", "-1", "-0", "1.0", "1e2"}},
		{`{"type":"number","exclusiveMinimum":0,"maximum":1}`, []string{"0.001", "1", "1.000", "0.5"}, []string{"0", "0.0", "1.01", "-0.5", "1e-3"}},
		{`{"type":"integer","exclusiveMaximum":0}`, []string{"-1", "-1000"}, []string{"0", "-0"}},
		// pydantic's dict[str, int] and tuple[int, str]
		{`{"type":"object","additionalProperties":{"type":"integer"}}`, []string{"{}", `{"a":1}`, `{"a":1, "b":-2}`, `{ "x" : 3 }`}, []string{`{"a":"1"}`, `{"a":1,}`, `{1:1}`}},
		{`{"type":"array","prefixItems":[{"type":"integer"},{"type":"string"}],"minItems":2,"maxItems":2}`, []string{`[1,"a"]`, `[ -3 , "" ]`}, []string{"[1]", `[1,"a",2]`, `["a",1]`, "[]"}},
		{`{"type":"array","prefixItems":[{"type":"boolean"}],"items":{"type":"null"},"maxItems":3}`, []string{"[]", "[true]", "[true,null,null]"}, []string{"[null]", "[true,null,null,null]", "[true,true]"}},
		{`{"type":"array","prefixItems":[{"type":"integer"},{"type":"integer"}]}`, []string{"[]", "[1]", "[1,2]"}, []string{"[1,2,3]", "[,2]"}},
		{`{"type":"array","prefixItems":[{"type":"integer"}],"items":{"type":"string"},"minItems":3}`, []string{`[1,"a","b"]`, `[1,"a","b","c"]`}, []string{`[1,"a"]`, `[1,2,"b"]`}},
	} {
		s := mustSchema(t, c.schema)
		for _, g := range c.good {
			if !s.Valid([]byte(g)) {
				t.Errorf("%s refused %s", c.schema, g)
			}
		}
		for _, b := range c.bads {
			if s.Valid([]byte(b)) {
				t.Errorf("%s accepted %s", c.schema, b)
			}
		}
	}
}

// TestSchemaErrors: a schema the constraint cannot take is refused with the
// keyword or value named, never compiled into something else.
func TestSchemaErrors(t *testing.T) {
	for _, c := range []struct{ schema, want string }{
		{`{"type":"string","not":{"type":"null"}}`, `"not" is not supported`},
		{`{"type":"string","pattern":"(a)\\1"}`, "backreferences are not supported"},
		{`{"type":"string","pattern":"a(?=b)"}`, "lookaround is not supported"},
		{`{"type":"string","pattern":"\\bword"}`, "word boundary"},
		{`{"type":"string","pattern":"é"}`, "non-ASCII"},
		{`{"type":"string","pattern":"a{1,100}"}`, "beyond 64"},
		{`{"type":"string","pattern":"(a"}`, "( without )"},
		{`{"type":"string","pattern":"a^b"}`, "only at the pattern's ends"},
		{`{"type":"string","pattern":"a","maxLength":3}`, "pattern with minLength"},
		{`{"type":"object"}`, "free-form objects"},
		{`{"type":"object","properties":{"a":{"type":"string","format":"date","maxLength":3}}}`, `schema.properties.a: format "date" with minLength or maxLength`},
		{`{"type":"string","maxLength":1000}`, "maxLength: want an integer from 0 to 256"},
		{`{"type":"string","minLength":3,"maxLength":2}`, "maxLength 2 < minLength 3"},
		{`{"$defs":{"n":{"type":"object","properties":{"next":{"anyOf":[{"type":"null"},{"$ref":"#/$defs/n"}]}}}},"$ref":"#/$defs/n"}`, "refers to itself"},
		{`{"type":"object","properties":{"a":{"anyOf":[{"type":"null"},{"$ref":"#"}]}}}`, `"#" refers to itself`},
		{`{"$ref":"https://example.com/s.json"}`, "only references within the schema"},
		{`{"$ref":"#/$defs/a","type":"string","$defs":{"a":{"type":"null"}}}`, `"type" beside $ref`},
		{`{"$ref":"#/$defs/a/properties/x","$defs":{"a":{"type":"null"}}}`, `("properties" not found)`},
		{`{"$ref":"#/$defs/a","$defs":{"a":{"type":"strin"}}}`, `#/$defs/a.type: "strin" is not a JSON type`},
		{`{"type":"array"}`, "needs items"},
		{`{"type":"array","items":{"type":"string"},"maxItems":1000}`, "maxItems"},
		{`{"type":"array","items":{"type":"string"},"minItems":3,"maxItems":2}`, "maxItems 2 < minItems 3"},
		{`{"type":"strin"}`, `"strin" is not a JSON type`},
		{`{"$ref":"#/$defs/x"}`, `"#/$defs/x": no such subschema ("$defs" not found)`},
		{`{"$ref":7}`, "$ref: want a string"},
		{`{}`, "no type"},
		{`true`, "any value"},
		{`[1]`, "must be an object"},
		{`{"type":"string"} {}`, "more than one"},
		{`{"type":`, "schema:"},
		{`{"enum":[]}`, "enum"},
		{`{"type":"string","enum":[1,2]}`, `no value of the type "string"`},
		{`{"const":1,"enum":[1]}`, "together"},
		{`{"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":{"type":"string"}}`, "additionalProperties"},
		{`{"type":"string","type":"integer"}`, "twice"},
		{strings.Repeat(`{"type":"array","items":`, 40) + `{"type":"null"}` + strings.Repeat("}", 40), "deeper"},
	} {
		_, err := NewSchema(toyJSON(), []byte(c.schema))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.schema, err, c.want)
		}
	}
	// a schema whose automaton would be too large: ten nested bounded arrays
	big := `{"type":"null"}`
	for range 10 {
		big = `{"type":"array","items":` + big + `,"maxItems":64}`
	}
	if _, err := NewSchema(toyJSON(), []byte(big)); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("ten nested arrays of up to 64: error %v, want too large", err)
	}
	// references that double at each of 15 levels (2^15 copies of the last)
	bomb := `{"$defs":{"d0":{"type":"integer"}`
	for i := 1; i <= 15; i++ {
		bomb += fmt.Sprintf(`,"d%d":{"type":"object","properties":{"a":{"$ref":"#/$defs/d%d"},"b":{"$ref":"#/$defs/d%d"}}}`, i, i-1, i-1)
	}
	bomb += `},"$ref":"#/$defs/d15"}`
	if _, err := NewSchema(toyJSON(), []byte(bomb)); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("references doubling 15 times: error %v, want too large", err)
	}
	// a pattern whose automaton's states each hold many NFA nodes: eight
	// free runs of any character compile (6,659 states; each point before a
	// character is one node), sixteen pass MaxSchemaWork
	dots := func(n int) string {
		return `{"type":"string","pattern":"^` + strings.Repeat(".{0,64}", n) + `$"}`
	}
	if s, err := NewSchema(toyJSON(), []byte(dots(8))); err != nil || s.States() != 6659 {
		t.Errorf("eight runs of .{0,64}: error %v, want 6,659 states", err)
	}
	if _, err := NewSchema(toyJSON(), []byte(dots(16))); err == nil || !strings.Contains(err.Error(), "too complex") {
		t.Errorf("sixteen runs of .{0,64}: error %v, want too complex", err)
	}
}

// TestSchemaWalks: random texts the automaton lets through, byte by byte
// (printable ASCII and whitespace), are JSON that an independent check of
// the schema accepts: the types, every property in order, enum and const
// values, array bounds.
func TestSchemaWalks(t *testing.T) {
	for _, schema := range []string{personSchema, formatSchema, rangeSchema, containerSchema} {
		walkSchema(t, schema)
	}
}

// formatSchema has references, formats and string lengths.
const formatSchema = `{"$defs":{"When":{"type":"object","properties":{"day":{"type":"string","format":"date"},"at":{"type":["string","null"],"format":"date-time"}}},` +
	`"Code":{"type":"string","minLength":2,"maxLength":4}},"type":"object","properties":{"id":{"type":"string","format":"uuid"},` +
	`"ip":{"type":"string","format":"ipv4"},"t":{"type":"string","format":"time"},"when":{"$ref":"#/$defs/When"},` +
	`"codes":{"type":"array","items":{"$ref":"#/$defs/Code"},"maxItems":3},"note":{"type":"string","minLength":1,"maxLength":5}}}`

// rangeSchema has numeric bounds.
const rangeSchema = `{"type":"object","properties":{"age":{"type":"integer","minimum":0,"maximum":120},"p":{"type":"number","minimum":0,"maximum":1},` +
	`"t":{"type":"number","exclusiveMinimum":-40,"exclusiveMaximum":60},"n":{"type":"integer","exclusiveMaximum":0},"big":{"type":"integer","minimum":1000}}}`

// containerSchema has a map (additionalProperties) and a tuple
// (prefixItems) with more items after it.
const containerSchema = `{"type":"object","properties":{"m":{"type":"object","additionalProperties":{"type":"integer","minimum":0}},` +
	`"t":{"type":"array","prefixItems":[{"type":"string","maxLength":3},{"type":"number"}],"items":{"type":"boolean"},"minItems":1,"maxItems":4}}}`

func walkSchema(t *testing.T, schema string) {
	rng := rand.New(rand.NewPCG(5, 9))
	root, err := parseOrdered([]byte(schema))
	if err != nil {
		t.Fatal(err)
	}
	s := mustSchema(t, schema)
	done := 0
	for walk := 0; walk < 400; walk++ {
		var text []byte
		st := int32(0)
		for len(text) < 4000 {
			if s.accept[st] && rng.IntN(4) == 0 {
				break
			}
			var opts []byte
			for c := 0x20; c < 0x7f; c++ {
				if s.next(st, byte(c)) != deadState {
					opts = append(opts, byte(c))
				}
			}
			for _, c := range []byte{'\n', '\t'} {
				if s.next(st, c) != deadState {
					opts = append(opts, c)
				}
			}
			if len(opts) == 0 {
				break
			}
			// favour the structural bytes so walks end
			c := opts[rng.IntN(len(opts))]
			for _, p := range []byte(`"]}`) {
				if slices.Contains(opts, p) && rng.IntN(3) == 0 {
					c = p
				}
			}
			text = append(text, c)
			st = s.next(st, c)
		}
		if !s.accept[st] {
			continue
		}
		done++
		v, err := parseOrdered(text)
		if err != nil && json.Valid(text) && strings.Contains(err.Error(), "twice in one object") && strings.Contains(schema, `"additionalProperties":{`) {
			done--
			continue // a map's keys may repeat (mapOf): JSON, but not a value parseOrdered takes
		}
		if err != nil || !json.Valid(text) {
			t.Fatalf("walk %d: not JSON (%v): %s", walk, err, text)
		}
		if err := conforms(v, root, root); err != nil {
			t.Fatalf("walk %d: %v: %s", walk, err, text)
		}
	}
	if done < 100 {
		t.Errorf("only %d of 400 walks ended in an accepting state", done)
	}
}

// formatRE checks the formats the constraint writes, independently of its
// automaton.
var formatRE = func() map[string]*regexp.Regexp {
	date := `\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])`
	tm := `([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)`
	octet := `(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)`
	return map[string]*regexp.Regexp{
		"date":      regexp.MustCompile(`^` + date + `$`),
		"time":      regexp.MustCompile(`^` + tm + `$`),
		"date-time": regexp.MustCompile(`^` + date + `[Tt]` + tm + `$`),
		"uuid":      regexp.MustCompile(`^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$`),
		"ipv4":      regexp.MustCompile(`^(` + octet + `\.){3}` + octet + `$`),
	}
}()

// conforms checks value v against schema s of document root, independently
// of the automaton.
func conforms(v, s, root *onode) error {
	kw := map[string]*onode{}
	for i, k := range s.keys {
		kw[k] = s.vals[i]
	}
	lit := func(n *onode) string { var b strings.Builder; n.write(&b); return b.String() }
	if r := kw["$ref"]; r != nil { // "#/$defs/Name" only, here
		defs := root.vals[slices.Index(root.keys, "$defs")]
		name := strings.TrimPrefix(r.str, "#/$defs/")
		return conforms(v, defs.vals[slices.Index(defs.keys, name)], root)
	}
	if c := kw["const"]; c != nil {
		if lit(v) != lit(c) {
			return fmt.Errorf("%s is not const %s", lit(v), lit(c))
		}
		return nil
	}
	if e := kw["enum"]; e != nil {
		for _, x := range e.arr {
			if lit(v) == lit(x) {
				return nil
			}
		}
		return fmt.Errorf("%s is not in enum %s", lit(v), lit(e))
	}
	if a := kw["anyOf"]; a != nil {
		for _, sub := range a.arr {
			if conforms(v, sub, root) == nil {
				return nil
			}
		}
		return fmt.Errorf("%s matches no anyOf", lit(v))
	}
	var types []string
	if t := kw["type"]; t.kind == 's' {
		types = []string{t.str}
	} else {
		for _, x := range t.arr {
			types = append(types, x.str)
		}
	}
	for _, ty := range types {
		switch {
		case ty == "string" && v.kind == 's':
			if f := kw["format"]; f != nil && !formatRE[f.str].MatchString(v.str) {
				return fmt.Errorf("%q is not a %s", v.str, f.str)
			}
			n := utf8.RuneCountInString(v.str)
			if m := kw["minLength"]; m != nil {
				if k, _ := m.count(); n < k {
					return fmt.Errorf("%q: %d characters < minLength %d", v.str, n, k)
				}
			}
			if m := kw["maxLength"]; m != nil {
				if k, _ := m.count(); n > k {
					return fmt.Errorf("%q: %d characters > maxLength %d", v.str, n, k)
				}
			}
			return nil
		case ty == "boolean" && v.kind == 'b', ty == "null" && v.kind == 'z':
			return nil
		case ty == "number" && v.kind == 'n', ty == "integer" && v.kind == 'n':
			if !json.Valid([]byte(v.str)) || ty == "integer" && strings.ContainsAny(v.str, ".eE") {
				break
			}
			r, _ := new(big.Rat).SetString(v.str) // exact (it may overflow a float64)
			for _, b := range []struct {
				k    string
				sign int
			}{{"minimum", 1}, {"exclusiveMinimum", 1}, {"maximum", -1}, {"exclusiveMaximum", -1}} {
				if x := kw[b.k]; x != nil {
					lim, _ := new(big.Rat).SetString(x.str)
					if c := r.Cmp(lim) * b.sign; c < 0 || c == 0 && strings.HasPrefix(b.k, "exclusive") {
						return fmt.Errorf("%s is outside %s %s", v.str, b.k, x.str)
					}
				}
			}
			return nil
		case ty == "object" && v.kind == 'o':
			if ap := kw["additionalProperties"]; ap != nil && ap.kind == 'o' {
				for i := range v.keys {
					if err := conforms(v.vals[i], ap, root); err != nil {
						return fmt.Errorf("%s: %w", v.keys[i], err)
					}
				}
				return nil
			}
			props := kw["properties"]
			if !slices.Equal(v.keys, props.keys) {
				return fmt.Errorf("keys %v, want %v in order", v.keys, props.keys)
			}
			for i := range v.keys {
				if err := conforms(v.vals[i], props.vals[i], root); err != nil {
					return fmt.Errorf("%s: %w", v.keys[i], err)
				}
			}
			return nil
		case ty == "array" && v.kind == 'a':
			if m := kw["minItems"]; m != nil {
				if n, _ := m.count(); len(v.arr) < n {
					return fmt.Errorf("%d items < minItems %d", len(v.arr), n)
				}
			}
			if m := kw["maxItems"]; m != nil {
				if n, _ := m.count(); len(v.arr) > n {
					return fmt.Errorf("%d items > maxItems %d", len(v.arr), n)
				}
			}
			for i, x := range v.arr {
				sch := kw["items"]
				if p := kw["prefixItems"]; p != nil && i < len(p.arr) {
					sch = p.arr[i]
				} else if p != nil && (sch == nil || sch.kind == 'b') {
					return fmt.Errorf("item %d past prefixItems", i)
				}
				if err := conforms(x, sch, root); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return fmt.Errorf("%s is not of type %v", lit(v), types)
}

// TestSchemaMaskMatchesBruteForce: over Phi-4's vocabulary (cl100k), at byte
// prefixes of a conforming document, the schema's Mask keeps exactly the
// tokens whose whole bytes the automaton takes from that state (the
// grouping by first byte and the plain-string shortcut change nothing), and
// the end tokens only when the value is complete.
func TestSchemaMaskMatchesBruteForce(t *testing.T) {
	j := cl100kJSON(t)
	for _, c := range []struct{ schema, doc string }{
		{personSchema, "{\"name\": \"Ada L\\u00e9\", \"age\": 36, \"height\": null, \"role\": \"user <x>\",\n  \"tags\": [\"x\"], \"pets\": [{\"kind\": \"cat\", \"ok\": true}], \"id\": 12}"},
		{formatSchema, `{"id": "123e4567-e89b-12d3-a456-426614174000", "ip": "10.0.0.1", "t": "12:00:00Z", "when": {"day": "2024-05-06", "at": null}, "codes": ["ab", "x\ud83d\ude00z"], "note": "héllo"}`},
	} {
		s, err := NewSchema(j, []byte(c.schema))
		if err != nil {
			t.Fatal(err)
		}
		maskMatchesBruteForce(t, j, s, c.doc)
	}
}

func maskMatchesBruteForce(t *testing.T, j *JSON, s *Schema, d string) {
	n := len(j.tokens)
	logits := make([]float32, n)
	checked := 0
	// every few bytes, and the whole document (where the end tokens are kept)
	for cut := 0; ; cut = min(cut+1+cut%4, len(d)) {
		st := s.feed(0, []byte(d[:cut]))
		if st == deadState {
			t.Fatalf("prefix %q refused", d[:cut])
		}
		m := &schemaMatcher{s: s}
		clear(logits)
		m.mask(st, logits)
		keptExactly(t, j, logits, s.accept[st], func(b []byte) bool { return s.feed(st, b) != deadState }, d[:cut])
		checked++
		if cut == len(d) {
			if !s.accept[st] {
				t.Fatalf("the whole document is not accepted: %s", d)
			}
			break
		}
	}
	t.Logf("%d states × %d tokens", checked, n)
}

// TestSchemaMatcher: the matcher over the toy vocabulary follows generated
// tokens, takes a changed history (a rejected draft), and leaves only the
// end tokens after text outside the schema.
func TestSchemaMatcher(t *testing.T) {
	j := toyJSON()
	s, err := NewSchema(j, []byte(`{"type":"object","properties":{"a":{"type":"integer"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	m := s.NewMatcher()
	keep := func(gen []int) []string { return allowed(m, gen) }
	if got := keep(nil); !slices.Contains(got, "{") || slices.Contains(got, "[") || slices.Contains(got, "<end>") {
		t.Errorf("at the start: %q", got)
	}
	gen := ids(`{`, `"a"`, `:`, `1`)
	if got := keep(gen); !slices.Contains(got, "}") || slices.Contains(got, "<end>") || slices.Contains(got, ",") {
		t.Errorf(`after {"a":1: %q`, got)
	}
	if got := keep(append(gen, ids("}")...)); !slices.Equal(got, []string{"<end>"}) {
		t.Errorf("after the object: %q, want only <end>", got)
	}
	if got := keep(ids(`{`, `[`)); !slices.Equal(got, []string{"<end>"}) {
		t.Errorf("after text outside the schema: %q, want only <end>", got)
	}
	if got := keep(ids(`{`)); !slices.Contains(got, `"a"`) || slices.Contains(got, "}") {
		t.Errorf("after {: %q", got)
	}
}

// FuzzSchema: any schema text compiles or is refused with an error, never a
// panic, and what compiles accepts nothing encoding/json calls invalid.
func FuzzSchema(f *testing.F) {
	for _, s := range []string{personSchema, formatSchema, refSchema, rangeSchema, containerSchema, `{"type":"string","pattern":"^[a-z]{2,4}(-\\d+)?$"}`, `{"type":"string","minLength":1,"maxLength":3}`, `{"type":"integer"}`, `{"enum":[1,"a",null]}`, `{"type":"array","items":{"type":"string"},"maxItems":2}`, `{"anyOf":[{"type":"null"},{"const":{"a":1}}]}`} {
		f.Add(s, `{"a":1}`)
	}
	f.Fuzz(func(t *testing.T, schema, text string) {
		s, err := NewSchema(toyJSON(), []byte(schema))
		if err != nil {
			return
		}
		if s.Valid([]byte(text)) && !json.Valid([]byte(text)) {
			t.Fatalf("%s accepts %q, which is not JSON", schema, text)
		}
	})
}

// BenchmarkSchemaMask: one step's mask over Phi-4's vocabulary (cl100k)
// under personSchema, at the start, inside a free string, after an integer
// and after a property's colon (the automaton's table lookups, one a byte).
//
//	go test ./constrain -run XXX -bench SchemaMask
func BenchmarkSchemaMask(b *testing.B) {
	benchMasks(b, func(j *JSON) sample.Constraint {
		s, err := NewSchema(j, []byte(personSchema))
		if err != nil {
			b.Fatal(err)
		}
		return s
	}, [][2]string{{"start", ""}, {"string", `{"name": "Ada Love`}, {"after-integer", `{"name": "Ada", "age": 36`}, {"after-colon", `{"name": "Ada", "age":`}})
}

// BenchmarkSchemaMaskFormats: the mask under formatSchema inside a counted
// string (maxLength: no plain-string shortcut, every token walked), a
// date and a UUID, and compiling the schema.
//
//	go test ./constrain -run XXX -bench SchemaMaskFormats
func BenchmarkSchemaMaskFormats(b *testing.B) {
	benchMasks(b, func(j *JSON) sample.Constraint {
		s, err := NewSchema(j, []byte(formatSchema))
		if err != nil {
			b.Fatal(err)
		}
		return s
	}, [][2]string{{"uuid", `{"id": "123e45`}, {"date", `{"id": "123e4567-e89b-12d3-a456-426614174000", "ip": "1.2.3.4", "t": "12:00:00Z", "when": {"day": "2024-`},
		{"counted-string", `{"id": "123e4567-e89b-12d3-a456-426614174000", "ip": "1.2.3.4", "t": "12:00:00Z", "when": {"day": "2024-01-02", "at": null}, "codes": [], "note": "ab`}})
}

// BenchmarkSchemaCompile: a schema's automaton built, including bounds that
// unroll into long chains (a string of up to 256 characters, up to 64 items,
// a pattern's {0,64}).
//
//	go test ./constrain -run XXX -bench SchemaCompile
func BenchmarkSchemaCompile(b *testing.B) {
	for _, c := range []struct{ name, schema string }{{"person", personSchema}, {"formats-refs", formatSchema},
		{"maxLength-256", `{"type":"string","maxLength":256}`},
		{"maxItems-64", `{"type":"array","items":{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"boolean"}},"required":["a","b"]},"maxItems":64}`},
		{"pattern-0-64", `{"type":"string","pattern":"^[a-z]{0,64}(-[0-9]{0,64})?$"}`},
		{"pattern-dots", `{"type":"string","pattern":"^.{0,64}.{0,64}.{0,64}$"}`},
		{"pattern-dots-8", `{"type":"string","pattern":"^` + strings.Repeat(".{0,64}", 8) + `$"}`}} {
		b.Run(c.name, func(b *testing.B) {
			j := toyJSON()
			for b.Loop() {
				if _, err := NewSchema(j, []byte(c.schema)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestSchemaNumberRanges: integers and numbers under random bounds
// (inclusive, exclusive, one side, fractional for integers) accept exactly
// the plain decimal numbers that exact rational arithmetic puts inside
// them (no exponent, no negative zero).
func TestSchemaNumberRanges(t *testing.T) {
	var texts []string
	for i := -130; i <= 130; i++ {
		for _, f := range []string{"", ".5", ".0", ".05", ".000", ".999"} {
			texts = append(texts, fmt.Sprintf("%d%s", i, f))
		}
	}
	texts = append(texts, "-0", "-0.0", "-0.5", "-0.05", "1000000", "-1000000", "9007199254740993", "1e2", "-1E+1", "12345678901234567890", "0.0001")
	rng := rand.New(rand.NewPCG(3, 4))
	ends := []string{"-100", "-17", "-1", "0", "1", "9", "10", "99", "100", "-2.5", "0.5", "7.25"}
	for range 300 {
		integer := rng.IntN(2) == 0
		ty := map[bool]string{true: "integer", false: "number"}[integer]
		kw := []string{`"type":"` + ty + `"`}
		var lo, hi *big.Rat
		var loEx, hiEx bool
		pick := func() string {
			for {
				e := ends[rng.IntN(len(ends))]
				if integer || !strings.Contains(e, ".") {
					return e
				}
			}
		}
		if rng.IntN(4) > 0 {
			e := pick()
			lo, _ = new(big.Rat).SetString(e)
			loEx = rng.IntN(2) == 0
			kw = append(kw, fmt.Sprintf(`"%s":%s`, map[bool]string{true: "exclusiveMinimum", false: "minimum"}[loEx], e))
		}
		if rng.IntN(4) > 0 {
			e := pick()
			hi, _ = new(big.Rat).SetString(e)
			hiEx = rng.IntN(2) == 0
			kw = append(kw, fmt.Sprintf(`"%s":%s`, map[bool]string{true: "exclusiveMaximum", false: "maximum"}[hiEx], e))
		}
		if lo == nil && hi == nil {
			continue
		}
		schema := "{" + strings.Join(kw, ",") + "}"
		s, err := NewSchema(toyJSON(), []byte(schema))
		inside := func(r *big.Rat) bool {
			if lo != nil && (r.Cmp(lo) < 0 || loEx && r.Cmp(lo) == 0) {
				return false
			}
			return hi == nil || r.Cmp(hi) < 0 || !hiEx && r.Cmp(hi) == 0
		}
		any := false
		for _, x := range texts {
			r, _ := new(big.Rat).SetString(x)
			want := !strings.ContainsAny(x, "eE") && !(x[0] == '-' && r.Sign() == 0) && inside(r) && (!integer || !strings.Contains(x, "."))
			any = any || want
			if err == nil && s.Valid([]byte(x)) != want {
				t.Fatalf("%s: %s accepted %v, want %v", schema, x, !want, want)
			}
		}
		if err != nil && (any || !strings.Contains(err.Error(), "between its bounds")) {
			t.Fatalf("%s: %v", schema, err)
		}
	}
	for _, c := range []struct{ schema, want string }{
		{`{"type":"number","minimum":0.5}`, "must be whole numbers"},
		{`{"type":"integer","maximum":1e300}`, "beyond ±2^53"},
		{`{"type":"integer","minimum":"1"}`, "minimum: want a number"},
		{`{"type":"integer","minimum":5,"maximum":4}`, "no integer between its bounds"},
	} {
		if _, err := NewSchema(toyJSON(), []byte(c.schema)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.schema, err, c.want)
		}
	}
}

// TestSchemaPattern: a pattern accepts exactly the strings Go's regexp
// (RE2, the same language as ECMA-262 for this subset) finds a match in,
// over every string of up to four characters from an alphabet with JSON's
// escaped characters and a non-ASCII one, each written as encoding/json
// writes it.
func TestSchemaPattern(t *testing.T) {
	alphabet := []string{"a", "b", "A", "0", "-", ".", "é", " ", `"`, "\n", "/", `\`}
	var texts []string
	var grow func(s string, n int)
	grow = func(s string, n int) {
		texts = append(texts, s)
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			grow(s+c, n-1)
		}
	}
	grow("", 4)
	encode := func(s string) []byte {
		var b bytes.Buffer
		e := json.NewEncoder(&b)
		e.SetEscapeHTML(false)
		if err := e.Encode(s); err != nil {
			t.Fatal(err)
		}
		return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	}
	for _, pat := range []string{`^a+$`, `a`, `^[ab]{2,3}$`, `^[^a]*$`, `b.`, `^(ab|a)*$`, `^\d{1,2}-\w+$`, `^[A-Z0-9\-]+$`,
		`^.{0,2}$`, `^[^"]*$`, `^[a"\\]+$`, `\n`, `^/?a$`, `(?:a|b)+$`, `^a{2}b??$`, `^$`, `x*`, `^[.]$`, `^\S\s\S$`, `^[\w.-]+/\w*$`} {
		re := regexp.MustCompile(pat)
		schema, _ := json.Marshal(map[string]any{"type": "string", "pattern": pat})
		s := mustSchema(t, string(schema))
		for _, x := range texts {
			if got, want := s.Valid(encode(x)), re.MatchString(x); got != want {
				t.Fatalf("pattern %q, %q (%s): accepted %v, want %v", pat, x, encode(x), got, want)
			}
		}
	}
	t.Logf("%d strings under each of 20 patterns", len(texts))
	// every way JSON may write a character (the encoder above writes one)
	s := mustSchema(t, `{"type":"string","pattern":"^[\\s\\S]$"}`)
	for _, c := range []struct {
		text string
		ok   bool
	}{
		{`"a"`, true}, {`"é"`, true}, {`"/"`, true}, {`"\/"`, true}, {`"\""`, true}, {`"\\"`, true},
		{`"\n"`, true}, {`"\u000a"`, true}, {`"\u000A"`, true}, {`"\t"`, true}, {`"\u0001"`, true},
		{`"\u001f"`, true}, {`"\u001F"`, true}, {`"\b"`, true},
		{`""`, false}, {`"ab"`, false}, {`"\u0"`, false}, {`"\u000"`, false}, {`"\u000g"`, false},
		{`"\x"`, false}, {`"\u0020"`, false}, {`"\u00010"`, false}, {`"\/\/"`, false},
	} {
		if got := s.Valid([]byte(c.text)); got != c.ok {
			t.Errorf("pattern ^[\\s\\S]$, %s: accepted %v, want %v", c.text, got, c.ok)
		}
	}
}

// TestSchemaFor: a schema compiled without a vocabulary and given one by
// For masks as one compiled for that vocabulary, and the one it came from
// keeps none (the CLI checks a schema before the model loads).
func TestSchemaFor(t *testing.T) {
	const schema = `{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string","maxLength":3}}}`
	bare, err := NewSchema(NewJSON(0, nil, nil, nil), []byte(schema))
	if err != nil {
		t.Fatal(err)
	}
	direct := mustSchema(t, schema)
	given, m := bare.For(toyJSON()).NewMatcher(), direct.NewMatcher()
	for _, gen := range [][]int{nil, ids(`{`), ids(`{`, `"a"`, `:`, `1`), ids(`{`, `"a"`, `:`, `1`, `}`), ids(`{`, `[`)} {
		if got, want := allowed(given, gen), allowed(m, gen); !slices.Equal(got, want) || len(want) == 0 {
			t.Errorf("after %v: For's schema keeps %q, the one compiled for the vocabulary %q", gen, got, want)
		}
	}
	if len(bare.v.tokens) != 0 {
		t.Errorf("For changed the schema it was called on")
	}
}

// TestSchemaOrText: before the answer begins, a token that would begin it
// with "{" must begin a value of the schema and any other is free; an answer
// that began otherwise is free; one that began with "{" goes on as the
// schema's value, and only it.
func TestSchemaOrText(t *testing.T) {
	s := mustSchema(t, `{"type":"object","properties":{"a":{"type":"integer"}}}`)
	m := s.OrText().NewMatcher()
	all := len(toy)
	if got := allowed(m, nil); !slices.Contains(got, `{"`) || !slices.Contains(got, "x") || !slices.Contains(got, "{") || len(got) != all {
		t.Errorf("undecided: %v", got)
	}
	if got := allowed(m, ids(" ", "\n")); !slices.Contains(got, "{") || !slices.Contains(got, "x") {
		t.Errorf("after whitespace: %v", got)
	}
	if got := allowed(m, ids("x")); len(got) != all {
		t.Errorf("text: %d of %d tokens left: %v", len(got), all, got)
	}
	if got := allowed(m, ids(" ", "{")); !slices.Equal(got, []string{"\"", " ", "\"a\"", "\n"}) {
		t.Errorf("after { : %v", got)
	}
	if got := allowed(m, ids("{", "\"a\"", ":", "1", "}")); !slices.Equal(got, []string{"<end>"}) {
		t.Errorf("after a whole value: %v", got)
	}
	// step by step on one matcher (each step feeds only the new token), and a changed history
	for _, c := range []struct {
		gen  []string
		want []string
	}{
		{[]string{"\n", "{"}, []string{"\"", " ", "\"a\"", "\n"}},
		{[]string{"\n", "{", "\"a\""}, []string{":", " ", "\n"}},
		{[]string{"\n", "{", "\"a\"", ":"}, []string{" ", "1", "0", "\n"}},
		{[]string{"\n", "{", "\"a\"", ":", "0"}, []string{"}", " ", "\n"}},
		{[]string{"{", "\"a\"", ":", "1"}, []string{"}", " ", "1", "0", "\n"}},
	} {
		if got := allowed(m, ids(c.gen...)); !slices.Equal(got, c.want) {
			t.Errorf("after %q: %v, want %v", c.gen, got, c.want)
		}
	}
	// a schema whose values never begin with {"a": the two-byte token {" still may, {"} never
	s2 := mustSchema(t, `{"type":"object","properties":{"b":{"type":"null"}}}`)
	if got := allowed(s2.OrText().NewMatcher(), nil); !slices.Contains(got, `{"`) || !slices.Contains(got, "{") {
		t.Errorf("undecided, second schema: %v", got)
	}
	s3 := mustSchema(t, `{"type":"object","properties":{}}`)
	if got := allowed(s3.OrText().NewMatcher(), nil); slices.Contains(got, `{"`) || !slices.Contains(got, "{") || !slices.Contains(got, "a") {
		t.Errorf("undecided, an empty object's schema: %v", got)
	}
}
