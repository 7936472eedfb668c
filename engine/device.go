package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/upg-ai/upg/backend"
	"github.com/upg-ai/upg/backend/cpu"
	"github.com/upg-ai/upg/backend/cuda"
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
