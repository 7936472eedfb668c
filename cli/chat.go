package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/cobra"
	"github.com/upg-ai/upg/chat"
	"github.com/upg-ai/upg/engine"
)

func newChatCmd() *cobra.Command {
	var mf modelFlags
	var gf genFlags
	var system string
	cmd := &cobra.Command{
		Use:   "chat [flags]",
		Short: "Chat interactively, using the model's chat template",
		Long: `Chat with a model. Each line you type is a user message; the model answers
using its own chat template (Phi-4, Phi-3, Llama-2, Llama-3 or ChatML, detected
from the model's metadata) and the whole history. When the conversation no
longer fits the context (--ctx), the oldest turns are dropped (the system
message stays) and a note says so on stderr. Commands: /reset clears the
history, /exit (or Ctrl-D) quits. Ctrl-C stops the current answer.`,
		Example: `  upg chat
  upg chat --model phi4.upg --system "You are a terse assistant."
  printf 'hello\nwhat is 2+2?\n' | upg chat --temperature 0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := gf.validate(); err != nil {
				return err
			}
			l, err := mf.load()
			if err != nil {
				return err
			}
			defer l.Close()
			return chatLoop(l, gf, system, os.Stdin, os.Stdout, isTerminal(os.Stdin))
		},
	}
	mf.register(cmd)
	gf.register(cmd, 512)
	cmd.Flags().StringVar(&system, "system", "", "system message that opens the conversation")
	return cmd
}

// chatLoop reads one user message per line of in (no line length limit)
// and streams each answer to out. interactive: print a prompt before each
// line.
func chatLoop(l *engine.Loaded, gf genFlags, system string, in io.Reader, out io.Writer, interactive bool) error {
	var history []chat.Message
	reset := func() {
		history = history[:0]
		if system != "" {
			history = append(history, chat.Message{Role: "system", Content: system})
		}
	}
	reset()
	if interactive {
		fmt.Fprintf(os.Stderr, "chat template %s; /reset clears history, /exit quits\n", l.Template.Name)
	}
	r := bufio.NewReader(in)
	for {
		if interactive {
			fmt.Fprint(out, "> ")
		}
		line, err := r.ReadString('\n')
		if err != nil && (!errors.Is(err, io.EOF) || line == "") {
			if interactive {
				fmt.Fprintln(out)
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("standard input: %w", err)
		}
		line = strings.TrimSpace(line)
		switch line {
		case "":
			continue
		case "/exit", "/quit":
			return nil
		case "/reset":
			reset()
			continue
		}
		history = append(history, chat.Message{Role: "user", Content: line})
		prompt, dropped := fitHistory(l, &history, gf.maxTokens)
		if dropped > 0 {
			fmt.Fprintf(os.Stderr, "[context full: dropped the %d oldest messages]\n", dropped)
		}
		if capacity := l.Cache.Capacity(); len(prompt) >= capacity {
			history = history[:len(history)-1]
			fmt.Fprintf(os.Stderr, "upg: message not sent: with the template it is %d tokens, more than the context of %d tokens (--ctx)\n", len(prompt), capacity)
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		var answer strings.Builder
		st, err := l.Generate(ctx, engine.Request{
			Prompt: prompt, MaxTokens: gf.maxTokens, Sampling: gf.options(),
			Stop: append(l.Template.Stops(), gf.stops...), IgnoreEOS: gf.ignoreEOS,
		}, func(s string) { answer.WriteString(s); fmt.Fprint(out, s) })
		interrupted := ctx.Err() != nil // before stop(), which cancels ctx too
		stop()
		fmt.Fprintln(out)
		if err != nil && !interrupted {
			return err
		}
		history = append(history, chat.Message{Role: "assistant", Content: strings.TrimSpace(answer.String())})
		if st.StopReason == "context" {
			fmt.Fprintln(os.Stderr, "[context full: the answer was cut short; the oldest turns make room for the next one]")
		}
	}
}

// fitHistory drops the oldest messages after the system message (a user
// message with the answer that follows it) until the rendered conversation
// leaves room for an answer in the context: maxTokens if set, else a
// quarter of the context. The newest message always stays. It returns the
// tokens of what is kept and how many messages were dropped.
func fitHistory(l *engine.Loaded, history *[]chat.Message, maxTokens int) ([]int, int) {
	capacity := l.Cache.Capacity()
	room := capacity / 4
	if maxTokens > 0 {
		room = min(maxTokens, capacity/2)
	}
	h := *history
	dropped := 0
	for {
		prompt := l.EncodeChat(h)
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
