package compress_test

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upg-ai/upg/compress"
)

// TestShortCalibrationWarns: a calibration text with fewer tokens than
// --calib-tokens asks, and none left over to hold out, is said so in the
// log (how many tokens were used of how many asked), and the run goes on.
func TestShortCalibrationWarns(t *testing.T) {
	text := tinyStoriesText(t)
	var log bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelWarn})))
	defer slog.SetDefault(old)
	opts := compress.Options{TargetBPW: 5, CalibText: text, CalibTokens: 1 << 20, CalibCtx: 256, Threads: 2}
	rep, err := compress.Run(tinyStories, filepath.Join(t.TempDir(), "ts.upg"), opts)
	if err != nil {
		t.Fatal(err)
	}
	got := log.String()
	for _, want := range []string{"the calibration text is shorter than asked", "tokens_asked=1048576",
		"no sequence left to hold out"} {
		if !strings.Contains(got, want) {
			t.Errorf("log does not say %q:\n%s", want, got)
		}
	}
	if rep.Quality != nil {
		t.Errorf("quality measured with no held-out sequence: %+v", rep.Quality)
	}
}
