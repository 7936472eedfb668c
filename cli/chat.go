package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/chzyer/readline"
	"github.com/spf13/cobra"
	"github.com/upg-ai/upg/chat"
	"github.com/upg-ai/upg/engine"
)

func newChatCmd() *cobra.Command {
	var mf modelFlags
	var gf genFlags
	var system, tmplName string
	cmd := &cobra.Command{
		Use:   "chat [flags]",
		Short: "Chat interactively, using the model's chat template",
		Long: `Chat with a model. Each line you type is a user message; the model answers
using its own chat template (Phi-4, Phi-3, Llama-2, Llama-3 or ChatML, detected
from the model's metadata) and the whole history. When the conversation no
longer fits the context (--ctx), the oldest turns are dropped (the system
message stays) and a note says so on stderr. On a terminal, lines can be
edited and recalled (arrow keys), and each answer's speed is shown.
Commands: /help, /set NAME VALUE (temperature, top-k, top-p, min-p,
repeat-penalty, frequency-penalty, presence-penalty, seed, max-tokens,
format json|text|SCHEMA-FILE; /set alone shows them), /clear (or /reset) forgets the
conversation, /exit (or Ctrl-D) quits. A line """ starts a
message of several lines, ended by another """. Ctrl-C stops the current
answer.`,
		Example: `  upg chat
  upg chat --model phi4.upg --system "You are a terse assistant."
  printf 'hello\nwhat is 2+2?\n' | upg chat --temperature 0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := gf.validate(); err != nil {
				return err
			}
			if tmplName != "" && tmplName != "raw" {
				if _, ok := chat.Get(tmplName); !ok {
					return usagef("--chat-template %q: want one of %s, or raw", tmplName, strings.Join(chat.Names, ", "))
				}
			}
			l, err := mf.load()
			if err != nil {
				return err
			}
			defer l.Close()
			switch tmplName {
			case "":
				if !hasChatFormat(l) {
					warnf("%s has no chat template and no chat tokens (a base model?): guessing %s; --chat-template raw continues plain text instead", l.Checkpoint.Path, l.Template.Name)
				}
			case "raw":
				l.Template = nil
			default:
				l.Template, _ = chat.Get(tmplName)
			}
			interactive := isTerminal(os.Stdin)
			var lines lineReader = &plainLines{r: bufio.NewReader(os.Stdin)}
			if interactive {
				rl, err := readline.NewEx(&readline.Config{Prompt: "> ", InterruptPrompt: "^C", EOFPrompt: "", HistoryLimit: 1000})
				if err == nil {
					defer rl.Close()
					lines = &terminalLines{rl: rl}
				}
			}
			return chatLoop(l, gf, system, lines, os.Stdout, interactive)
		},
	}
	mf.register(cmd)
	mf.registerLookup(cmd)
	gf.register(cmd, 512)
	cmd.Flags().StringVar(&system, "system", "", "system message that opens the conversation")
	cmd.Flags().StringVar(&tmplName, "chat-template", "", "chat format instead of the detected one: "+strings.Join(chat.Names, ", ")+", or raw (the conversation as plain text, for base models)")
	return cmd
}

// lineReader yields the user's lines; io.EOF ends the chat.
type lineReader interface {
	readLine(prompt string) (string, error)
}

// plainLines reads lines of any length from a pipe or file.
type plainLines struct{ r *bufio.Reader }

func (p *plainLines) readLine(string) (string, error) {
	line, err := p.r.ReadString('\n')
	if err != nil && (!errors.Is(err, io.EOF) || line == "") {
		if errors.Is(err, io.EOF) {
			return "", io.EOF
		}
		return "", fmt.Errorf("standard input: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// terminalLines reads edited lines with history from a terminal; Ctrl-C
// at the prompt clears the line.
type terminalLines struct{ rl *readline.Instance }

func (t *terminalLines) readLine(prompt string) (string, error) {
	t.rl.SetPrompt(prompt)
	for {
		line, err := t.rl.Readline()
		if errors.Is(err, readline.ErrInterrupt) {
			if line == "" {
				fmt.Fprintln(os.Stderr, "(Ctrl-D or /exit quits)")
			}
			continue
		}
		return line, err
	}
}

const chatHelp = `commands:
  /help               this text
  /set                show the sampling settings
  /set NAME VALUE     change one: temperature, top-k, top-p, min-p, repeat-penalty, frequency-penalty,
                      presence-penalty, seed, max-tokens, format (json, text or a JSON Schema file)
  /clear, /reset      forget the conversation (the system message stays)
  /exit, /quit, /bye  quit (Ctrl-D too)
  """                 start or end a message of several lines
`

// chatLoop reads one user message per line (or per """ block) and streams
// each answer to out. interactive: prompts and per-answer speed.
func chatLoop(l *engine.Loaded, gf genFlags, system string, in lineReader, out io.Writer, interactive bool) error {
	var history []chat.Message
	reset := func() {
		history = history[:0]
		if system != "" {
			history = append(history, chat.Message{Role: "system", Content: system})
		}
	}
	reset()
	encode, stops, name := rawConversation(l), []string(nil), "raw"
	if l.Template != nil {
		encode, stops, name = l.EncodeChat, l.Template.Stops(), l.Template.Name
	}
	if interactive {
		fmt.Fprintf(os.Stderr, "chat template %s; /help lists the commands, /exit quits\n", name)
	}
	prompt := func(p string) string {
		if interactive {
			return p
		}
		return ""
	}
	for {
		line, err := in.readLine(prompt("> "))
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		line = strings.TrimSpace(line)
		if line == `"""` {
			var block []string
			for {
				l, err := in.readLine(prompt(". "))
				if err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				if err != nil || strings.TrimSpace(l) == `"""` {
					break
				}
				block = append(block, l)
			}
			line = strings.TrimSpace(strings.Join(block, "\n"))
		} else if strings.HasPrefix(line, "/") {
			fields := strings.Fields(line)
			switch fields[0] {
			case "/exit", "/quit", "/bye":
				return nil
			case "/reset", "/clear":
				reset()
				fmt.Fprintln(os.Stderr, "[conversation cleared]")
			case "/help", "/?":
				fmt.Fprint(os.Stderr, chatHelp)
			case "/set":
				if err := gf.set(fields[1:]); err != nil {
					fmt.Fprintf(os.Stderr, "upg: %v\n", err)
				}
			default:
				fmt.Fprintf(os.Stderr, "upg: unknown command %s (/help lists them)\n", fields[0])
			}
			continue
		}
		if line == "" {
			continue
		}
		history = append(history, chat.Message{Role: "user", Content: line})
		toks, dropped := fitHistory(l, encode, &history, gf.maxTokens)
		if dropped > 0 {
			fmt.Fprintf(os.Stderr, "[context full: dropped the %d oldest messages]\n", dropped)
		}
		if capacity := l.Capacity(); len(toks) >= capacity {
			history = history[:len(history)-1]
			fmt.Fprintf(os.Stderr, "upg: message not sent: with the template it is %d tokens, more than the context of %d tokens (--ctx)\n", len(toks), capacity)
			continue
		}
		sampling := gf.options(l.Engine)
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		var answer strings.Builder
		st, err := l.Generate(ctx, engine.Request{
			Prompt: toks, MaxTokens: gf.maxTokens, Sampling: sampling,
			Stop: append(append([]string(nil), stops...), gf.stops...), IgnoreEOS: gf.ignoreEOS,
		}, func(s string) { answer.WriteString(s); fmt.Fprint(out, s) })
		interrupted := ctx.Err() != nil // before stop(), which cancels ctx too
		stop()
		fmt.Fprintln(out)
		if err != nil && !interrupted {
			return err
		}
		history = append(history, chat.Message{Role: "assistant", Content: strings.TrimSpace(answer.String())})
		if interactive {
			fmt.Fprintf(os.Stderr, "[%d tokens, %.1f tok/s]\n", st.GeneratedTokens, st.DecodeTokS())
		}
		if st.StopReason == "context" {
			fmt.Fprintln(os.Stderr, "[context full: the answer was cut short; the oldest turns make room for the next one]")
		}
	}
}

// set changes one sampling setting from a /set command (no arguments:
// print them all).
func (g *genFlags) set(args []string) error {
	o := &g.opts
	if len(args) == 0 {
		format := g.format
		if format == "" {
			format = "text"
		}
		fmt.Fprintf(os.Stderr, "temperature %g, top-k %d, top-p %g, min-p %g, repeat-penalty %g, frequency-penalty %g, presence-penalty %g, seed %d (0 = random), max-tokens %d, format %s\n",
			o.Temperature, o.TopK, o.TopP, o.MinP, o.RepeatPenalty, o.FrequencyPenalty, o.PresencePenalty, o.Seed, g.maxTokens, format)
		return nil
	}
	if len(args) != 2 {
		return fmt.Errorf("usage: /set NAME VALUE")
	}
	old := *g
	name, v := args[0], args[1]
	f32 := func(dst *float32) error {
		x, err := strconv.ParseFloat(v, 32)
		*dst = float32(x)
		return err
	}
	var err error
	switch strings.TrimPrefix(name, "--") {
	case "temperature", "temp":
		err = f32(&o.Temperature)
	case "top-k", "top_k":
		o.TopK, err = strconv.Atoi(v)
	case "top-p", "top_p":
		err = f32(&o.TopP)
	case "min-p", "min_p":
		err = f32(&o.MinP)
	case "repeat-penalty", "repeat_penalty":
		err = f32(&o.RepeatPenalty)
	case "frequency-penalty", "frequency_penalty":
		err = f32(&o.FrequencyPenalty)
	case "presence-penalty", "presence_penalty":
		err = f32(&o.PresencePenalty)
	case "format":
		g.format = strings.Trim(v, `"`)
		if g.format == "text" {
			g.format = ""
		}
	case "seed":
		o.Seed, err = strconv.ParseUint(v, 10, 64)
	case "max-tokens", "max_tokens", "n":
		g.maxTokens, err = strconv.Atoi(v)
	default:
		return fmt.Errorf("/set: unknown setting %q (temperature, top-k, top-p, min-p, repeat-penalty, frequency-penalty, presence-penalty, seed, max-tokens, format)", name)
	}
	if err == nil {
		err = g.validate()
	}
	if err != nil {
		*g = old
		return fmt.Errorf("/set %s %s: %v", name, v, err)
	}
	fmt.Fprintf(os.Stderr, "[%s = %s]\n", name, v)
	return nil
}

// fitHistory drops the oldest messages after the system message (a user
// message with the answer that follows it) until the rendered conversation
// leaves room for an answer in the context: maxTokens if set, else a
// quarter of the context. The newest message always stays. It returns the
// tokens of what is kept and how many messages were dropped.
func fitHistory(l *engine.Loaded, encode func([]chat.Message) []int, history *[]chat.Message, maxTokens int) ([]int, int) {
	capacity := l.Capacity()
	room := capacity / 4
	if maxTokens > 0 {
		room = min(maxTokens, capacity/2)
	}
	h := *history
	dropped := 0
	for {
		prompt := encode(h)
		first := 0
		for first < len(h) && h[first].Role == "system" {
			first++
		}
		if len(prompt)+room <= capacity || first >= len(h)-1 {
			*history = h
			return prompt, dropped
		}
		n := 1
		if first+1 < len(h)-1 && h[first].Role == "user" && h[first+1].Role == "assistant" {
			n = 2
		}
		h = append(h[:first], h[first+n:]...)
		dropped += n
	}
}

// rawConversation encodes a conversation without a chat template: the
// messages' texts, one per line, continued by the model (for base models).
func rawConversation(l *engine.Loaded) func([]chat.Message) []int {
	return func(msgs []chat.Message) []int {
		var b strings.Builder
		for _, m := range msgs {
			b.WriteString(m.Content)
			b.WriteString("\n")
		}
		return l.EncodePrompt(b.String())
	}
}

// hasChatFormat reports whether the model says how it chats: a chat
// template in its metadata, or the special tokens of a chat format.
func hasChatFormat(l *engine.Loaded) bool {
	if l.Checkpoint.ChatTemplate != "" {
		return true
	}
	for _, t := range []string{"<|im_start|>", "<|im_sep|>", "<|start_header_id|>", "<|eot_id|>", "<|assistant|>", "[INST]"} {
		if _, ok := l.Tokenizer.TokenID(t); ok {
			return true
		}
	}
	return false
}
