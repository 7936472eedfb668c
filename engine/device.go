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
// in one log line: at info level when the machine has no NVIDIA driver, the
// usual case, and as a warning when a driver is there but unusable).
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
		if errors.Is(err, cuda.ErrNoDriver) {
			slog.Info("running on the CPU", "reason", err.Error())
		} else {
			slog.Warn("GPU not usable, running on the CPU", "reason", err.Error())
		}
		return cpu.New(threads), nil
	}
	return nil, fmt.Errorf("unknown device %q (want auto, cpu or cuda)", device)
}

// checkFitsDevice refuses, before anything is uploaded, a model whose
// weights (plus the backend's workspace) need more memory than the
// backend's device has free. Backends that hold weights in host memory
// (the CPU's mmap) have nothing to check.
func checkFitsDevice(be backend.Backend, w *model.Weights) error {
	sz, ok := be.(interface {
		WeightBytes(tensor.Matrix) int64
	})
	if !ok {
		return nil
	}
	free := be.FreeMemory()
	if free <= 0 {
		return nil
	}
	need := int64(cuda.WorkspaceReserve)
	for _, m := range w.Matrices() {
		need += sz.WeightBytes(m)
	}
	need += int64(4 * len(w.Norm))
	for i := range w.Layers {
		l := &w.Layers[i]
		for _, v := range [][]float32{l.AttnNorm, l.FFNNorm, l.QBias, l.KBias, l.VBias} {
			need += int64(4 * len(v))
		}
	}
	if need > free {
		return fmt.Errorf("the model needs %.2f GiB of device memory (weights and workspace), %.2f GiB is free on %s; try --device cpu, or free the GPU (%s caps what UPG takes)",
			float64(need)/(1<<30), float64(free)/(1<<30), be.Name(), cuda.MemEnv)
	}
	return nil
}
