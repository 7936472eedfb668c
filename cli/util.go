package cli

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/upg-ai/upg/ggufcache"
	"golang.org/x/term"
)

// isTerminal reports whether f is an interactive terminal (not /dev/null,
// which is a character device too).
func isTerminal(f *os.File) bool {
	return term.IsTerminal(int(f.Fd()))
}

// readInput reads a whole file, or standard input when path is "-".
func readInput(path string) (string, error) {
	if path == "-" {
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return "", fmt.Errorf("standard input: %w", err)
		}
		return string(b), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// unescape turns the escapes people type in shell arguments (\n, \t, \r,
// \\, \xNN, \uNNNN, ...) into the characters they stand for, as Go and
// C string literals do.
func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for len(s) > 0 {
		if s[0] != '\\' {
			b.WriteByte(s[0])
			s = s[1:]
			continue
		}
		q := byte('"')
		if len(s) > 1 && s[1] == '\'' {
			q = '\''
		}
		r, multi, tail, err := strconv.UnquoteChar(s, q)
		if err != nil {
			return "", fmt.Errorf("bad escape at %q", s[:min(len(s), 6)])
		}
		if multi || r >= 0x80 {
			b.WriteRune(r)
		} else {
			b.WriteByte(byte(r))
		}
		s = tail
	}
	return b.String(), nil
}

// progress reports the advance of a long command on stderr: a redrawn bar
// on a terminal, plain lines at most every progressEvery elsewhere (logs and
// CI capture no carriage-return frames).
type progress struct {
	bar   *progressbar.ProgressBar
	desc  string
	unit  string
	total int64
	start time.Time

	mu   sync.Mutex
	last time.Time
	done int64
}

// A conversion of a quantized GGUF into a cached .upg (package ggufcache,
// reached through engine.Load) shows this progress display and cleans up
// after Ctrl-C.
func init() {
	ggufcache.NewProgress = func(desc, unit string) (func(done, total int64, stage string), func(error)) {
		p := newProgress(desc, unit, 100)
		return p.set, p.finish
	}
	ggufcache.HandleSignals = true
}

// progressEvery is the interval between plain progress lines.
var progressEvery = 10 * time.Second

func newProgress(desc, unit string, total int64) *progress {
	p := &progress{desc: desc, unit: unit, total: total, start: time.Now()}
	if isTerminal(os.Stderr) {
		p.bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(os.Stderr), progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish(),
			progressbar.OptionSetDescription(desc))
		return p
	}
	if d := os.Getenv("UPG_PROGRESS_EVERY"); d != "" {
		if v, err := time.ParseDuration(d); err == nil && v > 0 {
			progressEvery = v
		}
	}
	p.last = p.start
	fmt.Fprintf(os.Stderr, "%s: started (progress every %s)\n", desc, progressEvery)
	return p
}

// set records done units of total (total ≤ 0 keeps the previous total) at stage.
func (p *progress) set(done, total int64, stage string) {
	if p.bar != nil {
		if total > 0 && p.bar.GetMax64() != total {
			p.bar.ChangeMax64(total)
		}
		if stage != "" {
			p.bar.Describe(fmt.Sprintf("%-44.44s", stage))
		}
		p.bar.Set64(done)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if total > 0 {
		p.total = total
	}
	p.done = done
	now := time.Now()
	if now.Sub(p.last) < progressEvery {
		return
	}
	p.last = now
	p.line(stage)
}

func (p *progress) line(stage string) {
	el := time.Since(p.start).Round(time.Second)
	pct := 0.0
	if p.total > 0 {
		pct = 100 * float64(p.done) / float64(p.total)
	}
	msg := fmt.Sprintf("%s: %d/%d %s (%.0f%%), %s elapsed", p.desc, p.done, p.total, p.unit, pct, el)
	if p.done > 0 && p.done < p.total {
		left := time.Duration(float64(time.Since(p.start)) * float64(p.total-p.done) / float64(p.done))
		msg += fmt.Sprintf(", about %s left", left.Round(time.Second))
	}
	if stage != "" {
		msg += "; " + strings.TrimSpace(stage)
	}
	fmt.Fprintln(os.Stderr, msg)
}

// finish ends the display of work that ended with err: the bar filled, or
// a final line saying "done"; after a failure the bar is cleared, or the
// line says "failed", so that nothing reads as a success before the error.
func (p *progress) finish(err error) {
	if p.bar != nil {
		if err != nil {
			p.bar.Clear()
			p.bar.Exit()
			return
		}
		p.bar.Finish()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.line("failed")
		return
	}
	p.line("done")
}

func randomSeed() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) | 1
}

// DemoModel is the bundled demo model's path relative to the repository root.
const DemoModel = "models/miniphi-29m.upg"

// demoModelPath finds the bundled demo model: $UPG_DEMO_MODEL, then
// models/ under the working directory or its parents, then beside the binary.
func demoModelPath() (string, error) {
	if p := os.Getenv("UPG_DEMO_MODEL"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("no --model given and the demo model UPG_DEMO_MODEL=%s cannot be read: %w", p, errors.Unwrap(err))
		}
		return p, nil
	}
	var dirs []string
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			dirs = append(dirs, d)
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe), filepath.Dir(filepath.Dir(exe)))
	}
	for _, d := range dirs {
		p := filepath.Join(d, DemoModel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no --model given and the bundled demo model " + DemoModel + " was not found (run from the repository, or set UPG_DEMO_MODEL)")
}
