package cli

import (
	"bufio"
	"context"
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
from the model's metadata) and the whole history. Commands: /reset clears the
history, /exit (or Ctrl-D) quits. Ctrl-C stops the current answer.`,
		Example: `  upg chat
  upg chat --model phi4.upg --system "You are a terse assistant."`,
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
			return chatLoop(l, gf, system, os.Stdin, os.Stdout)
		},
	}
	mf.register(cmd)
	gf.register(cmd, 512)
	cmd.Flags().StringVar(&system, "system", "", "system message that opens the conversation")
	return cmd
}

func chatLoop(l *engine.Loaded, gf genFlags, system string, in io.Reader, out io.Writer) error {
	var history []chat.Message
	reset := func() {
		history = history[:0]
		if system != "" {
			history = append(history, chat.Message{Role: "system", Content: system})
		}
	}
	reset()
	interactive := isTerminal(os.Stdin)
	fmt.Fprintf(os.Stderr, "chat template %s; /reset clears history, /exit quits\n", l.Template.Name)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for {
		if interactive {
			fmt.Fprint(out, "> ")
		}
		if !sc.Scan() {
			fmt.Fprintln(out)
			return sc.Err()
		}
		line := strings.TrimSpace(sc.Text())
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
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		var answer strings.Builder
		st, err := l.Generate(ctx, engine.Request{
			Prompt: l.EncodeChat(history), MaxTokens: gf.maxTokens, Sampling: gf.options(),
			Stop: append(l.Template.Stops(), gf.stops...), IgnoreEOS: gf.ignoreEOS,
		}, func(s string) { answer.WriteString(s); fmt.Fprint(out, s) })
		stop()
		fmt.Fprintln(out)
		if err != nil && ctx.Err() == nil {
			return err
		}
		history = append(history, chat.Message{Role: "assistant", Content: strings.TrimSpace(answer.String())})
		if st.StopReason == "context" {
			fmt.Fprintln(os.Stderr, "[context full: /reset to start over]")
		}
	}
}
