package serve

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/upg-ai/upg/chat"
)

func toolParams(t *testing.T, tools, choice string) params {
	t.Helper()
	var p params
	if e := p.parseTools(json.RawMessage(tools), json.RawMessage(choice)); e != nil {
		t.Fatal(e)
	}
	return p
}

const testTools = `[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}},
	{"type":"function","function":{"name":"ping","description":"no parameters"}}]`

// TestParseCall: which answers are calls of an offered tool.
func TestParseCall(t *testing.T) {
	p := toolParams(t, testTools, ``)
	for _, c := range []struct{ text, name, args string }{
		{`{"name": "get_weather", "arguments": {"city": "Oslo"}}`, "get_weather", `{"city":"Oslo"}`},
		{"  \n```json\n{\"name\":\"ping\",\"arguments\":{}}\n```\n", "ping", `{}`},
		{"```\n{\"name\":\"ping\",\"arguments\":{ }}```", "ping", `{}`},
		{`{"name": "nope", "arguments": {}}`, "", ""},             // not offered
		{`{"name": "ping", "arguments": "{}"}`, "", ""},           // arguments not an object
		{`{"name": "ping", "arguments": {}} and more`, "", ""},    // text after it
		{`{"name": "ping", "arguments": {}, "extra": 1}`, "", ""}, // unknown field
		{`Sure: {"name": "ping", "arguments": {}}`, "", ""},       // text before it
		{"```json\n{\"name\":\"ping\",\"arguments\":{}}", "", ""}, // an open fence
	} {
		name, args, ok := p.parseCall(c.text)
		if ok != (c.name != "") || name != c.name || args != c.args {
			t.Errorf("%q: %q %q %v, want %q %q", c.text, name, args, ok, c.name, c.args)
		}
	}
	named := toolParams(t, testTools, `{"type":"function","function":{"name":"ping"}}`)
	if _, _, ok := named.parseCall(`{"name": "get_weather", "arguments": {}}`); ok {
		t.Errorf("a call of a tool tool_choice did not name")
	}
	if named.toolMode != toolsRequired || named.toolName != "ping" {
		t.Errorf("named: mode %v name %q", named.toolMode, named.toolName)
	}
}

// TestMayBeCall: what a stream holds back.
func TestMayBeCall(t *testing.T) {
	for text, want := range map[string]bool{"": true, "  \n": true, "{": true, ` {"na`: true, "`": true, "``": true, "```js": true,
		"Sure": false, " I": false, "`x": false} {
		if got := mayBeCall(text); got != want {
			t.Errorf("%q: %v, want %v", text, got, want)
		}
	}
}

// TestToolMessages: the tools join the first system message or open one;
// a history's calls and results are written as the model writes them.
func TestToolMessages(t *testing.T) {
	p := toolParams(t, testTools, `"required"`)
	got := p.toolMessages([]chat.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "hi"}})
	if len(got) != 2 || !strings.HasPrefix(got[0].Content, "Be brief.\n\nYou can call these functions:\n") ||
		!strings.Contains(got[0].Content, `{"name":"ping","description":"no parameters","parameters":{"type":"object","properties":{}}}`) ||
		!strings.Contains(got[0].Content, "Answer with a call") {
		t.Errorf("with a system message: %+v", got)
	}
	got = p.toolMessages([]chat.Message{{Role: "user", Content: "hi"}})
	if len(got) != 2 || got[0].Role != "system" {
		t.Errorf("without one: %+v", got)
	}
	if none := toolParams(t, testTools, `"none"`); len(none.toolMessages([]chat.Message{{Role: "user", Content: "hi"}})) != 1 {
		t.Errorf("tool_choice none still describes the tools")
	}
	calls := []toolCall{{ID: "c1", Type: "function", Function: toolCallFunction{Name: "get_weather", Arguments: `{"city":"Oslo"}`}}}
	if h := historyCalls("", calls); h != `{"name": "get_weather", "arguments": {"city":"Oslo"}}` {
		t.Errorf("history call %q", h)
	}
	if r := toolResult("c1", "get_weather", "7 °C"); r != "Result of function get_weather (call c1):\n7 °C" {
		t.Errorf("tool result %q", r)
	}
	var schema map[string]any
	if err := json.Unmarshal(p.toolSchema(), &schema); err != nil || len(schema["anyOf"].([]any)) != 2 {
		t.Errorf("required's schema: %s (%v)", p.toolSchema(), err)
	}
}
