package cuda

import (
	"errors"
	"testing"
)

// TestNoDeviceError checks that both no-GPU errors wrap ErrNoDevice (so
// --device auto logs them at info level, as a machine without a driver)
// and not ErrNoDriver, and that they keep the text users see.
func TestNoDeviceError(t *testing.T) {
	for _, c := range []struct {
		driverSaid bool
		want       string
	}{
		{true, "cuda: no CUDA GPU found (the NVIDIA driver is installed but reports no device)"},
		{false, "cuda: no CUDA GPU found"},
	} {
		err := noDeviceError(c.driverSaid)
		if !errors.Is(err, ErrNoDevice) || errors.Is(err, ErrNoDriver) {
			t.Errorf("noDeviceError(%v) = %v: want it to wrap ErrNoDevice only", c.driverSaid, err)
		}
		if err.Error() != c.want {
			t.Errorf("noDeviceError(%v) = %q, want %q", c.driverSaid, err, c.want)
		}
	}
}
