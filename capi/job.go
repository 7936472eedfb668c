package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/checkpoint"
	"github.com/upg-ai/upg/cli"
	"github.com/upg-ai/upg/compress"
	"github.com/upg-ai/upg/internal/units"
)

// jobObj is a long operation (compress, evaluate) running in a goroutine.
// The caller polls it (wait returns at least every timeout, with the
// progress so far) so that progress callbacks run on the caller's thread
// and Ctrl-C is noticed between polls.
type jobObj struct {
	mu       sync.Mutex
	done     int64
	total    int64
	stage    string
	updates  int64 // progress calls so far
	cancel   atomic.Bool
	finished chan struct{}
	result   []byte // JSON, once finished without error
	err      error
}

// cancelPanic is what progress panics with to stop a cancelled job.
type cancelPanic struct{}

// startJob runs fn in a goroutine. fn reports progress through its
// argument, which stops fn (by panicking; fn's deferred cleanups run) once
// the job is cancelled: compress.Run and eval.CompareMany take no context,
// but call their progress callbacks on their own goroutine between stages.
func startJob(fn func(progress func(done, total int64, stage string), cancelled func() bool) (any, error)) *jobObj {
	j := &jobObj{finished: make(chan struct{})}
	progress := func(done, total int64, stage string) {
		j.mu.Lock()
		j.done, j.total, j.stage = done, total, stage
		j.updates++
		j.mu.Unlock()
		if j.cancel.Load() {
			panic(cancelPanic{})
		}
	}
	go func() {
		defer close(j.finished)
		defer func() {
			switch p := recover().(type) {
			case nil:
			case cancelPanic:
				j.err = errCancelled
			default:
				j.err = fmt.Errorf("internal error: %v", p)
			}
		}()
		res, err := fn(progress, j.cancel.Load)
		if err != nil {
			j.err = abiError{err}
			return
		}
		if j.result, err = json.Marshal(res); err != nil {
			j.err = err
		}
	}()
	return j
}

// jobState is a poll's answer.
type jobState struct {
	Done, Total, Updates int64
	Stage                string
	Finished             bool
}

// wait waits up to timeout for the job to finish and returns its progress.
func (j *jobObj) wait(timeout time.Duration) jobState {
	var finished bool
	t := time.NewTimer(timeout)
	select {
	case <-j.finished:
		finished = true
	case <-t.C:
	}
	t.Stop()
	j.mu.Lock()
	defer j.mu.Unlock()
	return jobState{Done: j.done, Total: j.total, Updates: j.updates, Stage: j.stage, Finished: finished}
}

// outcome returns the result of a finished job.
func (j *jobObj) outcome() ([]byte, error) {
	select {
	case <-j.finished:
		return j.result, j.err
	default:
		return nil, argErrorf("the job has not finished")
	}
}

// compressOptions are upg_compress_start's JSON (upg compress's flags).
type compressOptions struct {
	TargetBPW   float64 `json:"target_bpw"`
	Calib       string  `json:"calib"`      // calibration text file
	CalibText   string  `json:"calib_text"` // or the text itself
	CalibTokens int     `json:"calib_tokens"`
	CalibCtx    int     `json:"calib_ctx"`
	Codec       string  `json:"codec"`
	NoGPTQ      bool    `json:"no_gptq"`
	Threads     int     `json:"threads"`
	// TargetSize is upg compress --target-size: the largest file size,
	// bytes or with a unit ("9.4MB", "8MiB"), instead of TargetBPW.
	TargetSize string `json:"target_size"`
	// TokenWeights, OutputTargets and RotateResidual are upg compress's
	// --token-weights, --output-targets and --rotate-residual; a
	// RotateResidual left out (null) is the command's default: the stream
	// rotated where the model can take it.
	TokenWeights   bool  `json:"token_weights"`
	OutputTargets  bool  `json:"output_targets"`
	RotateResidual *bool `json:"rotate_residual"`
}

func startCompress(src, out string, o compressOptions) (*jobObj, error) {
	var targetBytes int64
	if o.TargetSize != "" {
		n, err := units.ParseSize(o.TargetSize)
		if err != nil || n <= 0 {
			return nil, argErrorf("target_size %q: want a positive size in bytes, e.g. 9.4MB or 9400000", o.TargetSize)
		}
		targetBytes = n
	}
	switch {
	case src == "" || out == "":
		return nil, argErrorf("compress needs a source and an output path")
	case targetBytes > 0 && o.TargetBPW != 0:
		return nil, argErrorf("give target_bpw or target_size, not both")
	case targetBytes == 0 && !(o.TargetBPW > 0 && o.TargetBPW <= 32):
		return nil, argErrorf("target_bpw %v must be in (0, 32] (10x smaller than fp32 is 3.2)", o.TargetBPW)
	case o.Calib != "" && o.CalibText != "":
		return nil, argErrorf("give calib (a file) or calib_text, not both")
	case o.CalibTokens < 0 || o.CalibCtx < 0 || o.Threads < 0:
		return nil, argErrorf("calib_tokens, calib_ctx and threads must be ≥ 0")
	}
	if _, err := compress.Ladder(compress.Family(o.Codec), 256); err != nil {
		return nil, &apiError{codeArgument, err}
	}
	if err := checkOpens(src); err != nil {
		return nil, err
	}
	text := o.CalibText
	if o.Calib != "" {
		b, err := os.ReadFile(o.Calib)
		if err != nil {
			return nil, err
		}
		text = string(b)
	}
	opts := compress.Options{TargetBPW: o.TargetBPW, CalibText: text, CalibTokens: o.CalibTokens, CalibCtx: o.CalibCtx,
		Family: compress.Family(o.Codec), NoGPTQ: o.NoGPTQ, Threads: o.Threads, TargetBytes: targetBytes,
		TokenWeights: o.TokenWeights, OutputTargets: o.OutputTargets, Residual: compress.ResidualFor(o.RotateResidual)}
	return startJob(func(progress func(int64, int64, string), cancelled func() bool) (any, error) {
		opts.Progress = progress
		rep, err := compress.Run(src, out, opts)
		if err == nil && cancelled() { // cancelled after the last progress report
			os.Remove(out)
			return nil, errCancelled
		}
		return rep, err
	}), nil
}

// checkOpens opens a model file and closes it, so that a job on a file
// that is missing or not a model fails when it starts, with the file's error.
func checkOpens(path string) error {
	ck, err := checkpoint.Open(path)
	if err != nil {
		return &apiError{classify(err, codeFormat), err}
	}
	return ck.Close()
}

// evalOptions are upg_evaluate_start's JSON (upg eval's flags).
type evalOptions struct {
	Model    string   `json:"model"`
	Ref      string   `json:"ref"`
	Compare  []string `json:"compare"`
	Text     string   `json:"text"`      // the text itself
	TextFile string   `json:"text_file"` // or a file of it
	Ctx      int      `json:"ctx"`
	Threads  int      `json:"threads"`
	KVCache  string   `json:"kv_cache"` // the scored models' KV cache: "f32" (default, ""), "f16" or "q8"
	// Device and GPULayers place the scored models (and the reference,
	// unless RefDevice names another device) as upg_model_load's options do.
	Device    string          `json:"device"`
	GPULayers json.RawMessage `json:"gpu_layers"`
	RefDevice string          `json:"ref_device"` // "" = Device; "cpu" with Device "cuda" measures the GPU's divergence from the CPU
}

// startEvaluate scores as `upg eval --json` does; the job's result is the
// list of the objects it prints, one per model.
func startEvaluate(o evalOptions) (*jobObj, error) {
	switch {
	case o.Model == "":
		return nil, argErrorf("evaluate needs a model path")
	case (o.Text == "") == (o.TextFile == ""):
		return nil, argErrorf("give the evaluation text or a text file (one of them)")
	case o.Ctx != 0 && o.Ctx < 4:
		return nil, argErrorf("ctx %d is too small (at least 4; 0 = 512)", o.Ctx)
	case o.Ctx < 0 || o.Threads < 0:
		return nil, argErrorf("ctx and threads must be ≥ 0")
	}
	if o.KVCache != "" {
		if _, err := backend.ParseKVType(o.KVCache); err != nil {
			return nil, argErrorf("kv_cache must be %s, not %q", backend.KVTypeNames(), o.KVCache)
		}
	}
	device, gpuLayers, err := loadOptions{Device: o.Device, GPULayers: o.GPULayers}.placement()
	if err != nil {
		return nil, err
	}
	refDevice := ""
	if o.RefDevice != "" {
		if refDevice, _, err = (loadOptions{Device: o.RefDevice}).placement(); err != nil {
			return nil, argErrorf("ref_device must be \"auto\", \"cpu\" or \"cuda\", not %q", o.RefDevice)
		}
	}
	for _, p := range append([]string{o.Model, o.Ref}, o.Compare...) {
		if p == "" {
			continue
		}
		if err := checkOpens(p); err != nil {
			return nil, err
		}
	}
	text := o.Text
	if o.TextFile != "" {
		b, err := os.ReadFile(o.TextFile)
		if err != nil {
			return nil, err
		}
		text = string(b)
	}
	return startJob(func(progress func(int64, int64, string), _ func() bool) (any, error) {
		return cli.Evaluate(cli.EvalOptions{Model: o.Model, Ref: o.Ref, Compare: o.Compare, Text: text, Ctx: o.Ctx, Threads: o.Threads, KVCache: o.KVCache,
			Device: device, GPULayers: gpuLayers, RefDevice: refDevice},
			func(done, total int) { progress(int64(done), int64(total), "evaluating") })
	}), nil
}
