// Package chat renders chat conversations into prompt text the way the
// models' own Hugging Face chat templates do, without a Jinja engine.
//
// Five formats are built in ("phi4", "phi3", "llama2", "llama3", "chatml");
// each reproduces its official template byte for byte for conversations of
// system, user and assistant messages. Detect picks one from a model's
// metadata.
package chat

import (
	"strings"
	"unicode"
)

// Message is one turn of a conversation. Role is "system", "user" or
// "assistant".
type Message struct {
	Role, Content string
}

// Template is a built-in chat format.
type Template struct {
	Name string // "phi4", "phi3", "llama2", "llama3" or "chatml"

	render  func(b *strings.Builder, msgs []Message, addGenerationPrompt bool)
	stops   []string
	addsBOS bool
}

// Names lists the built-in templates.
var Names = []string{"phi4", "phi3", "llama2", "llama3", "chatml"}

var templates = map[string]Template{
	"phi4":   {Name: "phi4", render: renderPhi4, stops: []string{"<|im_end|>", "<|endoftext|>"}},
	"phi3":   {Name: "phi3", render: renderPhi3, stops: []string{"<|end|>", "<|endoftext|>"}},
	"llama2": {Name: "llama2", render: renderLlama2, stops: []string{"</s>"}, addsBOS: true},
	"llama3": {Name: "llama3", render: renderLlama3, stops: []string{"<|eot_id|>", "<|end_of_text|>"}, addsBOS: true},
	"chatml": {Name: "chatml", render: renderChatML, stops: []string{"<|im_end|>", "<|endoftext|>"}},
}

// Get returns the built-in template with the given name.
func Get(name string) (*Template, bool) {
	t, ok := templates[name]
	if !ok {
		return nil, false
	}
	return &t, true
}

// Render formats msgs as prompt text. With addGenerationPrompt the text ends
// with the header that opens the assistant's reply (llama2 has none: its
// prompt already ends with "[/INST]").
func (t *Template) Render(msgs []Message, addGenerationPrompt bool) string {
	var b strings.Builder
	t.render(&b, msgs, addGenerationPrompt)
	return b.String()
}

// Stops returns the text markers that end the assistant's turn.
func (t *Template) Stops() []string {
	return append([]string(nil), t.stops...)
}

// AddsBOS reports whether rendered text already begins with the model's BOS
// marker ("<s>" for llama2, "<|begin_of_text|>" for llama3), so the caller
// must not add another when tokenizing it.
func (t *Template) AddsBOS() bool { return t.addsBOS }

// pyStrip trims whitespace as Python's str.strip() and Jinja's trim filter
// do: Unicode white space plus the separators U+001C..U+001F.
func pyStrip(s string) string {
	return strings.TrimFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
	})
}

// renderPhi4 follows Phi-4's template: system, user and assistant messages as
// <|im_start|>role<|im_sep|>content<|im_end|>; other roles are dropped.
func renderPhi4(b *strings.Builder, msgs []Message, gen bool) {
	for _, m := range msgs {
		switch m.Role {
		case "system", "user", "assistant":
			b.WriteString("<|im_start|>" + m.Role + "<|im_sep|>" + m.Content + "<|im_end|>")
		}
	}
	if gen {
		b.WriteString("<|im_start|>assistant<|im_sep|>")
	}
}

// renderPhi3 follows Phi-3-mini-4k-instruct's template, which has no BOS and
// ends with the EOS token "<|endoftext|>" when no generation prompt is asked
// for; roles other than system, user and assistant are dropped.
func renderPhi3(b *strings.Builder, msgs []Message, gen bool) {
	for _, m := range msgs {
		switch m.Role {
		case "system", "user", "assistant":
			b.WriteString("<|" + m.Role + "|>\n" + m.Content + "<|end|>\n")
		}
	}
	if gen {
		b.WriteString("<|assistant|>\n")
	} else {
		b.WriteString("<|endoftext|>")
	}
}

// renderLlama2 follows Llama-2-chat's template: a leading system message is
// folded into the first turn inside <<SYS>> markers; each user turn is
// "<s>[INST] content [/INST]" and each assistant turn " content </s>", with
// contents stripped of surrounding white space. Other messages (a system
// message that is not first) are dropped. The official template raises an
// error when user and assistant do not alternate; this renders them anyway.
// It has no generation prompt: the text after "[/INST]" is the reply.
func renderLlama2(b *strings.Builder, msgs []Message, gen bool) {
	system, hasSystem := "", false
	if len(msgs) > 0 && msgs[0].Role == "system" {
		system, hasSystem = msgs[0].Content, true
		msgs = msgs[1:]
	}
	for i, m := range msgs {
		content := m.Content
		if i == 0 && hasSystem {
			content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content
		}
		switch m.Role {
		case "user":
			b.WriteString("<s>[INST] " + pyStrip(content) + " [/INST]")
		case "assistant":
			b.WriteString(" " + pyStrip(content) + " </s>")
		}
	}
}

// renderLlama3 follows Llama-3-Instruct's template: "<|begin_of_text|>" before
// the first message, then <|start_header_id|>role<|end_header_id|>\n\n
// followed by the stripped content and <|eot_id|>.
func renderLlama3(b *strings.Builder, msgs []Message, gen bool) {
	for i, m := range msgs {
		if i == 0 {
			b.WriteString("<|begin_of_text|>")
		}
		b.WriteString("<|start_header_id|>" + m.Role + "<|end_header_id|>\n\n" + pyStrip(m.Content) + "<|eot_id|>")
	}
	if gen {
		b.WriteString("<|start_header_id|>assistant<|end_header_id|>\n\n")
	}
}

// renderChatML writes <|im_start|>role\ncontent<|im_end|>\n per message.
func renderChatML(b *strings.Builder, msgs []Message, gen bool) {
	for _, m := range msgs {
		b.WriteString("<|im_start|>" + m.Role + "\n" + m.Content + "<|im_end|>\n")
	}
	if gen {
		b.WriteString("<|im_start|>assistant\n")
	}
}

// Detect chooses a template from a model's metadata. It looks, in order, at
//   - jinja, the model's own chat template text (chat_template.jinja,
//     tokenizer_config.json "chat_template" or GGUF tokenizer.chat_template),
//     by its marker strings;
//   - which special tokens the vocabulary has (hasToken may be nil);
//   - the architecture name (GGUF general.architecture such as "llama", or a
//     Hugging Face class such as "LlamaForCausalLM");
//
// and falls back to chatml.
func Detect(jinja string, arch string, hasToken func(string) bool) *Template {
	pick := func(name string) *Template { t, _ := Get(name); return t }
	switch {
	case strings.Contains(jinja, "<|im_sep|>"):
		return pick("phi4")
	case strings.Contains(jinja, "<|start_header_id|>"):
		return pick("llama3")
	case strings.Contains(jinja, "<|assistant|>") || strings.Contains(jinja, "<|end|>"):
		return pick("phi3")
	case strings.Contains(jinja, "[INST]"):
		return pick("llama2")
	case strings.Contains(jinja, "<|im_start|>"):
		return pick("chatml")
	}

	has := func(s string) bool { return hasToken != nil && hasToken(s) }
	switch {
	case has("<|im_sep|>"):
		return pick("phi4")
	case has("<|start_header_id|>") || has("<|eot_id|>"):
		return pick("llama3")
	case has("<|assistant|>") && has("<|end|>"):
		return pick("phi3")
	case has("<|im_start|>"):
		return pick("chatml")
	}

	a := strings.ToLower(arch)
	switch {
	case strings.HasPrefix(a, "phi3"):
		return pick("phi3")
	case strings.HasPrefix(a, "llama"):
		return pick("llama2")
	}
	return pick("chatml")
}
