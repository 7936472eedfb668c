package sample

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// pushAll feeds pieces to a matcher and returns everything emitted (including
// Flush when no stop was hit), the emit of every step, and whether it stopped.
func pushAll(stops []string, pieces []string) (out string, steps []string, stopped bool) {
	m := NewStopMatcher(stops)
	var b strings.Builder
	for _, p := range pieces {
		e, st := m.Push(p)
		b.WriteString(e)
		steps = append(steps, e)
		if st {
			return b.String(), steps, true
		}
	}
	b.WriteString(m.Flush())
	return b.String(), steps, false
}

// reference computes what a matcher must produce for the whole text: the
// text before the stop occurrence that ends first (ties: starts first).
func reference(stops []string, text string) (string, bool) {
	first, end := -1, 0
	for _, s := range stops {
		if s == "" {
			continue
		}
		i := strings.Index(text, s)
		if i >= 0 && (first < 0 || i+len(s) < end || i+len(s) == end && i < first) {
			first, end = i, i+len(s)
		}
	}
	if first < 0 {
		return text, false
	}
	return text[:first], true
}

func bytesOf(s string) []string {
	var p []string
	for i := range len(s) {
		p = append(p, s[i:i+1])
	}
	return p
}

func TestStopSplitAcrossPushes(t *testing.T) {
	stops := []string{"<|im_end|>", "<|end|>"}
	pieces := []string{"Hello", " wor", "ld<", "|im", "_e", "nd", "|>ignored"}
	out, steps, stopped := pushAll(stops, pieces)
	if !stopped || out != "Hello world" {
		t.Fatalf("got %q stopped=%v", out, stopped)
	}
	// "<" must be held back once it arrives; nothing of the stop is emitted.
	want := []string{"Hello", " wor", "ld", "", "", "", ""}
	for i := range want {
		if steps[i] != want[i] {
			t.Errorf("step %d emitted %q, want %q", i, steps[i], want[i])
		}
	}
}

func TestStopFalseStartIsReleased(t *testing.T) {
	m := NewStopMatcher([]string{"<|end|>"})
	if e, st := m.Push("a <|en"); e != "a " || st {
		t.Fatalf("got %q %v", e, st)
	}
	if e, st := m.Push("try"); e != "<|entry" || st {
		t.Fatalf("false start: got %q %v", e, st)
	}
	if e, st := m.Push("<|"); e != "" || st {
		t.Fatalf("got %q %v", e, st)
	}
	if f := m.Flush(); f != "<|" {
		t.Fatalf("flush %q", f)
	}
}

func TestStopEarliestWinsAndStaysStopped(t *testing.T) {
	m := NewStopMatcher([]string{"STOP", "OP", ""})
	e, st := m.Push("xxSTOPyy")
	if e != "xx" || !st {
		t.Fatalf("got %q %v", e, st)
	}
	if e, st := m.Push("more"); e != "" || !st {
		t.Fatalf("after stop: %q %v", e, st)
	}
	if f := m.Flush(); f != "" {
		t.Fatalf("flush after stop: %q", f)
	}
	// A short stop inside a held-back prefix of a longer stop fires at once.
	out, _, stopped := pushAll([]string{"abc", "b"}, []string{"a", "b", "c"})
	if out != "a" || !stopped {
		t.Fatalf("overlap: %q %v", out, stopped)
	}
	// The stop that completes first wins, even if another stop started
	// earlier: "1" completes before "0100".
	for _, pieces := range [][]string{{"010000"}, {"01", "0000"}, bytesOf("010000")} {
		out, _, stopped = pushAll([]string{"0100", "1"}, pieces)
		if out != "0" || !stopped {
			t.Fatalf("%q: got %q %v, want \"0\" true", pieces, out, stopped)
		}
	}
}

func TestStopMultiByte(t *testing.T) {
	stops := []string{"終わり", "<|end|>"}
	text := "こんにちは、世界。終わりです"
	out, steps, stopped := pushAll(stops, bytesOf(text))
	if !stopped || out != "こんにちは、世界。" {
		t.Fatalf("got %q %v", out, stopped)
	}
	// Fed one byte at a time, every emitted piece is valid UTF-8.
	for i, s := range steps {
		if !utf8.ValidString(s) {
			t.Fatalf("step %d emitted invalid UTF-8 %q", i, s)
		}
	}
	// A stop sharing the first byte (0xE7) of a different character.
	out, _, stopped = pushAll([]string{"終"}, bytesOf("約束"))
	if stopped || out != "約束" {
		t.Fatalf("shared lead byte: %q %v", out, stopped)
	}
	// Incomplete UTF-8 at the end is held until completed, or flushed.
	m := NewStopMatcher(nil)
	if e, _ := m.Push("é\xe4\xb8"); e != "é" {
		t.Fatalf("partial rune emitted: %q", e)
	}
	if e, _ := m.Push("\x96!"); e != "世!" {
		t.Fatalf("completed rune: %q", e)
	}
	m.Push("\xf0\x9f")
	if f := m.Flush(); f != "\xf0\x9f" {
		t.Fatalf("flush partial: %q", f)
	}
	// Invalid bytes are not held forever.
	if e, _ := m.Push("a\xff"); e != "a\xff" {
		t.Fatalf("invalid byte held: %q", e)
	}
}

func TestStopMatchesReference(t *testing.T) {
	stops := []string{"</s>", "<|eot_id|>", "\n\nUser:", "終わり"}
	texts := []string{
		"plain text with no stop at all",
		"answer</s>trailing",
		"line\n\nUser: next",
		"line\n\nUse it\n\nUser:",
		"<|eot_id<|eot_id|>",
		"ends with partial <|eot",
		"日本語の終わり",
		"",
	}
	for _, text := range texts {
		wantOut, wantStop := reference(stops, text)
		for _, size := range []int{1, 2, 3, 5, 7, 100} {
			var pieces []string
			for i := 0; i < len(text); i += size {
				pieces = append(pieces, text[i:min(len(text), i+size)])
			}
			out, _, stopped := pushAll(stops, pieces)
			if out != wantOut || stopped != wantStop {
				t.Errorf("%q in pieces of %d: got %q %v, want %q %v", text, size, out, stopped, wantOut, wantStop)
			}
		}
	}
}

// FuzzStopMatcher splits text at fuzzer-chosen points and checks that the
// concatenated output equals the reference, whatever the split, and that
// emitted text is never more than the reference allows at any step.
func FuzzStopMatcher(f *testing.F) {
	f.Add("hello <|end|> world", "<|end|>", "</s>", []byte{1, 3, 5})
	f.Add("αβγ終わりδ", "終わり", "γ終", []byte{2, 2, 2, 2})
	f.Add("aaab", "aab", "", []byte{1})
	f.Fuzz(func(t *testing.T, text, s1, s2 string, cuts []byte) {
		stops := []string{s1, s2}
		var pieces []string
		rest := text
		for _, c := range cuts {
			n := min(int(c)%8, len(rest))
			pieces = append(pieces, rest[:n])
			rest = rest[n:]
		}
		pieces = append(pieces, rest)
		out, steps, stopped := pushAll(stops, pieces)
		wantOut, wantStop := reference(stops, text)
		if out != wantOut || stopped != wantStop {
			t.Fatalf("got %q %v, want %q %v", out, stopped, wantOut, wantStop)
		}
		// Emitted text is never retracted: each prefix of the output is a
		// prefix of the reference.
		var sofar string
		for _, s := range steps {
			sofar += s
			if !strings.HasPrefix(wantOut, sofar) {
				t.Fatalf("emitted %q beyond %q", sofar, wantOut)
			}
		}
	})
}
