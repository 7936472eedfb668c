//go:build !(linux && (amd64 || arm64))

package cuda

import (
	"fmt"

	"github.com/upg-ai/upg/backend"
)

// MinDriverVersion is the oldest driver API version the kernels load on.
const MinDriverVersion = 13000

// Probe reports that this platform has no CUDA backend.
func Probe() error {
	return fmt.Errorf("cuda: %w: the CUDA backend is available on linux/amd64 and linux/arm64 only", ErrNoDriver)
}

// NewBackend reports that this platform has no CUDA backend.
func NewBackend(ordinal int) (backend.Backend, error) { return nil, Probe() }
