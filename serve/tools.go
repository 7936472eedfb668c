package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/upg-ai/upg/chat"
)

// Tool calling (OpenAI's tools and tool_choice). The model is told of the
// tools in a system message and answers a call as one JSON object,
// {"name": ..., "arguments": {...}}. With tool_choice "required" or a
// named function, its answer is constrained to such an object whose
// arguments the tool's parameters schema accepts (constrain.Schema), so
// every answer is a call; with "auto" (the default) it may answer in text,
// an answer it begins with "{" is constrained to be a call
// (constrain.Schema.OrText), and an answer that is such an object (fenced
// as ```json or not) is returned as a call. Earlier calls and their results in the messages go back into
// the prompt the same way: an assistant message with tool_calls as those
// objects, a tool message as a user message naming the call it answers.

// toolMode is what tool_choice allows.
type toolMode int

const (
	toolsNone     toolMode = iota // no tools, or tool_choice "none"
	toolsAuto                     // the model may call one
	toolsRequired                 // the model calls one (a named one: toolName)
)

// tool is one function the request offers.
type tool struct {
	Type     string       `json:"type"`
	Function toolFunction `json:"function"`
}

type toolFunction struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// toolCall is a call in a response, or in an assistant message of the
// request's history.
type toolCall struct {
	Index    *int             `json:"index,omitempty"` // stream chunks only
	ID       string           `json:"id"`
	Type     string           `json:"type"`
	Function toolCallFunction `json:"function"`
}

type toolCallFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// MaxTools is the most tools a request may offer.
const MaxTools = 128

var toolNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// noParameters is the schema of a function without parameters.
var noParameters = json.RawMessage(`{"type":"object","properties":{}}`)

// parseTools reads tools and tool_choice into p.
func (p *params) parseTools(rawTools, rawChoice json.RawMessage) *apiError {
	if !isNullOrEmpty(rawTools) {
		dec := json.NewDecoder(bytes.NewReader(rawTools))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p.tools); err != nil {
			return invalid("tools", "tools must be an array of {\"type\": \"function\", \"function\": {\"name\", \"description\", \"parameters\"}}: %v", err)
		}
		if len(p.tools) > MaxTools {
			return invalid("tools", "at most %d tools, got %d", MaxTools, len(p.tools))
		}
		seen := map[string]bool{}
		for i, t := range p.tools {
			param := fmt.Sprintf("tools[%d]", i)
			if t.Type != "function" {
				return invalid(param+".type", "tool type %q is not supported (only \"function\")", t.Type)
			}
			if !toolNameRE.MatchString(t.Function.Name) {
				return invalid(param+".function.name", "a function name is 1 to 64 letters, digits, _ or -, got %q", t.Function.Name)
			}
			if seen[t.Function.Name] {
				return invalid(param+".function.name", "function %q is named twice", t.Function.Name)
			}
			seen[t.Function.Name] = true
			if isNullOrEmpty(t.Function.Parameters) || bytes.Equal(bytes.TrimSpace(t.Function.Parameters), []byte("{}")) {
				p.tools[i].Function.Parameters = noParameters
			}
		}
	}
	p.toolMode = toolsNone
	if len(p.tools) > 0 {
		p.toolMode = toolsAuto
	}
	if isNullOrEmpty(rawChoice) {
		return nil
	}
	var mode string
	if json.Unmarshal(rawChoice, &mode) == nil {
		switch mode {
		case "none":
			p.toolMode = toolsNone
			return nil
		case "auto", "required":
			if len(p.tools) == 0 {
				return invalid("tool_choice", "tool_choice %q needs tools", mode)
			}
			if mode == "required" {
				p.toolMode = toolsRequired
			}
			return nil
		}
		return invalid("tool_choice", "tool_choice must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}, got %q", mode)
	}
	var named struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(rawChoice, &named); err != nil || named.Type != "function" {
		return invalid("tool_choice", "tool_choice must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}")
	}
	for _, t := range p.tools {
		if t.Function.Name == named.Function.Name {
			p.toolMode, p.toolName = toolsRequired, named.Function.Name
			return nil
		}
	}
	return invalid("tool_choice", "tool_choice names function %q, which tools does not offer", named.Function.Name)
}

// offered is the tools the model may call: the named one, or all.
func (p *params) offered() []tool {
	if p.toolName == "" {
		return p.tools
	}
	for _, t := range p.tools {
		if t.Function.Name == p.toolName {
			return []tool{t}
		}
	}
	return nil
}

// toolSchema is the JSON Schema of a call of one of the offered tools:
// {"name": its name, "arguments": what its parameters accept}.
func (p *params) toolSchema() json.RawMessage {
	var alts []string
	for _, t := range p.offered() {
		name, _ := json.Marshal(t.Function.Name)
		alts = append(alts, `{"type":"object","properties":{"name":{"const":`+string(name)+`},"arguments":`+
			string(t.Function.Parameters)+`},"additionalProperties":false}`)
	}
	if len(alts) == 1 {
		return json.RawMessage(alts[0])
	}
	return json.RawMessage(`{"anyOf":[` + strings.Join(alts, ",") + `]}`)
}

// toolPrompt is the system text that tells the model of the tools.
func (p *params) toolPrompt() string {
	var specs []string
	for _, t := range p.offered() {
		f := t.Function
		f.Strict = nil
		b, _ := json.Marshal(f)
		specs = append(specs, string(b))
	}
	how := "To call one, answer with only a JSON object: {\"name\": <the function's name>, \"arguments\": <an object of its parameters>}."
	if p.toolMode == toolsRequired {
		how = "Answer with a call: only a JSON object {\"name\": <the function's name>, \"arguments\": <an object of its parameters>}."
	}
	return "You can call these functions:\n" + strings.Join(specs, "\n") + "\n" + how
}

// callText is how a call appears in the model's answer (and in the prompt's
// history).
func callText(name, args string) string {
	n, _ := json.Marshal(name)
	if !json.Valid([]byte(args)) {
		a, _ := json.Marshal(args)
		args = string(a)
	}
	return `{"name": ` + string(n) + `, "arguments": ` + args + `}`
}

// parseCall reads an answer as a call of one of the offered tools: a JSON
// object {"name", "arguments"} (arguments an object), alone or in a ```
// fence; ok is false for anything else.
func (p *params) parseCall(text string) (name, args string, ok bool) {
	t := strings.TrimSpace(text)
	if rest, found := strings.CutPrefix(t, "```"); found {
		rest = strings.TrimPrefix(rest, "json")
		body, fenced := strings.CutSuffix(strings.TrimSpace(rest), "```")
		if !fenced {
			return "", "", false
		}
		t = strings.TrimSpace(body)
	}
	var call struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}
	dec := json.NewDecoder(strings.NewReader(t))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&call); err != nil || dec.More() {
		return "", "", false
	}
	a := bytes.TrimSpace(call.Arguments)
	if len(a) == 0 || a[0] != '{' {
		return "", "", false
	}
	for _, tl := range p.offered() {
		if tl.Function.Name == call.Name {
			var b bytes.Buffer
			if json.Compact(&b, a) != nil {
				return "", "", false
			}
			return call.Name, b.String(), true
		}
	}
	return "", "", false
}

// mayBeCall reports whether text, the start of an answer, could still
// become a call (parseCall): a stream holds such text back until it knows.
func mayBeCall(text string) bool {
	t := strings.TrimLeft(text, " \t\r\n")
	if t == "" {
		return true
	}
	if strings.HasPrefix(t, "```") || strings.HasPrefix("```", t) {
		return true
	}
	return t[0] == '{'
}

// toolMessages turns the request's tool messages into the template's
// roles: the tools' description joins the first system message (or opens
// one), an assistant message's calls are written as the model writes
// them, and a tool message becomes a user message naming its call.
func (p *params) toolMessages(msgs []chat.Message) []chat.Message {
	if p.toolMode == toolsNone {
		return msgs
	}
	sys := p.toolPrompt()
	if len(msgs) > 0 && msgs[0].Role == "system" {
		out := append([]chat.Message{}, msgs...)
		out[0].Content = strings.TrimRight(out[0].Content, "\n") + "\n\n" + sys
		return out
	}
	return append([]chat.Message{{Role: "system", Content: sys}}, msgs...)
}

// historyCalls writes an assistant message's calls after its content.
func historyCalls(content string, calls []toolCall) string {
	var b strings.Builder
	b.WriteString(content)
	for _, c := range calls {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		b.WriteString(callText(c.Function.Name, c.Function.Arguments))
	}
	return b.String()
}

// toolResult is a tool message as the user's: which call it answers.
func toolResult(id, name, content string) string {
	who := "the function call"
	if name != "" {
		who = "function " + name
	}
	if id != "" {
		who += " (call " + id + ")"
	}
	return "Result of " + who + ":\n" + content
}
