package cuda

import "errors"

// ErrNoDriver is wrapped by the error of a machine without the NVIDIA
// driver (or a platform without the CUDA backend): the usual case on a CPU
// machine, which --device auto passes over quietly.
var ErrNoDriver = errors.New("no NVIDIA driver")
