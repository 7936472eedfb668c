// Package ggufcache opens a model for inference, converting a block-quantized
// GGUF file (Q4_K, Q8_0, IQ4_XS, ...) that is too large to dequantize into
// float32 memory once, through the compressor, into a cached .upg file that
// later runs load directly.
//
// A small quantized GGUF is dequantized whole into memory by package
// checkpoint and runs as it is; so does every GGUF under Never (what `upg
// eval` uses: it scores the file's own weights). A large one under Auto (the
// default) is converted at the source's own bits per weight (clamped to
// [MinBPW, MaxBPW]) into Dir(), named by a hash of the source's absolute
// path, size, modification time, first MiB, the compressor version and the
// target, so a changed source is converted afresh (and the stale conversion
// of the same path deleted). The conversion streams row by row, so memory
// stays bounded; it is written into a private temporary directory and
// renamed into place only when complete.
package ggufcache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/upg-ai/upg/checkpoint"
	"github.com/upg-ai/upg/compress"
)

// Mode says what Open does with a block-quantized GGUF file.
type Mode string

const (
	// FromEnv takes the mode from $UPG_GGUF_CONVERT (Auto when unset).
	FromEnv Mode = ""
	// Auto converts a quantized GGUF only when it is too large to
	// dequantize in memory (checkpoint.GGUFDequant's Eager is false).
	Auto Mode = "auto"
	// Never runs the GGUF's own weights exactly: dequantized in memory, or
	// decoded row by row at every use when too large (slow).
	Never Mode = "never"
	// Always converts every quantized GGUF, whatever its size.
	Always Mode = "always"
)

// Environment variables.
const (
	EnvConvert = "UPG_GGUF_CONVERT" // auto (default), never or always
	EnvCache   = "UPG_CACHE"        // the cache root; default os.UserCacheDir()/upg
)

// The target bits per weight of a conversion is the source's own (file
// bytes × 8 / parameters) clamped to [MinBPW, MaxBPW]: at the source's size
// the conversion costs little quality (without calibration, lower rates
// cost much more: see README), and the dense 8-bit codec tops out near 8.5.
const (
	MinBPW = 4.0
	MaxBPW = 8.5
)

// paramsPerCoreSecond is the rough conversion rate used for the time
// estimate (docs/benchmarks.md: 0.7-1.2 M parameters/s per core at 3.2 bits
// per weight without calibration, slower at higher rates).
const paramsPerCoreSecond = 0.5e6

// partialPrefix names the temporary directories of conversions under way;
// staleAfter is how long one may go unmodified before a later conversion
// deletes it as the leftover of a killed process.
const (
	partialPrefix = ".partial-"
)

var staleAfter = 6 * time.Hour

// Options configure Open.
type Options struct {
	Mode    Mode
	Threads int // compressor threads for a conversion; 0 = all cores
}

// NewProgress, when set, makes the progress display of a conversion (the
// command line sets it to its progress bar); finish gets the conversion's
// error, nil when it succeeded.
var NewProgress func(desc, unit string) (set func(done, total int64, stage string), finish func(err error))

// HandleSignals, when set, makes a conversion catch Ctrl-C and SIGTERM,
// delete its partial file and exit with 130 (143 for SIGTERM), as the
// signal would have without the cleanup. The command line sets it; a
// library embedding the package keeps its own signal handling.
var HandleSignals bool

// Hooks replaced by tests.
var (
	convert = func(src, out string, opts compress.Options) error {
		_, err := compress.Run(src, out, opts)
		return err
	}
	exit = os.Exit
)

// Dir returns the directory of converted files: $UPG_CACHE/gguf, or
// os.UserCacheDir()/upg/gguf (~/.cache/upg/gguf on Linux).
func Dir() (string, error) {
	root := os.Getenv(EnvCache)
	if root == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("no cache directory for converted GGUF files (set %s): %w", EnvCache, err)
		}
		root = filepath.Join(d, "upg")
	}
	return filepath.Join(root, "gguf"), nil
}

func (o Options) mode() (Mode, error) {
	m := o.Mode
	if m == FromEnv {
		m = Mode(strings.ToLower(strings.TrimSpace(os.Getenv(EnvConvert))))
		if m == "" {
			m = Auto
		}
	}
	switch m {
	case Auto, Never, Always:
		return m, nil
	}
	return "", fmt.Errorf("%s=%q: want auto, never or always", EnvConvert, string(m))
}

// Open opens the model at path for inference: as checkpoint.Open does,
// except that a quantized GGUF to be converted (see Mode) is replaced by its
// cached .upg conversion, made first if there is none.
func Open(path string, o Options) (*checkpoint.Checkpoint, error) {
	ck, err := checkpoint.Open(path)
	if err != nil {
		return nil, err
	}
	dq, ok := ck.GGUFDequant()
	if !ok || !dq.Quantized {
		return ck, nil
	}
	mode, err := o.mode()
	if err != nil {
		ck.Close()
		return nil, err
	}
	if mode == Never || (mode == Auto && dq.Eager) {
		if !dq.Eager {
			slog.Warn("quantized GGUF too large to dequantize in memory: decoding its weights at every use (exact, but slow)",
				"file", path, "float32", human(dq.Float32Bytes), "limit", human(dq.Limit), "mode", string(mode))
		}
		return ck, nil
	}
	params := ck.NumParams()
	ck.Close()
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	target := TargetBPW(st.Size(), params)
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	dst, prefix, err := cacheFile(dir, path, target)
	if err != nil {
		return nil, err
	}
	if c, err := checkpoint.Open(dst); err == nil && c.Format == "upg" {
		slog.Warn("running the cached .upg conversion of this quantized GGUF ("+EnvConvert+"=never runs the GGUF itself)",
			"file", path, "cache", dst, "bpw", fmt.Sprintf("%.2f", bpw(dst, params)))
		return c, nil
	} else if err == nil {
		c.Close()
	} else if !errors.Is(err, fs.ErrNotExist) {
		slog.Warn("cached conversion unreadable: converting again", "cache", dst, "problem", err.Error())
	}

	msg := "quantized GGUF too large to dequantize in memory (" + human(dq.Float32Bytes) + " as float32, over the " + human(dq.Limit) +
		" limit): converting it once into a cached .upg that later runs load directly (" + EnvConvert + "=never runs the GGUF itself, slowly)"
	if dq.Eager {
		msg = "converting the quantized GGUF once into a cached .upg that later runs load directly (" + EnvConvert + "=always)"
	}
	threads := o.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	est := time.Duration(float64(params) / (paramsPerCoreSecond * float64(threads)) * float64(time.Second))
	slog.Warn(msg, "file", path, "cache", dst, "target_bpw", fmt.Sprintf("%.2f (the GGUF's own, within %g-%g)", target, MinBPW, MaxBPW),
		"disk", "about "+human(int64(target*float64(params)/8)),
		"time", fmt.Sprintf("roughly %s with %d thread%s (an estimate; the progress display refines it)", roundDur(est), threads, plural(threads)))
	start := time.Now()
	if err := convertInto(path, dst, prefix, compress.Options{TargetBPW: target, Threads: threads, Residual: residual}); err != nil {
		return nil, err
	}
	c, err := checkpoint.Open(dst)
	if err != nil {
		return nil, err
	}
	slog.Warn("conversion done", "cache", dst, "bytes", human(fileSize(dst)), "bpw", fmt.Sprintf("%.2f", bpw(dst, params)),
		"elapsed", time.Since(start).Round(time.Second))
	return c, nil
}

// residual is the conversions' residual stream: rotated where the model
// can take it, as `upg compress` writes by default (compress.ResidualAuto:
// the same quality on miniphi-29m, the norms need no rotation at run time,
// GPU decode ~1% faster; docs/benchmarks.md, "The rotated residual
// stream"). It is part of the cache key, so a conversion made before it
// (plain) is made again.
const residual = compress.ResidualAuto

// TargetBPW is the bits per weight a conversion aims at: the source's own
// all-in rate, clamped to [MinBPW, MaxBPW] and rounded to 0.01.
func TargetBPW(sourceBytes, params int64) float64 {
	b := float64(sourceBytes*8) / float64(max(params, 1))
	return math.Round(min(max(b, MinBPW), MaxBPW)*100) / 100
}

// cacheFile names the conversion of src at target bits per weight:
// "<base>-<hash of the path>-<hash of the path, size, mtime, first MiB,
// compressor version and target>.upg". prefix is the name up to the last
// hash: the conversions of the same path share it.
func cacheFile(dir, src string, target float64) (path, prefix string, err error) {
	abs, err := filepath.Abs(src)
	if err != nil {
		return "", "", err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	f, err := os.Open(abs)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%s\x00%.2f\x00%d\x00", abs, st.Size(), st.ModTime().UnixNano(), compress.Version, target, residual)
	if _, err := io.Copy(h, io.LimitReader(f, 1<<20)); err != nil {
		return "", "", fmt.Errorf("%s: %w", src, err)
	}
	ph := sha256.Sum256([]byte(abs))
	base := strings.TrimSuffix(filepath.Base(abs), filepath.Ext(abs))
	prefix = base + "-" + hex.EncodeToString(ph[:4]) + "-"
	return filepath.Join(dir, prefix+hex.EncodeToString(h.Sum(nil)[:8])+".upg"), prefix, nil
}

// convertInto converts src into dst through a private temporary directory
// beside it, renamed into place only when complete; on failure or (with
// HandleSignals) interruption nothing is left behind. It then deletes the
// conversions of earlier versions of the same source (same prefix).
func convertInto(src, dst, prefix string, opts compress.Options) (err error) {
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cache directory: %w", err)
	}
	sweepStale(dir)
	// signals are caught before the partial directory exists, so none can
	// end the process between its creation and the handler's start (a
	// signal in between waits in sig)
	var sig chan os.Signal
	if HandleSignals {
		sig = make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	}
	tmpDir, err := os.MkdirTemp(dir, partialPrefix+"*")
	if err != nil {
		if sig != nil {
			signal.Stop(sig)
		}
		return fmt.Errorf("cache directory: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	if sig != nil {
		done := make(chan struct{})
		defer func() {
			signal.Stop(sig)
			close(done)
		}()
		go func() {
			select {
			case s := <-sig:
				os.RemoveAll(tmpDir)
				fmt.Fprintf(os.Stderr, "upg: conversion interrupted; its partial file was removed (%s)\n", tmpDir)
				if s == syscall.SIGTERM {
					exit(143)
				}
				exit(130)
			case <-done:
			}
		}()
	}
	if NewProgress != nil {
		set, finish := NewProgress("converting", "parameters")
		opts.Progress = set
		defer func() { finish(err) }()
	}
	tmp := filepath.Join(tmpDir, filepath.Base(dst))
	if err := convert(src, tmp, opts); err != nil {
		return fmt.Errorf("converting %s into %s: %w", src, dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("converting %s: %w", src, err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, globEscape(prefix)+"*.upg"))
	for _, p := range old {
		if p != dst && os.Remove(p) == nil {
			slog.Info("removed the conversion of an earlier version of the file", "file", src, "cache", p)
		}
	}
	return nil
}

// sweepStale deletes the temporary directories of conversions that were
// killed (nothing in them modified for staleAfter).
func sweepStale(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), partialPrefix) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		newest := time.Time{}
		filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
			if err == nil {
				if info, err := d.Info(); err == nil && info.ModTime().After(newest) {
					newest = info.ModTime()
				}
			}
			return nil
		})
		if time.Since(newest) > staleAfter {
			if os.RemoveAll(p) == nil {
				slog.Info("removed the partial file of an interrupted conversion", "path", p)
			}
		}
	}
}

func globEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)
	if runtime.GOOS == "windows" {
		r = strings.NewReplacer(`*`, `?`, `[`, `?`) // no escapes there; ? matches the character itself too
	}
	return r.Replace(s)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

func bpw(p string, params int64) float64 {
	return float64(fileSize(p)*8) / float64(max(params, 1))
}

func human(n int64) string {
	if n >= 1e9 {
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

func roundDur(d time.Duration) time.Duration {
	switch {
	case d > time.Hour:
		return d.Round(10 * time.Minute)
	case d > time.Minute:
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}
