// Package enginetest holds what tests of the engine and of its drivers
// (package batch, the server) share: prompts for the demo model, and the
// tokens each request gives decoded alone, the reference a batch must
// equal.
package enginetest

import (
	"os"
	"slices"
	"testing"

	"github.com/upg-ai/upg/engine"
)

// Demo is the bundled demo model (a real trained Phi-3-architecture
// model), from a top-level package's directory.
const Demo = "../models/miniphi-29m.upg"

// Open loads the demo model with o (Threads 0: 2); the caller closes it.
func Open(t testing.TB, o engine.Options) *engine.Loaded {
	t.Helper()
	if _, err := os.Stat(Demo); err != nil {
		t.Fatalf("demo model missing: %v", err)
	}
	if o.Threads == 0 {
		o.Threads = 2
	}
	l, err := engine.Load(Demo, o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Load is Open, the model closed when the test ends.
func Load(t testing.TB, o engine.Options) *engine.Loaded {
	t.Helper()
	l := Open(t, o)
	t.Cleanup(func() { l.Close() })
	return l
}

// Prompts are eight short prompts of the kinds the demo model was trained
// on (Go code and English prose).
var Prompts = []string{
	"package main\n\nimport \"fmt\"\n\nfunc main() {",
	"It was a dark and stormy night; the rain fell in torrents",
	"func (b *Buffer) Write(p []byte) (n int, err error) {",
	"The old man looked at the sea and",
	"// Copyright 2009 The Go Authors. All rights reserved.",
	"She had never seen so many people in one room, and",
	"type Reader interface {",
	"In the beginning",
}

// Alone decodes each request by itself in a fresh sequence of l and
// returns its tokens (prompt and output).
func Alone(t testing.TB, l *engine.Loaded, reqs []engine.Request) [][]int {
	t.Helper()
	out := make([][]int, len(reqs))
	for i, r := range reqs {
		s, err := l.NewSequence(r)
		if err != nil {
			t.Fatal(err)
		}
		for !s.Done() {
			if _, err := l.Step([]*engine.Sequence{s}, 0); err != nil {
				t.Fatal(err)
			}
		}
		out[i] = slices.Clone(s.Tokens())
		l.Release(s)
	}
	return out
}
