package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/backend/cpu"
	"github.com/upg-ai/upg/backend/cuda"
	"github.com/upg-ai/upg/model"
	"github.com/upg-ai/upg/tensor"
)

// NewBackend starts the backend a --device value names: "cpu" (also ""),
// "cuda", or "auto" (the GPU when one is usable, else the CPU, saying why
// in one log line: at info level when the machine has no NVIDIA driver or
// its driver reports no GPU, the usual cases, and as a warning when a GPU
// is there but unusable: a driver too old, too little memory).
func NewBackend(device string, threads int) (backend.Backend, error) {
	switch strings.ToLower(device) {
	case "", "cpu":
		return cpu.New(threads), nil
	case "cuda", "gpu":
		return cuda.NewBackend(0)
	case "auto":
		be, err := cuda.NewBackend(0)
		if err == nil {
			return be, nil
		}
		if errors.Is(err, cuda.ErrNoDriver) || errors.Is(err, cuda.ErrNoDevice) {
			slog.Info("running on the CPU", "reason", err.Error())
		} else {
			slog.Warn("GPU not usable, running on the CPU", "reason", err.Error())
		}
		return cpu.New(threads), nil
	}
	return nil, fmt.Errorf("unknown device %q (want auto, cpu or cuda)", device)
}

// ErrDevice is matched (errors.Is) by Load's errors for a GPU that was
// asked for and cannot be used: no NVIDIA driver or GPU, a driver too old,
// too little free device memory for the model. Their messages are the
// backend's own.
var ErrDevice = errors.New("the GPU cannot be used")

// deviceError marks err as ErrDevice without changing its message.
type deviceError struct{ err error }

func (e deviceError) Error() string   { return e.err.Error() }
func (e deviceError) Unwrap() []error { return []error{e.err, ErrDevice} }

// weightSizer is a backend whose weights live in device memory (the GPU's):
// it says how much a matrix takes there before it is uploaded.
type weightSizer interface {
	WeightBytes(tensor.Matrix) int64
}

// isDevice reports whether be keeps weights in device memory of its own,
// as opposed to the CPU's host memory (the memory map).
func isDevice(be backend.Backend) bool {
	_, ok := be.(weightSizer)
	return ok
}

// deviceNeed is the device memory a GPU backend needs to hold the last n
// of w's layers (model.NewSplit's placement): their matrices and vectors,
// the final norm and the output head, the workspace reserve, and the
// embedding table when n is every layer (a split keeps it on the CPU).
func deviceNeed(sz weightSizer, w *model.Weights, n int) int64 {
	L := len(w.Layers)
	need := int64(cuda.WorkspaceReserve) + int64(4*len(w.Norm))
	seen := map[tensor.Matrix]bool{}
	add := func(ms ...tensor.Matrix) {
		for _, m := range ms {
			if m != nil && !seen[m] {
				seen[m] = true
				need += sz.WeightBytes(m)
			}
		}
	}
	if n >= L {
		add(w.Embed)
	}
	add(w.Output)
	for i := max(0, L-n); i < L; i++ {
		l := &w.Layers[i]
		add(l.QKV, l.Q, l.K, l.V, l.O, l.GateUp, l.Gate, l.Up, l.Down)
		for _, v := range [][]float32{l.AttnNorm, l.FFNNorm, l.QBias, l.KBias, l.VBias} {
			need += int64(4 * len(v))
		}
	}
	return need
}

// layersThatFit is the most of w's last layers that fit free bytes of
// device memory together with kvPerLayer bytes of KV cache per layer (0
// when not one does).
func layersThatFit(sz weightSizer, w *model.Weights, free, kvPerLayer int64) int {
	for n := len(w.Layers); n > 0; n-- {
		if deviceNeed(sz, w, n)+int64(n)*kvPerLayer <= free {
			return n
		}
	}
	return 0
}

// gpuPlan is where a model's layers go on a device backend.
type gpuPlan struct {
	layers int // the last layers on the device; every layer = no split
	why    string
}

// planDevice resolves Options.GPULayers for a device backend with free
// bytes free (≤ 0: unknown), and refuses, before anything is uploaded, a
// placement whose weights (plus the backend's workspace) need more than
// that; the error says how many layers would fit with a KV cache of ctx
// positions (kvPerLayer bytes per layer). Backends that hold weights in
// host memory (the CPU's mmap) have nothing to check: every layer.
func planDevice(be backend.Backend, w *model.Weights, gpuLayers int, free, kvPerLayer int64, ctx int) (gpuPlan, error) {
	L := len(w.Layers)
	sz, ok := be.(weightSizer)
	if !ok {
		return gpuPlan{layers: L}, nil
	}
	if gpuLayers == GPULayersAuto {
		if free <= 0 {
			return gpuPlan{layers: L, why: "free device memory unknown: every layer"}, nil
		}
		n := layersThatFit(sz, w, free, kvPerLayer)
		return gpuPlan{layers: n, why: fmt.Sprintf("%d of %d layers fit %.2f GiB of free device memory with a KV cache of %d positions",
			n, L, gib(free), ctx)}, nil
	}
	n := L
	if gpuLayers > 0 {
		n = min(gpuLayers, L)
	}
	if free <= 0 {
		return gpuPlan{layers: n}, nil
	}
	if need := deviceNeed(sz, w, n); need > free {
		what := "the model needs"
		if n < L {
			what = fmt.Sprintf("the last %d of its %d layers need", n, L)
		}
		hint := "not one layer fits with a KV cache of the context; try --device cpu"
		if k := layersThatFit(sz, w, free, kvPerLayer); k > 0 {
			hint = fmt.Sprintf("--gpu-layers %d fits (with a KV cache of %d positions; the other layers run on the CPU), or try --device cpu", k, ctx)
		}
		return gpuPlan{}, fmt.Errorf("%s %.2f GiB of device memory (weights and workspace), %.2f GiB is free on %s; %s, or free the GPU (%s caps what UPG takes)",
			what, gib(need), gib(free), be.Name(), hint, cuda.MemEnv)
	}
	return gpuPlan{layers: n}, nil
}

func gib(n int64) float64 { return float64(n) / (1 << 30) }
