// Package cli implements the upg command line: one file per command, each a
// thin layer over the packages that do the work.
package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed (bad model file, I/O, ...)
	exitUsage = 2 // bad flags or arguments
	// exitInterrupted: stopped by Ctrl-C, the code a shell gives a process
	// killed by SIGINT.
	exitInterrupted = 130
)

// usageError marks errors that are the caller's fault (exit code 2).
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// Main runs the command line and returns the process exit code.
func Main(args []string) int {
	root := newRoot()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	if errors.As(err, new(interruptedError)) {
		return exitInterrupted
	}
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	msg = strings.TrimPrefix(msg, "upg: ") // packages that prefix their own errors
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
		help := "upg --help"
		if name := commandName(root, args); name != "" {
			help = "upg " + name + " --help"
		}
		fmt.Fprintf(os.Stderr, "upg: %s (see '%s')\n", msg, help)
		return exitUsage
	}
	fmt.Fprintf(os.Stderr, "upg: %s\n", msg)
	return exitError
}

func commandName(root *cobra.Command, args []string) string {
	if c, _, err := root.Find(args); err == nil && c != root {
		return c.Name()
	}
	return ""
}

var logLevel = new(slog.LevelVar)

func newRoot() *cobra.Command {
	var verbose bool
	root := &cobra.Command{
		Use:   "upg",
		Short: "Compress language models ~10x and run them fast",
		Long: `upg compresses decoder-only language models (Phi-3/Phi-4, Llama, Mistral, Qwen2)
to about 3 bits per weight and runs them with fused decompress-and-multiply
kernels on the CPU (AVX-512, AVX2, ARM64 NEON) or an NVIDIA GPU (--device).`,
		Example: `  upg run "package main"                     # the bundled demo model
  upg compress ./Phi-4 --out phi4.upg --target-bpw 3.2 --calib calib.txt
  upg chat --model phi4.upg --device cuda
  upg serve --model phi4.upg --port 8000     # an OpenAI-compatible API
  upg eval --model phi4.upg --ref ./Phi-4 --text eval.txt`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			if verbose {
				logLevel.Set(slog.LevelDebug)
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel})))
		},
	}
	logLevel.Set(slog.LevelWarn)
	defer func() {
		// Argument-count errors are usage errors too.
		for _, c := range root.Commands() {
			if c.Args != nil {
				args := c.Args
				c.Args = func(cmd *cobra.Command, a []string) error {
					if err := args(cmd, a); err != nil {
						return usageError{err}
					}
					return nil
				}
			}
		}
	}()
	root.Version = Version
	cobra.AddTemplateFunc("upgVersion", versionText)
	root.SetVersionTemplate("{{upgVersion}}")
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "structured debug logs on stderr")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newRunCmd(), newChatCmd(), newTokenizeCmd(), newInspectCmd(), newCompressCmd(), newEvalCmd(), newVerifyCmd(), newBenchCmd(), newSynthCmd(), newVersionCmd(), newListCmd(), newServeCmd())
	return root
}
