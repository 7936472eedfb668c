package checkpoint

import (
	"github.com/upg-ai/upg/chat"
	"github.com/upg-ai/upg/tokenizer"
)

// Tokenizer loads the checkpoint's tokenizer: the directory's tokenizer.json,
// the GGUF vocabulary, or the files embedded in a .upg.
func (c *Checkpoint) Tokenizer() (tokenizer.Tokenizer, error) {
	switch {
	case c.gguf != nil:
		return tokenizer.FromGGUF(c.gguf)
	case c.tokenizerFiles != nil:
		return tokenizerFromFiles(c.tokenizerFiles, c.Path)
	}
	return tokenizer.Load(c.tokenizerPath)
}

// Template picks the chat template from the model's own metadata.
func (c *Checkpoint) Template(tok tokenizer.Tokenizer) *chat.Template {
	return chat.Detect(c.ChatTemplate, c.Config.Arch, func(s string) bool {
		_, ok := tok.TokenID(s)
		return ok
	})
}
