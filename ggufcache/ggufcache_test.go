package ggufcache_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/upg-ai/upg/checkpoint"
	"github.com/upg-ai/upg/compress"
	"github.com/upg-ai/upg/ggufcache"
	"github.com/upg-ai/upg/internal/testutil"
)

// q4km is miniphi-29m quantized by llama.cpp (Q4_K_M): 18.3 MB, small
// enough to be dequantized in memory unless checkpoint.MaxEagerDequant is
// lowered, which is how these tests take the path of a large file.
const q4km = "../../shared/gguf/miniphi-29m-Q4_K_M.gguf"

// demoUPG is a real .upg of the same model: the stub compressor's output.
const demoUPG = "../models/miniphi-29m.upg"

// TestMain runs the child of TestInterruptedConversionLeavesNothing when
// asked to: a real conversion that the parent interrupts.
func TestMain(m *testing.M) {
	if src := os.Getenv("GGUFCACHE_TEST_CONVERT"); src != "" {
		checkpoint.MaxEagerDequant = 0
		ggufcache.HandleSignals = true
		_, err := ggufcache.Open(src, ggufcache.Options{Threads: 1})
		fmt.Fprintln(os.Stderr, "conversion was not interrupted:", err)
		os.Exit(3)
	}
	os.Exit(m.Run())
}

// setup copies the quantized GGUF into a temporary directory (so that the
// tests can change it), points $UPG_CACHE at another one, and makes the file
// count as too large to dequantize in memory.
func setup(t *testing.T) (src, cacheDir string) {
	t.Helper()
	testutil.NeedData(t, q4km, demoUPG)
	src = filepath.Join(t.TempDir(), "model-Q4_K_M.gguf")
	testutil.CopyFile(t, q4km, src)
	root := t.TempDir()
	t.Setenv(ggufcache.EnvCache, root)
	t.Setenv(ggufcache.EnvConvert, "")
	old := checkpoint.MaxEagerDequant
	checkpoint.MaxEagerDequant = 0
	t.Cleanup(func() { checkpoint.MaxEagerDequant = old })
	return src, filepath.Join(root, "gguf")
}

// stub replaces the compressor with a copy of the demo .upg (a real
// conversion is TestQuantizedGGUFConvertedOnce in cli, and
// TestInterruptedConversionLeavesNothing here) and counts its calls.
func stub(t *testing.T) *[]compress.Options {
	var calls []compress.Options
	t.Cleanup(ggufcache.SetConvert(func(src, out string, o compress.Options) error {
		calls = append(calls, o)
		testutil.CopyFile(t, demoUPG, out)
		return nil
	}))
	return &calls
}

// files lists the cache directory: .upg files and anything else.
func files(t *testing.T, dir string) (upgs, other []string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".upg") && !e.IsDir() {
			upgs = append(upgs, e.Name())
		} else {
			other = append(other, e.Name())
		}
	}
	return upgs, other
}

func open(t *testing.T, src string) *checkpoint.Checkpoint {
	t.Helper()
	ck, err := ggufcache.Open(src, ggufcache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return ck
}

// TestConvertsOnceThenReuses: a quantized GGUF too large for memory is
// converted once, at its own bits per weight, into $UPG_CACHE/gguf through a
// temporary directory that is gone afterwards; the next Open loads the
// cached .upg without converting.
func TestConvertsOnceThenReuses(t *testing.T) {
	src, dir := setup(t)
	calls := stub(t)
	ck := open(t, src)
	if len(*calls) != 1 {
		t.Fatalf("%d conversions, want 1", len(*calls))
	}
	if ck.Format != "upg" || filepath.Dir(ck.Path) != dir || !strings.HasPrefix(filepath.Base(ck.Path), "model-Q4_K_M-") {
		t.Fatalf("opened %s (%s), want a .upg in %s", ck.Path, ck.Format, dir)
	}
	st, _ := os.Stat(src)
	want := ggufcache.TargetBPW(st.Size(), ck.NumParams())
	if got := (*calls)[0].TargetBPW; got != want || got < 5 || got > 5.2 {
		t.Errorf("target %.2f bits per weight, want the GGUF's own %.2f (about 5.09)", got, want)
	}
	upgs, other := files(t, dir)
	if len(upgs) != 1 || len(other) != 0 {
		t.Fatalf("cache holds %v and %v, want one .upg", upgs, other)
	}

	again := open(t, src)
	if len(*calls) != 1 {
		t.Fatalf("second Open converted again (%d conversions)", len(*calls))
	}
	if again.Path != ck.Path || again.Format != "upg" {
		t.Fatalf("second Open gave %s, want %s", again.Path, ck.Path)
	}
}

// TestChangedSourceInvalidates: a new modification time, or new contents
// at the same size and time, make a new conversion, and the conversion of
// the old version of the file is deleted.
func TestChangedSourceInvalidates(t *testing.T) {
	src, dir := setup(t)
	calls := stub(t)
	first := open(t, src).Path

	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(src, later, later); err != nil {
		t.Fatal(err)
	}
	second := open(t, src).Path
	if len(*calls) != 2 || second == first {
		t.Fatalf("after touching the source: %d conversions, %s then %s; want a second conversion to a new name", len(*calls), first, second)
	}

	// Same size and time, different bytes (a header value nothing reads).
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("phi3.attention.sliding_window")
	i := bytes.Index(b, key)
	if i < 0 || i > 1<<20 {
		t.Fatalf("%s not found in the header", key)
	}
	b[i+len(key)+4] ^= 1 // after the key, its 4-byte type, then the value
	if err := os.WriteFile(src, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(src, later, later); err != nil {
		t.Fatal(err)
	}
	third := open(t, src).Path
	if len(*calls) != 3 || third == second {
		t.Errorf("after editing the source in place: %d conversions, want 3 (the cached one must not be reused)", len(*calls))
	}
	upgs, other := files(t, dir)
	if len(upgs) != 1 || len(other) != 0 {
		t.Errorf("cache holds %v and %v, want only the latest conversion", upgs, other)
	}
}

// TestFailedConversionLeavesNothing: a conversion that fails halfway leaves
// neither a cache file nor its temporary directory.
func TestFailedConversionLeavesNothing(t *testing.T) {
	src, dir := setup(t)
	t.Cleanup(ggufcache.SetConvert(func(src, out string, o compress.Options) error {
		if err := os.WriteFile(out+".tmp-123", []byte("half a file"), 0o644); err != nil {
			return err
		}
		return errors.New("disk full")
	}))
	_, err := ggufcache.Open(src, ggufcache.Options{})
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), src) {
		t.Fatalf("err = %v, want the conversion's error naming the source", err)
	}
	if upgs, other := files(t, dir); len(upgs)+len(other) != 0 {
		t.Fatalf("cache holds %v %v after a failed conversion", upgs, other)
	}
}

// TestInterruptedConversionLeavesNothing: Ctrl-C during a real conversion
// exits 130 and deletes the partial file.
func TestInterruptedConversionLeavesNothing(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGINT to send on Windows")
	}
	src, dir := setup(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GGUFCACHE_TEST_CONVERT="+src)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the compressor is writing its output.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		parts, _ := filepath.Glob(filepath.Join(dir, ggufcache.PartialPrefix+"*", "*"))
		if len(parts) > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("no partial file appeared\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("child: %v, want exit code 130\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "conversion interrupted; its partial file was removed") {
		t.Errorf("stderr does not say so:\n%s", stderr.String())
	}
	if upgs, other := files(t, dir); len(upgs)+len(other) != 0 {
		t.Fatalf("cache holds %v %v after an interrupted conversion", upgs, other)
	}
}

// TestStalePartialSwept: a temporary directory left by a killed conversion
// (unmodified for StaleAfter) is deleted by the next conversion; a recent
// one (a conversion under way in another process) is kept.
func TestStalePartialSwept(t *testing.T) {
	src, dir := setup(t)
	stub(t)
	stale := filepath.Join(dir, ggufcache.PartialPrefix+"old")
	busy := filepath.Join(dir, ggufcache.PartialPrefix+"busy")
	for _, d := range []string{stale, busy} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "x.upg.tmp-1"), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-*ggufcache.StaleAfter - time.Minute)
	for _, p := range []string{filepath.Join(stale, "x.upg.tmp-1"), stale} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	open(t, src)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale partial directory kept (%v)", err)
	}
	if _, err := os.Stat(busy); err != nil {
		t.Errorf("recent partial directory removed: %v", err)
	}
}

// TestModes: a small quantized GGUF runs as it is under auto; never keeps a
// large one (row by row); always converts a small one; a bad value is an
// error that names the variable.
func TestModes(t *testing.T) {
	src, dir := setup(t)
	calls := stub(t)
	checkpoint.MaxEagerDequant = 4 << 30
	ck := open(t, src)
	if d, _ := ck.GGUFDequant(); ck.Format != "gguf" || !d.Eager {
		t.Errorf("auto, small file: %s eager=%v, want the GGUF dequantized in memory", ck.Format, d.Eager)
	}
	checkpoint.MaxEagerDequant = 0
	t.Setenv(ggufcache.EnvConvert, "never")
	ck = open(t, src)
	if d, _ := ck.GGUFDequant(); ck.Format != "gguf" || d.Eager {
		t.Errorf("never, large file: %s eager=%v, want the GGUF row by row", ck.Format, d.Eager)
	}
	if len(*calls) != 0 {
		t.Fatalf("%d conversions under auto (small) and never", len(*calls))
	}
	// The explicit mode wins over the environment (upg eval passes Never).
	t.Setenv(ggufcache.EnvConvert, "always")
	if ck, err := ggufcache.Open(src, ggufcache.Options{Mode: ggufcache.Never}); err != nil || ck.Format != "gguf" {
		t.Fatalf("Mode Never under %s=always: %v", ggufcache.EnvConvert, err)
	} else {
		ck.Close()
	}
	checkpoint.MaxEagerDequant = 4 << 30
	if ck := open(t, src); ck.Format != "upg" || len(*calls) != 1 {
		t.Errorf("always, small file: %s after %d conversions, want the cached .upg", ck.Format, len(*calls))
	}
	if upgs, _ := files(t, dir); len(upgs) != 1 {
		t.Errorf("cache holds %v", upgs)
	}
	t.Setenv(ggufcache.EnvConvert, "sometimes")
	if _, err := ggufcache.Open(src, ggufcache.Options{}); err == nil || !strings.Contains(err.Error(), ggufcache.EnvConvert) {
		t.Errorf("bad %s: err = %v", ggufcache.EnvConvert, err)
	}
	// Other formats pass through untouched.
	if ck := open(t, demoUPG); ck.Path != demoUPG {
		t.Errorf("a .upg opened as %s", ck.Path)
	}
}

func TestTargetBPW(t *testing.T) {
	for _, c := range []struct {
		bytes, params int64
		want          float64
	}{
		{18349728, 28842496, 5.09}, // miniphi Q4_K_M
		{1000, 8000, 4},            // 1 bit per weight: raised to MinBPW
		{9000, 8000, 8.5},          // 9 bits: capped at MaxBPW
	} {
		if got := ggufcache.TargetBPW(c.bytes, c.params); got != c.want {
			t.Errorf("TargetBPW(%d, %d) = %v, want %v", c.bytes, c.params, got, c.want)
		}
	}
}

// TestDefaultDir: $UPG_CACHE, else the user's cache directory.
func TestDefaultDir(t *testing.T) {
	t.Setenv(ggufcache.EnvCache, "")
	d, err := ggufcache.Dir()
	if err != nil {
		t.Skipf("no user cache directory here: %v", err)
	}
	if base, _ := os.UserCacheDir(); d != filepath.Join(base, "upg", "gguf") {
		t.Errorf("Dir() = %s", d)
	}
	t.Setenv(ggufcache.EnvCache, "/x/y")
	if d, _ := ggufcache.Dir(); d != filepath.Join("/x/y", "gguf") {
		t.Errorf("Dir() with %s=/x/y = %s", ggufcache.EnvCache, d)
	}
}
