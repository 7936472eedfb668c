package cli

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/upg-ai/upg/upgfile"
)

// removePartialOnSignal makes an interrupt or termination of a command that
// writes a .upg file (compress, synth) remove the file's temporary copy
// before exiting with 128 + the signal's number: the default exit would
// leave gigabytes of "<out>.tmp-*" beside the destination (which is never
// partial either way). The returned stop restores the default handling.
func removePartialOnSignal() (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			for _, p := range upgfile.RemovePartial() {
				fmt.Fprintf(os.Stderr, "\nupg: %v: removed the partial %s\n", s, p)
			}
			code := 130
			if n, ok := s.(syscall.Signal); ok {
				code = 128 + int(n)
			}
			os.Exit(code)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}
