package chat

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/upg-ai/upg/internal/testutil"
)

// conv is a system+user+assistant+user conversation; the assistant turn has
// surrounding white space, which llama2 and llama3 strip and the others keep.
var conv = []Message{
	{"system", "You are terse."},
	{"user", "Hello!"},
	{"assistant", " Hi. \n"},
	{"user", "2+2?"},
}

func TestRenderExact(t *testing.T) {
	cases := []struct {
		name       string
		gen, nogen string
	}{
		{"phi4",
			"<|im_start|>system<|im_sep|>You are terse.<|im_end|><|im_start|>user<|im_sep|>Hello!<|im_end|><|im_start|>assistant<|im_sep|> Hi. \n<|im_end|><|im_start|>user<|im_sep|>2+2?<|im_end|><|im_start|>assistant<|im_sep|>",
			"<|im_start|>system<|im_sep|>You are terse.<|im_end|><|im_start|>user<|im_sep|>Hello!<|im_end|><|im_start|>assistant<|im_sep|> Hi. \n<|im_end|><|im_start|>user<|im_sep|>2+2?<|im_end|>"},
		{"phi3",
			"<|system|>\nYou are terse.<|end|>\n<|user|>\nHello!<|end|>\n<|assistant|>\n Hi. \n<|end|>\n<|user|>\n2+2?<|end|>\n<|assistant|>\n",
			"<|system|>\nYou are terse.<|end|>\n<|user|>\nHello!<|end|>\n<|assistant|>\n Hi. \n<|end|>\n<|user|>\n2+2?<|end|>\n<|endoftext|>"},
		{"llama2",
			"<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHello! [/INST] Hi. </s><s>[INST] 2+2? [/INST]",
			"<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHello! [/INST] Hi. </s><s>[INST] 2+2? [/INST]"},
		{"llama3",
			"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
			"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"},
		{"chatml",
			"<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n Hi. \n<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n",
			"<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n Hi. \n<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"},
	}
	for _, c := range cases {
		tm, ok := Get(c.name)
		if !ok || tm.Name != c.name {
			t.Fatalf("Get(%q) = %v, %v", c.name, tm, ok)
		}
		if got := tm.Render(conv, true); got != c.gen {
			t.Errorf("%s with generation prompt:\n got %q\nwant %q", c.name, got, c.gen)
		}
		if got := tm.Render(conv, false); got != c.nogen {
			t.Errorf("%s without generation prompt:\n got %q\nwant %q", c.name, got, c.nogen)
		}
	}
}

// TestLlamaCppVectors checks the templates against the expected outputs in
// llama.cpp's tests/test-chat-template.cpp, which renders the official Jinja
// templates on this six-message conversation. llama.cpp renders with an empty
// bos_token for Llama-3 and with bos "<s>" per user turn for the Llama-2
// family, so the BOS text is added here.
func TestLlamaCppVectors(t *testing.T) {
	conv := []Message{
		{"system", "You are a helpful assistant"},
		{"user", "Hello"},
		{"assistant", "Hi there"},
		{"user", "Who are you"},
		{"assistant", "   I am an assistant   "},
		{"user", "Another question"},
	}
	want := map[string]string{
		// "teknium/OpenHermes-2.5-Mistral-7B"
		"chatml": "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n<|im_start|>assistant\n",
		// "Llama-3"
		"llama3": "<|begin_of_text|>" + "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
		// "Phi-3-small" (same output as Phi-3-mini's current template)
		"phi3": "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n<|user|>\nWho are you<|end|>\n<|assistant|>\n   I am an assistant   <|end|>\n<|user|>\nAnother question<|end|>\n<|assistant|>\n",
		// "phi-4"
		"phi4": "<|im_start|>system<|im_sep|>You are a helpful assistant<|im_end|><|im_start|>user<|im_sep|>Hello<|im_end|><|im_start|>assistant<|im_sep|>Hi there<|im_end|><|im_start|>user<|im_sep|>Who are you<|im_end|><|im_start|>assistant<|im_sep|>   I am an assistant   <|im_end|><|im_start|>user<|im_sep|>Another question<|im_end|><|im_start|>assistant<|im_sep|>",
		// "bofenghuang/vigogne-2-70b-chat" (Llama-2 body, jinja output) with
		// Llama-2's "<s>" before each [INST].
		"llama2": "<s>[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there </s><s>[INST] Who are you [/INST] I am an assistant </s><s>[INST] Another question [/INST]",
	}
	for name, w := range want {
		tm, _ := Get(name)
		if got := tm.Render(conv, true); got != w {
			t.Errorf("%s:\n got %q\nwant %q", name, got, w)
		}
	}
}

// TestMiniphiTemplateFile renders conversations with the model's own
// chat_template.jinja (whose whole grammar is one loop over messages and an
// optional generation prompt) and compares with the phi4 template.
func TestMiniphiTemplateFile(t *testing.T) {
	const path = "../../shared/models/miniphi-29m/chat_template.jinja"
	testutil.NeedData(t, path)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^\{% for m in messages %\}(.*)\{% endfor %\}\{% if add_generation_prompt %\}(.*)\{% endif %\}\s*$`)
	sub := re.FindStringSubmatch(string(raw))
	if sub == nil {
		t.Fatalf("%s: template has an unexpected shape: %q", path, raw)
	}
	body, genPrompt := sub[1], sub[2]
	if strings.Contains(genPrompt, "{") {
		t.Fatalf("%s: generation prompt is not literal: %q", path, genPrompt)
	}
	render := func(msgs []Message, gen bool) string {
		var b strings.Builder
		for _, m := range msgs {
			s := strings.ReplaceAll(body, "{{ m['role'] }}", m.Role)
			b.WriteString(strings.ReplaceAll(s, "{{ m['content'] }}", m.Content))
		}
		if gen {
			b.WriteString(genPrompt)
		}
		return b.String()
	}
	if strings.Contains(render(nil, false), "{") || strings.Count(body, "{{") != 2 {
		t.Fatalf("%s: unexpected placeholders in %q", path, body)
	}
	phi4, _ := Get("phi4")
	for _, msgs := range [][]Message{nil, conv, conv[1:2], {{"user", "multi\nline {{ braces }}"}, {"assistant", "ok"}}} {
		for _, gen := range []bool{false, true} {
			if got, want := phi4.Render(msgs, gen), render(msgs, gen); got != want {
				t.Errorf("gen=%v:\n got %q\nwant %q (from %s)", gen, got, want, path)
			}
		}
	}
	// Its template must be detected as phi4.
	if d := Detect(string(raw), "Phi3ForCausalLM", nil); d.Name != "phi4" {
		t.Errorf("Detect(miniphi template) = %s", d.Name)
	}
}

func TestLlamaEdgeCases(t *testing.T) {
	l2, _ := Get("llama2")
	// Without a system message; content is stripped (Python str.strip also
	// strips U+001F, which Go's unicode.IsSpace does not).
	got := l2.Render([]Message{{"user", "\x1f hi \u3000"}, {"assistant", "yo"}, {"user", "q"}}, true)
	if want := "<s>[INST] hi [/INST] yo </s><s>[INST] q [/INST]"; got != want {
		t.Errorf("llama2 no system: %q", got)
	}
	// The system text itself is not stripped at its start; the fold is.
	got = l2.Render([]Message{{"system", " S "}, {"user", " U "}}, false)
	if want := "<s>[INST] <<SYS>>\n S \n<</SYS>>\n\n U [/INST]"; got != want {
		t.Errorf("llama2 system fold: %q", got)
	}
	l3, _ := Get("llama3")
	if got := l3.Render(nil, true); got != "<|start_header_id|>assistant<|end_header_id|>\n\n" {
		t.Errorf("llama3 empty: %q", got)
	}
	// Unknown roles: chatml and llama3 keep them, phi3 and phi4 drop them.
	tool := []Message{{"tool", "42"}}
	for name, want := range map[string]string{
		"chatml": "<|im_start|>tool\n42<|im_end|>\n",
		"llama3": "<|begin_of_text|><|start_header_id|>tool<|end_header_id|>\n\n42<|eot_id|>",
		"phi3":   "<|endoftext|>",
		"phi4":   "",
		"llama2": "",
	} {
		tm, _ := Get(name)
		if got := tm.Render(tool, false); got != want {
			t.Errorf("%s tool role: %q, want %q", name, got, want)
		}
	}
}

func TestStopsAndBOS(t *testing.T) {
	for _, c := range []struct {
		name    string
		stop    string
		addsBOS bool
	}{
		{"phi4", "<|im_end|>", false},
		{"phi3", "<|end|>", false},
		{"llama2", "</s>", true},
		{"llama3", "<|eot_id|>", true},
		{"chatml", "<|im_end|>", false},
	} {
		tm, _ := Get(c.name)
		if !slices.Contains(tm.Stops(), c.stop) {
			t.Errorf("%s stops %q lack %q", c.name, tm.Stops(), c.stop)
		}
		if tm.AddsBOS() != c.addsBOS {
			t.Errorf("%s AddsBOS = %v", c.name, tm.AddsBOS())
		}
		// The rendered text starts with a BOS marker exactly when AddsBOS.
		r := tm.Render(conv, true)
		hasBOS := strings.HasPrefix(r, "<s>") || strings.HasPrefix(r, "<|begin_of_text|>")
		if hasBOS != c.addsBOS {
			t.Errorf("%s: rendered text BOS %v, AddsBOS %v", c.name, hasBOS, c.addsBOS)
		}
		// Stops() returns a copy.
		tm.Stops()[0] = "x"
		if tm.Stops()[0] == "x" {
			t.Errorf("%s: Stops exposes internal slice", c.name)
		}
	}
	if _, ok := Get("vicuna"); ok {
		t.Error("Get of unknown name succeeded")
	}
	a, _ := Get("phi4")
	a.Name = "changed"
	if b, _ := Get("phi4"); b.Name != "phi4" {
		t.Error("Get returns shared templates")
	}
}

func TestDetect(t *testing.T) {
	// Jinja snippets from the official templates.
	jinja := map[string]string{
		"phi4":   "{% for message in messages %}{% if (message['role'] == 'system') %}{{'<|im_start|>system<|im_sep|>' + message['content'] + '<|im_end|>'}}{% endif %}{% endfor %}",
		"phi3":   "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}",
		"llama3": "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% endfor %}",
		"llama2": "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% endif %}",
		"chatml": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}",
	}
	for want, j := range jinja {
		// The template text wins over tokens and architecture.
		if got := Detect(j, "llama", func(string) bool { return true }).Name; got != want {
			t.Errorf("Detect(%s jinja) = %s", want, got)
		}
	}
	tokens := func(names ...string) func(string) bool {
		return func(s string) bool { return slices.Contains(names, s) }
	}
	for _, c := range []struct {
		has  func(string) bool
		arch string
		want string
	}{
		{tokens("<|im_start|>", "<|im_sep|>", "<|im_end|>"), "phi3", "phi4"},
		{tokens("<|begin_of_text|>", "<|eot_id|>"), "llama", "llama3"},
		{tokens("<|assistant|>", "<|end|>", "<|user|>"), "llama", "phi3"},
		{tokens("<|im_start|>", "<|im_end|>"), "qwen2", "chatml"},
		{tokens("<|end|>"), "", "chatml"}, // <|end|> alone is not enough
		{nil, "phi3", "phi3"},
		{nil, "Phi3ForCausalLM", "phi3"},
		{nil, "llama", "llama2"},
		{nil, "LlamaForCausalLM", "llama2"},
		{nil, "gpt2", "chatml"},
		{nil, "", "chatml"},
	} {
		if got := Detect("", c.arch, c.has).Name; got != c.want {
			t.Errorf("Detect(tokens, %q) = %s, want %s", c.arch, got, c.want)
		}
	}
}
