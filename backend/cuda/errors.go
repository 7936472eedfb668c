package cuda

import (
	"errors"
	"fmt"
)

// ErrNoDriver is wrapped by the error of a machine without the NVIDIA
// driver (or a platform without the CUDA backend): the usual case on a CPU
// machine, which --device auto passes over quietly.
var ErrNoDriver = errors.New("no NVIDIA driver")

// ErrNoDevice is wrapped by the error of a machine whose NVIDIA driver
// reports no GPU (a container without the device passed through, a driver
// left installed after the card went): as usual a case --device auto passes
// over quietly, since nothing on the machine is wrong.
var ErrNoDevice = errors.New("no CUDA GPU found")

// noDeviceError is the error for a driver that reports no GPU (cuInit's
// CUDA_ERROR_NO_DEVICE, or a device count of 0).
func noDeviceError(driverSaid bool) error {
	if driverSaid {
		return fmt.Errorf("cuda: %w (the NVIDIA driver is installed but reports no device)", ErrNoDevice)
	}
	return fmt.Errorf("cuda: %w", ErrNoDevice)
}
