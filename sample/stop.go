package sample

import (
	"strings"
	"unicode/utf8"
)

// StopMatcher watches streamed text for stop strings. It holds back any tail
// that could still become a stop string, and any incomplete UTF-8 sequence at
// the end, so the text it releases never contains part of a stop string.
type StopMatcher struct {
	stops   []string
	pending string // text received but not yet emitted
	stopped bool
}

// NewStopMatcher returns a matcher for the given stop strings. Empty strings
// are ignored; with no stop strings the matcher only holds back incomplete
// UTF-8 sequences.
func NewStopMatcher(stops []string) *StopMatcher {
	m := &StopMatcher{}
	for _, s := range stops {
		if s != "" {
			m.stops = append(m.stops, s)
		}
	}
	return m
}

// Push appends newly generated text. It returns the text that is safe to emit
// now and whether a stop string was hit. When stopped is true, emit is the
// text up to (not including) the stop string that completed first (the
// earliest-starting one if several complete at once), generation should end,
// and later calls to Push return ("", true).
func (m *StopMatcher) Push(text string) (emit string, stopped bool) {
	if m.stopped {
		return "", true
	}
	m.pending += text

	// The stop that completes first wins (ties: the one starting first), so
	// the result does not depend on how the text was split into pushes.
	first, end := -1, 0
	for _, s := range m.stops {
		i := strings.Index(m.pending, s)
		if i >= 0 && (first < 0 || i+len(s) < end || i+len(s) == end && i < first) {
			first, end = i, i+len(s)
		}
	}
	if first >= 0 {
		emit = m.pending[:first]
		m.pending = ""
		m.stopped = true
		return emit, true
	}

	// Hold back the longest tail that is a proper prefix of some stop string.
	hold := len(m.pending)
	for i := max(0, len(m.pending)-m.maxStopLen()+1); i < len(m.pending); i++ {
		if m.couldStartStop(m.pending[i:]) {
			hold = i
			break
		}
	}
	// Also hold back an incomplete UTF-8 sequence at the end.
	hold = min(hold, incompleteTail(m.pending))
	emit = m.pending[:hold]
	m.pending = m.pending[hold:]
	return emit, false
}

// Flush returns the held-back text at the end of generation and resets the
// pending text. After a stop it returns "".
func (m *StopMatcher) Flush() string {
	s := m.pending
	m.pending = ""
	return s
}

func (m *StopMatcher) maxStopLen() int {
	n := 0
	for _, s := range m.stops {
		n = max(n, len(s))
	}
	return n
}

func (m *StopMatcher) couldStartStop(tail string) bool {
	for _, s := range m.stops {
		if strings.HasPrefix(s, tail) {
			return true
		}
	}
	return false
}

// incompleteTail returns the index where a trailing, not yet complete UTF-8
// sequence starts in s, or len(s) if s does not end inside one.
func incompleteTail(s string) int {
	for k := 1; k <= utf8.UTFMax-1 && k <= len(s); k++ {
		b := s[len(s)-k]
		if b < 0x80 {
			return len(s) // ASCII: complete
		}
		if utf8.RuneStart(b) {
			// A lead byte: incomplete if it announces more bytes than remain.
			if need := leadLen(b); need > k {
				return len(s) - k
			}
			return len(s)
		}
	}
	return len(s)
}

// leadLen is the length of the UTF-8 sequence a lead byte announces (1 for
// bytes that are not valid lead bytes, which will never complete).
func leadLen(b byte) int {
	switch {
	case b&0xE0 == 0xC0:
		return 2
	case b&0xF0 == 0xE0:
		return 3
	case b&0xF8 == 0xF0:
		return 4
	}
	return 1
}
